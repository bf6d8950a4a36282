// Host emulation of just enough CUDA for the small-step LoRA kernels (see prepare.mjs): blocks run one at a time, each
// with one std::thread per CUDA thread; __syncthreads is a block barrier, mma.m16n8k16 a warp barrier plus a
// reference product built from the PTX fragment layout; __shared__ variables are statics (blocks never overlap),
// dynamic shared memory one buffer refilled with 0xff garbage before every block.
#pragma once
#include <cuda_runtime.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <algorithm>
#include <barrier>
#include <cstdint>
#include <cstring>
#include <functional>
#include <thread>
#include <vector>
#include <cmath>
#include <memory>
namespace emu {
inline thread_local dim3 tIdx, bIdx;
inline dim3 bDim, gDim;
inline std::barrier<>* blockBarrier = nullptr;
inline std::barrier<>* warpBarriers[32];
inline unsigned char dynSmem[1 << 18];
inline void syncBlock() { blockBarrier->arrive_and_wait(); }
// mma exchange per warp
struct WarpX { uint32_t a[32][4]; uint32_t b[32][2]; float c[32][4]; };
inline WarpX warpX[32];
inline int outstanding = 0;
template <typename T> float toF(uint16_t bits) {
  T v; std::memcpy(&v, &bits, 2);
  if constexpr (std::is_same_v<T, __nv_bfloat16>) return __bfloat162float(v); else return __half2float(v);
}
template <typename T> void mma(float (&c)[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3, uint32_t b0, uint32_t b1) {
  const int tid = tIdx.x, warp = tid / 32, lane = tid % 32;
  WarpX& x = warpX[warp];
  x.a[lane][0] = a0; x.a[lane][1] = a1; x.a[lane][2] = a2; x.a[lane][3] = a3; x.b[lane][0] = b0; x.b[lane][1] = b1;
  warpBarriers[warp]->arrive_and_wait();
  float A[16][16], B[16][8];
  for (int l = 0; l < 32; ++l) {
    const int g = l / 4, t = l % 4;
    auto lo = [](uint32_t v) { return uint16_t(v & 0xffff); };
    auto hi = [](uint32_t v) { return uint16_t(v >> 16); };
    A[g][2 * t] = toF<T>(lo(x.a[l][0])); A[g][2 * t + 1] = toF<T>(hi(x.a[l][0]));
    A[g + 8][2 * t] = toF<T>(lo(x.a[l][1])); A[g + 8][2 * t + 1] = toF<T>(hi(x.a[l][1]));
    A[g][2 * t + 8] = toF<T>(lo(x.a[l][2])); A[g][2 * t + 9] = toF<T>(hi(x.a[l][2]));
    A[g + 8][2 * t + 8] = toF<T>(lo(x.a[l][3])); A[g + 8][2 * t + 9] = toF<T>(hi(x.a[l][3]));
    B[2 * t][g] = toF<T>(lo(x.b[l][0])); B[2 * t + 1][g] = toF<T>(hi(x.b[l][0]));
    B[2 * t + 8][g] = toF<T>(lo(x.b[l][1])); B[2 * t + 9][g] = toF<T>(hi(x.b[l][1]));
  }
  const int g = lane / 4, t = lane % 4;
  auto dot = [&](int m, int n) { float s = 0; for (int k = 0; k < 16; ++k) s += A[m][k] * B[k][n]; return s; };
  c[0] += dot(g, 2 * t); c[1] += dot(g, 2 * t + 1); c[2] += dot(g + 8, 2 * t); c[3] += dot(g + 8, 2 * t + 1);
  warpBarriers[warp]->arrive_and_wait();
}
// Warp votes: every lane of the warp must call (as on the GPU with a full mask).
struct WarpVote { int value[32]; };
inline WarpVote warpVote[32];
inline unsigned matchAny(int v) {
  const int tid = tIdx.x, warp = tid / 32, lane = tid % 32;
  warpVote[warp].value[lane] = v;
  warpBarriers[warp]->arrive_and_wait();
  unsigned mask = 0;
  for (int l = 0; l < 32; ++l) if (warpVote[warp].value[l] == v) mask |= 1u << l;
  warpBarriers[warp]->arrive_and_wait();
  return mask;
}
inline unsigned ballot(bool p) {
  const int tid = tIdx.x, warp = tid / 32, lane = tid % 32;
  warpVote[warp].value[lane] = p ? 1 : 0;
  warpBarriers[warp]->arrive_and_wait();
  unsigned mask = 0;
  for (int l = 0; l < 32; ++l) if (warpVote[warp].value[l]) mask |= 1u << l;
  warpBarriers[warp]->arrive_and_wait();
  return mask;
}
template <typename... P, typename... A>
void launch(dim3 grid, dim3 block, void (*kernel)(P...), A... args) {
  bDim = block; gDim = grid;
  for (unsigned z = 0; z < grid.z; ++z) for (unsigned yb = 0; yb < grid.y; ++yb) for (unsigned xb = 0; xb < grid.x; ++xb) {
    std::barrier<> bb(block.x);
    blockBarrier = &bb;
    std::vector<std::unique_ptr<std::barrier<>>> wb;
    for (unsigned w = 0; w < block.x / 32; ++w) { wb.emplace_back(new std::barrier<>(32)); warpBarriers[w] = wb.back().get(); }
    std::memset(dynSmem, 0xff, sizeof dynSmem);  // garbage
    std::vector<std::thread> th;
    for (unsigned t = 0; t < block.x; ++t)
      th.emplace_back([&, t] { tIdx = dim3(t, 0, 0); bIdx = dim3(xb, yb, z); kernel(args...); });
    for (auto& t : th) t.join();
  }
}
}  // namespace emu
#define threadIdx emu::tIdx
#define blockIdx emu::bIdx
#define blockDim emu::bDim
#define gridDim emu::gDim
#define __syncthreads() emu::syncBlock()
#define __global__
#define __device__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __align__(x) __attribute__((aligned(x)))
#define __shared__ static
#define __ldg(p) (*(p))
#define __match_any_sync(mask, v) emu::matchAny(v)
#define __ballot_sync(mask, p) emu::ballot(p)
#define __ffs(x) __builtin_ffs(static_cast<int>(x))
#define __popc(x) __builtin_popcount(x)
#define __ldcg(p) (*(p))
using std::min;
using std::max;
