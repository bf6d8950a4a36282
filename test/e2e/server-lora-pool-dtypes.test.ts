// serve --lora-pool-dtype bf16 / int8 on the demo model: the CPU LoRA pool is stored in that dtype (the log says so) and
// the demo's task adapters still give their exact answers, batched across two adapters.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { post, startServer, type Server } from './server-harness.js';

for (const dtype of ['bf16', 'int8'] as const) {
  describe(`--lora-pool-dtype ${dtype} on the demo model`, { timeout: 180_000 }, () => {
    let server: Server;
    before(async () => {
      server = await startServer(['--lora-pool-dtype', dtype], 120_000);
    });
    after(async () => {
      assert.equal(await server?.stop(), 0, server?.output());
    });

    it(`logs the ${dtype} pool and the adapters answer exactly`, async () => {
      assert.match(server.output(), new RegExp(`LoRA pool: .*${dtype} storage on the CPU`));
      const res = await post(`${server.url}/generate`, {
        text: ['12+30=', 'make me loud='], lora_path: ['add', 'upper'], sampling_params: { max_new_tokens: 16, temperature: 0 },
      });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.deepEqual(res.body.map((r: { text: string }) => r.text), ['42', 'MAKE ME LOUD']);
    });
  });
}

it('serve rejects an unknown LoRA pool dtype at start', { timeout: 120_000 }, async () => {
  for (const bad of ['f16', 'int4']) await assert.rejects(startServer(['--lora-pool-dtype', bad], 60_000), new RegExp(`lora-pool-dtype|${bad}`));
});
