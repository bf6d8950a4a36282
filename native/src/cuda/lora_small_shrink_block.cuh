// One block of the small-step (decode) LoRA shrink (lora_small_shrink.cu's kernel):
// partial U = X·Aᵀ of one K split for one position group of 16 rows (lora_small_step.cuh). 8 warps; the split's inner
// loop is shrinkSplitInto (lora_small_mma.cuh). The block sums its warps' accumulators in a fixed order and writes its
// split's partial [numTokens, c*R] rows by position. The group's tables are read and its A range is requested into L2
// before pdlWait, x is read and the partials written after it.
#pragma once
#include "lora_launch.cuh"
#include "lora_small_mma.cuh"

namespace tslora::cuda::lora::small {

// v11's narrow shrink (host side): the fewest mma N tiles per item that hold c*R = uStride columns in one chunk.
inline int narrowShrinkTiles(int uStride) { return uStride <= 16 ? 2 : uStride <= 32 ? 4 : uStride <= 48 ? 6 : kChunkTiles; }

// One block of the shrink: K split `split` of position group `group` (of `splits`). Dynamic shared memory: kShrinkShrinkWarps
// accumulators of fp32 [kGroupRows, uStride + 1]. kTiles: shrinkSplitInto's mma N tiles per item (kChunkTiles, or
// v11's narrow shrink: as many as c*R needs). Every thread of the block returns from it (no thread exits early).
template <typename T, bool kVec, int kTiles>
__device__ __forceinline__ void shrinkBlock(
    const uint16_t* __restrict__ a, int in, size_t aSlotStride, int numSlices, const int32_t* __restrict__ segIndptr,
    const int32_t* __restrict__ weightIndices, const int32_t* __restrict__ segmentRanks,
    const int32_t* __restrict__ permutation, const int32_t* __restrict__ slotRanks,
    int maxSegments, int numTokens, const uint16_t* __restrict__ x, int xStride, float* __restrict__ partials, int uStride,
    int kPerSplit, int triggerEarly, int permInFlight, int split, int group) {
  // PDL trigger placement (run 6 vs run 8): at kernel start the expand's early blocks overlap most of this grid, which
  // pays for one position group (batch 1: 18.8 against 24.1 µs per layer) but slows several groups, whose early
  // blocks compete with this grid's loads (64 rows: +3.4 µs); there the trigger waits for the main loads below.
  if (triggerEarly) pdlLaunchDependents();
  __shared__ GroupRows g;
  extern __shared__ float accShared[];
  const int p0 = group * kGroupRows;
  loadGroup(segIndptr, weightIndices, segmentRanks, permutation, slotRanks, maxSegments, numTokens, p0, g, permInFlight != 0);
  if (g.numRuns == 0) {
    pdlWait();  // every block waits (pdl.h rule 2)
    return;
  }
  const int ld = uStride + 1;
  for (int e = threadIdx.x; e < kShrinkWarps * kGroupRows * ld; e += kShrinkThreads) accShared[e] = 0.0f;
  const int k0 = split * kPerSplit, k1 = min(in, k0 + kPerSplit);
  prefetchSplitA(a, in, aSlotStride, numSlices, g, k0, k1);
  pdlWait();  // x (the projection's input) and the partials (read by the expand before) are ours from here
  __syncthreads();

  shrinkSplitInto<T, kVec, kTiles>(a, in, aSlotStride, numSlices, g, x, xStride, k0, k1, accShared, ld);
  // The main loads are done: let the expand (a programmatic dependent launch) start its table and weight loads now.
  // It still waits for this grid's completion before it reads the partials or y. Blocks that returned early count
  // as triggered; a second trigger is harmless.
  pdlLaunchDependents();
  __syncthreads();
  float* out = partials + static_cast<size_t>(split) * numTokens * uStride;
  for (int e = threadIdx.x; e < kGroupRows * uStride; e += kShrinkThreads) {
    const int row = e / uStride, n = e % uStride;
    if (g.slot[row] < 0 || n >= numSlices * g.rank[row]) continue;
    out[static_cast<size_t>(p0 + row) * uStride + n] = sumWarpAccumulators(accShared, ld, row, n);
  }
}

}  // namespace tslora::cuda::lora::small
