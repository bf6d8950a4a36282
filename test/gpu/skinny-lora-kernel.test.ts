// The skinny GEMM with the LoRA delta in its epilogue, compiled for the GPU against the two-kernel path it replaces
// (driver native/src/cuda/engine/test/skinny-lora-test.cu; its host-emulator build is test/native/skinny-lora-emu.test.ts):
// the real small-step shrink, then the skinny GEMM + loraExpandSmall (+ SwiGLU / qkv post) vs the fused kernel must be
// bit-identical at the 8B / 1B / odd shapes, 1 and 2 rows, mixed slots, ranks 5..64, every K split, bf16 and fp16,
// where FMA contraction on the GPU could tell them apart. Links the CUDA addon build's objects of the four kernel
// files when they all exist (no second compile of the kernels: ~10 s instead of ~2 min), else compiles them. Skipped without nvcc or a GPU.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { test } from 'node:test';

// @ts-expect-error plain ESM helper without type declarations
import { buildDriver, gpuDriverSkipReason } from '../../native/src/lora/test/build-driver.mjs';

const skip: string | false = gpuDriverSkipReason();
const E = 'native/src/cuda/engine';
const kernels = [`${E}/skinny-gemm.cu`, `${E}/kernels.cu`, 'native/src/cuda/lora_small_shrink.cu', 'native/src/cuda/lora_small_expand.cu'];
// Engine files: build-cuda-addon.mjs's objects; LoRA kernels: build-cuda.mjs's (build-cuda/obj/<name>.o).
const addonObject = (source: string): string =>
  source.includes('/engine/') ? `build-cuda/addon-obj/${source.replace(/[/.]/g, '_')}.o` : `build-cuda/obj/${source.split('/').pop()!.replace(/\.cu$/, '.o')}`;

test('the skinny GEMM with the LoRA epilogue is bit-identical to the GEMM + small-step expand on the GPU', { skip, timeout: 600_000 }, (t) => {
  const fromAddon = kernels.every((k) => existsSync(addonObject(k)));
  const driver: string = buildDriver({
    name: 'skinny_lora_test',
    compiler: 'nvcc',
    flags: ['-gencode', 'arch=compute_90a,code=sm_90a', `-I${E}`, `-I${E}/test`],
    sources: [`${E}/test/skinny-lora-test.cu`, ...(fromAddon ? kernels.map(addonObject) : kernels)],
  });
  const run = spawnSync(driver, [], { encoding: 'utf8' });
  t.diagnostic(`${run.stdout.trim().split('\n').pop()} (kernels ${fromAddon ? 'from the addon build' : 'compiled here'})`);
  assert.equal(run.status, 0, `${run.stdout}${run.stderr}`);
  assert.match(run.stdout, /^\d+ cases, 0 failures$/m);
});
