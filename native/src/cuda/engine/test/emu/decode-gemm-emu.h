// What the decode GEMM (decode-gemm.cu) needs on top of cuda-emu.h: mma.m16n8k16 as a warp-collective step built
// from the PTX fragment layout (every lane posts its registers, the warp meets, each lane computes its four C
// elements in fp32, the warp meets again), cache-hinted loads as plain reads, the ticket atomic as a plain add (blocks
// run one after another), fences as no-ops, and cudaMalloc / cudaMemset / cudaFree on host memory.
// decode-gemm-emu.mjs rewrites the kernel's inline PTX into calls of emu::mma16816.
#pragma once
#include "cuda-emu.h"

#include <cstdlib>

namespace emu {

struct MmaExchange {
  uint32_t a[32][4];
  uint32_t b[32][2];
};

template <typename T>
float halfToFloat(uint16_t bits) {
  T v;
  std::memcpy(static_cast<void*>(&v), &bits, 2);
  if constexpr (std::is_same_v<T, __nv_bfloat16>) return __bfloat162float(v);
  else return __half2float(v);
}

template <typename T>
void mma16816(float (&c)[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3, uint32_t b0, uint32_t b1) {
  static MmaExchange exchange[32];  // one per warp of the running block
  const int tid = linearTid(), warp = tid / 32, lane = tid % 32;
  MmaExchange& x = exchange[warp];
  x.a[lane][0] = a0; x.a[lane][1] = a1; x.a[lane][2] = a2; x.a[lane][3] = a3;
  x.b[lane][0] = b0; x.b[lane][1] = b1;
  syncwarp();
  // A [16 rows, 16 k]: a0 (g, 2t..), a1 (g+8, 2t..), a2 (g, 2t+8..), a3 (g+8, 2t+8..); B [16 k, 8 cols]: b0 (2t.., g),
  // b1 (2t+8.., g); two 16-bit values per register, the lower k in the low half.
  float A[16][16], B[16][8];
  for (int l = 0; l < 32; ++l) {
    const int g = l / 4, t = l % 4;
    const auto lo = [](uint32_t v) { return static_cast<uint16_t>(v & 0xffffu); };
    const auto hi = [](uint32_t v) { return static_cast<uint16_t>(v >> 16); };
    for (int r = 0; r < 4; ++r) {
      const int row = g + (r & 1) * 8, k = 2 * t + (r >> 1) * 8;
      A[row][k] = halfToFloat<T>(lo(x.a[l][r]));
      A[row][k + 1] = halfToFloat<T>(hi(x.a[l][r]));
    }
    B[2 * t][g] = halfToFloat<T>(lo(x.b[l][0]));
    B[2 * t + 1][g] = halfToFloat<T>(hi(x.b[l][0]));
    B[2 * t + 8][g] = halfToFloat<T>(lo(x.b[l][1]));
    B[2 * t + 9][g] = halfToFloat<T>(hi(x.b[l][1]));
  }
  const int g = lane / 4, t = lane % 4;
  const auto dot = [&](int m, int n) {
    float s = 0;
    for (int k = 0; k < 16; ++k) s += A[m][k] * B[k][n];
    return s;
  };
  c[0] += dot(g, 2 * t);
  c[1] += dot(g, 2 * t + 1);
  c[2] += dot(g + 8, 2 * t);
  c[3] += dot(g + 8, 2 * t + 1);
  syncwarp();
}

}  // namespace emu

#define __ldcs(p) (*(p))
#define __ldcg(p) (*(p))
#define __ldg(p) (*(p))
#define __threadfence() ((void)0)
inline int atomicAdd(int* p, int v) {
  const int old = *p;
  *p += v;
  return old;
}
#define cudaMalloc(pp, bytes) ((*(pp) = static_cast<std::remove_reference_t<decltype(*(pp))>>(std::malloc(bytes))) ? cudaSuccess : cudaErrorMemoryAllocation)
#define cudaMemset(p, v, bytes) (std::memset((p), (v), (bytes)), cudaSuccess)
#define cudaFree(p) std::free(p)
#define cudaGetErrorName(s) "emulated CUDA error"
#define cudaGetErrorString(s) "emulated CUDA error"
// The test driver's runtime calls.
#define cudaGetDeviceCount(p) (*(p) = 1, cudaSuccess)
#define cudaMemcpy(dst, src, bytes, kind) (std::memcpy((dst), (src), (bytes)), cudaSuccess)
#define cudaDeviceSynchronize() cudaSuccess
