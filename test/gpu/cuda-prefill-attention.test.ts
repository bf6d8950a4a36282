// The prefill attention on mma.sync (TSLORA_CUDA_PREFILL_ATTN_MMA=1, session 25, opt-in; native/src/cuda/engine/
// attention-prefill-mma.cuh) in the engine: the same prefill and decode steps as cuda-store-first (driver
// test/gpu/store-first-step-logits.ts: a 280-row prefill whose 150- and 40-row sequences take the prefill kernel) with
// it on and off. Its sums run in another order than the WMMA kernel's, so the logits must agree within the
// graph-vs-eager tolerance (relative L2 2e-2) and differ somewhere (else the kernel did not run). Against PyTorch +
// PEFT: cuda-parity-1b rerun with it on (its triton prefill's 45-row prompt takes the prefill kernel). The kernel
// itself is checked against an fp64 reference by kernel-emu-test (engine-kernels, its "mma.sync" cases) and timed by
// its --bench.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { relativeL2 } from '../native/forward-reference.js';
import { cudaBackendOrSkip } from './cuda-parity-helpers.js';
import { countDiffering, parity1bRerunSkip, prefillStepLogits, rerunParity1b } from './logits-driver.js';

const { skip } = cudaBackendOrSkip();

test('prefill attention on mma.sync vs WMMA: logits within 2e-2 relative L2, not bit-identical (1B shapes, triton and csgmv C128)', { skip, timeout: 600_000 }, (t) => {
  const [wmma, mma] = prefillStepLogits(t, 'tslora-prefill-attn-',
    { 'PREFILL_ATTN_MMA=0': { TSLORA_CUDA_PREFILL_ATTN_MMA: '0' }, 'PREFILL_ATTN_MMA=1': { TSLORA_CUDA_PREFILL_ATTN_MMA: '1' } });
  assert.ok(wmma.length > 0 && wmma.every(Number.isFinite) && mma.every(Number.isFinite), 'every logit finite');
  const differing = countDiffering(mma, wmma);
  const err = relativeL2(mma, wmma);
  t.diagnostic(`mma.sync vs WMMA prefill attention: relative L2 ${err.toExponential(2)}, ${differing} of ${mma.length} logits differ`);
  assert.ok(differing > 0, 'bit-identical logits: the mma.sync prefill attention did not run');
  assert.ok(err < 2e-2, `mma.sync prefill attention: relative L2 ${err} against the WMMA kernel`);
});

test('prefill attention on mma.sync against PyTorch + PEFT: cuda-parity-1b with it on', { skip: parity1bRerunSkip(skip), timeout: 600_000 }, (t) => {
  t.diagnostic(rerunParity1b({ TSLORA_CUDA_PREFILL_ATTN_MMA: '1' }, 'the mma.sync prefill attention'));
});
