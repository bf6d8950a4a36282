// Rewrites native/src/cuda/mma16816.cuh for the host emulators: the two inline-PTX mma.m16n8k16 specialisations become
// one call of emu::mma16816 (small-step-emu.h, engine/test/emu/decode-gemm-emu.h). Written next to the rewritten
// sources that include it ("mma16816.cuh" resolves to the including file's directory first). Throws when the header
// no longer has the expected shape, so an edit cannot silently skip it.
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const cudaDir = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

export function mmaForEmulator() {
  const src = readFileSync(join(cudaDir, 'mma16816.cuh'), 'utf8');
  const mma = /template <typename T> __device__ __forceinline__ void mma16816.*?"r"\(b1\)\);\n}\n.*?"r"\(b1\)\);\n}\n/s;
  if (!mma.test(src)) throw new Error('mma-emu.mjs: mma16816.cuh no longer has the two mma16816 specialisations');
  const out = src.replace(mma,
    'template <typename T> inline void mma16816(float (&c)[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3, uint32_t b0,\n' +
    '                                           uint32_t b1) { emu::mma16816<T>(c, a0, a1, a2, a3, b0, b1); }\n');
  if (/\basm\b/.test(out)) throw new Error('mma-emu.mjs: mma16816.cuh still has inline PTX the emulator cannot run');
  return out;
}

// Writes the rewritten header into outDir; returns its path.
export function writeMmaForEmulator(outDir) {
  const path = join(outDir, 'mma16816.cuh');
  writeFileSync(path, mmaForEmulator());
  return path;
}
