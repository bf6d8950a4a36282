import { test } from 'node:test';
import assert from 'node:assert/strict';
import { resolveWorkload } from '../../../src/bench/config/schema.js';
import { AdapterPicker, drawLength, nextArrivalGapMs } from '../../../src/bench/workload/distributions.js';
import { SeededRandom } from '../../../src/bench/workload/random.js';
import { adaptersForWorkload, planRequests } from '../../../src/bench/workload/plan.js';

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const std = (xs: number[]) => Math.sqrt(mean(xs.map((x) => (x - mean(xs)) ** 2)));

test('same seed gives the same plan; another seed a different one', () => {
  const workload = resolveWorkload({ requests: 40, arrival: { type: 'poisson', ratePerS: 5 }, inputTokens: { type: 'uniform', min: 8, max: 64 } });
  const a = planRequests({ workload, adapters: ['x', 'y', 'z'], vocabSize: 1000, warmup: false });
  const b = planRequests({ workload, adapters: ['x', 'y', 'z'], vocabSize: 1000, warmup: false });
  assert.deepEqual(a, b);
  const c = planRequests({ workload: { ...workload, seed: 7 }, adapters: ['x', 'y', 'z'], vocabSize: 1000, warmup: false });
  assert.notDeepEqual(a.map((r) => r.inputIds), c.map((r) => r.inputIds));
  const warm = planRequests({ workload, adapters: ['x'], vocabSize: 1000, warmup: true });
  assert.equal(warm.length, workload.warmupRequests);
});

test('prompt ids have the drawn length and stay inside the vocabulary, above the special ids', () => {
  const workload = resolveWorkload({ requests: 30, inputTokens: { type: 'uniform', min: 3, max: 50 } });
  for (const r of planRequests({ workload, adapters: [], vocabSize: 300, warmup: false })) {
    assert.equal(r.inputIds.length, r.inputTokens);
    assert.ok(r.inputTokens >= 3 && r.inputTokens <= 50);
    assert.ok(r.inputIds.every((id) => id >= 4 && id < 300));
    assert.equal(r.adapter, null);
  }
});

test('Poisson gaps have mean 1/λ and CV 1; Gamma gaps keep the mean and take the asked CV', () => {
  const random = new SeededRandom(1);
  const poisson = Array.from({ length: 20000 }, () => nextArrivalGapMs({ type: 'poisson', ratePerS: 4 }, random)!);
  assert.ok(Math.abs(mean(poisson) - 250) < 10, `mean ${mean(poisson)}`);
  assert.ok(Math.abs(std(poisson) / mean(poisson) - 1) < 0.05);
  const gamma = Array.from({ length: 20000 }, () => nextArrivalGapMs({ type: 'gamma', ratePerS: 4, cv: 3 }, random)!);
  assert.ok(Math.abs(mean(gamma) - 250) < 25, `mean ${mean(gamma)}`);
  assert.ok(Math.abs(std(gamma) / mean(gamma) - 3) < 0.35, `cv ${std(gamma) / mean(gamma)}`);
  assert.equal(nextArrivalGapMs({ type: 'burst' }, random), 0);
  assert.equal(nextArrivalGapMs({ type: 'closed', concurrency: 3 }, random), null);
});

test('open-loop plans carry increasing send times; closed-loop plans none', () => {
  const open = planRequests({ workload: resolveWorkload({ requests: 20, arrival: { type: 'poisson', ratePerS: 10 } }), adapters: ['a'], vocabSize: 500, warmup: false });
  assert.equal(open[0].sendAtMs, 0);
  for (let i = 1; i < open.length; i++) assert.ok(open[i].sendAtMs! >= open[i - 1].sendAtMs!);
  const closed = planRequests({ workload: resolveWorkload({ requests: 5 }), adapters: ['a'], vocabSize: 500, warmup: false });
  assert.ok(closed.every((r) => r.sendAtMs === null));
});

test('Zipf popularity follows p(i) ∝ (i+1)^-s; uniform is flat; distinct is round-robin; identical is one adapter', () => {
  const random = new SeededRandom(3);
  const n = 4;
  const count = (picker: AdapterPicker, draws: number) => {
    const hits = new Array(n).fill(0);
    for (let i = 0; i < draws; i++) hits[picker.pick(i, random)!]++;
    return hits.map((h) => h / draws);
  };
  const zipf = count(new AdapterPicker({ type: 'zipf', s: 1.5 }, n), 40000);
  const weights = [1, 2, 3, 4].map((i) => i ** -1.5);
  const total = weights.reduce((a, b) => a + b);
  zipf.forEach((p, i) => assert.ok(Math.abs(p - weights[i] / total) < 0.01, `zipf[${i}] = ${p}`));
  count(new AdapterPicker({ type: 'uniform' }, n), 40000).forEach((p) => assert.ok(Math.abs(p - 0.25) < 0.01));
  const distinct = new AdapterPicker({ type: 'distinct' }, n);
  assert.deepEqual([0, 1, 2, 3, 4, 5].map((i) => distinct.pick(i, random)), [0, 1, 2, 3, 0, 1]);
  const identical = new AdapterPicker({ type: 'identical' }, n);
  assert.deepEqual([0, 1, 2].map((i) => identical.pick(i, random)), [0, 0, 0]);
  assert.equal(new AdapterPicker({ type: 'base' }, n).pick(0, random), null);
});

test('baseFraction sends that share of requests without an adapter', () => {
  const plan = planRequests({ workload: resolveWorkload({ requests: 2000, baseFraction: 0.3 }), adapters: ['a', 'b'], vocabSize: 100, warmup: false });
  const base = plan.filter((r) => r.adapter === null).length / plan.length;
  assert.ok(Math.abs(base - 0.3) < 0.04, `base share ${base}`);
});

test('length distributions stay in their bounds', () => {
  const random = new SeededRandom(9);
  for (let i = 0; i < 2000; i++) {
    const u = drawLength({ type: 'uniform', min: 8, max: 512 }, random);
    assert.ok(u >= 8 && u <= 512);
    const l = drawLength({ type: 'lognormal', median: 100, sigma: 1, min: 4, max: 400 }, random);
    assert.ok(l >= 4 && l <= 400);
  }
  assert.equal(drawLength({ type: 'fixed', value: 17 }, random), 17);
});

test('adapterCount keeps the first N adapters; later layers of resolveWorkload win', () => {
  const workload = resolveWorkload({ requests: 5, adapterCount: 8 }, { adapterCount: 2 }, undefined, { seed: 5 });
  assert.equal(workload.adapterCount, 2);
  assert.equal(workload.seed, 5);
  assert.equal(workload.requests, 5);
  assert.deepEqual(adaptersForWorkload(['a', 'b', 'c'], workload), ['a', 'b']);
  assert.deepEqual(adaptersForWorkload(['a', 'b', 'c'], resolveWorkload()), ['a', 'b', 'c']);
});
