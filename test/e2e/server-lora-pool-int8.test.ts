// serve --lora-pool-dtype int8 on the demo model: the CPU LoRA pool is stored in int8 (the log says so) and the
// demo's task adapters still give their exact answers, batched across two adapters.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { post, startServer, type Server } from './server-harness.js';

describe('--lora-pool-dtype int8 on the demo model', { timeout: 180_000 }, () => {
  let server: Server;
  before(async () => {
    server = await startServer(['--lora-pool-dtype', 'int8'], 120_000);
  });
  after(async () => {
    assert.equal(await server?.stop(), 0, server?.output());
  });

  it('logs the int8 pool and the adapters answer exactly', async () => {
    assert.match(server.output(), /LoRA pool: .*int8 storage on the CPU/);
    const res = await post(`${server.url}/generate`, {
      text: ['12+30=', 'make me loud='], lora_path: ['add', 'upper'], sampling_params: { max_new_tokens: 16, temperature: 0 },
    });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.deepEqual(res.body.map((r: { text: string }) => r.text), ['42', 'MAKE ME LOUD']);
  });

  it('rejects an unknown pool dtype at start', async () => {
    await assert.rejects(startServer(['--lora-pool-dtype', 'int4'], 60_000), /lora-pool-dtype|int4/);
  });
});
