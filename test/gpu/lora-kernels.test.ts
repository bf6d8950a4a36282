// Every CUDA LoRA kernel against its CPU twin (LoraPool::apply in fp32) on random inputs: three shape families
// (16-byte-aligned vector paths, odd sizes on the scalar paths, long K for split-K), ranks 1..128, both strategies,
// chunk sizes 16..128, odd token counts, decode-only / mixed / all-base batches, graph-style padded segment tables,
// NaN-poisoned stale slot data and workspace, bf16 and fp16, embed_tokens (column gather + expand), the tiled kernels and the
// small-step (decode) pair with several split counts on both sides of its token and rank thresholds (driver:
// native/src/cuda/test/lora_cuda_test.cpp).
// Skipped, with the reason, without nvcc or without an NVIDIA GPU.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
// @ts-expect-error plain ESM helper without type declarations
import { buildDriver, cppSources, gpuDriverSkipReason } from '../../native/src/lora/test/build-driver.mjs';

/**
 * The LoRA kernels' translation units: every native/src/cuda/lora_*.cu but the device pool's two (which only the pool
 * test links), as scripts/build-cuda.mjs takes every .cu there; so a new unit (a wide shrink tile has its own:
 * lora_shrink_wide_instances.h) needs no edit here.
 */
const kernelSources = readdirSync(new URL('../../native/src/cuda', import.meta.url)).filter((f) => /^lora_.*\.cu$/.test(f) && f !== 'lora_device_pool.cu' && f !== 'lora_host_image.cu')
  .sort().map((f) => `native/src/cuda/${f}`);

const skip: string | false = gpuDriverSkipReason();

/**
 * Runs `driver` once per variant (its environment over `callerEnv`), each run's stdout matching `okLine`; a driver that
 * exits 77 (no usable GPU) skips the test. Labels name the variant in failures.
 */
function runVariants(t: { skip(message?: string): void }, driver: string, callerEnv: NodeJS.ProcessEnv,
  variants: Record<string, string>[], okLine: RegExp, defaultsLabel: string): void {
  for (const variant of variants) {
    const run = spawnSync(driver, [], { encoding: 'utf8', env: { ...callerEnv, ...variant } });
    if (run.status === 77) {
      t.skip(run.stdout.trim());
      return;
    }
    const label = Object.entries(variant).map(([k, v]) => `${k}=${v}`).join(' ') || defaultsLabel;
    assert.equal(run.status, 0, `${label}: ${run.stdout}${run.stderr}`);
    assert.match(run.stdout, okLine, label);
  }
}

test('CUDA LoRA shrink/expand match the CPU twin', { skip, timeout: 900_000 }, (t) => {
  const driver: string = buildDriver({
    name: 'lora_cuda_test',
    compiler: 'nvcc',
    flags: ['-gencode', 'arch=compute_90a,code=sm_90a', '-gencode', 'arch=compute_90,code=compute_90', '-Inative/src/cuda/test'],
    sources: [...cppSources, 'native/src/lora/test/test_thread_pool.cpp', 'native/src/cuda/test/lora_cuda_test.cpp', ...kernelSources],
  });
  // Every path on the defaults (a device round's LORA_TEST_PATHS or lean switch left out), then the path with the store
  // form (tiled/wide) with the opt-in lean store expand (TSLORA_CUDA_LORA_STORE_LEAN=1, session 24).
  const callerEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'LORA_TEST_PATHS' && k !== 'TSLORA_CUDA_LORA_STORE_LEAN'));
  runVariants(t, driver, callerEnv, [{}, { LORA_TEST_PATHS: 'tiled/wide', TSLORA_CUDA_LORA_STORE_LEAN: '1' }],
    /^ok: \d+ cases passed, 0 failed$/m, 'every path, defaults');
});

test('DeviceLoraPool (writeSlot, clearSlot, setStep, apply) matches the CPU LoraPool', { skip, timeout: 900_000 }, (t) => {
  const driver: string = buildDriver({
    name: 'lora_device_pool_test',
    compiler: 'nvcc',
    flags: ['-gencode', 'arch=compute_90a,code=sm_90a', '-gencode', 'arch=compute_90,code=compute_90', '-Inative/src/cuda/test'],
    sources: [...cppSources, 'native/src/lora/test/test_thread_pool.cpp', 'native/src/cuda/test/lora_device_pool_test.cpp',
      'native/src/cuda/lora_device_pool.cu', 'native/src/cuda/lora_host_image.cu', ...kernelSources],
  });
  // The pool's defaults (the small-step pair; since session 23 coalesced csgmv prefill segments, the driver's 315-row
  // step, and the wide prefill shrink's m64k64 tile), the opt-in fused small-step kernel (TSLORA_CUDA_LORA_FUSED=1),
  // the chunks and the v5 shrink as before session 23, and the wide shrink with m128k32 and the cluster split-K.
  const variants: Record<string, string>[] = [
    {}, { TSLORA_CUDA_LORA_FUSED: '1' }, { TSLORA_CUDA_LORA_CSGMV_COALESCE: '0', TSLORA_CUDA_LORA_WIDE_SHRINK: '0' },
    { TSLORA_CUDA_LORA_WIDE_SHRINK: '1', TSLORA_CUDA_LORA_WIDE_SHRINK_TILE: 'm128k32', TSLORA_CUDA_LORA_WIDE_SHRINK_CLUSTER: '1' },
    { TSLORA_CUDA_LORA_STORE_LEAN: '1' },
  ];
  // Switches a caller may have exported (a device round's A/B) are left out, so {} runs the defaults.
  const callerEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^TSLORA_CUDA_LORA_(FUSED|CSGMV_COALESCE|WIDE_SHRINK|STORE_LEAN)/.test(k)));
  runVariants(t, driver, callerEnv, variants, /^ok: \d+ device-pool cases passed, 0 failed$/m, 'defaults');
});
