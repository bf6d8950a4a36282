// ldmatrix.sync.aligned.m8n8.x4[.trans].shared.b16 for the engine's mma.sync kernels (the prefill attention): lanes
// 8i .. 8i + 7 give the shared-memory addresses of the 8 rows (16 bytes each) of 8 × 8 matrix i; register i of lane
// (g = lane / 4, t = lane % 4) receives matrix i's elements (g, 2t), (g, 2t + 1), or with .trans (2t, g), (2t + 1, g),
// low half first: the A / B fragment layout of mma.m16n8k16 (mma16816.cuh). The host emulator rewrites this file
// (test/emu/ptx-headers-emu.mjs).
#pragma once
#include <cstdint>

namespace tslora::cuda {

__device__ __forceinline__ void ldmatrixX4(const void* rowAddress, uint32_t& r0, uint32_t& r1, uint32_t& r2, uint32_t& r3) {
  const unsigned address = static_cast<unsigned>(__cvta_generic_to_shared(rowAddress));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
               : "r"(address));
}
__device__ __forceinline__ void ldmatrixX4Trans(const void* rowAddress, uint32_t& r0, uint32_t& r1, uint32_t& r2, uint32_t& r3) {
  const unsigned address = static_cast<unsigned>(__cvta_generic_to_shared(rowAddress));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
               : "r"(address));
}

}  // namespace tslora::cuda
