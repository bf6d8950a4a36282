// Small-step (decode) LoRA expand: Y[:, off_j + n] += Σ_k U[:, j*r + k] · B[w, off_j + n, k] for position groups of 16
// rows (lora_small_step.cuh). Grid (column blocks of 256, slices, groups), 256 threads; warp qa owns rows qa and
// qa + 8, lane v columns v + 32i (i < 8): a warp touches 32 consecutive columns of a row. The B tile of every run
// (distinct slot) of the group goes through a cp.async pipeline (4 stages up to R = 16, else 2) into shared memory
// as stored ([column][k], bf16/fp16), so a group of several adapters has several tiles in flight. A programmatic
// dependent launch (lora_launch.cuh; typically of its shrink): the segment tables and the first B tiles are read
// before pdlWait; y and the split partials of U after it, the partials summed in a fixed order and rounded to the
// activation dtype (as the tiled expand does).
// v10 (kV10, lora_small_variant.h): lane v owns columns 8v .. 8v + 7 instead of v + 32i, so y is read and written 16
// bytes at a time; the B tile keeps the shared-memory access of before by storing column c at tile row
// (c % 8) * 32 + c / 8 (lane v's i-th column sits at row 32i + v either way); the grid is (the column blocks of all
// slices, 1, groups), so qkv's narrow k and v slices leave no idle blocks (96 instead of 192 at 64 rows on Llama-3.1-8B
// shapes). Same sums per output element.
#include <algorithm>

#include "lora_launch.cuh"
#include "lora_small_step.cuh"
#include "lora_small_variant.h"

