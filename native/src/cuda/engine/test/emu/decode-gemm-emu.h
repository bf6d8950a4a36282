// What the decode GEMM (decode-gemm.cu) needs on top of cuda-emu.h: mma.m16n8k16 (mma-fiber-emu.h), cache-hinted loads
// as plain reads, the ticket atomic as a plain add (blocks run one after another), fences as no-ops, and cudaMalloc /
// cudaMemset / cudaFree on host memory.
// decode-gemm-emu.mjs rewrites the kernel's inline PTX (mma16816.cuh) into calls of emu::mma16816.
#pragma once
#include "cuda-emu.h"
#include "mma-fiber-emu.h"  // emu::mma16816, the cluster rank
#define EMU_CLUSTERS 1  // pdl.h: cluster launches run through emu::launchCluster

#include <cstdlib>
#include <map>

namespace emu {

// Thread-block clusters of clusterX blocks along x, one cluster at a time: every fiber of the cluster's blocks in one
// schedule, cluster.sync() a barrier over all of them (state 4), map_shared_rank the same offset in a peer block's
// dynamic shared memory (one buffer per block).
#pragma push_macro("blockIdx")
#pragma push_macro("blockDim")
#pragma push_macro("gridDim")
#undef blockIdx
#undef blockDim
#undef gridDim
inline std::vector<Block*>& clusterBlocks() {
  static std::vector<Block*> blocks;
  return blocks;
}
inline void clusterSync() { wait(4); }

// The dynamic shared memory each kernel opted in to (cudaFuncSetAttribute is per kernel on a GPU; cuda-emu.h keeps
// one limit for every launch).
inline std::map<const void*, size_t>& kernelSmemLimits() {
  static std::map<const void*, size_t> limits;
  return limits;
}
template <typename Fn>
cudaError_t funcSetAttributePerKernel(Fn kernel, cudaFuncAttribute attr, int bytes) {
  const cudaError_t status = funcSetAttribute(kernel, attr, bytes);
  if (status == cudaSuccess) kernelSmemLimits()[reinterpret_cast<const void*>(kernel)] = static_cast<size_t>(bytes);
  return status;
}

template <typename Kernel, typename F>
void launchCluster(Kernel kernel, dim3 grid, dim3 blockShape, size_t dynamicSmemBytes, unsigned clusterX, F body) {
  if (clusterX < 1 || clusterX > kMaxClusterBlocks || grid.x % clusterX != 0) fail("cluster size not in 1..16 or not dividing grid.x");
  const auto limit = kernelSmemLimits().find(reinterpret_cast<const void*>(kernel));
  if (dynamicSmemBytes > (limit == kernelSmemLimits().end() ? size_t{48} * 1024 : limit->second))
    fail("dynamic shared memory above what the kernel opted in to");
  const int n = static_cast<int>(blockShape.x * blockShape.y * blockShape.z);
  for (unsigned z = 0; z < grid.z; ++z)
    for (unsigned y = 0; y < grid.y; ++y)
      for (unsigned x0 = 0; x0 < grid.x; x0 += clusterX) {
        std::vector<Block> blocks(clusterX);
        std::vector<std::vector<unsigned char>> smem(clusterX, std::vector<unsigned char>(dynamicSmemBytes + 128, 0xFF));
        clusterBlocks().clear();
        for (unsigned r = 0; r < clusterX; ++r) {
          Block& b = blocks[r];
          b.blockIdx = dim3(x0 + r, y, z);
          b.blockDim = blockShape;
          b.gridDim = grid;
          b.dynamicSmem = smem[r].data();
          b.body = body;
          prepareThreads(b, static_cast<int>(r) * n);
          clusterBlocks().push_back(&b);
        }
        for (;;) {
          for (unsigned r = 0; r < clusterX; ++r) {
            block() = &blocks[r];
            clusterRank() = static_cast<int>(r);
            runRunnable(blocks[r]);
          }
          // Release warps (state 2), then blocks (state 1), then the cluster (state 4), as their members all wait.
          bool released = false, allDone = true, clusterReady = true, anyCluster = false;
          for (Block& b : blocks) {
            if (releaseWarps(b)) released = true;  // not short-circuited: every block's warps move on in the same pass
            bool anyBlock = false, allBlock = true;
            for (const Thread& t : b.threads) {
              if (t.state != 3) allDone = false;
              if (t.state == 1) anyBlock = true;
              else if (t.state != 3) allBlock = false;
              if (t.state == 4) anyCluster = true;
              else if (t.state != 3) clusterReady = false;
            }
            if (!released && anyBlock && allBlock) {
              for (Thread& t : b.threads)
                if (t.state == 1) t.state = 0;
              released = true;
            }
          }
          if (released) continue;
          if (allDone) break;
          if (anyCluster && clusterReady) {
            for (Block& b : blocks)
              for (Thread& t : b.threads)
                if (t.state == 4) t.state = 0;
            continue;
          }
          fail("deadlock: threads wait at different barriers (divergent __syncthreads / cluster.sync)");
        }
        block() = nullptr;
        clusterBlocks().clear();
        clusterRank() = 0;
      }
}
#pragma pop_macro("blockIdx")
#pragma pop_macro("blockDim")
#pragma pop_macro("gridDim")

// cooperative_groups::cluster_group, the part the decode GEMM uses.
namespace cg {
struct cluster_group {
  unsigned block_rank() const { return static_cast<unsigned>(clusterRank()); }
  void sync() const { clusterSync(); }
  template <typename T>
  T* map_shared_rank(T* p, unsigned rank) const {
    const size_t offset = reinterpret_cast<unsigned char*>(p) - block()->dynamicSmem;
    return reinterpret_cast<T*>(clusterBlocks().at(rank)->dynamicSmem + offset);
  }
};
inline cluster_group this_cluster() { return cluster_group{}; }
}  // namespace cg

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
#undef cudaFuncSetAttribute
#define cudaFuncSetAttribute(...) emu::funcSetAttributePerKernel(__VA_ARGS__)
#define cudaGetDeviceCount(p) (*(p) = 1, cudaSuccess)
#define cudaMemcpy(dst, src, bytes, kind) (std::memcpy((dst), (src), (bytes)), cudaSuccess)
#define cudaDeviceSynchronize() cudaSuccess
