// The wide prefill shrink's block tiles and cluster split-K (TSLORA_CUDA_LORA_WIDE_SHRINK with
// TSLORA_CUDA_LORA_WIDE_SHRINK_TILE / _CLUSTER, native/src/cuda/lora_shrink_wide.cuh; session 22; on by default with the
// m64k64 tile since session 23) in the engine: the same prefill and decode steps as cuda-store-first (driver
// test/gpu/store-first-step-logits.ts: 2-layer 1B-shaped model, a 280-row prefill with 150- and 40-row adapter segments
// and a base one, triton and csgmv chunks of 128) with each variant against the v5 shrink (WIDE_SHRINK=0): within the
// graph-vs-eager tolerance (relative L2 2e-2), and the cluster variants, whose split sums run in another order than
// v5's by construction, different somewhere (else the wide shrink did not run). Without clusters a tile may equal v5
// bit for bit where both cut this model's K (2048) at the same split boundaries and sum each split in 16-K steps in
// order (session 23's device call: m128k64 did), so those are checked for the tolerance only; m64k64f (session 25) must
// give m64k64's bits (and its cluster form m64k64 cluster's). The kernels themselves are checked against the CPU twin
// by lora_cuda_test (paths "tiled/wide shrink <tile>[ cluster]"). Against PyTorch + PEFT: cuda-parity-1b rerun with
// m128k32 and the cluster split-K (its triton prefill has a 45-row segment: the wide shrink's shape condition).
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { relativeL2 } from '../native/forward-reference.js';
import { cudaBackendOrSkip } from './cuda-parity-helpers.js';
import { countDiffering, parity1bRerunSkip, prefillStepLogits, rerunParity1b } from './logits-driver.js';

const { skip } = cudaBackendOrSkip();

/** The variants, as the environment each child process starts with. */
const VARIANTS: Record<string, NodeJS.ProcessEnv> = {
  m64k64: { TSLORA_CUDA_LORA_WIDE_SHRINK: '1', TSLORA_CUDA_LORA_WIDE_SHRINK_TILE: 'm64k64', TSLORA_CUDA_LORA_WIDE_SHRINK_CLUSTER: '0' },
  'm128k32 cluster': { TSLORA_CUDA_LORA_WIDE_SHRINK: '1', TSLORA_CUDA_LORA_WIDE_SHRINK_TILE: 'm128k32', TSLORA_CUDA_LORA_WIDE_SHRINK_CLUSTER: '1' },
  m128k64: { TSLORA_CUDA_LORA_WIDE_SHRINK: '1', TSLORA_CUDA_LORA_WIDE_SHRINK_TILE: 'm128k64', TSLORA_CUDA_LORA_WIDE_SHRINK_CLUSTER: '0' },
  'm64k64 cluster': { TSLORA_CUDA_LORA_WIDE_SHRINK: '1', TSLORA_CUDA_LORA_WIDE_SHRINK_TILE: 'm64k64', TSLORA_CUDA_LORA_WIDE_SHRINK_CLUSTER: '1' },
  m64k64f: { TSLORA_CUDA_LORA_WIDE_SHRINK: '1', TSLORA_CUDA_LORA_WIDE_SHRINK_TILE: 'm64k64f', TSLORA_CUDA_LORA_WIDE_SHRINK_CLUSTER: '0' },
  'm64k64f cluster': { TSLORA_CUDA_LORA_WIDE_SHRINK: '1', TSLORA_CUDA_LORA_WIDE_SHRINK_TILE: 'm64k64f', TSLORA_CUDA_LORA_WIDE_SHRINK_CLUSTER: '1' },
};
// m64k64f (session 25) is m64k64 with the fragments of a 16-K step loaded before its MMAs: the same MMAs on every stored
// accumulator in the same order, so its logits must be m64k64's bit for bit (and its cluster form m64k64 cluster's).
const SAME_BITS_AS: Record<string, string> = { m64k64f: 'm64k64', 'm64k64f cluster': 'm64k64 cluster' };

test('wide shrink tiles and cluster split-K against the default shrink: logits within 2e-2 relative L2, not bit-identical', { skip, timeout: 600_000 }, (t) => {
  // The default run has the wide shrink off (v5); every variant's switches over that.
  const off = { TSLORA_CUDA_LORA_WIDE_SHRINK: '0' };
  const runs: Record<string, NodeJS.ProcessEnv> = { default: off };
  for (const [label, env] of Object.entries(VARIANTS)) runs[label.replace(/ /g, '-')] = { ...off, ...env };
  const [base, ...logitsOf] = prefillStepLogits(t, 'tslora-wide-shrink-', runs);
  assert.ok(base.length > 0 && base.every(Number.isFinite), 'every default logit finite');
  const seen: Record<string, Float32Array> = {};
  Object.keys(VARIANTS).forEach((label, i) => {
    const logits = (seen[label] = logitsOf[i]);
    assert.ok(logits.every(Number.isFinite), `${label}: every logit finite`);
    const twin = SAME_BITS_AS[label];
    if (twin) assert.equal(countDiffering(logits, seen[twin]), 0, `${label}: logits must be ${twin}'s bit for bit`);
    const differing = countDiffering(logits, base);
    const err = relativeL2(logits, base);
    t.diagnostic(`${label} vs the default shrink: relative L2 ${err.toExponential(2)}, ${differing} of ${logits.length} logits differ`);
    if (label.endsWith('cluster')) assert.ok(differing > 0, `${label}: bit-identical logits: the wide shrink did not run`);
    assert.ok(err < 2e-2, `${label}: relative L2 ${err} against the default shrink`);
  });
});

test('wide shrink m128k32 with the cluster split-K against PyTorch + PEFT: cuda-parity-1b', { skip: parity1bRerunSkip(skip), timeout: 600_000 }, (t) => {
  t.diagnostic(rerunParity1b(VARIANTS['m128k32 cluster'], 'the wide shrink'));
});
