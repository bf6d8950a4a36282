import { test } from 'node:test';
import assert from 'node:assert/strict';
import { resolve } from 'node:path';
import { resolveServeConfig } from '../../../src/config/index.js';
import { TsloraError } from '../../../src/errors.js';

/** Asserts a usage error whose message contains every fragment. */
function assertUsage(fn: () => unknown, ...fragments: string[]): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof TsloraError, `expected a TsloraError, got ${String(error)}`);
    assert.equal(error.code, 'usage');
    for (const fragment of fragments) assert.ok(error.message.includes(fragment), `'${error.message}' lacks '${fragment}'`);
    return true;
  });
}

const MODEL = { modelPath: '/models/llama' };

test('defaults follow SGLang and the issue', () => {
  const config = resolveServeConfig(MODEL, {});
  assert.equal(config.port, 30000);
  assert.equal(config.host, '127.0.0.1');
  assert.equal(config.maxLorasPerBatch, 8);
  assert.equal(config.loraBackend, 'csgmv');
  assert.equal(config.maxLoraChunkSize, 16);
  assert.equal(config.loraEvictionPolicy, 'lru');
  assert.equal(config.device, 'auto');
  assert.equal(config.dtype, 'auto');
  assert.equal(config.logLevel, 'info');
  assert.equal(config.chunkedPrefillSize, 512);
  assert.equal(config.streamInterval, 1);
  assert.equal(config.maxQueuedRequests, 1024);
  assert.equal(config.tpSize, 1);
  assert.equal(config.numThreads, 0);
  assert.equal(config.enableLora, false);
  assert.deepEqual(config.loraPaths, []);
  assert.equal(config.maxLoadedLoras, null);
  assert.equal(config.contextLength, null);
  assert.equal(config.modelPath, '/models/llama');
  assert.equal(config.demoAdapters, false);
  assert.deepEqual(config.warnings, []);
});

test('the result is deeply frozen', () => {
  const config = resolveServeConfig({ ...MODEL, loraPaths: ['a=./a'] }, {});
  assert.ok(Object.isFrozen(config));
  assert.ok(Object.isFrozen(config.loraPaths));
  assert.ok(Object.isFrozen(config.loraPaths[0]));
  assert.throws(() => {
    (config as { port: number }).port = 1;
  }, TypeError);
});

test('a relative model path becomes absolute against the working directory', () => {
  assert.equal(resolveServeConfig({ modelPath: 'models/x' }, {}).modelPath, resolve('models/x'));
});

test('no --model-path serves the demo model with its adapters unless LoRA is turned off', () => {
  const demo = resolveServeConfig({}, {});
  assert.equal(demo.modelPath, null);
  assert.equal(demo.enableLora, true);
  assert.equal(demo.demoAdapters, true);
  const off = resolveServeConfig({ enableLora: false }, {});
  assert.equal(off.enableLora, false);
  assert.equal(off.demoAdapters, false);
  // explicit adapters replace the demo ones
  const own = resolveServeConfig({ loraPaths: ['x=./x'] }, {});
  assert.equal(own.demoAdapters, false);
  assert.deepEqual(own.loraPaths, [{ name: 'x', path: './x', pinned: false }]);
});

test('rule 2: --lora-paths without --enable-lora turns LoRA on and says so', () => {
  const config = resolveServeConfig({ ...MODEL, loraPaths: ['sql=./a'] }, {});
  assert.equal(config.enableLora, true);
  assert.ok(config.warnings.includes('LoRA enabled because --lora-paths was given.'));
});

test('rule 3: --no-enable-lora ignores --lora-paths with a warning, and LoRA flags are inert', () => {
  const config = resolveServeConfig({ ...MODEL, loraPaths: ['sql=./a'], enableLora: false, maxLoraRank: '8' }, {});
  assert.equal(config.enableLora, false);
  assert.deepEqual(config.loraPaths, []);
  assert.equal(config.maxLoraRank, null);
  assert.ok(config.warnings.includes('--lora-paths ignored: LoRA is disabled (--no-enable-lora).'));
  assert.ok(config.warnings.some((w) => w.startsWith('--max-lora-rank has no effect')));
});

test('rules 4-14 do not run while LoRA is off', () => {
  const config = resolveServeConfig({ ...MODEL, maxLoraChunkSize: '48', maxLoadedLoras: '2' }, {});
  assert.equal(config.enableLora, false);
  assert.equal(config.maxLoraChunkSize, 16);
  assert.equal(config.warnings.length, 2);
});

