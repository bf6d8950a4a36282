// A small CUDA emulator for host-only checks of the engine's kernels (g++, no GPU): every CUDA thread of a block is a
// fiber (ucontext) on one OS thread; blocks run one after another. __syncthreads waits for every live thread of the
// block, __syncwarp / shuffles for every live lane of the warp, so barrier and divergence mistakes that would hang or
// race on a GPU stop the run with a message instead. Static __shared__ variables become function statics (one block
// at a time, so one copy per block); dynamic shared memory is a per-launch buffer. WMMA fragments hold the whole
// 16×16 tile in every lane and each operation is a warp-collective step between two warp barriers.
// The kernel sources are rewritten before compiling (test/native/cuda-engine-compile.test.ts): `k<<<g, b, m, s>>>(a)`
// → `emu::launch(g, b, m, [=]() { k(a); })`, `extern __shared__ … name[]` → a pointer to the launch's buffer.
#pragma once
#include <cuda_runtime.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <ucontext.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <type_traits>
#include <vector>

#undef __global__
#undef __device__
#undef __host__
#undef __forceinline__
#undef __shared__
#undef __launch_bounds__
#undef __align__
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static
#define __launch_bounds__(...)
#define __align__(n) alignas(n)

namespace emu {

struct Thread {
  ucontext_t ctx;
  int state = 0;  // 0 runnable, 1 at a block barrier, 2 at a warp barrier, 3 finished
  dim3 tid;
};

// Fiber stacks, allocated once and reused by every block.
constexpr size_t kStackBytes = 128 * 1024;
inline char* stackOf(int i) {
  static std::vector<std::unique_ptr<char[]>> stacks;
  while (static_cast<int>(stacks.size()) <= i) stacks.emplace_back(new char[kStackBytes]);
  return stacks[i].get();
}

struct Block {
  std::vector<Thread> threads;
  ucontext_t scheduler;
  std::function<void()> body;
  int current = 0;
  dim3 blockIdx, blockDim, gridDim;
  std::vector<unsigned char> warpSlots;  // [warps][32][8] bytes: shuffle exchange
  unsigned char* dynamicSmem = nullptr;
};

inline Block*& block() {
  static Block* b = nullptr;
  return b;
}
inline Thread& self() { return block()->threads[block()->current]; }
inline int linearTid() { return block()->current; }

inline void fail(const char* what) {
  std::fprintf(stderr, "emu: %s\n", what);
  std::exit(3);
}

inline void wait(int state) {
  Block* b = block();
  b->threads[b->current].state = state;
  swapcontext(&b->threads[b->current].ctx, &b->scheduler);
}
inline void syncthreads() { wait(1); }
inline void syncwarp() { wait(2); }

inline void trampoline() {
  block()->body();
  self().state = 3;
  // returning resumes uc_link (the scheduler)
}

// One fiber per thread of b (shape b.blockDim), each on its own stack (stackOf(firstStack + thread)), all runnable,
// returning to b's scheduler when the body ends; the warps' shuffle slots zeroed.
inline void prepareThreads(Block& b, int firstStack) {
  const dim3 shape = b.blockDim;
  const int n = static_cast<int>(shape.x * shape.y * shape.z);
  b.threads.assign(n, Thread{});
  b.warpSlots.assign(static_cast<size_t>((n + 31) / 32) * 32 * 8, 0);
  for (int i = 0; i < n; ++i) {
    Thread& t = b.threads[i];
    t.tid = dim3(i % shape.x, (i / shape.x) % shape.y, i / (shape.x * shape.y));
    getcontext(&t.ctx);
    t.ctx.uc_stack.ss_sp = stackOf(firstStack + i);
    t.ctx.uc_stack.ss_size = kStackBytes;
    t.ctx.uc_link = &b.scheduler;
    makecontext(&t.ctx, trampoline, 0);
  }
}

// Runs every runnable thread of b until it waits or ends.
inline void runRunnable(Block& b) {
  for (int i = 0; i < static_cast<int>(b.threads.size()); ++i) {
    if (b.threads[i].state != 0) continue;
    b.current = i;
    swapcontext(&b.scheduler, &b.threads[i].ctx);
    if (b.threads[i].state == 0) b.threads[i].state = 3;  // returned through uc_link
  }
}
// Releases every warp whose live lanes all wait at a warp barrier; true when one was.
inline bool releaseWarps(Block& b) {
  const int n = static_cast<int>(b.threads.size());
  bool released = false;
  for (int w = 0; w * 32 < n; ++w) {
    bool anyWarp = false, allWarp = true;
    for (int i = w * 32; i < std::min(n, w * 32 + 32); ++i) {
      const int s = b.threads[i].state;
      if (s == 2) anyWarp = true;
      else if (s != 3) allWarp = false;
    }
    if (anyWarp && allWarp) {
      for (int i = w * 32; i < std::min(n, w * 32 + 32); ++i)
        if (b.threads[i].state == 2) b.threads[i].state = 0;
      released = true;
    }
  }
  return released;
}

// Runs one block to completion; every thread runs until it waits or ends, then waiting warps / the block move on.
inline void runBlock(Block& b) {
  prepareThreads(b, 0);
  const int n = static_cast<int>(b.threads.size());
  block() = &b;
  for (;;) {
    runRunnable(b);
    if (releaseWarps(b)) continue;
    bool allDone = true, anyBlock = false, allBlock = true;
    for (int i = 0; i < n; ++i) {
      const int s = b.threads[i].state;
      if (s != 3) allDone = false;
      if (s == 1) anyBlock = true;
      else if (s != 3) allBlock = false;
    }
    if (allDone) break;
    if (anyBlock && allBlock) {
      for (Thread& t : b.threads)
        if (t.state == 1) t.state = 0;
      continue;
    }
    fail("deadlock: threads wait at different barriers (divergent __syncthreads / __syncwarp)");
  }
  block() = nullptr;
}

inline size_t& smemLimit() {
  static size_t limit = 48 * 1024;
  return limit;
}

// The opt-in above 48 KiB of dynamic shared memory (227 KiB on an H100 / H200).
template <typename Fn>
cudaError_t funcSetAttribute(Fn, cudaFuncAttribute attr, int bytes) {
  if (attr != cudaFuncAttributeMaxDynamicSharedMemorySize) return cudaErrorInvalidValue;
  if (bytes > 227 * 1024) return cudaErrorInvalidValue;
  smemLimit() = static_cast<size_t>(bytes);
  return cudaSuccess;
}

template <typename F>
void launch(dim3 grid, dim3 blockDim, size_t dynamicSmemBytes, cudaStream_t, F body) {
  if (blockDim.x * blockDim.y * blockDim.z > 1024) fail("block larger than 1024 threads");
  if (dynamicSmemBytes > smemLimit()) fail("dynamic shared memory above the allowed size");
  std::vector<unsigned char> smem(dynamicSmemBytes + 128);
  for (unsigned z = 0; z < grid.z; ++z)
    for (unsigned y = 0; y < grid.y; ++y)
      for (unsigned x = 0; x < grid.x; ++x) {
        Block b;
        b.blockIdx = dim3(x, y, z);
        b.blockDim = blockDim;
        b.gridDim = grid;
        std::memset(smem.data(), 0xFF, smem.size());  // NaN garbage: reading unwritten shared memory shows
        b.dynamicSmem = smem.data();
        b.body = body;
        runBlock(b);
      }
}
template <typename F>
void launch(dim3 grid, dim3 blockDim, size_t smem, F body) { launch(grid, blockDim, smem, nullptr, body); }
template <typename F>
void launch(dim3 grid, dim3 blockDim, F body) { launch(grid, blockDim, 0, nullptr, body); }

template <typename V>
V shflXor(V v, int laneMask) {
  static_assert(sizeof(V) <= 8, "shuffle of at most 8 bytes");
  Block* b = block();
  const int i = b->current, lane = i & 31, warpBase = i & ~31;
  std::memcpy(&b->warpSlots[static_cast<size_t>(i) * 8], &v, sizeof(V));
  syncwarp();
  const int src = warpBase + (lane ^ laneMask);
  if (src >= static_cast<int>(b->threads.size()) || b->threads[src].state == 3) fail("shuffle from an inactive lane");
  V out;
  std::memcpy(&out, &b->warpSlots[static_cast<size_t>(src) * 8], sizeof(V));
  syncwarp();
  return out;
}

}  // namespace emu

