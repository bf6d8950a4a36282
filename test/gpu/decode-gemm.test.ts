// The tensor-core decode GEMM (native/src/cuda/engine/decode-gemm.cu: M = 9..128 rows, the path of decode batches
// above the skinny kernel's 8 rows) against an fp64 CPU reference: every M from 9 to 128 on small and odd shapes, the
// Llama-3.2-1B / 3.1-8B projection shapes and both LM heads (fp32 logits) at the bucket edges, bf16 and fp16,
// activation-dtype and fp32 output, forced K splits and both warp tilings, rows past M untouched, each row
// bit-identical whatever M it shares the launch with, and bad calls refused with a status
// (driver: native/src/cuda/engine/test/decode-gemm-test.cu). Skipped, with the reason, without nvcc or a GPU.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
// @ts-expect-error plain ESM helper without type declarations
import { buildDriver, gpuDriverSkipReason } from '../../native/src/lora/test/build-driver.mjs';

const skip: string | false = gpuDriverSkipReason();

test('tensor-core decode GEMM matches an fp64 reference, rows independent of M', { skip, timeout: 600_000 }, (t) => {
  const driver: string = buildDriver({
    name: 'decode_gemm_test',
    compiler: 'nvcc',
    flags: ['-gencode', 'arch=compute_90a,code=sm_90a', '-Inative/src/cuda/engine', '-Inative/src/cuda/engine/test'],
    sources: ['native/src/cuda/engine/test/decode-gemm-test.cu', 'native/src/cuda/engine/decode-gemm.cu'],
  });
  const run = spawnSync(driver, [], { encoding: 'utf8', maxBuffer: 64 << 20 });
  if (run.status === 77) {
    t.skip(run.stdout.trim());
    return;
  }
  t.diagnostic(run.stdout.split('\n').filter((l) => l.startsWith('N ')).length + ' shape configurations checked');
  assert.equal(run.status, 0, `${run.stdout}${run.stderr}`);
  assert.match(run.stdout, /^refusals: 5 bad calls refused$/m);
  assert.match(run.stdout, /^ok: \d+ shape configurations, \d+ launches, 0 failures$/m);
});
