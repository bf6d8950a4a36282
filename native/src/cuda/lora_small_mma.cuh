// The small-step shrink's inner loop (lora_small_shrink.cu, and the fused kernel of lora_small_fused.cu): one K split
// of U = X·Aᵀ for a position group of 16 rows, on tensor cores (mma.m16n8k16) straight from global memory.
// Work items = (run, 64-column chunk, 64-K step) of the block's K range, dealt to the warps round robin, so a group of
// several adapters keeps every warp busy with loads in flight at once. A warp step: lane (g = lane/4, t = lane%4)
// loads 16 consecutive elements of x rows g and g+8 and of A row n (two 16-byte loads each) and feeds four
// mma.m16n8k16 with K permuted: logical k {2t, 2t+1, 2t+8, 2t+9} of sub-step s is physical t*16 + 4s + {0, 1, 2, 3},
// the same bijection for both operands, so every dot product is unchanged. Each warp adds its fragments into its own
// shared-memory accumulator (summed by the caller in a fixed order: deterministic).
#pragma once
#include "lora_small_step.cuh"
#include "mma16816.cuh"

namespace tslora::cuda::lora::small {

constexpr int kShrinkThreads = 256;  // 8 warps: long K (down_proj) and several adapters per group still one item per warp
constexpr int kShrinkWarps = kShrinkThreads / 32;
constexpr int kStepK = 64;      // K per warp step: 4 lanes x 16 elements
constexpr int kChunkTiles = 8;  // mma N tiles (8 U columns each) per item: 64 columns
constexpr int kChunkCols = kChunkTiles * 8;

// Elements [k, k + 16) of a row (raw 16-bit values, two per register, low half first), zero from kEnd on or when row
// is null. kVec: row and k 16-byte aligned and kEnd a multiple of 8 (each 8-element half is all in or all out).
template <bool kVec>
__device__ __forceinline__ void load16(const uint16_t* row, int k, int kEnd, uint32_t (&v)[8]) {
  if constexpr (kVec) {
    const uint4 zero = make_uint4(0u, 0u, 0u, 0u);
    const uint4 lo = row != nullptr && k < kEnd ? __ldg(reinterpret_cast<const uint4*>(row + k)) : zero;
    const uint4 hi = row != nullptr && k + 8 < kEnd ? __ldg(reinterpret_cast<const uint4*>(row + k + 8)) : zero;
    v[0] = lo.x; v[1] = lo.y; v[2] = lo.z; v[3] = lo.w;
    v[4] = hi.x; v[5] = hi.y; v[6] = hi.z; v[7] = hi.w;
  } else {
#pragma unroll
    for (int i = 0; i < 8; ++i) {
      const int e = k + 2 * i;
      const uint32_t lo = row != nullptr && e < kEnd ? row[e] : 0u;
      const uint32_t hi = row != nullptr && e + 1 < kEnd ? row[e + 1] : 0u;
      v[i] = lo | (hi << 16);
    }
  }
}

// Asks L2 to fetch the line holding p (no register is tied up, nothing waits): the fused kernel's expand operands,
// requested before its shrink so that they are L2 hits when the expand reads them.
__device__ __forceinline__ void prefetchL2(const void* p) { asm volatile("prefetch.global.L2 [%0];\n" ::"l"(p)); }

// Asks L2 for the A rows one shrink split reads (every run of g: rows [0, c*r), K range [k0, k1), 128-byte lines):
// weights only, so the kernels issue it before pdlWait, while the kernel before still runs.
__device__ __forceinline__ void prefetchSplitA(const uint16_t* __restrict__ a, int in, size_t aSlotStride, int numSlices,
                                               const GroupRows& g, int k0, int k1) {
  constexpr int kLineElems = 64;
  const int lines = k1 > k0 ? (k1 - k0 + kLineElems - 1) / kLineElems : 0;
  for (int run = 0; run < g.numRuns; ++run) {
    const int rows = numSlices * g.runRank[run];
    const uint16_t* aSlot = a + static_cast<size_t>(g.runSlot[run]) * aSlotStride;
    for (int e = threadIdx.x; e < rows * lines; e += blockDim.x)
      prefetchL2(aSlot + static_cast<size_t>(e / lines) * in + k0 + (e % lines) * kLineElems);
  }
}

// Adds X[rows of g, k0:k1) · A[w, n, k0:k1)ᵀ for every run w of g and n < c*r_w into accShared, kShrinkWarps fp32
// accumulators [kGroupRows, ld] (ld >= c*R + 1), which the caller has zeroed (and synchronised). Rows of other runs
// count as zero. blockDim.x == kShrinkThreads. kTiles: mma N tiles per item (chunks of 8 * kTiles columns); below
// kChunkTiles only where c*R <= 8 * kTiles (v11's narrow shrink, lora_small_variant.h), so every run is one chunk and
// the items, their warps and every sum are those of kChunkTiles: the same bits with fewer registers.
template <typename T, bool kVec, int kTiles = kChunkTiles>
__device__ __forceinline__ void shrinkSplitInto(const uint16_t* __restrict__ a, int in, size_t aSlotStride, int numSlices,
                                                const GroupRows& g, const uint16_t* __restrict__ x, int xStride, int k0, int k1,
                                                float* accShared, int ld) {
  const int steps = k1 > k0 ? (k1 - k0 + kStepK - 1) / kStepK : 0;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, gr = lane / 4, t = lane % 4;
  const int slotA = g.slot[gr], slotB = g.slot[gr + 8];
  const uint16_t* xRowA = x + static_cast<size_t>(g.phys[gr]) * xStride;
  const uint16_t* xRowB = x + static_cast<size_t>(g.phys[gr + 8]) * xStride;
  float* mine = accShared + warp * kGroupRows * ld;
  int item = 0;
  for (int run = 0; run < g.numRuns; ++run) {
    const int w = g.runSlot[run], nEff = numSlices * g.runRank[run];  // rank-aware: A rows [0, c*r) only
    const uint16_t* aSlot = a + static_cast<size_t>(w) * aSlotStride;
    for (int c0 = 0; c0 < nEff; c0 += kTiles * 8)
      for (int st = 0; st < steps; ++st, ++item) {
        if (item % kShrinkWarps != warp) continue;  // warp-uniform
        const int k = k0 + st * kStepK + t * 16;
        uint32_t xa[8], xb[8], bw[kTiles][8];
        load16<kVec>(slotA == w ? xRowA : nullptr, k, k1, xa);  // rows of other runs count as zero
        load16<kVec>(slotB == w ? xRowB : nullptr, k, k1, xb);
#pragma unroll
        for (int nt = 0; nt < kTiles; ++nt) {
          const int n = c0 + nt * 8 + gr;
          load16<kVec>(n < nEff ? aSlot + static_cast<size_t>(n) * in : nullptr, k, k1, bw[nt]);
        }
        float acc[kTiles][4];
#pragma unroll
        for (int nt = 0; nt < kTiles; ++nt) acc[nt][0] = acc[nt][1] = acc[nt][2] = acc[nt][3] = 0.0f;
#pragma unroll
        for (int s = 0; s < 4; ++s)
#pragma unroll
          for (int nt = 0; nt < kTiles; ++nt)
            if (c0 + nt * 8 < nEff)  // warp-uniform
              mma16816<T>(acc[nt], xa[2 * s], xb[2 * s], xa[2 * s + 1], xb[2 * s + 1], bw[nt][2 * s], bw[nt][2 * s + 1]);
#pragma unroll
        for (int nt = 0; nt < kTiles; ++nt) {  // C fragment: rows gr, gr+8; columns nt*8 + 2t, +1
          const int col = c0 + nt * 8 + 2 * t;
          if (slotA == w) {
            if (col < nEff) mine[gr * ld + col] += acc[nt][0];
            if (col + 1 < nEff) mine[gr * ld + col + 1] += acc[nt][1];
          }
          if (slotB == w) {
            if (col < nEff) mine[(gr + 8) * ld + col] += acc[nt][2];
            if (col + 1 < nEff) mine[(gr + 8) * ld + col + 1] += acc[nt][3];
          }
        }
      }
  }
}

// Sum of the warps' accumulators for (row, n), in warp order (fixed: deterministic).
__device__ __forceinline__ float sumWarpAccumulators(const float* accShared, int ld, int row, int n) {
  float sum = 0.0f;
#pragma unroll
  for (int wi = 0; wi < kShrinkWarps; ++wi) sum += accShared[(wi * kGroupRows + row) * ld + n];
  return sum;
}

}  // namespace tslora::cuda::lora::small
