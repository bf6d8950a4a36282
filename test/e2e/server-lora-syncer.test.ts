/**
 * The gateway's LoRA syncer (gateway-api-inference-extension tools/dynamic-lora-sidecar) drives a model server
 * with exactly these calls: GET /health and GET /v1/models without credentials, then POST /v1/load_lora_adapter
 * {lora_name, lora_path, base_model_name} (base_model_name "" unless configured) and POST
 * /v1/unload_lora_adapter {lora_name}, treating any non-2xx status as a failure. This replays that sequence.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ADAPTER, FIXTURE, get, post, startServer } from './server-harness.js';

const MODEL = 'tiny-llama';

test('the LoRA syncer sequence: health, list, load with base_model_name, serve by model name, unload', async () => {
  const server = await startServer(['--model-path', FIXTURE(MODEL), '--served-model-name', 'tiny', '--enable-lora', '--max-lora-rank', '16', '--lora-target-modules', 'all']);
  try {
    const ids = async () => new Set((await get(`${server.url}/v1/models`)).body.data.map((c: { id: string }) => c.id));
    assert.equal((await get(`${server.url}/health`)).status, 200);
    assert.deepEqual([...(await ids())], ['tiny']);
    for (const [name, baseModelName] of [['sql', ''], ['chat', 'tiny']] as const) {
      const loaded = await post(`${server.url}/v1/load_lora_adapter`, { lora_name: name, lora_path: ADAPTER(MODEL, 'r1-qv'), base_model_name: baseModelName });
      assert.equal(loaded.status, 200, JSON.stringify(loaded.body));
      assert.equal(loaded.body.success, true);
    }
    assert.deepEqual([...(await ids())].sort(), ['chat', 'sql', 'tiny']);
    const card = (await get(`${server.url}/v1/models/sql`)).body;
    assert.equal(card.parent, 'tiny');
    const completion = await post(`${server.url}/v1/completions`, { model: 'sql', prompt: 'hello', max_tokens: 3, temperature: 0 });
    assert.equal(completion.status, 200, JSON.stringify(completion.body));
    assert.equal(completion.body.model, 'sql');
    // A second load of a listed name is refused (the syncer checks /v1/models first and skips it).
    const again = await post(`${server.url}/v1/load_lora_adapter`, { lora_name: 'sql', lora_path: ADAPTER(MODEL, 'r1-qv'), base_model_name: '' });
    assert.equal(again.status, 400);
    assert.equal(again.body.error_code, 'already_loaded');
    const unloaded = await post(`${server.url}/v1/unload_lora_adapter`, { lora_name: 'sql' });
    assert.equal(unloaded.status, 200, JSON.stringify(unloaded.body));
    assert.deepEqual([...(await ids())].sort(), ['chat', 'tiny']);
  } finally {
    assert.equal(await server.stop(), 0, server.output());
  }
});
