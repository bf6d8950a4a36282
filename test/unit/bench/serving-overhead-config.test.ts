/** bench-configs/serving-overhead-h200.json (issue #12, run by scripts/device/gpu-suite.sh STEP_TARGETS=1). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadBenchConfig } from '../../../src/bench/config/load-config.js';
import { parseChecks } from '../../../src/bench/cli-entry.js';
import { plannedRunIds, selectVariants, workloadFor } from '../../../src/bench/runner/run-bench.js';
import { resolveServeConfig } from '../../../src/config/resolve-serve.js';
import { kebabToCamel } from '../../../src/config/option-names.js';

test('serving-overhead-h200: csgmv on CUDA at c1 and c64, graphs and overlap scheduling off (before), graphs only (no-overlap), both (after), time-boxed', () => {
  const { config } = loadBenchConfig('serving-overhead-h200');
  parseChecks(config, [], plannedRunIds(config, config.variants));
  // scripts/device/step-targets.sh runs only overlap off vs on: the checks of the left-out variant are dropped
  const overlapOnly = selectVariants(config, ['no-overlap', 'after']);
  assert.deepEqual(overlapOnly.map((v) => v.name), ['no-overlap', 'after']);
  const checks = parseChecks(config, [], plannedRunIds(config, overlapOnly), plannedRunIds(config, config.variants));
  assert.equal(checks.length, 2);
  assert.deepEqual(config.variants.map((v) => v.name), ['before', 'no-overlap', 'after']);
  const serve = config.variants.map((variant) => {
    const argv: Record<string, unknown> = { modelPath: '/models/synthetic', loraPaths: ['lora-0=/adapters/lora-0'] };
    for (const [flag, value] of Object.entries({ ...config.serverFlags, ...variant.flags })) argv[kebabToCamel(flag)] = value;
    return resolveServeConfig(argv);
  });
  assert.deepEqual(serve.map((s) => [s.device, s.loraBackend, s.disableCudaGraph, s.disableOverlapSchedule]), [
    ['cuda', 'csgmv', true, true],
    ['cuda', 'csgmv', false, true],
    ['cuda', 'csgmv', false, false],
  ]);
  const levels = (config.levels ?? []).map((l) => workloadFor(config, config.variants[0], l, {}));
  assert.deepEqual(levels.map((w) => (w.arrival.type === 'closed' ? w.arrival.concurrency : null)), [1, 64]);
  for (const w of levels) assert.ok(w.durationS !== undefined && w.durationS <= 5 && w.requests <= 128);
});