namespace tslora::cuda::lora {
namespace {

using namespace small;
using detail::Convert;

constexpr int kThreads = 256;
constexpr int kBN = kExpandColumns;  // output columns per block
constexpr int kLanes = 32;           // columns v + kLanes * i per thread
// B tiles (one per run) in flight: 4 up to R = 16 (48 KB of shared memory), 2 above (40 KB at R = 32, 72 KB at 64).
int stagesFor(int R) { return R <= 16 ? 4 : 2; }
constexpr int kULd = kSmallStepMaxRank + 4;

int bLdFor(int R) { return (R + 7) / 8 * 8 + 8; }  // elements per B-tile row: 16-byte aligned, 16 bytes of padding

// 16-byte global → shared copy of which only the first `bytes` (0..16) are read; the rest is zero-filled.
__device__ __forceinline__ void copyAsyncPartial(void* sharedDst, const void* globalSrc, int bytes) {
  const unsigned dst = static_cast<unsigned>(__cvta_generic_to_shared(sharedDst));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(globalSrc), "r"(bytes));
}

// Dynamic shared memory: kStages B tiles of T [kBN, bLd]. Four blocks per multiprocessor (64 registers, ~20 bytes of
// spill): run 8 had 98 registers, two blocks per SM, and gate_up's 448 blocks at 64 rows took 1.7 waves (16.7 µs).
template <typename T, int kStages, bool kV10>
__global__ void __launch_bounds__(kThreads, 4) smallExpandKernel(
    const uint16_t* __restrict__ b, size_t bSlotStride, int R, Slices slices, const int32_t* __restrict__ segIndptr,
    const int32_t* __restrict__ weightIndices, const int32_t* __restrict__ segmentRanks,
    const int32_t* __restrict__ permutation, const int32_t* __restrict__ slotRanks,
    int maxSegments, int numTokens, const float* __restrict__ partials, int splits, int uStride, T* __restrict__ y, int yStride,
    int yOffset, int vecB, int vecY, const float* __restrict__ reduced) {
  pdlLaunchDependents();
  int j = blockIdx.y, n0 = blockIdx.x * kBN;
  if constexpr (kV10) {  // one row of column blocks over all slices (grid.y = 1): no idle blocks beside narrow slices
    int bx = blockIdx.x;
    for (j = 0; j < 2; ++j) {  // the grid holds exactly the slices' blocks, so the last slice needs no test
      const int blocks = (sliceOffset(slices, j + 1) - sliceOffset(slices, j) + kBN - 1) / kBN;
      if (bx < blocks) break;
      bx -= blocks;
    }
    n0 = bx * kBN;
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
  const int p0 = blockIdx.z * kGroupRows;
  loadGroup(segIndptr, weightIndices, segmentRanks, permutation, slotRanks, maxSegments, numTokens, p0, g, kV10);
  if (g.numRuns == 0) {
    pdlWait();
    return;
  }
  const int bLd = (R + 7) / 8 * 8 + 8;
  auto stage = [&](int run) { return reinterpret_cast<uint16_t*>(smem) + (run % kStages) * kBN * bLd; };
  // Tile row of the block's column c (see the file comment) and the column of lane v's i-th accumulator.
  auto tileRow = [](int c) { return kV10 ? (c % 8) * kLanes + c / 8 : c; };
  auto columnOf = [](int v, int i) { return kV10 ? 8 * v + i : v + kLanes * i; };

  // B tile of `run` (columns [n0, n0 + kBN) of the slice, k < roundup8(r), zero beyond r and beyond the slice) into
  // its stage; commits one cp.async group either way, so group i always belongs to run i.
  auto issue = [&](int run) {
    if (run < g.numRuns) {
      const int w = g.runSlot[run], r = g.runRank[run], kPad = (r + 7) / 8 * 8;
      const uint16_t* bTile = b + static_cast<size_t>(w) * bSlotStride + static_cast<size_t>(offset + n0) * R;
      uint16_t* dst = stage(run);
      if (vecB) {
        const int chunks = kPad / 8;
        for (int e = threadIdx.x; e < chunks * kBN; e += kThreads) {
          const int c = e / chunks, kc = (e % chunks) * 8;
          const int bytes = n0 + c < width ? min(16, (r - kc) * 2) : 0;
          copyAsyncPartial(dst + tileRow(c) * bLd + kc, bytes > 0 ? bTile + static_cast<size_t>(c) * R + kc : bTile, bytes);
        }
      } else {
        for (int e = threadIdx.x; e < kPad * kBN; e += kThreads) {
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
  const int v = threadIdx.x % kLanes, qa = threadIdx.x / kLanes;
  T* yRow[2];
  float yOld[2][8];  // v9
  uint4 yRaw[2];     // v10: the 8 values of y as loaded (8 registers where yOld takes 16)
#pragma unroll
  for (int h = 0; h < 2; ++h) {
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
  const size_t splitStride = static_cast<size_t>(numTokens) * uStride;
  for (int e = threadIdx.x; e < kGroupRows * rPad; e += kThreads) {
    const int q = e / rPad, k = e % rPad, r = g.rank[q];
    float sum = 0.0f;
    if (g.slot[q] >= 0 && k < r) {
      const size_t at = static_cast<size_t>(p0 + q) * uStride + j * r + k;
      if (reduced != nullptr) {  // summed and rounded by the shrink's last split block (lora_small_variant.h)
        sU[q][k] = __ldcg(reduced + at);
        continue;
      }
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
          const uint4 raw = *reinterpret_cast<const uint4*>(tile + (v + kLanes * i) * bLd + kc);
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

}  // namespace

cudaError_t loraExpandSmall(ActDType dtype, const DeviceModule& module, const DeviceStep& step, const void* workspace,
                            int kSplits, void* y, int yStride, int yOffset, cudaStream_t stream, bool programmatic) {
  if (step.maxSegments <= 0 || step.numTokens <= 0) return cudaSuccess;
  if (module.numSlices < 1 || module.numSlices > 3 || module.maxRank < 1 || module.maxRank > kSmallStepMaxRank ||
      step.numTokens > kSmallStepMaxTokens || kSplits < 1)
    return cudaErrorInvalidValue;
  const int c = module.numSlices, R = module.maxRank;
  Slices slices{};
  int widest = 0;
  bool vecB = R % 8 == 0 && aligned16(module.b);
  bool vecY = yStride % 8 == 0 && yOffset % 8 == 0 && aligned16(y);  // 16-byte y rows (v10)
  for (int jj = 0; jj <= c; ++jj) {
    slices.offsets[jj] = module.sliceOffsets[jj];
    vecB = vecB && slices.offsets[jj] % 8 == 0;
    vecY = vecY && slices.offsets[jj] % 8 == 0;
  }
  int sliceBlocks = 0;  // v10: the column blocks of every slice in one grid row
  for (int jj = 0; jj < c; ++jj) {
    widest = std::max(widest, slices.offsets[jj + 1] - slices.offsets[jj]);
    sliceBlocks += (std::max(0, slices.offsets[jj + 1] - slices.offsets[jj]) + kBN - 1) / kBN;
  }
  if (widest <= 0) return cudaSuccess;
  const bool v10 = loraSmallV10();
  const dim3 grid(v10 ? sliceBlocks : (widest + kBN - 1) / kBN, v10 ? 1 : c, groupsOf(step));
  const int stages = stagesFor(R);
  const size_t smemBytes = static_cast<size_t>(stages) * kBN * bLdFor(R) * sizeof(uint16_t);
  const auto* b = static_cast<const uint16_t*>(module.b);
  const auto* partials = static_cast<const float*>(workspace);
  const float* reduced = loraSmallReduce() && step.counters != nullptr
                             ? partials + static_cast<size_t>(kSplits) * step.numTokens * c * R : nullptr;
  const size_t bSlotStride = static_cast<size_t>(module.outTotal()) * R;
  auto launch = [&](auto kernel, auto* yTyped) -> cudaError_t {
    // Every launch: dynamic + static shared memory passes the 48 KB default already at R = 16 (48 KB of B stages;
    // run 7 failed there with 'invalid argument'). Not a stream operation: fine under graph capture.
    const cudaError_t limit = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smemBytes));
    if (limit != cudaSuccess) {
      cudaGetLastError();  // do not leave it for the next launch's check
      return limit;
    }
    LaunchExtras extras;
    extras.programmatic = programmatic;
    return loraLaunch(extras, kernel, grid, dim3(kThreads), smemBytes, stream, b, bSlotStride, R, slices, step.segIndptr,
                      step.weightIndices, step.segmentRanks, step.permutation, step.slotRanks, step.maxSegments, step.numTokens,
                      partials, kSplits, c * R, yTyped, yStride, yOffset, vecB ? 1 : 0, vecY ? 1 : 0, reduced);
  };
  if (dtype == ActDType::BF16) {
    auto* yt = static_cast<__nv_bfloat16*>(y);
    if (v10) return stages == 4 ? launch(smallExpandKernel<__nv_bfloat16, 4, true>, yt) : launch(smallExpandKernel<__nv_bfloat16, 2, true>, yt);
    return stages == 4 ? launch(smallExpandKernel<__nv_bfloat16, 4, false>, yt) : launch(smallExpandKernel<__nv_bfloat16, 2, false>, yt);
  }
  auto* yt = static_cast<__half*>(y);
  if (v10) return stages == 4 ? launch(smallExpandKernel<__half, 4, true>, yt) : launch(smallExpandKernel<__half, 2, true>, yt);
  return stages == 4 ? launch(smallExpandKernel<__half, 4, false>, yt) : launch(smallExpandKernel<__half, 2, false>, yt);
}

}  // namespace tslora::cuda::lora