test('rules 1-15 each reject with the spec wording', () => {
  const lora = { ...MODEL, loraPaths: ['a=./a'] };
  assertUsage(() => resolveServeConfig({ ...lora, maxLorasPerBatch: '0' }), '--max-loras-per-batch must be a positive integer (got 0).');
  assertUsage(() => resolveServeConfig({ ...lora, enableLoraOverlapLoading: true, maxLoadedLoras: '40' }),
    '--max-loaded-loras must be set and at most 2 × --max-loras-per-batch (= 16); got 40.');
  assertUsage(() => resolveServeConfig({ ...lora, enableLoraOverlapLoading: true }), 'must be set');
  assertUsage(() => resolveServeConfig({ ...MODEL, loraPaths: ['{"name":"a"}'] }),
    `--lora-paths entry '{"name":"a"}' looks like JSON but needs the keys "lora_name" and "lora_path"`);
  assertUsage(() => resolveServeConfig({ ...MODEL, loraPaths: ['{not json}'] }), 'looks like JSON', 'not valid JSON');
  assertUsage(() => resolveServeConfig({ ...MODEL, loraPaths: ['=./a'] }), "--lora-paths entry '=./a' has an empty adapter name.");
  assertUsage(() => resolveServeConfig({ ...MODEL, loraPaths: ['a='] }), "--lora-paths entry 'a=' has an empty path.");
  assertUsage(() => resolveServeConfig({ ...MODEL, loraPaths: ['sql=./a', 'sql=./b'] }), "adapter name 'sql' appears twice in --lora-paths.");
  assertUsage(() => resolveServeConfig({ ...lora, loraTargetModules: ['all', 'q_proj'] }),
    "'all' must be the only value of --lora-target-modules (got: all, q_proj).");
  assertUsage(() => resolveServeConfig({ ...lora, loraTargetModules: ['mlp'] }),
    "unknown LoRA target module 'mlp'; expected some of q_proj k_proj v_proj o_proj gate_proj up_proj down_proj qkv_proj gate_up_proj embed_tokens lm_head, or all.");
  assertUsage(() => resolveServeConfig({ ...MODEL, enableLora: true, maxLoraRank: '16' }),
    'Without --lora-paths the adapter pool cannot be sized: give both --max-lora-rank and --lora-target-modules');
  assertUsage(() => resolveServeConfig({ ...lora, maxLoadedLoras: '4' }), '--max-loaded-loras (4) must be at least --max-loras-per-batch (8).');
  assertUsage(() => resolveServeConfig({ ...MODEL, loraPaths: ['a', 'b', 'c', 'd', 'e'], maxLorasPerBatch: '2', maxLoadedLoras: '4' }),
    '--lora-paths lists 5 adapters but --max-loaded-loras is 4.');
  assertUsage(() => resolveServeConfig({ ...lora, maxLoraChunkSize: '48' }), '--max-lora-chunk-size must be 16, 32, 64 or 128 (got 48).');
  assertUsage(() => resolveServeConfig({ ...lora, loraDrainWaitThreshold: '-1' }),
    '--lora-drain-wait-threshold must be ≥ 0 seconds (got -1); 0 turns draining off.');
  const pinned = ['a', 'b', 'c', 'd'].map((n) => JSON.stringify({ lora_name: n, lora_path: `./${n}`, pinned: true }));
  assertUsage(() => resolveServeConfig({ ...MODEL, loraPaths: pinned, maxLorasPerBatch: '4' }),
    '4 adapters are pinned in --lora-paths but at most 3 (max-loras-per-batch − 1) may be', 'starve');
  assertUsage(() => resolveServeConfig({ ...MODEL, servedModelName: 'llama:8b' }), "--served-model-name must not contain ':'");
  assertUsage(() => resolveServeConfig({ ...MODEL, enableLora: false, servedModelName: 'a:b' }), "must not contain ':'");
});

test('rules run in the spec order: rule 1 before rule 4, rule 5 before rule 6, rule 10 before 11', () => {
  assertUsage(() => resolveServeConfig({ ...MODEL, loraPaths: ['a'], maxLorasPerBatch: '0', enableLoraOverlapLoading: true }), '--max-loras-per-batch');
  assertUsage(() => resolveServeConfig({ ...MODEL, loraPaths: ['=./a', '{"x":1}'] }), 'looks like JSON');
  assertUsage(() => resolveServeConfig({ ...MODEL, loraPaths: ['a', 'b', 'c'], maxLoadedLoras: '2' }), 'must be at least --max-loras-per-batch');
});

