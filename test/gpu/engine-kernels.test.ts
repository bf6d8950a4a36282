// The CUDA engine's kernels compiled for the GPU against their references (driver:
// native/src/cuda/engine/test/kernel-emu-test.cpp with -DTSLORA_KERNEL_TEST_ON_GPU; the same checks run on the host
// emulator in test/native/cuda-engine-compile.test.ts): attention, greedy rows, qkv post, norms, SwiGLU, the skinny
// decode GEMM, and its fused epilogues (gate_up + SwiGLU, qkv + bias / RoPE / cache write) bit-identical to the
// two-kernel paths at the 1B / 8B shapes, where FMA contraction on the GPU could tell them apart.
// Skipped, with the reason, without nvcc or without an NVIDIA GPU.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
// @ts-expect-error plain ESM helper without type declarations
import { gpuDriverSkipReason } from '../../native/src/lora/test/build-driver.mjs';
// @ts-expect-error plain ESM helper without type declarations
import { buildEngineKernelDriver } from '../../native/src/cuda/engine/test/engine-kernel-driver.mjs';

const skip: string | false = gpuDriverSkipReason();

test('engine kernels on the GPU match their references', { skip, timeout: 600_000 }, (t) => {
  const driver: string = buildEngineKernelDriver();
  const run = spawnSync(driver, [], { encoding: 'utf8' });
  t.diagnostic(`${run.stdout.split('\n').filter((l) => /: \d+ /.test(l)).length} checks`);
  assert.equal(run.status, 0, `${run.stdout}${run.stderr}`);
  assert.match(run.stdout, /^0 failures$/m);
});
