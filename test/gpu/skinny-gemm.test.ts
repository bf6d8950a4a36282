// The skinny decode GEMM (native/src/cuda/engine/skinny-gemm.cu: M ≤ 8 rows, the path every decode projection of
// the CUDA engine takes) against an fp64 CPU reference: Llama-3.2-1B / 3.1-8B projection shapes and odd ones,
// M = 1..8, every K split, bf16 and fp16, activation-dtype and fp32 output, and each row bit-identical whatever M
// it shares the launch with, and the gate_up GEMM with SwiGLU in its epilogue bit-identical to the GEMM followed by
// the SwiGLU kernel (driver: native/src/cuda/engine/test/skinny-gemm-test.cu).
// Skipped, with the reason, without nvcc or without an NVIDIA GPU.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
// @ts-expect-error plain ESM helper without type declarations
import { buildDriver, gpuDriverSkipReason } from '../../native/src/lora/test/build-driver.mjs';

const skip: string | false = gpuDriverSkipReason();

test('skinny decode GEMM matches an fp64 reference', { skip, timeout: 600_000 }, (t) => {
  const driver: string = buildDriver({
    name: 'skinny_gemm_test',
    compiler: 'nvcc',
    flags: ['-gencode', 'arch=compute_90a,code=sm_90a', '-Inative/src/cuda/engine'],
    sources: ['native/src/cuda/engine/test/skinny-gemm-test.cu', 'native/src/cuda/engine/skinny-gemm.cu', 'native/src/cuda/engine/kernels.cu'],
  });
  const run = spawnSync(driver, [], { encoding: 'utf8' });
  if (run.status === 77) {
    t.skip(run.stdout.trim());
    return;
  }
  t.diagnostic(run.stdout.split('\n').filter((l) => l.startsWith('N ')).length + ' shape configurations checked');
  assert.equal(run.status, 0, `${run.stdout}${run.stderr}`);
  assert.match(run.stdout, /^ok: \d+ shape configurations, 0 failures$/m);
});
