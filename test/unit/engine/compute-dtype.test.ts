// The runner's compute dtype (spec a.5): CPU always f32; on CUDA `auto` follows the checkpoint (f32 → f16, as in
// SGLang), explicit half/bfloat16 are kept, and explicit float32 falls back to bf16 with a warning.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chooseComputeDtype } from '../../../src/engine/worker/compute-dtype.js';

test('the CPU computes in f32 whatever --dtype says, without a warning', () => {
  for (const requested of ['auto', 'half', 'float16', 'bfloat16', 'float', 'float32'] as const) {
    assert.deepEqual(chooseComputeDtype(requested, 'bf16', 'cpu'), { dtype: 'f32', warning: null });
  }
});

test('CUDA with auto keeps bf16 checkpoints and serves f16 and f32 checkpoints as f16', () => {
  assert.equal(chooseComputeDtype('auto', 'bf16', 'cuda').dtype, 'bf16');
  assert.equal(chooseComputeDtype('auto', 'f16', 'cuda').dtype, 'f16');
  assert.deepEqual(chooseComputeDtype('auto', 'f32', 'cuda'), { dtype: 'f16', warning: null });
});

test('CUDA keeps explicit half and bfloat16', () => {
  assert.deepEqual(chooseComputeDtype('half', 'f32', 'cuda'), { dtype: 'f16', warning: null });
  assert.deepEqual(chooseComputeDtype('float16', 'bf16', 'cuda'), { dtype: 'f16', warning: null });
  assert.deepEqual(chooseComputeDtype('bfloat16', 'f16', 'cuda'), { dtype: 'bf16', warning: null });
});

test('CUDA with explicit float32 or float serves bf16 and says so', () => {
  for (const requested of ['float32', 'float'] as const) {
    const choice = chooseComputeDtype(requested, 'f32', 'cuda');
    assert.equal(choice.dtype, 'bf16');
    assert.ok(choice.warning, 'a start-up warning');
    assert.match(choice.warning, new RegExp(`--dtype ${requested}: .*serving in bfloat16`));
  }
});
