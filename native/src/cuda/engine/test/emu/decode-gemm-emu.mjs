// Rewrites native/src/cuda/engine/decode-gemm.cu for the host emulator: the two inline-PTX mma.m16n8k16
// specialisations become one call of emu::mma16816 (decode-gemm-emu.h), then transform.mjs turns the launches into
// emu::launch. Throws when the source no longer has the expected shape, so a kernel edit cannot silently skip it.
// CLI: node decode-gemm-emu.mjs OUT.cpp
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { transformCuda } from './transform.mjs';

const engineDir = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

export function decodeGemmForEmulator() {
  const src = readFileSync(join(engineDir, 'decode-gemm.cu'), 'utf8');
  const mma = /template <typename T> __device__ __forceinline__ void mma16816.*?"r"\(b1\)\);\n}\n.*?"r"\(b1\)\);\n}\n/s;
  if (!mma.test(src)) throw new Error('decode-gemm-emu.mjs: decode-gemm.cu no longer has the two mma16816 specialisations');
  let body = src.replace(mma,
    'template <typename T> inline void mma16816(float (&c)[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3, uint32_t b0,\n' +
    '                                           uint32_t b1) { emu::mma16816<T>(c, a0, a1, a2, a3, b0, b1); }\n');
  // Clusters: the emulator's cooperative_groups stand-in (decode-gemm-emu.h); the launch is chosen by EMU_DYNAMIC_SMEM.
  for (const [from, to] of [['#include <cooperative_groups.h>\n', ''], ['namespace cg = cooperative_groups;', 'namespace cg = emu::cg;']]) {
    if (!body.includes(from)) throw new Error(`decode-gemm-emu.mjs: decode-gemm.cu no longer contains ${from}`);
    body = body.replace(from, to);
  }
  const out = transformCuda(body);
  // PTX under `#if defined(__CUDA_ARCH__)` never reaches g++; any other is an error.
  const hostVisible = out.replace(/#if defined\(__CUDA_ARCH__\)[\s\S]*?#(?:else|endif)/g, '');
  if (/\basm\b/.test(hostVisible)) throw new Error('decode-gemm-emu.mjs: decode-gemm.cu still has inline PTX the emulator cannot run');
  return out;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url) && process.argv.length === 3) {
  writeFileSync(process.argv[2], decodeGemmForEmulator());
}