test('exactly at the limits is accepted', () => {
  const pinned = ['a', 'b', 'c'].map((n) => JSON.stringify({ lora_name: n, lora_path: `./${n}`, pinned: true }));
  const config = resolveServeConfig({ ...MODEL, loraPaths: pinned, maxLorasPerBatch: '4', maxLoadedLoras: '8', enableLoraOverlapLoading: true }, {});
  assert.equal(config.loraPaths.filter((a) => a.pinned).length, 3);
  assert.equal(config.maxLoadedLoras, 8);
  assert.equal(config.enableLoraOverlapLoading, true);
  const explicit = resolveServeConfig({ ...MODEL, enableLora: true, maxLoraRank: '64', loraTargetModules: ['all'], maxLoraChunkSize: '128' }, {});
  assert.equal(explicit.loraTargetModules, 'all');
  assert.equal(explicit.maxLoraRank, 64);
  assert.equal(explicit.maxLoraChunkSize, 128);
});

test('general range checks name the flag, the value and what is allowed', () => {
  assertUsage(() => resolveServeConfig({ ...MODEL, port: '65536' }), '--port must be an integer from 0 to 65535 (got 65536).');
  assertUsage(() => resolveServeConfig({ ...MODEL, port: 'http' }), '--port must be an integer (got http).');
  assertUsage(() => resolveServeConfig({ ...MODEL, memFractionStatic: '1' }), '--mem-fraction-static must be a fraction between 0 and 1');
  assertUsage(() => resolveServeConfig({ ...MODEL, memFractionStatic: '0' }), '--mem-fraction-static');
  assertUsage(() => resolveServeConfig({ ...MODEL, tpSize: '0' }), '--tp-size must be at least 1 (got 0).');
  assertUsage(() => resolveServeConfig({ ...MODEL, contextLength: '0' }), '--context-length must be at least 1');
  assertUsage(() => resolveServeConfig({ ...MODEL, chunkedPrefillSize: '0' }), '--chunked-prefill-size must be at least 1, or -1');
  assertUsage(() => resolveServeConfig({ ...MODEL, numThreads: '-2' }), '--num-threads must be at least 0');
  assertUsage(() => resolveServeConfig({ ...MODEL, streamInterval: '0' }), '--stream-interval');
  assertUsage(() => resolveServeConfig({ ...MODEL, maxQueuedRequests: '0' }), '--max-queued-requests');
  assertUsage(() => resolveServeConfig({ ...MODEL, device: 'tpu' }), '--device must be one of auto, cpu, cuda (got tpu).');
  assertUsage(() => resolveServeConfig({ ...MODEL, dtype: 'int8' }), '--dtype must be one of auto, half, float16, bfloat16, float, float32');
  assertUsage(() => resolveServeConfig({ ...MODEL, host: ' ' }), '--host must not be empty');
  assertUsage(() => resolveServeConfig({ ...MODEL, maxLoraRank: '0', loraPaths: ['a'] }), '--max-lora-rank must be a positive integer');
  assert.equal(resolveServeConfig({ ...MODEL, chunkedPrefillSize: '-1' }).chunkedPrefillSize, -1);
  assert.equal(resolveServeConfig({ ...MODEL, port: '0' }).port, 0);
});

test('--lora-backend lists what tslora implements, and explains SGLang-only names', () => {
  assert.throws(() => resolveServeConfig({ ...MODEL, loraBackend: 'flashinfer' }), (error: TsloraError) =>
    error.message.includes('one of triton, csgmv') && (error.hint ?? '').includes('deprecated'));
  assert.equal(resolveServeConfig({ ...MODEL, loraBackend: 'triton' }).loraBackend, 'triton');
});

test('target modules are normalised to the fused names', () => {
  const config = resolveServeConfig({ ...MODEL, enableLora: true, maxLoraRank: '8', loraTargetModules: ['q_proj', 'v_proj,down_proj', 'model.layers.0.mlp.up_proj'] }, {});
  assert.deepEqual(config.loraTargetModules, ['qkv_proj', 'gate_up_proj', 'down_proj']);
});

test('--lora-pool-dtype: f32 by default, bf16 and int8 opt-in (TSLORA_LORA_POOL_DTYPE too), nothing else', () => {
  assert.equal(resolveServeConfig(MODEL, {}).loraPoolDtype, 'f32');
  assert.equal(resolveServeConfig({ ...MODEL, loraPoolDtype: 'bf16' }, {}).loraPoolDtype, 'bf16');
  assert.equal(resolveServeConfig({ ...MODEL, loraPoolDtype: 'int8' }, {}).loraPoolDtype, 'int8');
  assert.equal(resolveServeConfig(MODEL, { TSLORA_LORA_POOL_DTYPE: 'int8' }).loraPoolDtype, 'int8');
  assertUsage(() => resolveServeConfig({ ...MODEL, loraPoolDtype: 'int4' }, {}), '--lora-pool-dtype must be one of f32, bf16, int8');
});
