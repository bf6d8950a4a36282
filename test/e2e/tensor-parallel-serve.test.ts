// `tslora serve --tp-size 2` on the embedded demo model (two CPU tensor-parallel ranks, docs/tensor-parallel.md):
// one /generate batch mixing the base model and all six adapters (column- and row-parallel LoRA modules, ranks 4
// to 64) returns, for the reference inputs of models/demo/reference.json, each task's exact answer and the
// PyTorch + PEFT output; the sizes the model cannot split are refused at start-up.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import { get, post, REPO, startServer, type Server } from './server-harness.js';

const ROWS_PER_TASK = 8;
interface ReferenceRow {
  task: string;
  prompt: string;
  expected: string;
  pytorch: string;
}
const reference = JSON.parse(readFileSync(join(REPO, 'models', 'demo', 'reference.json'), 'utf8')) as { rows: ReferenceRow[] };

describe('tslora serve --tp-size 2 with the demo model', { timeout: 240_000 }, () => {
  let server: Server;
  before(async () => {
    server = await startServer(['--tp-size', '2'], 180_000);
  });
  after(async () => {
    await server?.stop();
  });

  it('the engine reports its two ranks', async () => {
    assert.match(server.output(), /engine on cpu \(.*threads in 2 tensor-parallel ranks\)/);
    const info = await get(`${server.url}/get_server_info`);
    assert.equal(info.body.engine.tpSize, 2);
  });

  it('one batch over the base and every adapter answers each task as PyTorch + PEFT does', async () => {
    const rows = reference.rows.filter((r, i, all) => all.findIndex((x) => x.task === r.task) + ROWS_PER_TASK > i);
    assert.equal(rows.length, 7 * ROWS_PER_TASK);
    const res = await post(`${server.url}/generate`, {
      text: rows.map((r) => r.prompt),
      lora_path: rows.map((r) => (r.task === 'echo' ? null : r.task)),
      sampling_params: { max_new_tokens: 48, temperature: 0 },
    });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const texts = (res.body as Array<{ text: string }>).map((r) => r.text);
    rows.forEach((r, i) => {
      assert.equal(texts[i], r.pytorch, `${r.task} '${r.prompt}': PyTorch + PEFT says '${r.pytorch}'`);
      assert.equal(texts[i], r.expected, `${r.task} '${r.prompt}'`);
    });
  });
});

describe('--tp-size the demo model cannot run', () => {
  const serve = (tp: string) =>
    spawnSync(process.execPath, ['bin/tslora.js', 'serve', '--port', '0', '--device', 'cpu', '--tp-size', tp], { cwd: REPO, encoding: 'utf8', timeout: 60_000 });

  it('3 does not divide the 8 heads; 8 is more ranks than the CPU backend runs', () => {
    const three = serve('3');
    assert.equal(three.status, 2, three.stderr);
    assert.match(three.stderr, /--tp-size 3 does not divide the model's 8 attention heads/);
    assert.match(three.stderr, /This model splits over --tp-size 1, 2, 4, 8/);
    const eight = serve('8');
    assert.equal(eight.status, 2, eight.stderr);
    assert.match(eight.stderr, /--tp-size 8: the CPU backend runs 1, 2, 4 tensor-parallel ranks/);
  });
});