#define threadIdx (emu::self().tid)
#define blockIdx (emu::block()->blockIdx)
#define blockDim (emu::block()->blockDim)
#define gridDim (emu::block()->gridDim)
#define __syncthreads() emu::syncthreads()
#define __syncwarp(...) emu::syncwarp()
#define __shfl_xor_sync(mask, v, o) emu::shflXor((v), (o))
#define EMU_DYNAMIC_SMEM (emu::block()->dynamicSmem)

// Runtime calls the kernels' host code makes.
#define cudaGetLastError() cudaSuccess
#define cudaFuncSetAttribute(...) emu::funcSetAttribute(__VA_ARGS__)
#define cudaGetDevice(p) (*(p) = 0, cudaSuccess)
#define cudaDeviceGetAttribute(p, attr, dev) (*(p) = 132, cudaSuccess)
#define cudaOccupancyMaxActiveBlocksPerMultiprocessor(p, kernel, threads, smem) (*(p) = 1, cudaSuccess)

// Device intrinsics the kernels use.
inline float __uint_as_float(unsigned u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
// The rounding intrinsics (rope.cuh): one correctly rounded product / fused multiply-add each, as on the GPU.
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fmaf_rn(float a, float b, float c) { return std::fma(a, b, c); }
template <typename T>
inline T __ldg(const T* p) { return *p; }  // cached / streaming loads: plain loads on the host
template <typename T>
inline T __ldcs(const T* p) { return *p; }
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
using std::isfinite;

// WMMA: the whole tile in every lane; each operation between warp barriers (all lanes read, then all write).
namespace nvcuda::wmma {
struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
enum layout_t { mem_row_major, mem_col_major };

template <typename Use, int M, int N, int K, typename T, typename Layout = void>
struct fragment {
  float x[16][16];
};

template <typename Use, typename T, typename Layout>
void load_matrix_sync(fragment<Use, 16, 16, 16, T, Layout>& f, const T* p, unsigned ldm) {
  emu::syncwarp();
  constexpr bool colMajor = std::is_same<Layout, col_major>::value;
  for (int r = 0; r < 16; ++r)
    for (int c = 0; c < 16; ++c) f.x[r][c] = static_cast<float>(colMajor ? p[r + c * ldm] : p[r * ldm + c]);
  emu::syncwarp();
}
inline void load_matrix_sync(fragment<accumulator, 16, 16, 16, float>& f, const float* p, unsigned ldm, layout_t l) {
  emu::syncwarp();
  for (int r = 0; r < 16; ++r)
    for (int c = 0; c < 16; ++c) f.x[r][c] = l == mem_col_major ? p[r + c * ldm] : p[r * ldm + c];
  emu::syncwarp();
}
inline void store_matrix_sync(float* p, const fragment<accumulator, 16, 16, 16, float>& f, unsigned ldm, layout_t l) {
  emu::syncwarp();
  if ((emu::linearTid() & 31) == 0)
    for (int r = 0; r < 16; ++r)
    for (int c = 0; c < 16; ++c) (l == mem_col_major ? p[r + c * ldm] : p[r * ldm + c]) = f.x[r][c];
  emu::syncwarp();
}
inline void fill_fragment(fragment<accumulator, 16, 16, 16, float>& f, float v) {
  for (auto& row : f.x)
    for (float& e : row) e = v;
}
// Lane 0 alone computes (and stores, below): the other lanes' accumulators are never read back except by stores.
template <typename T, typename LA, typename LB>
void mma_sync(fragment<accumulator, 16, 16, 16, float>& d, const fragment<matrix_a, 16, 16, 16, T, LA>& a,
              const fragment<matrix_b, 16, 16, 16, T, LB>& b, const fragment<accumulator, 16, 16, 16, float>& c) {
  if ((emu::linearTid() & 31) != 0) return;
  float out[16][16];
  for (int m = 0; m < 16; ++m)
    for (int n = 0; n < 16; ++n) {
      float s = c.x[m][n];
      for (int k = 0; k < 16; ++k) s += a.x[m][k] * b.x[k][n];
      out[m][n] = s;
    }
  std::memcpy(d.x, out, sizeof out);
}
}  // namespace nvcuda::wmma
