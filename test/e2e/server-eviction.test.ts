/**
 * Eviction (spec c.3, c.4, c.8, f.4, f.5, f.7): host-tier LRU vs FIFO with implicit reload, pinned adapters never
 * evicted, pool incompatibilities, and stale device slots (S = 1, large pool rank): an adapter's output is the
 * same whatever occupied its slot before.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ADAPTER, FIXTURE, INVALID_ADAPTER, get, greedy, post, reference, startServer } from './server-harness.js';

const MODEL = 'tiny-llama';
const ref = reference(MODEL);
const expected = (name: string, p: number) => ref.adapters.find((a) => a.name === name)!.prompts[p].greedy;

for (const policy of ['lru', 'fifo'] as const) {
  test(`host-tier cap with --lora-eviction-policy ${policy}: victim order, implicit reload, pinned kept`, async () => {
    const server = await startServer([
      '--model-path', FIXTURE(MODEL), '--enable-lora', '--max-lora-rank', '16', '--lora-target-modules', 'qkv_proj', 'o_proj',
      '--max-loras-per-batch', '2', '--max-loaded-loras', '2', '--lora-eviction-policy', policy,
    ]);
    try {
      const load = (name: string, adapter: string, pinned = false) => post(`${server.url}/load_lora_adapter`, { lora_name: name, lora_path: ADAPTER(MODEL, adapter), pinned });
      const gen = (lora: string | null, p = 0) => post(`${server.url}/generate`, { input_ids: ref.prompts[p], lora_path: lora, sampling_params: greedy(ref.greedyTokens) });
      assert.equal((await load('a', 'r1-qv')).body.success, true);
      assert.equal((await load('b', 'r16-o')).body.success, true);
      assert.deepEqual((await gen('a')).body.output_ids, expected('r1-qv', 0)); // a is now the most recently used
      const third = await load('c', 'r6-regex-layer1');
      assert.equal(third.body.success, true);
      const evicted = policy === 'lru' ? 'b' : 'a';
      const kept = policy === 'lru' ? 'a' : 'b';
      assert.deepEqual(Object.keys(third.body.loaded_adapters).sort(), [kept, 'c'].sort(), `${policy} evicted ${evicted}`);
      const models = (await get(`${server.url}/v1/models`)).body.data.map((c: { id: string }) => c.id);
      assert.ok(!models.includes(evicted));
      // The evicted name is still known: a request reloads it with its original path.
      const reloaded = await gen(evicted, 1);
      assert.equal(reloaded.status, 200, JSON.stringify(reloaded.body));
      assert.deepEqual(reloaded.body.output_ids, expected(evicted === 'a' ? 'r1-qv' : 'r16-o', 1));
      // Pool limits: modules outside the pool and ranks above it are incompatible.
      const outside = await post(`${server.url}/load_lora_adapter`, { lora_name: 'o', lora_path: INVALID_ADAPTER(MODEL, 'outside-pool') });
      assert.equal(outside.body.error_code, 'incompatible');
      assert.match(outside.body.error_message, /down_proj/);
      const tooHigh = await post(`${server.url}/load_lora_adapter`, { lora_name: 'h', lora_path: ADAPTER(MODEL, 'r64-rslora') });
      assert.equal(tooHigh.body.error_code, 'incompatible');
      // A pinned adapter survives any churn in the host tier.
      await post(`${server.url}/unload_lora_adapter`, { lora_name: 'c' });
      const names = Object.keys((await get(`${server.url}/v1/models`)).body.data.reduce((o: Record<string, 1>, c: { id: string }) => ({ ...o, [c.id]: 1 }), {}));
      for (const n of ['a', 'b']) if (names.includes(n)) await post(`${server.url}/unload_lora_adapter`, { lora_name: n });
      assert.equal((await load('p', 'r1-qv', true)).body.success, true);
      for (const [i, adapter] of ['r16-o', 'r6-regex-layer1', 'r16-o', 'r6-regex-layer1'].entries()) {
        const res = await load(`churn${i}`, adapter);
        assert.equal(res.body.success, true, JSON.stringify(res.body));
        assert.ok('p' in res.body.loaded_adapters, 'pinned adapter never evicted from the host tier');
        assert.deepEqual((await gen(`churn${i}`, i % 3)).body.output_ids, expected(adapter, i % 3));
        assert.deepEqual((await gen('p', i % 3)).body.output_ids, expected('r1-qv', i % 3));
      }
      // Two evicted names in one request while the only other slot of the host tier is pinned: capacity.
      const both = await post(`${server.url}/generate`, { text: ['x', 'y'], lora_path: ['churn0', 'churn1'], sampling_params: greedy(2) });
      assert.equal(both.status, 400);
      assert.equal(both.body.error.code, 'capacity');
      assert.match(both.body.error.message, /--max-loaded-loras/);
    } finally {
      assert.equal(await server.stop(), 0, server.output());
    }
  });
}

test('stale slots: with one device slot, every adapter gives its reference output whatever ran before', async () => {
  const names = ['r1-qv', 'r4-pattern', 'r64-rslora', 'r5-gateup', 'r8-vdown'];
  const server = await startServer([
    '--model-path', FIXTURE(MODEL), '--max-loras-per-batch', '1', '--max-lora-rank', '64', '--lora-target-modules', 'all',
    '--lora-paths', ...names.map((n) => `${n}=${ADAPTER(MODEL, n)}`),
  ]);
  try {
    const order = ['r1-qv', 'r4-pattern', 'r1-qv', 'r64-rslora', 'r1-qv', null, 'r4-pattern', 'r5-gateup', 'r8-vdown', 'r64-rslora', 'r4-pattern', 'r8-vdown', null, 'r1-qv', 'r64-rslora', 'r8-vdown'];
    for (const [i, name] of order.entries()) {
      const p = i % 3;
      const res = await post(`${server.url}/generate`, { input_ids: ref.prompts[p], lora_path: name, sampling_params: greedy(ref.greedyTokens) });
      assert.deepEqual(res.body.output_ids, name === null ? ref.base[p].greedy : expected(name, p), `step ${i}: ${name}`);
    }
    // Concurrent requests for different adapters with S = 1 are split into separate batches and still match.
    const mixed = await Promise.all(names.map((n, i) => post(`${server.url}/generate`, { input_ids: ref.prompts[i % 3], lora_path: n, sampling_params: greedy(ref.greedyTokens) })));
    mixed.forEach((res, i) => assert.deepEqual(res.body.output_ids, expected(names[i], i % 3), names[i]));
    // The same name reused for different files across unload/load.
    for (const file of ['r64-rslora', 'r1-qv', 'r4-pattern']) {
      await post(`${server.url}/unload_lora_adapter`, { lora_name: 'r8-vdown' });
      const load = await post(`${server.url}/load_lora_adapter`, { lora_name: 'r8-vdown', lora_path: ADAPTER(MODEL, file) });
      assert.equal(load.body.success, true, JSON.stringify(load.body));
      const res = await post(`${server.url}/generate`, { input_ids: ref.prompts[0], lora_path: 'r8-vdown', sampling_params: greedy(ref.greedyTokens) });
      assert.deepEqual(res.body.output_ids, expected(file, 0), `name reused for ${file}`);
    }
  } finally {
    assert.equal(await server.stop(), 0, server.output());
  }
});
