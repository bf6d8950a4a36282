/** bench/cuda/side-expand-ab.ts --variants: one environment per variant, only TSLORA_CUDA_* switches, refused otherwise. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseVariants } from '../../../bench/cuda/ab-variants.js';

test('variants: names with their switches, in order; a variant may set none', () => {
  const v = parseVariants('prio:TSLORA_CUDA_LORA_SIDE_PRIORITY=1,TSLORA_CUDA_PDL=1;noprio:TSLORA_CUDA_LORA_SIDE_PRIORITY=0;plain');
  assert.deepEqual(Object.keys(v), ['prio', 'noprio', 'plain']);
  assert.deepEqual(v.prio, { TSLORA_CUDA_LORA_SIDE_PRIORITY: '1', TSLORA_CUDA_PDL: '1' });
  assert.deepEqual(v.plain, {});
  assert.deepEqual(parseVariants('a:TSLORA_CUDA_X=;b:TSLORA_CUDA_X=a=b').b, { TSLORA_CUDA_X: 'a=b' });
});

test('variants: other keys, missing values, duplicate names and a single variant are refused', () => {
  for (const bad of ['a:PATH=/x;b:TSLORA_CUDA_X=1', 'a:TSLORA_CUDA_X;b:TSLORA_CUDA_X=1', 'a:TSLORA_CUDA_X=1;a:TSLORA_CUDA_X=0', 'a:TSLORA_CUDA_X=1', ':TSLORA_CUDA_X=1;b'])
    assert.throws(() => parseVariants(bad), /--variants/, bad);
});
