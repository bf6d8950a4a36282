/**
 * ServerMetrics.render() on engine snapshots, read back with a Prometheus text parser: the LoRA labels for slots
 * that are ready, copying (waiting) or taken by the base model, adapters in flight without a slot, finished
 * samples leaving the waiting set, and no engine gauges at all when the engine gave no snapshot.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import type { EngineStats } from '../../../src/engine/types.js';
import { ServerMetrics } from '../../../src/server/metrics.js';

const engine = (over: Partial<EngineStats>): EngineStats => ({
  waiting: 0, running: 0, waitingOnAdapterLoad: 0, slotsUsed: 0, slotsTotal: 4, slotIds: [null, null, null, null], slotLoadingIds: [],
  kvBlocksTotal: 100, kvBlocksUsed: 0, kvBlockSize: 16, prefixCacheHitRate: 0, deviceLoads: 0, deviceEvictions: 0, promptTokensTotal: 0,
  generatedTokensTotal: 0, cachedTokensTotal: 0, steps: 0, delayedPrefills: 0, maxRunningRequests: 8, hostAdapterBytes: 0, decodeSteps: 0, decodeStepMsTotal: 0, ...over,
});
const names = new Map([['lora-1', 'sql'], ['lora-2', 'chat'], ['lora-3', 'math']]);
const lora = { nameOfSlotId: (id: string) => names.get(id) ?? null };
const host = { loaded: 3, hostEvictions: 0, loads: 3, outstanding: 0 };

async function families(metrics: ServerMetrics, stats: EngineStats | null) {
  const parsed = parsePrometheusTextFormat(await metrics.render({ engine: stats, host, lora })) as Array<{ name: string; metrics: Array<{ value: string; labels?: Record<string, string> }> }>;
  return new Map(parsed.map((f) => [f.name, f.metrics]));
}

test('LoRA labels: ready slots run, copying slots and slotless adapters in flight wait, base is never listed', async () => {
  const metrics = new ServerMetrics('base');
  metrics.accepted('chat', 2);
  metrics.accepted('math', 1);
  metrics.accepted('sql', 1);
  metrics.accepted(null, 1);
  const stats = engine({ waiting: 3, running: 2, slotIds: ['__base__', 'lora-1', 'lora-2', null], slotLoadingIds: ['lora-2'], kvBlocksUsed: 25 });
  let f = await families(metrics, stats);
  assert.deepEqual(f.get('vllm:lora_requests_info')![0].labels, { max_lora: '4', running_lora_adapters: 'sql', waiting_lora_adapters: 'chat,math' });
  assert.equal(Number(f.get('vllm:kv_cache_usage_perc')![0].value), 0.25);
  assert.equal(Number(f.get('vllm:num_requests_waiting')![0].value), 3);
  assert.deepEqual(f.get('vllm:cache_config_info')![0].labels, { block_size: '16', num_gpu_blocks: '100' });
  // math's only sample finishes: it leaves the waiting list; chat still has one in flight.
  const done = { aborted: false, e2eS: 0.1, promptTokens: 3, generationTokens: 2, cachedTokens: 0 };
  metrics.sampleFinished('math', done);
  metrics.sampleFinished('chat', done);
  f = await families(metrics, engine({ slotIds: ['lora-3', 'lora-1', 'lora-2', null] }));
  assert.deepEqual(f.get('vllm:lora_requests_info')![0].labels, { max_lora: '4', running_lora_adapters: 'chat,math,sql', waiting_lora_adapters: '' });
  assert.deepEqual(f.get('tslora_requests_total')!.map((m) => [m.labels!.model_name, m.value]), [['chat', '2'], ['math', '1'], ['sql', '1'], ['base', '1']]);
});

test('without an engine snapshot the engine and protocol gauges are left out, and come back with the next one', async () => {
  const metrics = new ServerMetrics('base');
  let f = await families(metrics, null);
  for (const name of ['vllm:num_requests_waiting', 'vllm:kv_cache_usage_perc', 'vllm:lora_requests_info', 'vllm:cache_config_info', 'tslora_num_queue_reqs', 'lora_pool_slots_total']) {
    assert.ok(!f.has(name) || f.get(name)!.length === 0, `${name} has no sample`);
  }
  assert.equal(f.get('tslora_outstanding_requests')![0].value, '0');
  f = await families(metrics, engine({ waiting: 1, steps: 7 }));
  assert.equal(f.get('vllm:num_requests_waiting')![0].value, '1');
  assert.equal(f.get('tslora_engine_steps_total')![0].value, '7');
});
