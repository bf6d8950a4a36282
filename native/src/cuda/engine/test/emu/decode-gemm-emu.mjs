// Rewrites native/src/cuda/engine/decode-gemm.cu for the host emulator: transform.mjs turns the launches into
// emu::launch, and the mma.m16n8k16 wrapper it includes (native/src/cuda/mma16816.cuh) is rewritten beside it into one
// call of emu::mma16816 (decode-gemm-emu.h) by test/emu/mma-emu.mjs. Throws when the source no longer has the
// expected shape, so a kernel edit cannot silently skip it.
// CLI: node decode-gemm-emu.mjs OUT_DIR   (writes OUT_DIR/decode-gemm.cpp and OUT_DIR/mma16816.cuh)
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { transformCuda } from './transform.mjs';
import { writeMmaForEmulator } from '../../../test/emu/mma-emu.mjs';

const engineDir = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

export function decodeGemmForEmulator() {
  let body = readFileSync(join(engineDir, 'decode-gemm.cu'), 'utf8');
  if (!body.includes('#include "mma16816.cuh"')) throw new Error('decode-gemm-emu.mjs: decode-gemm.cu no longer includes mma16816.cuh');
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

// Writes outDir/decode-gemm.cpp and the emulated mma16816.cuh it includes; returns the .cpp path.
export function writeDecodeGemmForEmulator(outDir) {
  const path = join(outDir, 'decode-gemm.cpp');
  writeFileSync(path, decodeGemmForEmulator());
  writeMmaForEmulator(outDir);
  return path;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url) && process.argv.length === 3) {
  writeDecodeGemmForEmulator(resolve(process.argv[2]));
}
