// Prepares the skinny GEMM with the small-step shrink inside its launch (engine/skinny-gemm.cu + skinny-shrink.cuh) for
// the host emulator (cuda-emu.h + skinny-shrink-emu.h): skinny-gemm.cu through transform.mjs with its static shared
// variables registered (each block of a grid run together keeps its own copy), skinny-shrink.cuh beside it, and the
// small-step headers it includes one level up: lora_small_mma.cuh without its L2 prefetch PTX, mma16816.cuh rewritten
// by test/emu/mma-emu.mjs, lora_small_step.cuh / lora_tile.cuh as lora-expand-emu.mjs writes them (which also writes the
// real expand, returned too). `mutate(src)`, when given, edits skinny-gemm.cu first (the tests plant bugs with it).
// Throws when a source no longer has the shape it expects.
// CLI: node skinny-shrink-emu.mjs OUT_DIR
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { writeMmaForEmulator } from '../../../test/emu/mma-emu.mjs';
import { prepareExpand } from './lora-expand-emu.mjs';
import { transformCuda } from './transform.mjs';

const engineDir = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const cudaDir = resolve(engineDir, '..');

export function prepareSkinnyShrink(outDir, mutate = (src) => src) {
  mkdirSync(join(outDir, 'engine'), { recursive: true });
  const expand = prepareExpand(outDir);  // lora_tile.cuh, lora_small_step.cuh, lora_small_expand.cpp
  writeMmaForEmulator(outDir);
  const prefetch = /__device__ __forceinline__ void prefetchL2\(const void\* p\) \{ asm volatile[^\n]*\}/;
  const mma = readFileSync(join(cudaDir, 'lora_small_mma.cuh'), 'utf8');
  if (!prefetch.test(mma)) throw new Error('skinny-shrink-emu.mjs: lora_small_mma.cuh no longer has its prefetchL2');
  writeFileSync(join(outDir, 'lora_small_mma.cuh'), mma.replace(prefetch, 'inline void prefetchL2(const void*) {}'));
  writeFileSync(join(outDir, 'engine/skinny-shrink.cuh'), readFileSync(join(engineDir, 'skinny-shrink.cuh'), 'utf8'));
  const gemm = join(outDir, 'engine/skinny-gemm.cpp');
  writeFileSync(gemm, transformCuda(mutate(readFileSync(join(engineDir, 'skinny-gemm.cu'), 'utf8')), { sharedRegions: true }));
  return { gemm, expand };
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) prepareSkinnyShrink(resolve(process.argv[2] ?? 'build/skinny-shrink-emu'));
