import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseBenchConfig } from '../../../src/bench/config/load-config.js';
import { serverArgsFor } from '../../../src/bench/runner/server-setup.js';
import { poolSizingArgs, prepareModel, type PreparedModel } from '../../../src/bench/runner/prepare.js';
import { flagsToArgs } from '../../../src/bench/server/launch.js';
import { synthModel } from '../../../src/bench/synth/write-model.js';

test('flag sets become serve arguments: true → --flag, false → --no-flag, lists → repeated values', () => {
  assert.deepEqual(flagsToArgs({ 'lora-backend': 'triton', 'enable-lora-overlap-loading': false, 'disable-radix-cache': true, 'max-loras-per-batch': 2, 'lora-target-modules': ['q_proj', 'v_proj'] }), [
    '--lora-backend', 'triton', '--no-enable-lora-overlap-loading', '--disable-radix-cache', '--max-loras-per-batch', '2', '--lora-target-modules', 'q_proj', 'v_proj',
  ]);
});

const adapters = [
  { name: 'a', path: '/ad/a', rank: 8, targets: ['q_proj', 'v_proj'] },
  { name: 'b', path: '/ad/b', rank: 32, targets: ['q_proj', 'o_proj'] },
];
const model = (isDemo: boolean): PreparedModel => ({ modelArgs: isDemo ? [] : ['--model-path', '/m'], modelDir: '/m', description: '', vocabSize: 100, adapters, isDemo });

test('start-up loading passes --lora-paths NAME=PATH; variant flags override common ones; metrics are switched on', () => {
  const config = parseBenchConfig({ name: 'x', model: { path: '/m' }, adapters: { paths: { a: '/ad/a', b: '/ad/b' } }, serverFlags: { 'max-loras-per-batch': 8, 'lora-backend': 'csgmv' }, variants: [{ name: 't', flags: { 'lora-backend': 'triton' } }] }, 'x');
  const args = serverArgsFor(config, config.variants[0], model(false), ['--num-threads', '1'], 'key');
  assert.deepEqual(args, ['--model-path', '/m', '--max-loras-per-batch', '8', '--lora-backend', 'triton', '--lora-paths', 'a=/ad/a', 'b=/ad/b', '--api-key', 'key', '--enable-metrics', '--num-threads', '1']);
});

const engineThreads = ['--num-threads', String(Math.max(1, availableParallelism() - 1))];

test('runtime loading sizes the pool from the adapters unless the config does', () => {
  const config = parseBenchConfig({ name: 'x', model: { path: '/m' }, adapters: { paths: ['/ad/a', '/ad/b'] }, adapterLoading: 'runtime', variants: [{ name: 'v', flags: { 'enable-metrics': true } }] }, 'x');
  assert.deepEqual(serverArgsFor(config, config.variants[0], model(false), [], null), [
    '--model-path', '/m', '--enable-metrics', '--enable-lora', '--max-lora-rank', '32', '--lora-target-modules', 'q_proj', 'v_proj', 'o_proj', ...engineThreads,
  ]);
  assert.deepEqual(poolSizingArgs(adapters, { 'max-lora-rank': 64, 'lora-target-modules': 'all' }), []);
});

test('the demo model registers its own adapters: no LoRA flags are added', () => {
  const config = parseBenchConfig({ name: 'x', variants: [{ name: 'v' }] }, 'x');
  assert.deepEqual(serverArgsFor(config, config.variants[0], model(true), [], null), ['--enable-metrics', ...engineThreads]);
});

test('launched servers leave one core to the HTTP thread and the client unless the config or --server-args set the threads', () => {
  const config = parseBenchConfig({ name: 'x', variants: [{ name: 'v' }, { name: 'w', flags: { 'num-threads': 3 } }] }, 'x');
  assert.deepEqual(serverArgsFor(config, config.variants[0], model(true), [], null).slice(-2), engineThreads);
  assert.deepEqual(serverArgsFor(config, config.variants[1], model(true), [], null), ['--num-threads', '3', '--enable-metrics']);
  assert.deepEqual(serverArgsFor(config, config.variants[0], model(true), ['--num-threads', '1'], null), ['--enable-metrics', '--num-threads', '1']);
});

test('a synthetic model is written once into the cache and reused; its vocabulary sizes the prompts', () => {
  process.env.TSLORA_BENCH_CACHE = mkdtempSync(join(tmpdir(), 'bench-cache-'));
  const seed = 7;
  const config = parseBenchConfig({
    name: 'x', model: { synthetic: { shape: 'tiny', dtype: 'f32', seed, vocab: 300 } },
    adapters: { synthetic: { count: 2, ranks: [4, 8], targets: ['q_proj'] } }, variants: [{ name: 'v' }],
  }, 'x');
  const logs: string[] = [];
  const first = prepareModel(config, (line) => logs.push(line));
  assert.equal(first.vocabSize, 300);
  assert.deepEqual(first.adapters.map((a) => [a.name, a.rank]), [['lora-0', 4], ['lora-1', 8]]);
  assert.equal(logs.length, 2); // model + adapters written
  const again = prepareModel(config, (line) => logs.push(line));
  assert.equal(logs.length, 2); // cache hit: nothing written
  assert.deepEqual(again.modelArgs, first.modelArgs);
  // a path model reads its vocabulary from config.json
  const dir = mkdtempSync(join(tmpdir(), 'bench-model-'));
  synthModel({ shape: 'tiny', outDir: dir, dtype: 'f32', vocab: 400 });
  assert.equal(prepareModel(parseBenchConfig({ name: 'y', model: { path: dir }, adapters: { none: true }, variants: [{ name: 'v' }] }, 'y'), () => {}).vocabSize, 400);
});
