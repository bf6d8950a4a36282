// Shared by the small-step (decode) LoRA kernels (lora_small_shrink.cu, lora_small_expand.cu; API in
// lora_kernels.cuh). Their grids depend only on numTokens, the module and the split count, never on the segment
// layout, so one captured graph serves any adapter mix. Positions (rows in segment order) are taken in groups of 16
// (one mma M tile); a group's rows are resolved from the segment tables in one parallel pass and processed per run
// (distinct slot), so triton's one segment per request, csgmv's chunks and graph padding all work.
// The shrink writes per-split partial sums of U by position, fp32 [kSplits, numTokens, c*R]; the expand sums them
// in a fixed order (deterministic; no tickets or atomics, nothing to reset between graph replays).
#pragma once
#include <cstdint>

#include "lora_kernels.cuh"
#include "lora_tile.cuh"

namespace tslora::cuda::lora::small {

constexpr int kGroupRows = 16;
constexpr int kExpandColumns = 256;  // output columns per expand block (each re-reads its rows' split partials)
constexpr int kMaxCols = 3 * kSmallStepMaxRank;  // c*R

// Rows of one position group: slot (-1 = base, beyond numTokens or rank 0), rank, physical row; the distinct slots in
// order of first appearance (runs).
struct GroupRows {
  int slot[kGroupRows], rank[kGroupRows], phys[kGroupRows];
  int runSlot[kGroupRows], runRank[kGroupRows];
  int numRuns;
};

// Fills g for positions [p0, p0 + 16) (every thread of the block calls it; it synchronises; blockDim.x >= 32). With
// segmentRanks the tables and ranks come in one global round trip, and with permInFlight (v10,
// lora_small_variant.h) the permutation too: its load is left in flight across the first barrier and stored after the
// table pass (else the first barrier waits for it: two round trips). Runs are found by warp 0 in one step
// (__match_any_sync), in order of first appearance.
__device__ inline void loadGroup(const int32_t* __restrict__ segIndptr, const int32_t* __restrict__ weightIndices,
                                 const int32_t* __restrict__ segmentRanks, const int32_t* __restrict__ permutation,
                                 const int32_t* __restrict__ slotRanks, int maxSegments, int numTokens, int p0, GroupRows& g,
                                 bool permInFlight = false) {
  const int tid = threadIdx.x;
  int phys = 0;
  if (tid < kGroupRows) {
    g.slot[tid] = -1;
    g.rank[tid] = 0;
    phys = p0 + tid < numTokens ? detail::physicalRow(permutation, p0 + tid) : 0;
    if (!permInFlight) g.phys[tid] = phys;
  }
  __syncthreads();
  const int pEnd = min(numTokens, p0 + kGroupRows);
  for (int s = tid; s < maxSegments; s += blockDim.x) {  // segments are disjoint: each position is written once
    const int begin = segIndptr[s], end = segIndptr[s + 1], w = weightIndices[s];
    const int known = segmentRanks != nullptr ? segmentRanks[s] : 0;  // issued with the tables, not after them
    const int lo = max(begin, p0), hi = min(end, pEnd);
    if (lo >= hi || w < 0) continue;
    const int r = segmentRanks != nullptr ? known : slotRanks[w];
    if (r <= 0) continue;
    for (int p = lo; p < hi; ++p) {
      g.slot[p - p0] = w;
      g.rank[p - p0] = r;
    }
  }
  if (permInFlight && tid < kGroupRows) g.phys[tid] = phys;
  __syncthreads();
  if (tid < 32) {
    const int w = tid < kGroupRows ? g.slot[tid] : -1;
    const unsigned same = __match_any_sync(0xffffffffu, w);
    const bool first = w >= 0 && __ffs(same) - 1 == tid;  // the lowest row of its slot
    const unsigned firsts = __ballot_sync(0xffffffffu, first);
    if (first) {
      const int run = __popc(firsts & ((1u << tid) - 1u));
      g.runSlot[run] = w;
      g.runRank[run] = g.rank[tid];
    }
    if (tid == 0) g.numRuns = __popc(firsts);
  }
  __syncthreads();
}

// A module's slice offsets passed by value to a kernel.
struct Slices {
  int offsets[4];
};
// Selects instead of a run-time array index, which would put the kernel-parameter array on the stack.
__device__ __forceinline__ int sliceOffset(const Slices& s, int j) {
  return j == 0 ? s.offsets[0] : j == 1 ? s.offsets[1] : j == 2 ? s.offsets[2] : s.offsets[3];
}

// Σ_s partials[s] in split order, 32 loads in flight before the first add (one L2 round trip). The additions of the
// zero padding beyond `splits` belong to the order (the sign of a zero sum).
__device__ __forceinline__ float sumSplits(const float* __restrict__ src, int splits, size_t splitStride) {
  float sum = 0.0f;
  for (int s0 = 0; s0 < splits; s0 += 32) {
    float part[32];
#pragma unroll
    for (int i = 0; i < 32; ++i) part[i] = s0 + i < splits ? __ldcg(src + static_cast<size_t>(s0 + i) * splitStride) : 0.0f;
#pragma unroll
    for (int i = 0; i < 32; ++i) sum += part[i];
  }
  return sum;
}

inline int groupsOf(const DeviceStep& step) { return (step.numTokens + kGroupRows - 1) / kGroupRows; }
inline bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

}  // namespace tslora::cuda::lora::small
