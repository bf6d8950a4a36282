// One block of the small-step (decode) LoRA expand (lora_small_expand.cu's kernel):
// Y[:, off_j + n] += Σ_k U[:, j*r + k] · B[w, off_j + n, k] for 256 columns of one slice and one position group of 16
// rows (lora_small_step.cuh). 256 threads; warp qa owns rows qa and qa + 8, lane v columns v + 32i (i < 8): a warp
// touches 32 consecutive columns of a row. The B tile of every run (distinct slot) of the group goes through a
// cp.async pipeline into shared memory as stored ([column][k], bf16/fp16), so a group of several adapters has several
// tiles in flight. The segment tables and the first B tiles are read before pdlWait; y and the split partials of U
// after it, the partials summed in a fixed order and rounded to the activation dtype (as the tiled expand does).
// v10 (kV10, lora_small_variant.h): lane v owns columns 8v .. 8v + 7 instead of v + 32i, so y is read and written 16
// bytes at a time; the B tile keeps the shared-memory access of before by storing column c at tile row
// (c % 8) * 32 + c / 8 (lane v's i-th column sits at row 32i + v either way); the blocks of all slices in one grid
// row, so qkv's narrow k and v slices leave no idle blocks. Same sums per output element.
// kDelta (session 18, the engine's side expand): instead of y += U·Bᵀ the block STORES the fp32 sums into
// delta[phys, off_j + n] (stride deltaStride, module-relative columns), unrounded, and -0.0f for rows without an
// adapter (the additive identity, so a consumer's act_round(y + delta) is y for them, sign of zero included); every
// position < numTokens is written, so the buffer needs no zeroing. y is not read (nullptr). The consumer computing
// act_round(y + delta) gets the bits the y += path would have stored.
#pragma once
#include "lora_launch.cuh"
#include "lora_small_step.cuh"

namespace tslora::cuda::lora::small {

constexpr int kExpandThreads = 256;
constexpr int kExpandLanes = 32;  // columns v + kExpandLanes * i per thread
constexpr int kULd = kSmallStepMaxRank + 4;
using detail::Convert;

// 16-byte global → shared copy of which only the first `bytes` (0..16) are read; the rest is zero-filled.
__device__ __forceinline__ void copyAsyncPartial(void* sharedDst, const void* globalSrc, int bytes) {
  const unsigned dst = static_cast<unsigned>(__cvta_generic_to_shared(sharedDst));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(globalSrc), "r"(bytes));
}

// Host side of a launch of expandBlock: its B tiles in flight (4 up to R = 16: 48 KB of shared memory; 2 above: 40 KB at
// R = 32, 72 KB at 64) and the dynamic shared memory they take, at bLd elements per B-tile row (16-byte aligned, 16
// bytes of padding; expandBlock computes the same pitch on the device).
inline int expandStagesFor(int R) { return R <= 16 ? 4 : 2; }
inline size_t expandSmemBytes(int R) {
  const int bLd = (R + 7) / 8 * 8 + 8;
  return static_cast<size_t>(expandStagesFor(R)) * kExpandColumns * bLd * sizeof(uint16_t);
}

