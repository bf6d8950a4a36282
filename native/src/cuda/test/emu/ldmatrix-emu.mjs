// Rewrites native/src/cuda/ldmatrix.cuh for the engine's host emulator: the two inline-PTX ldmatrix functions become
// calls of emu::ldmatrixX4 (engine/test/emu/mma-fiber-emu.h). Written next to the rewritten sources that include it
// ("ldmatrix.cuh" resolves to the including file's directory first). Throws when the header no longer has the expected
// shape, so an edit cannot silently skip it.
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const cudaDir = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

export function ldmatrixForEmulator() {
  let src = readFileSync(join(cudaDir, 'ldmatrix.cuh'), 'utf8');
  for (const [name, trans] of [['ldmatrixX4', 'false'], ['ldmatrixX4Trans', 'true']]) {
    const fn = new RegExp(`__device__ __forceinline__ void ${name}\\(([^)]*)\\) \\{.*?\\n\\}\\n`, 's');
    if (!fn.test(src)) throw new Error(`ldmatrix-emu.mjs: ldmatrix.cuh no longer defines ${name}`);
    src = src.replace(fn, (_, params) => `inline void ${name}(${params}) { emu::ldmatrixX4(rowAddress, r0, r1, r2, r3, ${trans}); }\n`);
  }
  src = src.replace('#include <cstdint>', '#include <cstdint>\n#include "test/emu/mma-fiber-emu.h"');
  if (/\basm\b/.test(src)) throw new Error('ldmatrix-emu.mjs: ldmatrix.cuh still has inline PTX the emulator cannot run');
  return src;
}

// Writes the rewritten header into outDir; returns its path.
export function writeLdmatrixForEmulator(outDir) {
  const path = join(outDir, 'ldmatrix.cuh');
  writeFileSync(path, ldmatrixForEmulator());
  return path;
}
