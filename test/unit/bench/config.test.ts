import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { listBundledConfigs, loadBenchConfig, parseBenchConfig } from '../../../src/bench/config/load-config.js';
import { plannedRunIds, selectVariants, workloadFor } from '../../../src/bench/runner/run-bench.js';
import { parseChecks } from '../../../src/bench/cli-entry.js';
import { TsloraError } from '../../../src/errors.js';

const usageError = (pattern: RegExp) => (error: unknown) => error instanceof TsloraError && error.code === 'usage' && pattern.test(error.message);

test('every bundled config validates, and the four experiments of issue #7 are there', () => {
  const names = listBundledConfigs().map((c) => c.name);
  for (const required of ['ci-smoke', 'triton-vs-csgmv', 'overlap-loading', 'adapter-sweep']) assert.ok(names.includes(required), required);
  for (const name of names) {
    const { config } = loadBenchConfig(name);
    assert.ok(config.variants.length >= 1);
    const runIds = plannedRunIds(config, config.variants);
    parseChecks(config, [], runIds); // default checks refer to real runs
  }
});

test('the adapter sweep goes from 1 adapter to N, uniform and Zipf', () => {
  const { config } = loadBenchConfig('adapter-sweep');
  const counts = (config.levels ?? []).map((l) => workloadFor(config, config.variants[0], l, {}).adapterCount);
  assert.equal(counts[0], 1);
  const popularities = (config.levels ?? []).map((l) => workloadFor(config, config.variants[0], l, {}).popularity.type);
  assert.ok(popularities.includes('uniform') && popularities.includes('zipf'));
});

test('overrides apply last: level < variant < command line', () => {
  const config = parseBenchConfig({
    name: 't',
    workload: { requests: 10, seed: 1 },
    variants: [{ name: 'a', workload: { requests: 20 } }, { name: 'b' }],
    levels: [{ name: 'l1', workload: { requests: 30, seed: 2 } }],
  }, 'inline');
  const [a, b] = config.variants;
  const level = config.levels![0];
  assert.equal(workloadFor(config, a, level, {}).requests, 20);
  assert.equal(workloadFor(config, b, level, {}).requests, 30);
  assert.equal(workloadFor(config, b, level, {}).seed, 2);
  assert.equal(workloadFor(config, b, null, { requests: 3 }).requests, 3);
  assert.deepEqual(plannedRunIds(config, config.variants), ['a', 'a@l1', 'b', 'b@l1']);
});

test('invalid configs fail with the JSON path of every problem', () => {
  assert.throws(
    () => parseBenchConfig({ name: 'x', variants: [{ name: 'a' }, { name: 'a' }], workload: { arrival: { type: 'poisson' }, bogus: 1 } }, 'x.json'),
    usageError(/invalid bench config x\.json:[\s\S]*workload\.arrival\.ratePerS[\s\S]*workload: Unrecognized key: "bogus"/),
  );
  assert.throws(() => parseBenchConfig({ name: 'x', variants: [{ name: 'a' }, { name: 'a' }] }, 'x.json'), usageError(/variants\[1\]\.name: variant name 'a' appears twice/));
  assert.throws(() => parseBenchConfig({ name: 'x', variants: [] }, 'x.json'), usageError(/variants:/));
  assert.throws(() => parseBenchConfig({ name: 'x', variants: [{ name: 'a', flags: { '--port': 1 } }] }, 'x.json'), usageError(/kebab-case/));
  assert.throws(
    () => parseBenchConfig({ name: 'x', variants: [{ name: 'a' }], workload: { inputTokens: { type: 'uniform', min: 9, max: 3 } } }, 'x.json'),
    usageError(/min must be <= max/),
  );
});

test('config files: not found lists the bundled ones; bad JSON says so; relative paths are resolved', () => {
  assert.throws(() => loadBenchConfig('no-such-config'), usageError(/not found/));
  const dir = mkdtempSync(join(tmpdir(), 'bench-config-'));
  writeFileSync(join(dir, 'bad.json'), '{ "name": ');
  assert.throws(() => loadBenchConfig(join(dir, 'bad.json')), usageError(/not valid JSON/));
  writeFileSync(join(dir, 'ok.json'), JSON.stringify({ name: 'ok', model: { path: 'm' }, adapters: { paths: { a: './ad' } }, variants: [{ name: 'v' }] }));
  const { config } = loadBenchConfig(join(dir, 'ok.json'));
  assert.deepEqual(config.model, { path: join(dir, 'm') });
  assert.deepEqual(config.adapters, { paths: { a: join(dir, 'ad') } });
});

test('checks must name runs the config produces; --variants must name variants it has', () => {
  const { config } = loadBenchConfig('triton-vs-csgmv');
  const runIds = plannedRunIds(config, config.variants);
  assert.ok(runIds.includes('csgmv@c16'));
  assert.equal(parseChecks(config, ['csgmv@c16.e2e_p50 <= triton@c16.e2e_p50 * 1.2'], runIds).length, 1);
  assert.throws(() => parseChecks(config, ['lora.ttft_p50 < 1'], runIds), usageError(/refers to run 'lora'/));
  assert.throws(() => selectVariants(config, ['cuda']), usageError(/--variants names cuda/));
  assert.deepEqual(selectVariants(config, ['csgmv']).map((v) => v.name), ['csgmv']);
});

test("the config's checks on variants left out by --variants are dropped; a --check on them is an error", () => {
  const { config } = loadBenchConfig('ci-smoke');
  const all = plannedRunIds(config, config.variants);
  const selected = plannedRunIds(config, selectVariants(config, ['csgmv']));
  assert.deepEqual(parseChecks(config, [], selected, all).map((c) => c.source), ['csgmv.errors == 0']);
  assert.throws(() => parseChecks(config, ['triton.errors == 0'], selected, all), usageError(/refers to run 'triton', which this run does not produce/));
  const broken = { ...config, checks: ['nothere.errors == 0'] };
  assert.throws(() => parseChecks(broken, [], selected, all), usageError(/which this config does not produce/));
});
