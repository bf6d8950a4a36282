// Rewrites the small-step LoRA expand (lora_small_expand.cu, its block body lora_small_expand_block.cuh, lora_small_step.cuh
// and lora_tile.cuh, which belong to the LoRA kernels) for the engine's host emulator (cuda-emu.h + lora-expand-emu.h): cp.async becomes a zero-filling
// copy, the commit / wait no-ops (the emulator's copies land at once); its launch goes through engine/pdl.h, whose
// emulator branch is emu::launch, and pdl.h's waits and triggers are no-ops on the host. Throws when a source no longer
// has the shape it expects, so an edit there cannot silently skip a rewrite.
// CLI: node lora-expand-emu.mjs OUT_DIR   (writes lora_small_expand.cpp and the three headers it includes)
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { transformCuda } from './transform.mjs';

const cudaDir = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');

function replaceOnce(src, from, to, file) {
  const hit = typeof from === 'string' ? src.includes(from) : from.test(src);
  if (!hit) throw new Error(`lora-expand-emu.mjs: ${file} no longer contains ${from}`);
  return src.replace(from, to);
}
function assertNoAsm(src, file) {
  const unguarded = src.replace(/#if __CUDA_ARCH__ >= 900[^\n]*\n(?:.|\n)*?#endif/g, '');
  if (/\basm\b/.test(unguarded)) throw new Error(`lora-expand-emu.mjs: ${file} still has inline PTX the emulator cannot run`);
  return src;
}

export function prepareExpand(outDir) {
  mkdirSync(outDir, { recursive: true });
  let tile = readFileSync(join(cudaDir, 'lora_tile.cuh'), 'utf8');
  tile = replaceOnce(tile, /__device__ __forceinline__ void copyAsync16\(.*?\n}\n/s, '', 'lora_tile.cuh');
  tile = replaceOnce(tile, /__device__ __forceinline__ void copyAsyncCommit\(\) \{.*?\}/, 'inline void copyAsyncCommit() {}', 'lora_tile.cuh');
  tile = replaceOnce(tile, /__device__ __forceinline__ void copyAsyncWait\(\) \{.*?\}/, 'inline void copyAsyncWait() {}', 'lora_tile.cuh');
  writeFileSync(join(outDir, 'lora_tile.cuh'), assertNoAsm(tile, 'lora_tile.cuh'));
  writeFileSync(join(outDir, 'lora_small_step.cuh'), assertNoAsm(readFileSync(join(cudaDir, 'lora_small_step.cuh'), 'utf8'), 'lora_small_step.cuh'));
  // The expand's block body is lora_small_expand_block.cuh; the kernel file includes it.
  let block = readFileSync(join(cudaDir, 'lora_small_expand_block.cuh'), 'utf8');
  block = replaceOnce(block, /__device__ __forceinline__ void copyAsyncPartial\(.*?\n}\n/s,
    'inline void copyAsyncPartial(void* dst, const void* src, int bytes) {\n  std::memset(dst, 0, 16);\n  std::memcpy(dst, src, bytes);\n}\n',
    'lora_small_expand_block.cuh');
  // cuda-emu.h turns __shared__ into `static` and __align__ into alignas, which must come first.
  block = replaceOnce(block, '__shared__ __align__(16) float sU', '__align__(16) __shared__ float sU', 'lora_small_expand_block.cuh');
  writeFileSync(join(outDir, 'lora_small_expand_block.cuh'), assertNoAsm(transformCuda(block), 'lora_small_expand_block.cuh'));
  const expand = readFileSync(join(cudaDir, 'lora_small_expand.cu'), 'utf8');
  writeFileSync(join(outDir, 'lora_small_expand.cpp'), assertNoAsm(transformCuda(expand), 'lora_small_expand.cu'));
  return join(outDir, 'lora_small_expand.cpp');
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) prepareExpand(resolve(process.argv[2] ?? 'build/lora-expand-emu'));
