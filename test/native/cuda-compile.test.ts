// The CUDA sources must compile wherever nvcc exists (CI has nvcc but no GPU and no cuBLAS), so a syntax or ptxas
// error in native/src/cuda cannot land unseen. Skipped, with the reason, when nvcc is not installed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
// @ts-expect-error plain ESM helper without type declarations
import { findNvcc, includeDirs, repoRoot } from '../../native/src/lora/test/build-driver.mjs';

const nvcc: string | null = findNvcc();
const skip = nvcc ? false : 'nvcc not found on PATH (install the CUDA toolkit to compile native/src/cuda)';

test('scripts/build-cuda.mjs compiles every kernel for sm_90a + compute_90 PTX into a static library', { skip }, () => {
  const out = mkdtempSync(join(tmpdir(), 'tslora-cuda-'));
  try {
    const run = spawnSync(process.execPath, [join(repoRoot, 'scripts/build-cuda.mjs'), '--out', out, '--jobs', '2'], {
      encoding: 'utf8',
    });
    assert.equal(run.status, 0, `${run.stdout}${run.stderr}`);
    const archive = join(out, 'libtslora_cuda_kernels.a');
    assert.ok(existsSync(archive));
    const members = spawnSync('ar', ['t', archive], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean).sort();
    assert.deepEqual(members, ['lora_device_pool.o', 'lora_embed.o', 'lora_expand.o', 'lora_host_image.o', 'lora_shrink.o',
      'lora_shrink_wide_m128k32.o', 'lora_shrink_wide_m128k64.o', 'lora_shrink_wide_m64k64.o', 'lora_shrink_wide_m64k64f.o', 'lora_small_expand.o',
      'lora_small_fused.o',
      'lora_small_shrink.o']);
    const symbols = spawnSync('nm', ['-C', archive], { encoding: 'utf8' }).stdout;
    // The wide shrink's tiles 1-4, compiled in their own units (lora_shrink_wide_instances.h), are defined for both dtypes.
    for (const dtype of ['__nv_bfloat16', '__half'])
      for (const tile of [1, 2, 3, 4])
        assert.match(symbols, new RegExp(`[TW] cudaError tslora::cuda::lora::wide::shrinkWideTile<${dtype}, \\(tslora::cuda::lora::wide::WideTile\\)${tile}>`),
          `shrinkWideTile<${dtype}, ${tile}> is defined`);
    for (const fn of ['loraShrink', 'loraExpand', 'loraEmbedGather', 'loraShrinkSplits', 'loraShrinkWorkspaceBytes', 'loraSmallStepSplits',
      'loraShrinkSmall', 'loraExpandSmall', 'loraApplyFused', 'loraFusedPlan', 'DeviceLoraPool::apply',
      'DeviceLoraPool::writeSlot', 'DeviceLoraPool::setStep', 'buildDeviceHostAdapter', 'PinnedHostPool::acquire'])
      assert.match(symbols, new RegExp(`T tslora::cuda::lora::${fn}\\(`), `${fn} is exported`);
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});

test('the CUDA test and benchmark drivers compile (host code against the kernel header)', { skip }, () => {
  const out = mkdtempSync(join(tmpdir(), 'tslora-cuda-drivers-'));
  try {
    for (const source of ['native/src/cuda/test/lora_cuda_test.cpp', 'native/src/cuda/test/lora_device_pool_test.cpp',
      'bench/lora/lora_cuda_bench.cpp']) {
      const args = ['-std=c++17', ...includeDirs.map((d: string) => `-I${join(repoRoot, d)}`), `-I${join(repoRoot, 'native/src/cuda/test')}`,
        `-I${join(repoRoot, 'bench/lora')}`, '-c', join(repoRoot, source), '-o', join(out, 'driver.o')];
      const run = spawnSync('nice', ['nvcc', ...args], { encoding: 'utf8' });
      assert.equal(run.status, 0, `${source}:\n${run.stdout}${run.stderr}`);
    }
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});

// The small-step (decode) kernels' index math, fragment layouts, run handling and split-K partials, executed on the CPU:
// native/src/cuda/test/emu rewrites their sources for a thread-per-CUDA-thread emulator and checks them against a
// double-precision reference (no GPU needed; the H200 driver lora_cuda_test checks the real hardware).
function cudaIncludeDir(): string | null {
  const roots = [process.env.CUDA_HOME, process.env.CUDA_PATH, '/usr/local/cuda'].filter((d): d is string => Boolean(d));
  for (const root of roots) if (existsSync(join(root, 'include', 'cuda_bf16.h'))) return join(root, 'include');
  return null;
}

test('small-step LoRA kernels (the pair and the fused kernel) under host emulation match a double-precision reference', {
  skip: skip || (cudaIncludeDir() ? false : 'CUDA headers (cuda_bf16.h) not found'), timeout: 600_000,
}, async () => {
  const out = mkdtempSync(join(tmpdir(), 'tslora-small-step-emu-'));
  try {
    const emuDir = join(repoRoot, 'native/src/cuda/test/emu');
    const { prepare } = await import(join(emuDir, 'prepare.mjs'));
    const sources: string[] = prepare(out);
    const exe = join(out, 'small_step_emu_test');
    const build = spawnSync('nice', ['g++', '-std=c++20', '-O1', '-w', `-I${emuDir}`, `-I${out}`, `-I${join(repoRoot, 'native/src/cuda')}`,
      `-I${cudaIncludeDir()}`, '-pthread', join(emuDir, 'small_step_emu_test.cpp'), ...sources, '-o', exe], { encoding: 'utf8' });
    assert.equal(build.status, 0, `${build.stdout}${build.stderr}`);
    const run = spawnSync(exe, ['--quick'], { encoding: 'utf8' });
    assert.equal(run.status, 0, `${run.stdout}${run.stderr}`);
    // 228 cases of the pair, the fused kernel and the fp32 delta store; session 20: 112 of the Act delta store, 224 of
    // the capped-grid store
    assert.match(run.stdout, /^0\/564 failed$/m);
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});

// The wide tiled shrink and expand (prefill; lora_shrink_wide.cuh, lora_expand_wide.cuh): fragment layouts (ldmatrix +
// mma.sync), row tiles, strips crossing slices, rank-aware columns, split-K partials and tickets, under the same host
// emulator (native/src/cuda/test/emu/tiled-prepare.mjs).
test('the wide tiled LoRA shrink and expand under host emulation match a double-precision reference', {
  skip: skip || (cudaIncludeDir() ? false : 'CUDA headers (cuda_bf16.h) not found'), timeout: 600_000,
}, async () => {
  const out = mkdtempSync(join(tmpdir(), 'tslora-tiled-emu-'));
  try {
    const emuDir = join(repoRoot, 'native/src/cuda/test/emu');
    const { prepareTiled } = await import(join(emuDir, 'tiled-prepare.mjs'));
    prepareTiled(out);
    const exe = join(out, 'tiled_emu_test');
    const build = spawnSync('nice', ['g++', '-std=c++20', '-O1', '-w', `-I${emuDir}`, `-I${out}`, `-I${join(repoRoot, 'native/src/cuda')}`,
      `-I${cudaIncludeDir()}`, '-pthread', join(emuDir, 'tiled_emu_test.cpp'), '-o', exe], { encoding: 'utf8' });
    assert.equal(build.status, 0, `${build.stdout}${build.stderr}`);
    const run = spawnSync(exe, ['--quick'], { encoding: 'utf8' });
    assert.equal(run.status, 0, `${run.stdout}${run.stderr}`);
    // 4 shrink cases × (w8 + one other tile, in turn) + that tile's cluster split-K on the 3 cases with splits, 2 expand
    // + 1 store-mode expand + 2 lean store-mode expands (bf16 only in --quick)
    assert.match(run.stdout, /^0\/16 failed$/m);
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});
