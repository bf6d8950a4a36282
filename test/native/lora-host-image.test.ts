// The CUDA engine's host tier in the device's format (native/src/cuda/lora_host_image.h, issue #11): the image of
// each adapter holds exactly the bits a device slot holds after a load, built once from the PEFT pairs. Host code
// only (nvcc + the CUDA runtime), so it runs without a GPU (then on heap instead of page-locked memory); the GPU
// side of the same path (slot loads from the image) is checked by test/gpu/lora-kernels.test.ts.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
// @ts-expect-error plain ESM helper without type declarations
import { buildDriver, cppSources, findNvcc } from '../../native/src/lora/test/build-driver.mjs';

const skip = findNvcc() ? false : 'nvcc not found on PATH (install the CUDA toolkit to build the CUDA host tier)';

test('host-tier images (bf16 / fp16, packed A, rank-padded B) equal the slot contents built from the PEFT pairs', { skip, timeout: 600_000 }, () => {
  const driver: string = buildDriver({
    name: 'lora_host_image_test',
    compiler: 'nvcc',
    flags: ['-Inative/src/cuda/test'],
    sources: [...cppSources, 'native/src/lora/test/test_thread_pool.cpp', 'native/src/cuda/lora_host_image.cu', 'native/src/cuda/test/lora_host_image_test.cpp'],
  });
  const run = spawnSync(driver, [], { encoding: 'utf8' });
  assert.equal(run.status, 0, `${run.stdout}${run.stderr}`);
  assert.match(run.stdout, /^ok: \d+ checks, 0 failed$/m);
  assert.match(run.stdout, /^page-locked blocks: (yes|no)/m);
});
