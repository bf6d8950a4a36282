// Rewrites the small-step LoRA kernels (lora_small_shrink.cu, lora_small_expand.cu, their block bodies
// lora_small_shrink_block.cuh / lora_small_expand_block.cuh, lora_small_fused.cu, lora_tile.cuh,
// lora_small_step.cuh, lora_small_mma.cuh, and mma16816.cuh through mma-emu.mjs) for the host emulator
// small-step-emu.h: inline PTX (mma.sync, cp.async, prefetch) becomes emulator calls or no-ops, dynamic shared memory a
// pointer into the emulator's buffer; launches go through engine/pdl.h, whose emulator branch calls emu::launch /
// emu::launchCluster. Throws when a source no longer has the shape it expects, so a kernel edit cannot silently skip it.
// CLI: node prepare.mjs OUT_DIR
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeMmaForEmulator } from './mma-emu.mjs';

const cudaDir = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

function replaceOnce(src, from, to, file) {
  const hit = typeof from === 'string' ? src.includes(from) : from.test(src);
  if (!hit) throw new Error(`prepare.mjs: ${file} no longer contains ${from}`);
  return src.replace(from, to);
}
function assertNoAsm(src, file) {
  if (/\basm\b/.test(src)) throw new Error(`prepare.mjs: ${file} still has inline PTX the emulator cannot run`);
  return src;
}
// A kernel source: the emulator first, so that engine/pdl.h (included before the rewritten headers) sees
// EMU_DYNAMIC_SMEM and takes its emulator branch.
const kernelSource = (src, file) => `#include "small-step-emu.h"\n${assertNoAsm(src, file)}`;

export function prepare(outDir) {
  mkdirSync(outDir, { recursive: true });
  let tile = readFileSync(join(cudaDir, 'lora_tile.cuh'), 'utf8');
  tile = replaceOnce(tile, '#pragma once', '#pragma once\n#include "small-step-emu.h"', 'lora_tile.cuh');
  tile = replaceOnce(tile, /__device__ __forceinline__ void copyAsync16\(.*?\n}\n/s, '', 'lora_tile.cuh');
  tile = replaceOnce(tile, /__device__ __forceinline__ void copyAsyncCommit\(\) \{.*?\}/, 'inline void copyAsyncCommit() {}', 'lora_tile.cuh');
  tile = replaceOnce(tile, /__device__ __forceinline__ void copyAsyncWait\(\) \{.*?\}/, 'inline void copyAsyncWait() {}', 'lora_tile.cuh');
  writeFileSync(join(outDir, 'lora_tile.cuh'), assertNoAsm(tile, 'lora_tile.cuh'));
  writeFileSync(join(outDir, 'lora_small_step.cuh'), assertNoAsm(readFileSync(join(cudaDir, 'lora_small_step.cuh'), 'utf8'), 'lora_small_step.cuh'));

  let mma = readFileSync(join(cudaDir, 'lora_small_mma.cuh'), 'utf8');
  mma = replaceOnce(mma, 'asm volatile("prefetch.global.L2 [%0];\\n" ::"l"(p));', '(void)p;', 'lora_small_mma.cuh');
  writeFileSync(join(outDir, 'lora_small_mma.cuh'), assertNoAsm(mma, 'lora_small_mma.cuh'));
  writeMmaForEmulator(outDir);

  // The block bodies are headers; the kernel sources include them.
  let shrinkBlock = readFileSync(join(cudaDir, 'lora_small_shrink_block.cuh'), 'utf8');
  shrinkBlock = replaceOnce(shrinkBlock, 'extern __shared__ float accShared[];', 'float* accShared = reinterpret_cast<float*>(emu::dynSmem);',
    'lora_small_shrink_block.cuh');
  writeFileSync(join(outDir, 'lora_small_shrink_block.cuh'), assertNoAsm(shrinkBlock, 'lora_small_shrink_block.cuh'));
  let expandBlock = readFileSync(join(cudaDir, 'lora_small_expand_block.cuh'), 'utf8');
  expandBlock = replaceOnce(expandBlock, /__device__ __forceinline__ void copyAsyncPartial\(.*?\n}\n/s,
    'inline void copyAsyncPartial(void* dst, const void* src, int bytes) {\n  std::memset(dst, 0, 16);\n  std::memcpy(dst, src, bytes);\n}\n',
    'lora_small_expand_block.cuh');
  expandBlock = replaceOnce(expandBlock, 'extern __shared__ __align__(16) unsigned char smem[];', 'unsigned char* smem = emu::dynSmem;',
    'lora_small_expand_block.cuh');
  writeFileSync(join(outDir, 'lora_small_expand_block.cuh'), assertNoAsm(expandBlock, 'lora_small_expand_block.cuh'));
  for (const name of ['lora_small_shrink', 'lora_small_expand']) {
    const src = readFileSync(join(cudaDir, `${name}.cu`), 'utf8');
    writeFileSync(join(outDir, `${name}.cpp`), kernelSource(src, `${name}.cu`));
  }

  // The fused kernel: its whole body sits under the sm_90 guard (clusters).
  let fused = readFileSync(join(cudaDir, 'lora_small_fused.cu'), 'utf8');
  fused = replaceOnce(fused, '#if __CUDA_ARCH__ >= 900  // thread-block clusters', '#if 1  // emulated clusters', 'lora_small_fused.cu');
  fused = replaceOnce(fused, '#include <cooperative_groups.h>', '', 'lora_small_fused.cu');
  fused = replaceOnce(fused, 'namespace cg = cooperative_groups;', '', 'lora_small_fused.cu');
  fused = replaceOnce(fused, 'cg::cluster_group cluster = cg::this_cluster();', 'const emu::Cluster cluster = emu::thisCluster();', 'lora_small_fused.cu');
  fused = replaceOnce(fused, 'extern __shared__ __align__(16) unsigned char smem[];', 'unsigned char* smem = emu::dynSmem;', 'lora_small_fused.cu');
  writeFileSync(join(outDir, 'lora_small_fused.cpp'), kernelSource(fused, 'lora_small_fused.cu'));
  return ['lora_small_shrink.cpp', 'lora_small_expand.cpp', 'lora_small_fused.cpp'].map((f) => join(outDir, f));
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) prepare(resolve(process.argv[2] ?? 'build/small-step-emu'));
