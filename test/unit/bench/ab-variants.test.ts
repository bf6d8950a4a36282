/**
 * bench/cuda/side-expand-ab.ts --variants: one environment per variant (only TSLORA_CUDA_* switches), optionally its
 * own adapters and LoRA target modules; anything else refused.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { constructUnderVariantEnv, parseVariants } from '../../../bench/cuda/ab-variants.js';

test('variants: names with their switches, in order; a variant may set none', () => {
  const v = parseVariants('prio:TSLORA_CUDA_LORA_SIDE_PRIORITY=1,TSLORA_CUDA_PDL=1;noprio:TSLORA_CUDA_LORA_SIDE_PRIORITY=0;plain');
  assert.deepEqual(Object.keys(v), ['prio', 'noprio', 'plain']);
  assert.deepEqual(v.prio, { env: { TSLORA_CUDA_LORA_SIDE_PRIORITY: '1', TSLORA_CUDA_PDL: '1' } });
  assert.deepEqual(v.plain, { env: {} });
  assert.deepEqual(parseVariants('a:TSLORA_CUDA_X=;b:TSLORA_CUDA_X=a=b').b.env, { TSLORA_CUDA_X: 'a=b' });
});

test('variants: @adapters and @targets give a variant its own adapters and target modules', () => {
  const v = parseVariants('qkv:@adapters=/tmp/a-qkv,@targets=qkv_proj;mlp:@targets=gate_up_proj+down_proj,TSLORA_CUDA_PDL=0,@adapters=/tmp/a=b');
  assert.deepEqual(v.qkv, { env: {}, adapters: '/tmp/a-qkv', targets: ['qkv_proj'] });
  assert.deepEqual(v.mlp, { env: { TSLORA_CUDA_PDL: '0' }, adapters: '/tmp/a=b', targets: ['gate_up_proj', 'down_proj'] });
});

test('variants: other keys, missing values, unknown or repeated targets, duplicate names and a single variant are refused', () => {
  for (const bad of ['a:PATH=/x;b:TSLORA_CUDA_X=1', 'a:TSLORA_CUDA_X;b:TSLORA_CUDA_X=1', 'a:TSLORA_CUDA_X=1;a:TSLORA_CUDA_X=0',
    'a:TSLORA_CUDA_X=1', ':TSLORA_CUDA_X=1;b', 'a:@targets=q_proj;b', 'a:@targets=o_proj+o_proj;b', 'a:@targets=;b',
    'a:@adapters=;b', 'a:@other=1;b'])
    assert.throws(() => parseVariants(bad), /--variants/, bad);
});

test('variants: each one is constructed under its own switches only, never an earlier variant\'s, and the start-up ones come back', async () => {
  const v = parseVariants('before:TSLORA_CUDA_A=0,TSLORA_CUDA_B=0;default:;oneOff:TSLORA_CUDA_B=0;aOn:TSLORA_CUDA_A=1');
  const env: NodeJS.ProcessEnv = { TSLORA_CUDA_A: 'start', OTHER: 'x' };
  const seen: Record<string, NodeJS.ProcessEnv> = {};
  for (const name of Object.keys(v)) {
    await constructUnderVariantEnv(v, name, () => { seen[name] = { ...env }; }, env);
  }
  assert.deepEqual(seen.before, { TSLORA_CUDA_A: '0', TSLORA_CUDA_B: '0', OTHER: 'x' });
  assert.deepEqual(seen.default, { TSLORA_CUDA_A: 'start', OTHER: 'x' });
  assert.deepEqual(seen.oneOff, { TSLORA_CUDA_A: 'start', TSLORA_CUDA_B: '0', OTHER: 'x' });
  assert.deepEqual(seen.aOn, { TSLORA_CUDA_A: '1', OTHER: 'x' });
  assert.deepEqual(env, { TSLORA_CUDA_A: 'start', OTHER: 'x' });
  // A construction that throws still leaves the environment as it found it.
  await assert.rejects(constructUnderVariantEnv(v, 'before', () => { throw new Error('no GPU'); }, env), /no GPU/);
  assert.deepEqual(env, { TSLORA_CUDA_A: 'start', OTHER: 'x' });
});
