// Rewrites the engine's inline-PTX helper headers for the host emulator's fibers (engine/test/emu/mma-fiber-emu.h):
//  - native/src/cuda/ldmatrix.cuh: ldmatrixX4 / ldmatrixX4Trans → emu::ldmatrixX4(…, trans);
//  - native/src/cuda/cp-async.cuh: cpAsync16 / cpAsyncCommit / cpAsyncWait<N> → emu::cpAsync16 / cpAsyncCommit /
//    cpAsyncWait(N) (copies that land at the wait).
// Written next to the rewritten sources that include them (searched first). Throws when a header no longer defines a
// function with the expected signature, so an edit cannot silently skip it. (mma16816.cuh: mma-emu.mjs.)
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const cudaDir = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

// Each [signature regex source, replacement] swaps one __device__ function (through its closing brace at column 0).
function rewriteHeader(file, functions) {
  let src = readFileSync(join(cudaDir, file), 'utf8');
  for (const [signature, replacement] of functions) {
    const fn = new RegExp(`${signature} \\{.*?\\n\\}\\n|${signature} \\{[^\\n]*\\}\\n`, 's');
    if (!fn.test(src)) throw new Error(`ptx-headers-emu.mjs: ${file} no longer matches ${signature}`);
    src = src.replace(fn, `${replacement}\n`);
  }
  src = src.replace('#include <cstdint>', '#include <cstdint>\n#include "test/emu/mma-fiber-emu.h"');
  if (/\basm\b/.test(src)) throw new Error(`ptx-headers-emu.mjs: ${file} still has inline PTX the emulator cannot run`);
  return src;
}

const regs = 'uint32_t& r0, uint32_t& r1, uint32_t& r2, uint32_t& r3';
export function ldmatrixForEmulator() {
  return rewriteHeader('ldmatrix.cuh', [
    ['__device__ __forceinline__ void ldmatrixX4\\(const void\\* rowAddress, [^)]*\\)',
      `inline void ldmatrixX4(const void* rowAddress, ${regs}) { emu::ldmatrixX4(rowAddress, r0, r1, r2, r3, false); }`],
    ['__device__ __forceinline__ void ldmatrixX4Trans\\(const void\\* rowAddress, [^)]*\\)',
      `inline void ldmatrixX4Trans(const void* rowAddress, ${regs}) { emu::ldmatrixX4(rowAddress, r0, r1, r2, r3, true); }`],
  ]);
}

export function cpAsyncForEmulator() {
  return rewriteHeader('cp-async.cuh', [
    ['__device__ __forceinline__ void cpAsync16\\(void\\* sharedDst, const void\\* globalSrc, bool valid\\)',
      'inline void cpAsync16(void* sharedDst, const void* globalSrc, bool valid) { emu::cpAsync16(sharedDst, globalSrc, valid); }'],
    ['__device__ __forceinline__ void cpAsyncCommit\\(\\)', 'inline void cpAsyncCommit() { emu::cpAsyncCommit(); }'],
    ['template <int Pending>\\n__device__ __forceinline__ void cpAsyncWait\\(\\)',
      'template <int Pending>\ninline void cpAsyncWait() { emu::cpAsyncWait(Pending); }'],
  ]);
}

// Writes both rewritten headers into outDir.
export function writePtxHeadersForEmulator(outDir) {
  writeFileSync(join(outDir, 'ldmatrix.cuh'), ldmatrixForEmulator());
  writeFileSync(join(outDir, 'cp-async.cuh'), cpAsyncForEmulator());
}
