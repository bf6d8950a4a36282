// The store-first prefill LoRA (TSLORA_CUDA_LORA_STORE_FIRST, on by default since session 23; native/src/cuda/engine/forward.cu): at prefill steps
// whose LoRA runs the wide expand, the delta is written into y first (zeros in base rows) and the base GEMM adds x·Wᵀ
// with beta = 1. The delta is rounded to bf16 before that sum, so the logits are close to, not bit-identical with, the
// in-place expand's: the same steps (driver test/gpu/store-first-step-logits.ts: a 2-layer 1B-shaped model, a
// 280-row prefill with adapters and a base row, triton and csgmv chunks of 128, two decode steps) must stay within the
// graph-vs-eager tolerance (relative L2 2e-2, test/gpu/cuda-graphs) of the off run, and differ from it somewhere (or the
// path did not run). Against PyTorch + PEFT: the 1B parity test (cuda-parity-1b, whose triton prefill has a 45-row
// segment in 86 rows) rerun with the path on from 32 rows, where the device suite generated its reference.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { relativeL2 } from '../native/forward-reference.js';
import { cudaBackendOrSkip } from './cuda-parity-helpers.js';
import { countDiffering, parity1bRerunSkip, prefillStepLogits, rerunParity1b } from './logits-driver.js';

const { skip } = cudaBackendOrSkip();

test('store-first prefill LoRA on / off: logits within 2e-2 relative L2, not bit-identical (1B shapes, triton and csgmv C128)', { skip, timeout: 600_000 }, (t) => {
  const [off, on] = prefillStepLogits(t, 'tslora-store-first-',
    { 'STORE_FIRST=0': { TSLORA_CUDA_LORA_STORE_FIRST: '0' }, 'STORE_FIRST=1': { TSLORA_CUDA_LORA_STORE_FIRST: '1' } });
  assert.ok(off.length > 0 && off.every(Number.isFinite) && on.every(Number.isFinite), 'every logit finite');
  const differing = countDiffering(on, off);
  const err = relativeL2(on, off);
  t.diagnostic(`store-first vs in-place: relative L2 ${err.toExponential(2)}, ${differing} of ${on.length} logits differ`);
  assert.ok(differing > 0, 'bit-identical logits: the store-first path did not run');
  assert.ok(err < 2e-2, `store-first: relative L2 ${err} against the in-place expand`);
});

test('store-first prefill LoRA against PyTorch + PEFT: cuda-parity-1b with the path on from 32 rows', { skip: parity1bRerunSkip(skip), timeout: 600_000 }, (t) => {
  t.diagnostic(rerunParity1b({ TSLORA_CUDA_LORA_STORE_FIRST: '1', TSLORA_CUDA_LORA_STORE_FIRST_MIN_ROWS: '32' }, 'store-first'));
});

// The store form's lean layout (TSLORA_CUDA_LORA_STORE_LEAN, session 24, opt-in): the same sums per element with another
// shared-memory staging and more strips, so the same bits as the plain store form, and PEFT parity with it.
test('store-first with the lean store expand: logits bit-identical to the plain store form (1B shapes, triton and csgmv C128)', { skip, timeout: 600_000 }, (t) => {
  const [plain, lean] = prefillStepLogits(t, 'tslora-store-lean-', {
    'STORE_LEAN=0': { TSLORA_CUDA_LORA_STORE_FIRST: '1', TSLORA_CUDA_LORA_STORE_LEAN: '0' },
    'STORE_LEAN=1': { TSLORA_CUDA_LORA_STORE_FIRST: '1', TSLORA_CUDA_LORA_STORE_LEAN: '1' },
  });
  assert.ok(plain.length > 0 && lean.length === plain.length, 'both runs produced logits');
  assert.equal(countDiffering(lean, plain), 0, `lean vs plain store form: relative L2 ${relativeL2(lean, plain)}`);
});

test('store-first with the lean store expand against PyTorch + PEFT: cuda-parity-1b from 32 rows', { skip: parity1bRerunSkip(skip), timeout: 600_000 }, (t) => {
  t.diagnostic(rerunParity1b({ TSLORA_CUDA_LORA_STORE_FIRST: '1', TSLORA_CUDA_LORA_STORE_FIRST_MIN_ROWS: '32', TSLORA_CUDA_LORA_STORE_LEAN: '1' }, 'store-first lean'));
});
