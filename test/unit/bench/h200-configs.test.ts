/**
 * The GPU configs of issue #7 (bench/device-run.sh runs them on an H200): they validate, their server flags pass
 * `tslora serve`'s own validation for every variant, the A/B variants differ only in the flag under test, and
 * every level is time-boxed so that both configs fit the device run's few minutes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadBenchConfig } from '../../../src/bench/config/load-config.js';
import type { BenchConfig } from '../../../src/bench/config/schema.js';
import { plannedRunIds, workloadFor } from '../../../src/bench/runner/run-bench.js';
import { parseChecks } from '../../../src/bench/cli-entry.js';
import { resolveServeConfig } from '../../../src/config/resolve-serve.js';
import { kebabToCamel } from '../../../src/config/option-names.js';

function serveConfigFor(config: BenchConfig, variantIndex: number) {
  const variant = config.variants[variantIndex];
  const flags = { ...config.serverFlags, ...variant.flags };
  const adapters = 'synthetic' in config.adapters ? config.adapters.synthetic.count : 0;
  const argv: Record<string, unknown> = {
    modelPath: '/models/synthetic',
    loraPaths: Array.from({ length: adapters }, (_v, i) => `lora-${i}=/adapters/lora-${i}`),
    enableMetrics: true,
  };
  for (const [flag, value] of Object.entries(flags)) argv[kebabToCamel(flag)] = value;
  return resolveServeConfig(argv);
}

/** Flags of each variant that differ from the first variant's. */
function flagDifferences(config: BenchConfig): string[] {
  const [first, ...rest] = config.variants;
  const keys = new Set(config.variants.flatMap((v) => Object.keys(v.flags)));
  return [...keys].filter((k) => rest.some((v) => v.flags[k] !== first.flags[k]));
}

for (const name of ['triton-vs-csgmv-h200', 'overlap-loading-h200']) {
  test(`${name}: validates, runs on CUDA, and its default checks name real runs`, () => {
    const { config } = loadBenchConfig(name);
    assert.equal(config.serverFlags.device, 'cuda');
    assert.ok('synthetic' in config.model && ['llama-3.2-1b', 'qwen2.5-0.5b'].includes(config.model.synthetic.shape));
    parseChecks(config, [], plannedRunIds(config, config.variants));
    for (const level of config.levels ?? []) {
      const workload = workloadFor(config, config.variants[0], level, {});
      if (workload.arrival.type !== 'burst') assert.ok(workload.durationS !== undefined && workload.durationS <= 6, `${level.name} is time-boxed`);
      assert.ok(workload.requests <= 256, `${level.name}: ${workload.requests} requests`);
    }
  });
}

test('triton-vs-csgmv-h200: a concurrency sweep up to 128 against identical servers but the LoRA backend', () => {
  const { config } = loadBenchConfig('triton-vs-csgmv-h200');
  assert.deepEqual(config.variants.map((v) => v.flags['lora-backend']), ['triton', 'csgmv']);
  assert.deepEqual(flagDifferences(config), ['lora-backend']);
  const concurrency = (config.levels ?? []).map((l) => {
    const arrival = workloadFor(config, config.variants[0], l, {}).arrival;
    return arrival.type === 'closed' ? arrival.concurrency : null;
  });
  assert.deepEqual(concurrency, [1, 16, 64, 128]);
  const serve = config.variants.map((_v, i) => serveConfigFor(config, i));
  assert.deepEqual(serve.map((s) => s.loraBackend), ['triton', 'csgmv']);
  for (const s of serve) {
    assert.ok(s.maxRunningRequests! >= 128, 'max-running-requests raised to the highest concurrency');
    assert.equal(s.maxLorasPerBatch, 8);
    assert.equal(s.disableRadixCache, true);
  }
  assert.ok('synthetic' in config.adapters);
  assert.equal(config.adapters.synthetic.count, 8);
  assert.deepEqual(config.adapters.synthetic.ranks, [16]);
});

test('overlap-loading-h200: adversarial churn (every request swaps) plus the counter-case, overlap off vs on', () => {
  const { config } = loadBenchConfig('overlap-loading-h200');
  assert.deepEqual(flagDifferences(config), ['enable-lora-overlap-loading']);
  const [off, on] = config.variants.map((_v, i) => serveConfigFor(config, i));
  assert.equal(off.enableLoraOverlapLoading, false);
  assert.equal(on.enableLoraOverlapLoading, true);
  const slots = on.maxLorasPerBatch;
  assert.ok(on.maxLoadedLoras! <= 2 * slots, 'max-loaded-loras <= 2 S (spec a.2 rule 4)');
  assert.ok('synthetic' in config.adapters);
  const adapters = config.adapters.synthetic;
  assert.ok(adapters.count > slots, 'more adapters than slots');
  assert.ok(adapters.ranks.every((r) => r >= 64) && adapters.targets.includes('all'), 'adapters large enough that copies cost something');
  const levels = (config.levels ?? []).map((l) => ({ name: l.name, workload: workloadFor(config, config.variants[0], l, {}) }));
  const churn = levels.filter((l) => l.name.startsWith('churn'));
  assert.ok(churn.length >= 1);
  for (const { workload } of churn) {
    assert.equal(workload.popularity.type, 'distinct');
    assert.ok(workload.inputTokens.type === 'fixed' && workload.inputTokens.value <= 32, 'short prompts');
  }
  const counter = levels.find((l) => l.name === 'counter')!.workload;
  assert.equal(counter.arrival.type, 'burst');
  assert.ok(counter.inputTokens.type === 'fixed' && counter.inputTokens.value >= 512, 'long prompts');
});
