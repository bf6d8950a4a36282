// Rewrites the wide tiled shrink and expand (lora_shrink_wide.cuh, lora_expand_wide.cuh with lora_tile.cuh,
// lora_split_sum.cuh and mma16816.cuh) for the host emulator (small-step-emu.h + tiled-emu.h): cp.async becomes a
// zero-filling copy, ldmatrix and mma.sync warp exchanges, the dynamic shared memory a pointer into the emulator's
// buffer, the shrink's cluster split-K the emulator's clusters. Throws when a source no longer has the shape it
// expects, so a kernel edit cannot silently skip it. CLI: node tiled-prepare.mjs OUT_DIR
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeMmaForEmulator } from './mma-emu.mjs';

const cudaDir = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

function replaceOnce(src, from, to, file) {
  const hit = typeof from === 'string' ? src.includes(from) : from.test(src);
  if (!hit) throw new Error(`tiled-prepare.mjs: ${file} no longer contains ${from}`);
  return src.replace(from, to);
}
function assertNoAsm(src, file) {
  if (/\basm\b/.test(src)) throw new Error(`tiled-prepare.mjs: ${file} still has inline PTX the emulator cannot run`);
  return src;
}

export function prepareTiled(outDir) {
  mkdirSync(outDir, { recursive: true });
  let tile = readFileSync(join(cudaDir, 'lora_tile.cuh'), 'utf8');
  tile = replaceOnce(tile, '#pragma once', '#pragma once\n#include "tiled-emu.h"', 'lora_tile.cuh');
  tile = replaceOnce(tile, /__device__ __forceinline__ void copyAsync16\(.*?\n}\n/s,
    'inline void copyAsync16(void* dst, const void* src, bool valid) { emu::copyAsync16(dst, src, valid); }\n', 'lora_tile.cuh');
  tile = replaceOnce(tile, /__device__ __forceinline__ void copyAsyncCommit\(\) \{.*?\}/, 'inline void copyAsyncCommit() {}', 'lora_tile.cuh');
  tile = replaceOnce(tile, /__device__ __forceinline__ void copyAsyncWait\(\) \{.*?\}/, 'inline void copyAsyncWait() {}', 'lora_tile.cuh');
  writeFileSync(join(outDir, 'lora_tile.cuh'), assertNoAsm(tile, 'lora_tile.cuh'));
  writeMmaForEmulator(outDir);

  let wide = readFileSync(join(cudaDir, 'lora_shrink_wide.cuh'), 'utf8');
  wide = replaceOnce(wide, '#pragma once', '#pragma once\n#include "tiled-emu.h"', 'lora_shrink_wide.cuh');
  wide = replaceOnce(wide, /__device__ __forceinline__ void ldmatrixX4\(.*?\n}\n/s,
    'inline void ldmatrixX4(const void* rowAddress, uint32_t& r0, uint32_t& r1, uint32_t& r2, uint32_t& r3) {\n' +
    '  emu::ldmatrixX4(rowAddress, r0, r1, r2, r3);\n}\n', 'lora_shrink_wide.cuh');
  wide = replaceOnce(wide, 'extern __shared__ __align__(128) unsigned char smem[];', 'unsigned char* smem = emu::dynSmem;',
    'lora_shrink_wide.cuh');
  writeFileSync(join(outDir, 'lora_shrink_wide.cuh'), assertNoAsm(wide, 'lora_shrink_wide.cuh'));

  // The split-K sums: the cluster split-K on the emulator's clusters (small-step-emu.h runs a cluster's blocks together).
  let sum = readFileSync(join(cudaDir, 'lora_split_sum.cuh'), 'utf8');
  sum = replaceOnce(sum, '#include <cooperative_groups.h>', '', 'lora_split_sum.cuh');
  sum = replaceOnce(sum, 'namespace cg = cooperative_groups;', '', 'lora_split_sum.cuh');
  sum = replaceOnce(sum, "#if __CUDA_ARCH__ >= 900  // thread-block clusters (the wide shrink's cluster split-K)", '#if 1  // emulated clusters',
    'lora_split_sum.cuh');
  sum = replaceOnce(sum, 'cg::cluster_group cluster = cg::this_cluster();', 'const emu::Cluster cluster = emu::thisCluster();',
    'lora_split_sum.cuh');
  writeFileSync(join(outDir, 'lora_split_sum.cuh'), assertNoAsm(sum, 'lora_split_sum.cuh'));

  let expand = readFileSync(join(cudaDir, 'lora_expand_wide.cuh'), 'utf8');
  expand = replaceOnce(expand, '#pragma once', '#pragma once\n#include "tiled-emu.h"', 'lora_expand_wide.cuh');
  expand = replaceOnce(expand, 'extern __shared__ __align__(128) unsigned char smem[];', 'unsigned char* smem = emu::dynSmem;',
    'lora_expand_wide.cuh');
  writeFileSync(join(outDir, 'lora_expand_wide.cuh'), assertNoAsm(expand, 'lora_expand_wide.cuh'));
}

if (process.argv[1] === fileURLToPath(import.meta.url)) prepareTiled(process.argv[2]);
