// Split-K reduction of the tiled shrinks (lora_shrink.cu's v5 kernel and lora_shrink_wide.cuh): per-split partials,
// the last split block of a tile (ticket counter) sums them in split order: deterministic, no atomics on data, and the
// ticket resets itself, so graph replays need no memset. Or (the wide shrink's opt-in cluster split-K) the splits of a
// tile as one thread-block cluster summing each other's shared-memory tiles in the same order.
#pragma once
#include <cooperative_groups.h>
#include <cuda_runtime.h>

#include <cstddef>

namespace tslora::cuda::lora::detail {

namespace cg = cooperative_groups;

// Split-K without atomics on data (tiled shrinks): every split block has written its partial [rows, columns] of the tile;
// the last one to take the tile's ticket returns true (the others false) and then sums the partials
// (sumSplitPartials). Call with the whole block; the ticket is reset by the summing block.
__device__ __forceinline__ bool lastSplitArrived(int* ticket, int splits) {
  __threadfence();
  __syncthreads();
  __shared__ bool last;
  if (threadIdx.x == 0) last = atomicAdd(ticket, 1) == splits - 1;
  __syncthreads();
  if (last) __threadfence();
  return last;
}
// U[rowOf[m], n] = Σ_s partials[s][rowOf[m], n] in split order for m < rows, n in [n0, min(n0 + width, nEff)); four
// consecutive columns per thread (uStride and n0 multiples of 4) and eight splits in flight: the tail is a few L2
// round trips, not one per split. Resets the ticket for the next launch or graph replay.
__device__ __forceinline__ void sumSplitPartials(const float* partials, float* u, int numTokens, int uStride, int splits,
                                                 const int* rowOf, int rows, int n0, int width, int nEff, int* ticket) {
  const size_t splitStride = static_cast<size_t>(numTokens) * uStride;
  const bool vector4 = uStride % 4 == 0 && n0 % 4 == 0;
  const int groupWidth = vector4 ? 4 : 1, groupsPerRow = width / groupWidth;
  for (int g = threadIdx.x; g < rows * groupsPerRow; g += blockDim.x) {
    const int m = g / groupsPerRow, n = (g % groupsPerRow) * groupWidth;
    if (n0 + n >= nEff) continue;
    const size_t at = static_cast<size_t>(rowOf[m]) * uStride + n0 + n;
    if (vector4) {  // columns beyond nEff inside the group belong to the same U row and are never read
      float4 sum = make_float4(0.f, 0.f, 0.f, 0.f);
      int s = 0;
      for (; s + 8 <= splits; s += 8) {
        float4 v[8];
#pragma unroll
        for (int q = 0; q < 8; ++q) v[q] = __ldcg(reinterpret_cast<const float4*>(partials + (s + q) * splitStride + at));
#pragma unroll
        for (int q = 0; q < 8; ++q) { sum.x += v[q].x; sum.y += v[q].y; sum.z += v[q].z; sum.w += v[q].w; }
      }
      for (; s < splits; ++s) {
        const float4 v = __ldcg(reinterpret_cast<const float4*>(partials + s * splitStride + at));
        sum.x += v.x; sum.y += v.y; sum.z += v.z; sum.w += v.w;
      }
      *reinterpret_cast<float4*>(u + at) = sum;
    } else {
      float sum = 0.0f;
      for (int s = 0; s < splits; ++s) sum += __ldcg(partials + s * splitStride + at);
      u[at] = sum;
    }
  }
  if (threadIdx.x == 0) *ticket = 0;
}

// Split-K through the cluster's distributed shared memory (the wide shrink's TSLORA_CUDA_LORA_WIDE_SHRINK_CLUSTER;
// session 22; correct on an H100 in session 23, opt-in): the splits of one (tile, column block) are one thread-block cluster; each block
// leaves its fp32 partial tile in its own shared memory (`tile`, [rows][ld], the stage buffers reused), and after a
// cluster barrier block r sums rows r·⌈rows/splits⌉ .. of every peer's tile in split order into U. No partials in
// global memory, no ticket, and the sum is spread over the cluster instead of one last block: the same additions in
// the same order as sumSplitPartials (bit-identical U). The second barrier keeps every tile alive until its peers
// have read it.
__device__ __forceinline__ void clusterSumSplits(float* tile, int ld, float* __restrict__ u, int uStride, const int* rowOf, int rows,
                                                 int n0, int width, int nEff) {
#if __CUDA_ARCH__ >= 900  // thread-block clusters (the wide shrink's cluster split-K)
  cg::cluster_group cluster = cg::this_cluster();
  const int rank = static_cast<int>(cluster.block_rank()), splits = static_cast<int>(cluster.num_blocks());
  cluster.sync();  // every split's tile is written and visible
  const int rowsPer = (rows + splits - 1) / splits, m0 = rank * rowsPer, m1 = min(rows, m0 + rowsPer);
  const int groupsPerRow = width / 4;  // four columns per thread (width: a multiple of 64)
  for (int e = threadIdx.x; e < (m1 - m0) * groupsPerRow; e += blockDim.x) {
    const int m = m0 + e / groupsPerRow, n = (e % groupsPerRow) * 4;
    if (n0 + n >= nEff) continue;
    float4 sum = make_float4(0.f, 0.f, 0.f, 0.f);
    for (int sp = 0; sp < splits; ++sp) {
      const float4 v = *reinterpret_cast<const float4*>(cluster.map_shared_rank(tile, sp) + static_cast<size_t>(m) * ld + n);
      sum.x += v.x; sum.y += v.y; sum.z += v.z; sum.w += v.w;
    }
    float* row = u + static_cast<size_t>(rowOf[m]) * uStride + n0 + n;
    const float values[4] = {sum.x, sum.y, sum.z, sum.w};
#pragma unroll
    for (int q = 0; q < 4; ++q)
      if (n0 + n + q < nEff) row[q] = values[q];  // U's columns beyond the slot's rank are never written
  }
  cluster.sync();  // peers may still be reading this block's tile
#endif
}

}  // namespace tslora::cuda::lora::detail
