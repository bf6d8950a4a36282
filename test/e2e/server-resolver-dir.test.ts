/**
 * --lora-resolver-dir: an adapter named by a request and not loaded is loaded from DIR/<name> (native lora_path
 * and OpenAI bare `model`), gives the same tokens as an explicit load of the same files, comes back from DIR after
 * an explicit unload, and neither odd names nor a symlink out of DIR reach outside it. Plus the start-up checks of
 * --lora-resolver-dir and --replicas.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { runCli } from './cli-run.js';
import { ADAPTER, FIXTURE, get, greedy, post, reference, startServer } from './server-harness.js';

const MODEL = 'tiny-llama';
const ref = reference(MODEL);
const expected = (name: string, p: number) => ref.adapters.find((a) => a.name === name)!.prompts[p].greedy;

test('adapters load on first use from --lora-resolver-dir, and only from inside it', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tslora-resolver-'));
  cpSync(ADAPTER(MODEL, 'r4-pattern'), join(dir, 'good'), { recursive: true });
  symlinkSync(ADAPTER(MODEL, 'r1-qv'), join(dir, 'escape'));
  const server = await startServer(['--model-path', FIXTURE(MODEL), '--served-model-name', 'tiny', '--enable-lora', '--max-lora-rank', '64', '--lora-target-modules', 'all', '--lora-resolver-dir', dir]);
  try {
    const gen = (lora: string) => post(`${server.url}/generate`, { input_ids: ref.prompts[0], lora_path: lora, sampling_params: greedy(ref.greedyTokens) });
    const names = async () => (await get(`${server.url}/v1/models`)).body.data.map((c: { id: string }) => c.id).sort();
    assert.deepEqual(await names(), ['tiny']);
    const first = await gen('good');
    assert.equal(first.status, 200, JSON.stringify(first.body));
    assert.deepEqual(first.body.output_ids, expected('r4-pattern', 0), 'PEFT reference tokens of the adapter in DIR/good');
    assert.deepEqual(await names(), ['good', 'tiny']);
    // An explicit unload forgets the name; the next request finds it in DIR again.
    assert.equal((await post(`${server.url}/v1/unload_lora_adapter`, { lora_name: 'good' })).status, 200);
    const openai = await post(`${server.url}/v1/completions`, { model: 'good', prompt: ref.prompts[1], max_tokens: ref.greedyTokens, temperature: 0, ignore_eos: true });
    assert.equal(openai.status, 200, JSON.stringify(openai.body));
    assert.deepEqual(await names(), ['good', 'tiny']);
    // Concurrent first uses of one name load it once.
    await post(`${server.url}/v1/unload_lora_adapter`, { lora_name: 'good' });
    const together = await Promise.all([0, 1, 2].map(() => gen('good')));
    for (const r of together) assert.deepEqual(r.body.output_ids, expected('r4-pattern', 0));
    // A symlink leading out of DIR, parent references and separators are not adapters of DIR.
    for (const name of ['escape', '../good', 'good/..', '.hidden', 'missing']) {
      const res = await gen(name);
      assert.equal(res.status, 400, `${name}: ${JSON.stringify(res.body)}`);
      assert.equal(res.body.error.code, 'not_loaded', name);
    }
    assert.deepEqual(await names(), ['good', 'tiny']);
  } finally {
    assert.equal(await server.stop(), 0, server.output());
    rmSync(dir, { recursive: true, force: true });
  }
});

test('serve rejects a --lora-resolver-dir that is not a directory and --replicas out of range, before loading', async () => {
  const pool = ['--model-path', FIXTURE(MODEL), '--enable-lora', '--max-lora-rank', '8', '--lora-target-modules', 'all'];
  let result = await runCli(['serve', ...pool, '--lora-resolver-dir', '/nonexistent/adapters']);
  assert.equal(result.code, 2, result.stderr);
  assert.ok(result.stderr.includes('--lora-resolver-dir /nonexistent/adapters is not a directory'), result.stderr);
  result = await runCli(['serve', ...pool, '--replicas', '0']);
  assert.equal(result.code, 2, result.stderr);
  assert.ok(result.stderr.includes('--replicas must be from 1 to 64 (got 0)'), result.stderr);
  assert.equal(result.stdout, '');
});
