// The LoRA delta in the skinny GEMM's epilogue (skinny-gemm.cu, launched with a SkinnyLora): the arithmetic of the
// small-step expand (lora_small_expand.cu) for the few rows and the two columns per group the skinny kernel owns, so
// that round_act(round_act(x·wᵀ) + delta) is bit-identical to the skinny GEMM followed by loraExpandSmall:
//  - U[m, j·r + k] = round_act(Σ_s partials[s, pos(m), j·r + k]), the splits summed in order from 0.0f in groups of
//    32 (zeros added past the last split, as the expand's loads do), zero for k ≥ r;
//  - delta = Σ over 8-wide chunks kc < roundup8(r) of the expand's chunk expression (B zero past r), from 0.0f.
// Row → position → slot and rank follow loadGroup (lora_small_step.cuh): a row is base when no segment with a slot ≥ 0
// and a rank > 0 covers its position. The tables are uploaded by copies before the step's first kernel and B is
// written by no kernel, so both are read before pdlWait(); the partials (the shrink just before) after it.
#pragma once
#include <cstdint>

#include "act-convert.cuh"
#include "skinny-gemm.h"

namespace tslora::cuda::skinny_lora {

constexpr int kMaxRank = lora::kSmallStepMaxRank;  // 64
constexpr int kMaxSlices = 3;
constexpr int kRows = kSkinnyLoraMaxRows;

struct RowLora {
  int pos, slot, rank;  // slot -1: no delta for this row
};

// Shared memory of a LoRA block: rows, their U columns for the slices the block's columns touch, and B of every
// (row, block column) with zeros past the rank. kCols = the block's output columns (2 per column group).
template <int kCols>
struct Smem {
  RowLora row[kRows];
  int jLo, numSlices;  // the module's slices [jLo, jLo + numSlices) hold the block's columns
  __align__(16) float u[kRows][kMaxSlices][kMaxRank];
  __align__(16) uint16_t b[kRows][kCols][kMaxRank];
};

__device__ __forceinline__ float loadPartial(const float* p) {
#ifdef EMU_DYNAMIC_SMEM
  return *p;
#else
  return __ldcg(p);
#endif
}

// Selects instead of a run-time index into the kernel parameter's array (which would put it on the stack).
__device__ __forceinline__ int sliceOffset(const lora::DeviceModule& m, int j) {
  return j == 0 ? m.sliceOffsets[0] : j == 1 ? m.sliceOffsets[1] : j == 2 ? m.sliceOffsets[2] : m.sliceOffsets[3];
}
__device__ __forceinline__ int sliceOf(const lora::DeviceModule& m, int n) {
  return (m.numSlices > 1 && n >= m.sliceOffsets[1]) + (m.numSlices > 2 && n >= m.sliceOffsets[2]);
}

// Position, slot and rank of physical rows 0..kRowsUsed-1 of the current step into rows[] (shared memory), by the
// whole block: positions in one parallel pass over the permutation, slots in one over the segments (disjoint, so
// each row is written once), each pass one round of independent loads. Every thread of the block calls it.
template <int kRowsUsed>
__device__ inline void resolveRows(const lora::DeviceStep& st, RowLora* rows) {
  if (threadIdx.x < kRowsUsed) rows[threadIdx.x] = RowLora{-1, -1, 0};
  __syncthreads();
  for (int p = threadIdx.x; p < st.numTokens; p += blockDim.x) {
    const int phys = st.permutation ? st.permutation[p] : p;
    if (phys >= 0 && phys < kRowsUsed) rows[phys].pos = p;
  }
  __syncthreads();
  for (int s = threadIdx.x; s < st.maxSegments; s += blockDim.x) {
    const int w = st.weightIndices[s], begin = st.segIndptr[s], end = st.segIndptr[s + 1];
    const int r = st.segmentRanks != nullptr ? st.segmentRanks[s] : w >= 0 ? st.slotRanks[w] : 0;
    if (w < 0 || r <= 0) continue;
    for (int m = 0; m < kRowsUsed; ++m) {
      const int pos = rows[m].pos;
      if (pos >= begin && pos < end) {
        rows[m].slot = w;
        rows[m].rank = r;
      }
    }
  }
  __syncthreads();
}

// B[slot, col, kc .. kc + 8) with zeros past the rank (the expand's zero-filled tile), one 16-byte chunk.
__device__ __forceinline__ uint4 loadBChunk(const lora::DeviceModule& m, const RowLora& r, int col, int kc) {
  uint4 v = make_uint4(0u, 0u, 0u, 0u);
  const uint16_t* src = static_cast<const uint16_t*>(m.b) + static_cast<size_t>(r.slot) * sliceOffset(m, m.numSlices) * m.maxRank +
                        static_cast<size_t>(col) * m.maxRank + kc;
  if (kc + 8 <= r.rank && m.maxRank % 8 == 0 && reinterpret_cast<uintptr_t>(m.b) % 16 == 0) return *reinterpret_cast<const uint4*>(src);
  uint16_t* dst = reinterpret_cast<uint16_t*>(&v);
  for (int i = 0; i < 8; ++i) dst[i] = kc + i < r.rank ? src[i] : uint16_t{0};
  return v;
}

// U of (row, slice j, k) as the expand's sU holds it: the sum of the entry's split partials (src = split 0's) in the
// expand's order, rounded to the activation dtype.
template <typename T>
__device__ __forceinline__ float splitSum(const float* src, size_t splitStride, int splits) {
  float sum = 0.0f;
  const int padded = (splits + 31) / 32 * 32;  // the expand adds its groups of 32 loads, zeros past the last split
#pragma unroll 8
  for (int s = 0; s < padded; ++s) sum += s < splits ? loadPartial(src + static_cast<size_t>(s) * splitStride) : 0.0f;
  return toF(fromF<T>(sum));
}
template <typename T>
__device__ __forceinline__ float uValue(const SkinnyLora& l, const RowLora& r, int j, int k) {
  if (k >= r.rank) return 0.0f;
  const int uStride = l.module.numSlices * l.module.maxRank;
  const size_t at = static_cast<size_t>(r.pos) * uStride + j * r.rank + k;
  return splitSum<T>(l.partials + at, static_cast<size_t>(l.step.numTokens) * uStride, l.splits);
}

// Σ_k u[k]·b[k] in the expand's order and expression (u: 16-byte aligned floats, b: the zero-padded B row).
template <typename T>
__device__ __forceinline__ float delta(const float* u, const uint16_t* b, int rank) {
  float acc = 0.0f;
  const int kPad = (rank + 7) / 8 * 8;
#pragma unroll 1
  for (int kc = 0; kc < kPad; kc += 8) {
    const float4 u0 = *reinterpret_cast<const float4*>(&u[kc]);
    const float4 u1 = *reinterpret_cast<const float4*>(&u[kc + 4]);
    const uint4 raw = *reinterpret_cast<const uint4*>(b + kc);
    const T* bv = reinterpret_cast<const T*>(&raw);
    acc += u0.x * toF(bv[0]) + u0.y * toF(bv[1]) + u0.z * toF(bv[2]) + u0.w * toF(bv[3]) + u1.x * toF(bv[4]) +
           u1.y * toF(bv[5]) + u1.z * toF(bv[6]) + u1.w * toF(bv[7]);
  }
  return acc;
}

// The column's value after the expand: round_act(y + delta) for a row with an adapter, y itself for a base row. y is
// the GEMM's output already rounded to the activation dtype; ci the block column.
template <typename T, int kCols>
__device__ __forceinline__ float addDelta(const Smem<kCols>& s, const SkinnyLora& l, int m, int ci, int col, float y) {
  const RowLora& r = s.row[m];
  if (r.slot < 0) return y;
  return toF(fromF<T>(y + delta<T>(s.u[m][sliceOf(l.module, col) - s.jLo], s.b[m][ci], r.rank)));
}

}  // namespace tslora::cuda::skinny_lora
