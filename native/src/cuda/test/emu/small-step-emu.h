// Host emulation of just enough CUDA for the small-step LoRA kernels (see prepare.mjs): clusters run one at a time
// (a plain launch: clusters of one block), the blocks of a cluster together, with one std::thread per CUDA thread;
// __syncthreads is a block barrier, cluster.sync a barrier over the cluster's threads, map_shared_rank the same offset
// in a peer block's dynamic shared memory, mma.m16n8k16 a warp barrier plus a reference product built from the PTX
// fragment layout; __shared__ variables are statics (only kernels launched with clusters of one block may use them),
// dynamic shared memory one buffer per block filled with 0xff garbage before every launch. PDL's wait and trigger
// (engine/pdl.h) are no-ops: launches run one after another.
#pragma once
#include <cuda_runtime.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <algorithm>
#include <barrier>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <thread>
#include <vector>
#include <cmath>
#include <memory>
namespace emu {
inline thread_local dim3 tIdx, bIdx;
inline dim3 bDim, gDim;
// mma exchange per warp
struct WarpX { uint32_t a[32][4]; uint32_t b[32][2]; float c[32][4]; };
// Warp votes: every lane of the warp must call (as on the GPU with a full mask).
struct WarpVote { int value[32]; };
struct BlockState {
  std::unique_ptr<std::barrier<>> barrier;
  std::unique_ptr<std::barrier<>> warpBarriers[32];
  WarpX warpX[32];
  WarpVote warpVote[32];
  alignas(128) unsigned char smem[1 << 18];  // as the kernels' __align__(128) (g++ may emit aligned 16-byte moves)
};
struct ClusterState {
  std::unique_ptr<std::barrier<>> barrier;
  std::vector<std::unique_ptr<BlockState>> blocks;
};
inline thread_local BlockState* blk = nullptr;
inline thread_local ClusterState* clu = nullptr;
inline thread_local unsigned blockRank = 0;
inline thread_local unsigned char* dynSmem = nullptr;
inline void syncBlock() { blk->barrier->arrive_and_wait(); }
// cooperative_groups::cluster_group, the part the fused kernel uses.
struct Cluster {
  unsigned block_rank() const { return blockRank; }
  unsigned num_blocks() const { return static_cast<unsigned>(clu->blocks.size()); }
  void sync() const { clu->barrier->arrive_and_wait(); }
  template <typename T> T* map_shared_rank(T* p, unsigned rank) const {
    const size_t offset = reinterpret_cast<unsigned char*>(p) - blk->smem;
    return reinterpret_cast<T*>(clu->blocks.at(rank)->smem + offset);
  }
};
inline Cluster thisCluster() { return Cluster{}; }
inline int outstanding = 0;
template <typename T> float toF(uint16_t bits) {
  T v; std::memcpy(&v, &bits, 2);
  if constexpr (std::is_same_v<T, __nv_bfloat16>) return __bfloat162float(v); else return __half2float(v);
}
template <typename T> void mma(float (&c)[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3, uint32_t b0, uint32_t b1) {
  const int tid = tIdx.x, warp = tid / 32, lane = tid % 32;
  WarpX& x = blk->warpX[warp];
  x.a[lane][0] = a0; x.a[lane][1] = a1; x.a[lane][2] = a2; x.a[lane][3] = a3; x.b[lane][0] = b0; x.b[lane][1] = b1;
  blk->warpBarriers[warp]->arrive_and_wait();
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
  blk->warpBarriers[warp]->arrive_and_wait();
}
inline unsigned matchAny(int v) {
  const int tid = tIdx.x, warp = tid / 32, lane = tid % 32;
  blk->warpVote[warp].value[lane] = v;
  blk->warpBarriers[warp]->arrive_and_wait();
  unsigned mask = 0;
  for (int l = 0; l < 32; ++l) if (blk->warpVote[warp].value[l] == v) mask |= 1u << l;
  blk->warpBarriers[warp]->arrive_and_wait();
  return mask;
}
inline unsigned ballot(bool p) {
  const int tid = tIdx.x, warp = tid / 32, lane = tid % 32;
  blk->warpVote[warp].value[lane] = p ? 1 : 0;
  blk->warpBarriers[warp]->arrive_and_wait();
  unsigned mask = 0;
  for (int l = 0; l < 32; ++l) if (blk->warpVote[warp].value[l]) mask |= 1u << l;
  blk->warpBarriers[warp]->arrive_and_wait();
  return mask;
}
// mma16816.cuh's wrapper, rewritten by mma-emu.mjs into a call of this.
template <typename T> void mma16816(float (&c)[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3, uint32_t b0, uint32_t b1) {
  mma<T>(c, a0, a1, a2, a3, b0, b1);
}
// Clusters of clusterX blocks along x (gridDim.x a multiple of clusterX), one cluster at a time; body() is the kernel
// call. engine/pdl.h's launches land here (EMU_DYNAMIC_SMEM, EMU_CLUSTERS below).
template <typename Kernel, typename F>
void launchCluster(Kernel, dim3 grid, dim3 block, size_t dynamicSmemBytes, unsigned clusterX, F body) {
  if (dynamicSmemBytes > sizeof(BlockState::smem)) { std::fprintf(stderr, "emu: dynamic shared memory above the buffer\n"); std::abort(); }
  if (clusterX < 1 || grid.x % clusterX != 0) { std::fprintf(stderr, "emu: cluster size does not divide grid.x\n"); std::abort(); }
  bDim = block; gDim = grid;
  for (unsigned z = 0; z < grid.z; ++z) for (unsigned yb = 0; yb < grid.y; ++yb) for (unsigned x0 = 0; x0 < grid.x; x0 += clusterX) {
    ClusterState cs;
    cs.barrier.reset(new std::barrier<>(static_cast<std::ptrdiff_t>(clusterX * block.x)));
    for (unsigned r = 0; r < clusterX; ++r) {
      cs.blocks.emplace_back(new BlockState);
      BlockState& b = *cs.blocks.back();
      b.barrier.reset(new std::barrier<>(block.x));
      for (unsigned w = 0; w < block.x / 32; ++w) b.warpBarriers[w].reset(new std::barrier<>(32));
      std::memset(b.smem, 0xff, sizeof b.smem);  // garbage
    }
    std::vector<std::thread> th;
    for (unsigned r = 0; r < clusterX; ++r)
      for (unsigned t = 0; t < block.x; ++t)
        th.emplace_back([&, r, t] {
          tIdx = dim3(t, 0, 0); bIdx = dim3(x0 + r, yb, z);
          clu = &cs; blk = cs.blocks[r].get(); blockRank = r; dynSmem = blk->smem;
          body();
        });
    for (auto& t : th) t.join();
  }
}
template <typename F>
void launch(dim3 grid, dim3 block, size_t dynamicSmemBytes, cudaStream_t, F body) {
  launchCluster(nullptr, grid, block, dynamicSmemBytes, 1, body);
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
#define __noinline__
#define __launch_bounds__(...)
#define __align__(x) __attribute__((aligned(x)))
#define __shared__ static
#define __ldg(p) (*(p))
#define __match_any_sync(mask, v) emu::matchAny(v)
#define __ballot_sync(mask, p) emu::ballot(p)
#define __ffs(x) __builtin_ffs(static_cast<int>(x))
#define __popc(x) __builtin_popcount(x)
#define __ldcg(p) (*(p))
// The split-K tickets of lora_split_sum.cuh (blocks run one after another here: any order of arrival is one of the GPU's).
inline int atomicAdd(int* p, int v) { return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST); }
#define __threadfence() __atomic_thread_fence(__ATOMIC_SEQ_CST)
// engine/pdl.h: launches through emu::launch / emu::launchCluster; the runtime calls around them succeed.
#define EMU_DYNAMIC_SMEM (emu::dynSmem)
#define EMU_CLUSTERS 1
#define cudaFuncSetAttribute(...) cudaSuccess
#define cudaOccupancyMaxActiveClusters(...) cudaSuccess
#define cudaGetLastError() cudaSuccess
using std::min;
using std::max;
