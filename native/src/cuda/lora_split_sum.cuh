// Split-K reduction of the tiled shrinks (lora_shrink.cu's v5 kernel and lora_shrink_wide.cuh): per-split partials,
// the last split block of a tile (ticket counter) sums them in split order: deterministic, no atomics on data, and the
// ticket resets itself, so graph replays need no memset.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>

namespace tslora::cuda::lora::detail {

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

}  // namespace tslora::cuda::lora::detail
