// Rewrites the small-step LoRA kernels (lora_small_shrink.cu, lora_small_expand.cu, lora_small_fused.cu, lora_tile.cuh,
// lora_small_step.cuh, lora_small_mma.cuh) for the host emulator small-step-emu.h: inline PTX (mma.sync, cp.async, griddepcontrol)
// becomes emulator calls or no-ops, dynamic shared memory a pointer into the emulator's buffer, launches
// emu::launch. Throws when a source no longer has the shape it expects, so a kernel edit cannot silently skip it.
// CLI: node prepare.mjs OUT_DIR
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const cudaDir = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

function replaceOnce(src, from, to, file) {
  const hit = typeof from === 'string' ? src.includes(from) : from.test(src);
  if (!hit) throw new Error(`prepare.mjs: ${file} no longer contains ${from}`);
  return src.replace(from, to);
}
const noPdl = (s) => s.replaceAll('asm volatile("griddepcontrol.launch_dependents;\\n" ::: "memory");', '(void)0;')
  .replaceAll('asm volatile("griddepcontrol.wait;\\n" ::: "memory");', '(void)0;');
function assertNoAsm(src, file) {
  if (/\basm\b/.test(src)) throw new Error(`prepare.mjs: ${file} still has inline PTX the emulator cannot run`);
  return src;
}

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
  mma = replaceOnce(mma, /template <typename T> __device__ __forceinline__ void mma16816.*?"r"\(b1\)\);\n}\n.*?"r"\(b1\)\);\n}\n/s,
    'template <typename T> inline void mma16816(float (&c)[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3, uint32_t b0,\n' +
    '                                           uint32_t b1) { emu::mma<T>(c, a0, a1, a2, a3, b0, b1); }\n', 'lora_small_mma.cuh');
  mma = replaceOnce(mma, 'asm volatile("prefetch.global.L2 [%0];\\n" ::"l"(p));', '(void)p;', 'lora_small_mma.cuh');
  writeFileSync(join(outDir, 'lora_small_mma.cuh'), assertNoAsm(mma, 'lora_small_mma.cuh'));

  let shrink = noPdl(readFileSync(join(cudaDir, 'lora_small_shrink.cu'), 'utf8'));
  shrink = replaceOnce(shrink, 'extern __shared__ float accShared[];', 'float* accShared = reinterpret_cast<float*>(emu::dynSmem);', 'lora_small_shrink.cu');
  shrink = replaceOnce(shrink, 'kernel<<<grid, kThreads, smemBytes, stream>>>(', 'emu::launch(grid, dim3(kThreads), kernel, ', 'lora_small_shrink.cu');
  shrink = replaceOnce(shrink, 'cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smemBytes))', 'cudaSuccess', 'lora_small_shrink.cu');
  shrink = replaceOnce(shrink, 'return cudaGetLastError();', 'return cudaSuccess;', 'lora_small_shrink.cu');
  writeFileSync(join(outDir, 'lora_small_shrink.cpp'), assertNoAsm(shrink, 'lora_small_shrink.cu'));

  let expand = noPdl(readFileSync(join(cudaDir, 'lora_small_expand.cu'), 'utf8'));
  expand = replaceOnce(expand, /__device__ __forceinline__ void copyAsyncPartial\(.*?\n}\n/s,
    'inline void copyAsyncPartial(void* dst, const void* src, int bytes) {\n  std::memset(dst, 0, 16);\n  std::memcpy(dst, src, bytes);\n}\n',
    'lora_small_expand.cu');
  expand = replaceOnce(expand, 'extern __shared__ __align__(16) unsigned char smem[];', 'unsigned char* smem = emu::dynSmem;', 'lora_small_expand.cu');
  expand = replaceOnce(expand, 'config.gridDim = grid;', '', 'lora_small_expand.cu');
  expand = replaceOnce(expand, 'config.blockDim = dim3(kThreads);', '', 'lora_small_expand.cu');
  expand = replaceOnce(expand, /return cudaLaunchKernelEx\(&config, kernel, ((?:.|\n)*?)\);\n/, (_, args) => `emu::launch(grid, dim3(kThreads), kernel, ${args});\n      return cudaSuccess;\n`, 'lora_small_expand.cu');
  expand = replaceOnce(expand, 'cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smemBytes))', 'cudaSuccess', 'lora_small_expand.cu');
  writeFileSync(join(outDir, 'lora_small_expand.cpp'), assertNoAsm(expand, 'lora_small_expand.cu'));

  // The fused kernel: its whole body sits under the sm_90 guard (clusters), its launch is a cluster launch.
  let fused = readFileSync(join(cudaDir, 'lora_small_fused.cu'), 'utf8');
  fused = replaceOnce(fused, '#if __CUDA_ARCH__ >= 900  // thread-block clusters', '#if 1  // emulated clusters', 'lora_small_fused.cu');
  fused = replaceOnce(fused, '#include <cooperative_groups.h>', '', 'lora_small_fused.cu');
  fused = replaceOnce(fused, 'namespace cg = cooperative_groups;', '', 'lora_small_fused.cu');
  fused = replaceOnce(fused, 'cg::cluster_group cluster = cg::this_cluster();', 'const emu::Cluster cluster = emu::thisCluster();', 'lora_small_fused.cu');
  fused = replaceOnce(fused, 'extern __shared__ __align__(16) unsigned char smem[];', 'unsigned char* smem = emu::dynSmem;', 'lora_small_fused.cu');
  // The launch configuration and the device query are CUDA runtime calls the emulator does not link: cut out.
  fused = replaceOnce(fused, /\/\/ The fused kernel's launch configuration(?:.|\n)*?\n};\n\n/, '', 'lora_small_fused.cu');
  fused = replaceOnce(fused, /template <typename Kernel>\ncudaError_t prepareClusterLaunch\((?:.|\n)*?\n}\n/, '', 'lora_small_fused.cu');
  fused = replaceOnce(fused, 'const ClusterLaunch cl(grid, size, smemBytes, stream);', '', 'lora_small_fused.cu');
  fused = replaceOnce(fused, 'prepareClusterLaunch(kernel, cl, size, known == 0)', 'cudaSuccess', 'lora_small_fused.cu');
  fused = replaceOnce(fused, /status = cudaLaunchKernelEx\(&cl\.config, kernel, ((?:.|\n)*?)\);\n/,
    (_, args) => `emu::launchCluster(grid, dim3(kThreads), size, kernel, ${args});\n    status = cudaSuccess;\n`, 'lora_small_fused.cu');
  writeFileSync(join(outDir, 'lora_small_fused.cpp'), assertNoAsm(fused, 'lora_small_fused.cu'));
  return ['lora_small_shrink.cpp', 'lora_small_expand.cpp', 'lora_small_fused.cpp'].map((f) => join(outDir, f));
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) prepare(resolve(process.argv[2] ?? 'build/small-step-emu'));
