// serve --kv-cache-dtype bf16 on the demo model: the CPU KV cache is stored in bf16 (the log says so; the same
// default memory budget holds twice the blocks of the fp32 cache), and the demo's task adapters still give their
// exact answers, batched across two adapters with prompts long enough for the prefill attention path.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { post, startServer, type Server } from './server-harness.js';

const kvBlocks = (log: string) => Number(/KV cache (\d+) blocks/.exec(log)?.[1]);

describe('--kv-cache-dtype bf16 on the demo model', { timeout: 240_000 }, () => {
  let server: Server;
  before(async () => {
    server = await startServer(['--kv-cache-dtype', 'bf16', '--mem-fraction-static', '0.002'], 120_000);
  });
  after(async () => {
    assert.equal(await server?.stop(), 0, server?.output());
  });

  it('logs the bf16 cache with twice the blocks of the fp32 cache in the same memory, and the adapters answer exactly', async () => {
    assert.match(server.output(), /KV cache \d+ blocks × \d+ tokens in bf16/);
    const f32 = await startServer(['--mem-fraction-static', '0.002'], 120_000);
    try {
      assert.doesNotMatch(f32.output(), /in bf16/);
      // A budget small enough to bind (the cap at what the running requests could use does not): 2x within rounding.
      const [bf16Blocks, f32Blocks] = [kvBlocks(server.output()), kvBlocks(f32.output())];
      assert.ok(Math.abs(bf16Blocks - 2 * f32Blocks) <= 1, `bf16 ${bf16Blocks} vs f32 ${f32Blocks} KV blocks`);
    } finally {
      assert.equal(await f32.stop(), 0, f32.output());
    }
    const res = await post(`${server.url}/generate`, {
      text: ['12+30=', 'make me loud='], lora_path: ['add', 'upper'], sampling_params: { max_new_tokens: 16, temperature: 0 },
    });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.deepEqual(res.body.map((r: { text: string }) => r.text), ['42', 'MAKE ME LOUD']);
  });

  it('rejects an unknown KV cache dtype at start', async () => {
    await assert.rejects(startServer(['--kv-cache-dtype', 'fp8'], 60_000), /kv-cache-dtype|fp8/);
  });
});
