// Device helpers shared by the LoRA shrink and expand kernels: dtype traits, cp.async copies, row selection.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cstdint>

namespace tslora::cuda::lora::detail {

template <typename T> struct Convert;
template <> struct Convert<__nv_bfloat16> {
  static __device__ __forceinline__ float toFloat(__nv_bfloat16 v) { return __bfloat162float(v); }
  static __device__ __forceinline__ __nv_bfloat16 fromFloat(float v) { return __float2bfloat16_rn(v); }
};
template <> struct Convert<__half> {
  static __device__ __forceinline__ float toFloat(__half v) { return __half2float(v); }
  static __device__ __forceinline__ __half fromFloat(float v) { return __float2half_rn(v); }
};

// 16-byte global → shared copy that bypasses registers; bytes = 0 writes zeros (out-of-range rows / columns).
__device__ __forceinline__ void copyAsync16(void* sharedDst, const void* globalSrc, bool valid) {
  const unsigned dst = static_cast<unsigned>(__cvta_generic_to_shared(sharedDst));
  const int bytes = valid ? 16 : 0;
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(globalSrc), "r"(bytes));
}
__device__ __forceinline__ void copyAsyncCommit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int Pending>
__device__ __forceinline__ void copyAsyncWait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(Pending)); }

// The block's rows: positions [begin, end) of segment g's row tile, their slot and rank; false = nothing to do.
struct RowTile {
  int begin, end, slot, rank;
};
__device__ __forceinline__ bool rowTileOf(const int32_t* segIndptr, const int32_t* weightIndices, const int32_t* slotRanks,
                                          int tileIndex, int tilesPerSegment, int tileRows, RowTile& t) {
  const int g = tileIndex / tilesPerSegment, sub = tileIndex % tilesPerSegment;
  const int segBegin = segIndptr[g], segEnd = segIndptr[g + 1];
  t.begin = segBegin + sub * tileRows;
  t.end = min(segEnd, t.begin + tileRows);
  if (t.begin >= t.end) return false;
  t.slot = weightIndices[g];
  if (t.slot < 0) return false;
  t.rank = slotRanks[t.slot];
  return t.rank > 0;
}
__device__ __forceinline__ int physicalRow(const int32_t* permutation, int position) {
  return permutation ? permutation[position] : position;
}

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
