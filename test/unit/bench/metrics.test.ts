import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { RequestRecord } from '../../../src/bench/metrics/records.js';
import { latencyStats, metricValue, summarizeRun } from '../../../src/bench/metrics/summarize.js';
import { loraCounters, parsePrometheus, slotGauges } from '../../../src/bench/server/prometheus.js';

function record(partial: Partial<RequestRecord>): RequestRecord {
  return {
    run: 'a', variant: 'a', level: null, round: 0, index: 0, adapter: 'x', inputTokens: 10, requestedOutputTokens: 5,
    outputTokens: 5, sentAtMs: 0, ttftMs: 10, e2eMs: 50, itlMs: [10, 10, 10, 10], error: null, ...partial,
  };
}

test('latencyStats: percentiles of 1..1000 ms within hdr precision', () => {
  const stats = latencyStats(Array.from({ length: 1000 }, (_v, i) => i + 1));
  assert.equal(stats.count, 1000);
  assert.ok(Math.abs(stats.p50 - 500) <= 1, `p50 ${stats.p50}`);
  assert.ok(Math.abs(stats.p90 - 900) <= 1);
  assert.ok(Math.abs(stats.p99 - 990) <= 1);
  assert.equal(stats.max, 1000);
  assert.ok(Math.abs(stats.mean - 500.5) < 1e-9);
  assert.ok(Number.isNaN(latencyStats([]).p50));
});

test('summarizeRun: throughput over the measured window, TPOT, errors and SLO', () => {
  const records = [
    record({ index: 0, sentAtMs: 0, e2eMs: 1000, ttftMs: 200, outputTokens: 5, itlMs: [200, 200, 200, 200] }),
    record({ index: 1, sentAtMs: 500, e2eMs: 1500, ttftMs: 300, outputTokens: 5, adapter: 'y' }),
    record({ index: 2, sentAtMs: 600, e2eMs: 10, ttftMs: null, outputTokens: 0, itlMs: [], error: 'HTTP 400: bad' }),
  ];
  const summary = summarizeRun({ run: 'a', variant: 'a', level: null }, records, 250);
  assert.equal(summary.requests, 3);
  assert.equal(summary.completed, 2);
  assert.equal(summary.errors, 1);
  assert.equal(summary.durationS, 2); // 0 → 2000 ms
  assert.equal(summary.outputTokPerS, 5); // 10 tokens / 2 s
  assert.equal(summary.reqPerS, 1);
  assert.equal(summary.totalTokPerS, 15); // (10 + 20 input) / 2 s
  // TPOT (E2E − TTFT)/(n − 1): 200 and 300
  assert.ok(Math.abs(summary.tpot.mean - 250) < 1e-9);
  assert.equal(summary.sloTtftAttainment, 1 / 3); // only the 200 ms one; the error counts as a miss
  assert.equal(metricValue(summary, 'errors'), 1);
  assert.equal(metricValue(summary, 'ttft_max'), 300);
  assert.equal(metricValue(summary, 'nonsense'), null);
  assert.equal(summarizeRun({ run: 'a', variant: 'a', level: null }, records, 250, undefined, 4).outputTokPerS, 2.5);
});

test('adapter fairness spread is max/min of per-adapter p99 TTFT', () => {
  const records = [record({ adapter: 'x', ttftMs: 10 }), record({ adapter: 'y', ttftMs: 40 }), record({ adapter: null, ttftMs: 1000 })];
  const summary = summarizeRun({ run: 'a', variant: 'a', level: null }, records, 100);
  assert.ok(Math.abs(summary.adapterTtftP99Spread! - 4) < 0.01);
});

test('Prometheus parsing and LoRA counter deltas prefer the device tier', () => {
  const before = parsePrometheus([
    '# HELP tslora_lora_loads_total x', 'tslora_lora_loads_total 4', 'tslora_lora_device_loads_total 2',
    'tslora_lora_device_evictions_total 0', 'tslora_lora_load_seconds_bucket{le="0.1"} 3', 'lora_pool_slots_used 1',
  ].join('\n'));
  const after = parsePrometheus([
    'tslora_lora_loads_total 4', 'tslora_lora_device_loads_total 9', 'tslora_lora_device_evictions_total 5',
    'tslora_lora_host_evictions_total 1', 'tslora_lora_requests_waiting_on_load 3', 'lora_pool_slots_used 3', 'lora_pool_slots_total 4',
    'tslora_lora_load_seconds_bucket{le="0.1"} 9', 'tslora_lora_load_seconds_sum 0.5',
  ].join('\n'));
  assert.equal(after.get('tslora_lora_load_seconds_bucket{le="0.1"}'), 9);
  const counters = loraCounters(before, after);
  assert.equal(counters.adapterLoads, 7);
  assert.equal(counters.evictions, 5);
  assert.equal(counters.slotsUsed, 3);
  assert.equal(counters.slotsTotal, 4);
  assert.equal(counters.deltas.tslora_lora_host_evictions_total, 1);
  assert.deepEqual(slotGauges(new Map()), { used: null, total: null });
  // without per-tier names, any load counter counts
  assert.equal(loraCounters(new Map(), parsePrometheus('sglang:lora_loads_total 3\n')).adapterLoads, 3);
});