// Dynamic shared memory: kStages B tiles of T [kExpandColumns, bLd]. Four blocks per multiprocessor (64 registers, ~20 bytes of
// spill): run 8 had 98 registers, two blocks per SM, and gate_up's 448 blocks at 64 rows took 1.7 waves (16.7 µs).
// blockX: the column block (v10: over all slices), sliceY: the slice (v9), group: the position group. Its shrink is the
// grid before it (pdlWait covers the partials); the dependents are triggered at the start.
// kDeltaAct (with kDelta; TSLORA_CUDA_LORA_DELTA_ACT, opt-in): delta holds T values, each the fp32 sum rounded to T.
// kStrided: unused in the body; it gives the capped-grid kernel (smallExpandStridedKernel) its own instantiation, so
// the other kernels keep their block-scope shared arrays (nvcc demotes them into a kernel only when one kernel uses them).
template <typename T, int kStages, bool kV10, bool kDelta = false, bool kDeltaAct = false, bool kStrided = false>
__device__ __forceinline__ void expandBlock(
    const uint16_t* __restrict__ b, size_t bSlotStride, int R, Slices slices, const int32_t* __restrict__ segIndptr,
    const int32_t* __restrict__ weightIndices, const int32_t* __restrict__ segmentRanks,
    const int32_t* __restrict__ permutation, const int32_t* __restrict__ slotRanks,
    int maxSegments, int numTokens, const float* __restrict__ partials, int splits, int uStride, T* __restrict__ y, int yStride,
    int yOffset, int vecB, int vecY, int blockX, int sliceY, int group, void* __restrict__ delta = nullptr,
    int deltaStride = 0) {
  static_assert(kDelta || !kDeltaAct, "kDeltaAct is a variant of the delta store");
  // One delta value: fp32, or rounded to T (kDeltaAct).
  const auto storeDelta = [&](size_t at, float v) {
    if constexpr (kDeltaAct) static_cast<T*>(delta)[at] = Convert<T>::fromFloat(v);
    else static_cast<float*>(delta)[at] = v;
  };
  pdlLaunchDependents();
  int j = sliceY, n0 = blockX * kExpandColumns;
  if constexpr (kV10) {  // one row of column blocks over all slices (grid.y = 1): no idle blocks beside narrow slices
    int bx = blockX;
    for (j = 0; j < 2; ++j) {  // the grid holds exactly the slices' blocks, so the last slice needs no test
      const int blocks = (sliceOffset(slices, j + 1) - sliceOffset(slices, j) + kExpandColumns - 1) / kExpandColumns;
      if (bx < blocks) break;
      bx -= blocks;
    }
    n0 = bx * kExpandColumns;
  }
  const int offset = sliceOffset(slices, j), width = sliceOffset(slices, j + 1) - offset;
  // Every block, even one with nothing to do, waits for the kernel before it exits (pdl.h rule 2).
  if (n0 >= width) {
    pdlWait();
    return;
  }
  __shared__ GroupRows g;
  __shared__ __align__(16) float sU[kGroupRows][kULd];  // this slice's U columns per row, zero from r on
  extern __shared__ __align__(16) unsigned char smem[];
  const int p0 = group * kGroupRows;
  loadGroup(segIndptr, weightIndices, segmentRanks, permutation, slotRanks, maxSegments, numTokens, p0, g, kV10);
  if (g.numRuns == 0) {
    pdlWait();
    if constexpr (kDelta) {  // base rows only: the additive identity for the block's rows and columns
      for (int e = threadIdx.x; e < kGroupRows * kExpandColumns; e += kExpandThreads) {
        const int q = e / kExpandColumns, c = e % kExpandColumns;
        if (p0 + q < numTokens && n0 + c < width) storeDelta(static_cast<size_t>(g.phys[q]) * deltaStride + offset + n0 + c, -0.0f);
      }
    }
    return;
  }
  const int bLd = (R + 7) / 8 * 8 + 8;
  auto stage = [&](int run) { return reinterpret_cast<uint16_t*>(smem) + (run % kStages) * kExpandColumns * bLd; };
  // Tile row of the block's column c (see the file comment) and the column of lane v's i-th accumulator.
  auto tileRow = [](int c) { return kV10 ? (c % 8) * kExpandLanes + c / 8 : c; };
  auto columnOf = [](int v, int i) { return kV10 ? 8 * v + i : v + kExpandLanes * i; };

  // B tile of `run` (columns [n0, n0 + kExpandColumns) of the slice, k < roundup8(r), zero beyond r and beyond the slice) into
  // its stage; commits one cp.async group either way, so group i always belongs to run i.
  auto issue = [&](int run) {
    if (run < g.numRuns) {
      const int w = g.runSlot[run], r = g.runRank[run], kPad = (r + 7) / 8 * 8;
      const uint16_t* bTile = b + static_cast<size_t>(w) * bSlotStride + static_cast<size_t>(offset + n0) * R;
      uint16_t* dst = stage(run);
      if (vecB) {
        const int chunks = kPad / 8;
        for (int e = threadIdx.x; e < chunks * kExpandColumns; e += kExpandThreads) {
          const int c = e / chunks, kc = (e % chunks) * 8;
          const int bytes = n0 + c < width ? min(16, (r - kc) * 2) : 0;
          copyAsyncPartial(dst + tileRow(c) * bLd + kc, bytes > 0 ? bTile + static_cast<size_t>(c) * R + kc : bTile, bytes);
        }
      } else {
        for (int e = threadIdx.x; e < kPad * kExpandColumns; e += kExpandThreads) {
          const int c = e / kPad, k = e % kPad;
          dst[tileRow(c) * bLd + k] = n0 + c < width && k < r ? bTile[static_cast<size_t>(c) * R + k] : uint16_t{0};
        }
      }
    }
    detail::copyAsyncCommit();
  };
#pragma unroll
  for (int s = 0; s < kStages - 1; ++s) issue(s);  // weights: independent of the kernels before

  pdlWait();  // the shrink grid (and every kernel before it) has completed: y and the partials are final
  const int v = threadIdx.x % kExpandLanes, qa = threadIdx.x / kExpandLanes;
  T* yRow[2] = {nullptr, nullptr};
  float yOld[2][8];  // v9
  uint4 yRaw[2];     // v10: the 8 values of y as loaded (8 registers where yOld takes 16)
#pragma unroll
  for (int h = 0; h < 2 && !kDelta; ++h) {
    const int q = qa + 8 * h;
    yRow[h] = g.slot[q] >= 0 ? y + static_cast<size_t>(g.phys[q]) * yStride + yOffset + offset + n0 : nullptr;
    if constexpr (kV10) {
      yRaw[h] = make_uint4(0u, 0u, 0u, 0u);
      if (vecY) {  // the 8 columns are all inside the slice or all outside (widths are multiples of 8)
        if (yRow[h] != nullptr && n0 + 8 * v < width) yRaw[h] = *reinterpret_cast<const uint4*>(yRow[h] + 8 * v);
      } else {
        T* vals = reinterpret_cast<T*>(&yRaw[h]);
#pragma unroll
        for (int i = 0; i < 8; ++i)
          if (yRow[h] != nullptr && n0 + 8 * v + i < width) vals[i] = yRow[h][8 * v + i];
      }
      continue;
    }
#pragma unroll
    for (int i = 0; i < 8; ++i) {
      const int col = columnOf(v, i);
      yOld[h][i] = yRow[h] != nullptr && n0 + col < width ? Convert<T>::toFloat(yRow[h][col]) : 0.0f;
    }
  }
  const int rPad = (R + 7) / 8 * 8;
  // The split stride as a 32-bit product widened (numTokens * uStride <= 256 * 192): with a 64-bit product nvcc factors
  // uStride out of `at` and the stride, and every one of sumSplits' 32 loads takes two 64-bit multiplies (ptxas then
  // also unrolls loadGroup's row loop 16 times): session 16's deletions made it so, +3.4 µs per layer at 64 x 1
  // (bench/lora/README.md, small-step code generation). Same addresses, same sums.
  static_assert(kSmallStepMaxTokens * kMaxCols <= 0x7fffffff, "numTokens * uStride must fit an int");
  const size_t splitStride = static_cast<size_t>(numTokens * uStride);
  for (int e = threadIdx.x; e < kGroupRows * rPad; e += kExpandThreads) {
    const int q = e / rPad, k = e % rPad, r = g.rank[q];
    float sum = 0.0f;
    if (g.slot[q] >= 0 && k < r) {
      const size_t at = static_cast<size_t>(p0 + q) * uStride + j * r + k;
      sum = sumSplits(partials + at, splits, splitStride);
    }
    // Rounded to the activation dtype like the tiled expand (and PEFT's lora_A output in bf16/fp16), so a row gets
    // the same delta whether its step runs the small-step or the tiled kernels (decode vs prefill, graph vs eager).
    sU[q][k] = Convert<T>::toFloat(Convert<T>::fromFloat(sum));
  }

  float acc[2][8];
#pragma unroll
  for (int h = 0; h < 2; ++h)
#pragma unroll
    for (int i = 0; i < 8; ++i) acc[h][i] = 0.0f;
  for (int run = 0; run < g.numRuns; ++run) {
    issue(run + kStages - 1);
    detail::copyAsyncWait<kStages - 1>();  // run's group has landed (this thread's copies)
    __syncthreads();                       // everyone's copies and sU
    const int w = g.runSlot[run], kPad = (g.runRank[run] + 7) / 8 * 8;
    const uint16_t* tile = stage(run);
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int q = qa + 8 * h;
      if (g.slot[q] != w) continue;
      for (int kc = 0; kc < kPad; kc += 8) {
        const float4 u0 = *reinterpret_cast<const float4*>(&sU[q][kc]);
        const float4 u1 = *reinterpret_cast<const float4*>(&sU[q][kc + 4]);
#pragma unroll
        for (int i = 0; i < 8; ++i) {
          const uint4 raw = *reinterpret_cast<const uint4*>(tile + (v + kExpandLanes * i) * bLd + kc);
          const T* bv = reinterpret_cast<const T*>(&raw);
          acc[h][i] += u0.x * Convert<T>::toFloat(bv[0]) + u0.y * Convert<T>::toFloat(bv[1]) + u0.z * Convert<T>::toFloat(bv[2]) +
                       u0.w * Convert<T>::toFloat(bv[3]) + u1.x * Convert<T>::toFloat(bv[4]) + u1.y * Convert<T>::toFloat(bv[5]) +
                       u1.z * Convert<T>::toFloat(bv[6]) + u1.w * Convert<T>::toFloat(bv[7]);
        }
      }
    }
    __syncthreads();  // the stage is rewritten kStages - 1 runs later
  }
  detail::copyAsyncWait<0>();

  if constexpr (kDelta) {
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int q = qa + 8 * h;
      if (p0 + q >= numTokens) continue;
      const size_t rowAt = static_cast<size_t>(g.phys[q]) * deltaStride + offset + n0;
      const bool lora = g.slot[q] >= 0;
      float out[8];
#pragma unroll
      for (int i = 0; i < 8; ++i) out[i] = lora ? acc[h][i] : -0.0f;
      if (kV10 && vecY) {  // vecY here: 16-byte delta rows (the host checks deltaStride and the offsets)
        if (n0 + 8 * v < width) {
          if constexpr (kDeltaAct) {  // 8 values of T: one 16-byte store
            uint4 raw;
            T* vals = reinterpret_cast<T*>(&raw);
#pragma unroll
            for (int i = 0; i < 8; ++i) vals[i] = Convert<T>::fromFloat(out[i]);
            *reinterpret_cast<uint4*>(static_cast<T*>(delta) + rowAt + 8 * v) = raw;
          } else {
            float* dRow = static_cast<float*>(delta) + rowAt;
            reinterpret_cast<float4*>(dRow + 8 * v)[0] = make_float4(out[0], out[1], out[2], out[3]);
            reinterpret_cast<float4*>(dRow + 8 * v)[1] = make_float4(out[4], out[5], out[6], out[7]);
          }
        }
      } else if constexpr (kDeltaAct) {
        T* aRow = static_cast<T*>(delta) + rowAt;
#pragma unroll
        for (int i = 0; i < 8; ++i) {
          const int col = columnOf(v, i);
          if (n0 + col < width) aRow[col] = Convert<T>::fromFloat(out[i]);
        }
      } else {
        float* dRow = static_cast<float*>(delta) + rowAt;
#pragma unroll
        for (int i = 0; i < 8; ++i) {
          const int col = columnOf(v, i);
          if (n0 + col < width) dRow[col] = out[i];
        }
      }
    }
    return;
  }
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    if (yRow[h] == nullptr) continue;
    if constexpr (kV10) {
      T* vals = reinterpret_cast<T*>(&yRaw[h]);
#pragma unroll
      for (int i = 0; i < 8; ++i) vals[i] = Convert<T>::fromFloat(Convert<T>::toFloat(vals[i]) + acc[h][i]);
      if (vecY) {
        if (n0 + 8 * v < width) *reinterpret_cast<uint4*>(yRow[h] + 8 * v) = yRaw[h];
      } else {
#pragma unroll
        for (int i = 0; i < 8; ++i)
          if (n0 + 8 * v + i < width) yRow[h][8 * v + i] = vals[i];
      }
      continue;
    }
#pragma unroll
    for (int i = 0; i < 8; ++i) {
      const int col = columnOf(v, i);
      if (n0 + col < width) yRow[h][col] = Convert<T>::fromFloat(yOld[h][i] + acc[h][i]);
    }
  }
}

}  // namespace tslora::cuda::lora::small
