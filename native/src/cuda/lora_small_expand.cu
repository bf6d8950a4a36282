// Small-step (decode) LoRA expand: Y[:, off_j + n] += Σ_k U[:, j*r + k] · B[w, off_j + n, k] for position groups of 16
// rows; the block's work is expandBlock (lora_small_expand_block.cuh). A programmatic dependent launch (lora_launch.cuh;
// typically of its shrink). B tiles in flight: 4 stages up to R = 16, else 2. v10 (lora_small_variant.h): the grid is
// (the column blocks of all slices, 1, groups), so qkv's narrow k and v slices leave no idle blocks (96 instead of 192
// at 64 rows on Llama-3.1-8B shapes).
#include <algorithm>
#include <type_traits>

#include "lora_small_expand_block.cuh"
#include "lora_small_variant.h"

namespace tslora::cuda::lora {
namespace {

using namespace small;

constexpr int kThreads = kExpandThreads;
constexpr int kBN = kExpandColumns;  // output columns per block

// Grid (column blocks, slices, groups) (v10: (column blocks of all slices, 1, groups)): one expandBlock per block.
// Four blocks per multiprocessor (64 registers, ~20 bytes of spill): run 8 had 98 registers, two blocks per SM, and
// gate_up's 448 blocks at 64 rows took 1.7 waves (16.7 µs).
template <typename T, int kStages, bool kV10, bool kDelta, bool kDeltaAct = false>
__global__ void __launch_bounds__(kThreads, 4) smallExpandKernel(
    const uint16_t* __restrict__ b, size_t bSlotStride, int R, Slices slices, const int32_t* __restrict__ segIndptr,
    const int32_t* __restrict__ weightIndices, const int32_t* __restrict__ segmentRanks,
    const int32_t* __restrict__ permutation, const int32_t* __restrict__ slotRanks,
    int maxSegments, int numTokens, const float* __restrict__ partials, int splits, int uStride, T* __restrict__ y, int yStride,
    int yOffset, int vecB, int vecY, void* __restrict__ delta, int deltaStride) {
  expandBlock<T, kStages, kV10, kDelta, kDeltaAct>(b, bSlotStride, R, slices, segIndptr, weightIndices, segmentRanks, permutation, slotRanks,
                                        maxSegments, numTokens, partials, splits, uStride, y, yStride, yOffset, vecB, vecY, blockIdx.x,
                                        blockIdx.y, blockIdx.z, delta, deltaStride);
}

// The delta store (v10 layout) with a capped grid (TSLORA_CUDA_LORA_SIDE_EXPAND_MAX_BLOCKS, opt-in; session 20, not yet
// run on a GPU): gridDim.x < blocksX, each block strides over the column blocks, so the side expand holds fewer SMs for
// longer beside the base projection, which at 64 rows otherwise loses most of the GPU to it for its ~10 µs (gate_up:
// 448 blocks, 4 per SM). Each column block computes exactly what it computes in smallExpandKernel.
template <typename T, int kStages, bool kDeltaAct>
__global__ void __launch_bounds__(kThreads, 4) smallExpandStridedKernel(
    const uint16_t* __restrict__ b, size_t bSlotStride, int R, Slices slices, const int32_t* __restrict__ segIndptr,
    const int32_t* __restrict__ weightIndices, const int32_t* __restrict__ segmentRanks,
    const int32_t* __restrict__ permutation, const int32_t* __restrict__ slotRanks,
    int maxSegments, int numTokens, const float* __restrict__ partials, int splits, int uStride, T* __restrict__ y, int yStride,
    int yOffset, int vecB, int vecY, void* __restrict__ delta, int deltaStride, int blocksX) {
  for (int bx = blockIdx.x; bx < blocksX; bx += gridDim.x) {
    expandBlock<T, kStages, true, true, kDeltaAct, true>(b, bSlotStride, R, slices, segIndptr, weightIndices, segmentRanks, permutation,
                                                   slotRanks, maxSegments, numTokens, partials, splits, uStride, y, yStride, yOffset,
                                                   vecB, vecY, bx, 0, blockIdx.z, delta, deltaStride);
    __syncthreads();  // the next column block's loadGroup and B stages rewrite this one's shared memory
  }
}

// Both entry points: y += (delta == nullptr) or the store into delta (y == nullptr, yOffset 0; fp32, or the activation
// dtype with deltaAct; maxBlocks > 0 caps the store's grid, v10 only).
cudaError_t expandSmall(ActDType dtype, const DeviceModule& module, const DeviceStep& step, const void* workspace, int kSplits,
                        void* y, int yStride, int yOffset, void* delta, int deltaStride, bool deltaAct, int maxBlocks,
                        cudaStream_t stream, bool programmatic) {
  // (The delta store runs even without segments: every row is a base row then, stored as -0.0f.)
  if (step.numTokens <= 0 || (step.maxSegments <= 0 && delta == nullptr)) return cudaSuccess;
  if (module.numSlices < 1 || module.numSlices > 3 || module.maxRank < 1 || module.maxRank > kSmallStepMaxRank ||
      step.numTokens > kSmallStepMaxTokens || kSplits < 1)
    return cudaErrorInvalidValue;
  const int c = module.numSlices, R = module.maxRank;
  Slices slices{};
  int widest = 0;
  bool vecB = R % 8 == 0 && aligned16(module.b);
  // 16-byte y rows (v10); for the delta store: 16-byte rows, 8 values per lane (32 bytes of fp32, 16 of Act)
  bool vecY = delta != nullptr ? deltaStride % (deltaAct ? 8 : 4) == 0 && aligned16(delta)
                               : yStride % 8 == 0 && yOffset % 8 == 0 && aligned16(y);
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
  const int stages = expandStagesFor(R);
  const size_t smemBytes = expandSmemBytes(R);
  const auto* b = static_cast<const uint16_t*>(module.b);
  const auto* partials = static_cast<const float*>(workspace);
  const size_t bSlotStride = static_cast<size_t>(module.outTotal()) * R;
  // One launch of `kernel` on grid g; tail: the strided kernel's trailing argument (its column block count).
  auto launchOn = [&](auto kernel, auto* yTyped, dim3 g, auto... tail) -> cudaError_t {
    // Every launch: dynamic + static shared memory passes the 48 KB default already at R = 16 (48 KB of B stages;
    // run 7 failed there with 'invalid argument'). Not a stream operation: fine under graph capture.
    const cudaError_t limit = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smemBytes));
    if (limit != cudaSuccess) {
      cudaGetLastError();  // do not leave it for the next launch's check
      return limit;
    }
    LaunchExtras extras;
    extras.programmatic = programmatic;
    return loraLaunch(extras, kernel, g, dim3(kThreads), smemBytes, stream, b, bSlotStride, R, slices, step.segIndptr,
                      step.weightIndices, step.segmentRanks, step.permutation, step.slotRanks, step.maxSegments, step.numTokens,
                      partials, kSplits, c * R, yTyped, yStride, yOffset, vecB ? 1 : 0, vecY ? 1 : 0, delta, deltaStride, tail...);
  };
  auto launch = [&](auto kernel, auto* yTyped) { return launchOn(kernel, yTyped, grid); };
  // The capped delta store: as many column blocks per group as maxBlocks allows, at least one.
  const int cappedX = maxBlocks > 0 ? std::max(1, maxBlocks / static_cast<int>(grid.z)) : 0;
  auto strided = [&](auto kernel, auto* yTyped) {
    return launchOn(kernel, yTyped, dim3(cappedX, 1, grid.z), static_cast<int>(grid.x));
  };
  // The kernel for (stages, v10, delta): 2 x 2 x 2 instantiations per dtype, and the Act delta store of v10's two.
  auto pick = [&](auto* yt) -> cudaError_t {
    using T = std::remove_pointer_t<decltype(yt)>;
    if (delta != nullptr && v10 && cappedX > 0 && cappedX < static_cast<int>(grid.x)) {
      if (deltaAct)
        return stages == 4 ? strided(smallExpandStridedKernel<T, 4, true>, yt) : strided(smallExpandStridedKernel<T, 2, true>, yt);
      return stages == 4 ? strided(smallExpandStridedKernel<T, 4, false>, yt) : strided(smallExpandStridedKernel<T, 2, false>, yt);
    }
    if (delta != nullptr && deltaAct) {
      if (!v10) return cudaErrorNotSupported;  // the v9 layout (TSLORA_CUDA_LORA_SMALL_V10=0) keeps the fp32 store only
      return stages == 4 ? launch(smallExpandKernel<T, 4, true, true, true>, yt) : launch(smallExpandKernel<T, 2, true, true, true>, yt);
    }
    if (delta != nullptr) {
      if (v10) return stages == 4 ? launch(smallExpandKernel<T, 4, true, true>, yt) : launch(smallExpandKernel<T, 2, true, true>, yt);
      return stages == 4 ? launch(smallExpandKernel<T, 4, false, true>, yt) : launch(smallExpandKernel<T, 2, false, true>, yt);
    }
    if (v10) return stages == 4 ? launch(smallExpandKernel<T, 4, true, false>, yt) : launch(smallExpandKernel<T, 2, true, false>, yt);
    return stages == 4 ? launch(smallExpandKernel<T, 4, false, false>, yt) : launch(smallExpandKernel<T, 2, false, false>, yt);
  };
  if (dtype == ActDType::BF16) return pick(static_cast<__nv_bfloat16*>(y));
  return pick(static_cast<__half*>(y));
}

}  // namespace

cudaError_t loraExpandSmall(ActDType dtype, const DeviceModule& module, const DeviceStep& step, const void* workspace,
                            int kSplits, void* y, int yStride, int yOffset, cudaStream_t stream, bool programmatic) {
  return expandSmall(dtype, module, step, workspace, kSplits, y, yStride, yOffset, nullptr, 0, false, 0, stream, programmatic);
}

cudaError_t loraExpandSmallDelta(ActDType dtype, const DeviceModule& module, const DeviceStep& step, const void* workspace,
                                 int kSplits, void* delta, int deltaStride, cudaStream_t stream, bool programmatic,
                                 bool deltaAct, int maxBlocks) {
  if (delta == nullptr || deltaStride < module.outTotal() || maxBlocks < 0) return cudaErrorInvalidValue;
  return expandSmall(dtype, module, step, workspace, kSplits, nullptr, 0, 0, delta, deltaStride, deltaAct, maxBlocks, stream,
                     programmatic);
}

}  // namespace tslora::cuda::lora
