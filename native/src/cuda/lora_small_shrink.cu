// Small-step (decode) LoRA shrink: partial U = X·Aᵀ per K split, for position groups of 16 rows (lora_small_step.cuh).
// Grid (splits, groups), 8 warps; the split's inner loop is shrinkSplitInto (lora_small_mma.cuh). The block sums its
// warps' accumulators in a fixed order and writes its split's partial [numTokens, c*R] rows by position.
// A programmatic dependent launch (lora_launch.cuh): the group's tables are read and its A range is requested into L2
// before pdlWait, x is read and the partials written after it.
#include <algorithm>
#include <type_traits>

#include "lora_small_shrink_block.cuh"
#include "lora_small_variant.h"

namespace tslora::cuda::lora {
namespace {

using namespace small;

constexpr int kThreads = kShrinkThreads;
constexpr int kMaxSplits = 32;
constexpr int kMinKPerSplit = 128;
// Every expand block re-reads the split partials of its rows and slice (16 x R x splits floats, from L2): the split
// count is capped so that all of them together stay near this many bytes (gate_up's 112 column blocks per group, or
// lm_head's ~500, would otherwise read tens of MB after the shrink).
constexpr double kPartialReadBudgetBytes = 16.0 * (1 << 20);
constexpr int kTargetShrinkBlocks = 64, kMinPolicySplits = 8, kMaxPolicySplits = 16;
constexpr int kLongKPerSplit = 512;  // v11's long-K policy: at most 8 warp steps of 64 K per split

// v11's narrow shrink: the fewest mma N tiles per item that hold c*R columns in one chunk (kChunkTiles otherwise).
int shrinkTilesFor(int uStride) { return loraSmallNarrow() ? narrowShrinkTiles(uStride) : kChunkTiles; }

// Grid (splits, groups): one shrinkBlock per block. kTiles: see shrinkBlock; the narrow widths get register bounds that
// leave room for more blocks of the neighbouring kernels (v11): 4 blocks per SM at 2 tiles (64 registers), 3 at 4 (80
// registers, 16 bytes of spill; bounded for 4 it spilled 100-112 bytes once session 16 removed the reduction's call and
// its gate_up shrink took 4.6 µs in a graph chain at 64 x 1 r16 against 3.3 at 3 blocks: session 17's round 1 on an H100,
// layer 39.9 -> 39.3 µs at 64 x 1, 17.9 -> 17.0 at 1 x 1; bench/lora/README.md), 2 at 6 (128).
template <typename T, bool kVec, int kTiles>
__global__ void __launch_bounds__(kThreads, kTiles <= 2 ? 4 : kTiles <= 4 ? 3 : kTiles <= 6 ? 2 : 0) smallShrinkKernel(
    const uint16_t* __restrict__ a, int in, size_t aSlotStride, int numSlices, const int32_t* __restrict__ segIndptr,
    const int32_t* __restrict__ weightIndices, const int32_t* __restrict__ segmentRanks,
    const int32_t* __restrict__ permutation, const int32_t* __restrict__ slotRanks,
    int maxSegments, int numTokens, const uint16_t* __restrict__ x, int xStride, float* __restrict__ partials, int uStride,
    int kPerSplit, int triggerEarly, int permInFlight) {
  shrinkBlock<T, kVec, kTiles>(a, in, aSlotStride, numSlices, segIndptr, weightIndices, segmentRanks, permutation, slotRanks, maxSegments,
                               numTokens, x, xStride, partials, uStride, kPerSplit, triggerEarly, permInFlight, blockIdx.x, blockIdx.y);
}

}  // namespace

int loraSmallStepSplits(const DeviceModule& module, const DeviceStep& step, int numMultiprocessors) {
  if (step.numTokens < 1 || step.numTokens > kSmallStepMaxTokens || step.maxSegments < 1) return 0;
  if (module.maxRank < 1 || module.maxRank > kSmallStepMaxRank || module.numSlices < 1 || module.numSlices > 3 || module.in < 1)
    return 0;
  const int groups = groupsOf(step);
  // Run 8's split sweep (shrink + expand pairs, 4..64 splits): 16 best at 64 rows (4 groups), 8-16 at 1 and 256 rows;
  // more splits cost the expand more partial reads than they save the shrink. About 64 blocks, 8 to 16 splits.
  (void)numMultiprocessors;
  int wanted = std::clamp((kTargetShrinkBlocks + groups - 1) / groups, kMinPolicySplits, kMaxPolicySplits);
  // v11 (lora_small_variant.h): long K gets splits of <= kLongKPerSplit, so no warp walks more than two dependent load
  // steps per run (down_proj at 64 rows: 28 splits of 512 K instead of 16 of 896).
  if (loraSmallLongK()) wanted = std::max(wanted, std::min(kMaxSplits, (module.in + kLongKPerSplit - 1) / kLongKPerSplit));
  const int maxByK = std::max(1, (module.in + kMinKPerSplit - 1) / kMinKPerSplit);
  long long columnBlocks = 0;
  for (int j = 0; j < module.numSlices; ++j)
    columnBlocks += (module.sliceOffsets[j + 1] - module.sliceOffsets[j] + kExpandColumns - 1) / kExpandColumns;
  const double partialBytesPerSplit = static_cast<double>(groups) * std::max(1LL, columnBlocks) * kGroupRows * module.maxRank * sizeof(float);
  const int maxByTraffic = std::max(1, static_cast<int>(kPartialReadBudgetBytes / partialBytesPerSplit));
  return std::max(1, std::min({wanted, maxByK, kMaxSplits, maxByTraffic}));
}

size_t loraSmallStepWorkspaceBytes(const DeviceModule& module, const DeviceStep& step, int kSplits) {
  // the partials fp32 [kSplits, numTokens, c*R]
  return static_cast<size_t>(std::max(1, kSplits)) * std::max(1, step.numTokens) * module.numSlices * module.maxRank * sizeof(float);
}

cudaError_t loraShrinkSmall(ActDType dtype, const DeviceModule& module, const DeviceStep& step, const void* x, int xStride,
                            void* workspace, int kSplits, cudaStream_t stream) {
  if (step.maxSegments <= 0 || step.numTokens <= 0) return cudaSuccess;
  if (module.numSlices < 1 || module.numSlices > 3 || module.in < 1 || module.maxRank < 1 || module.maxRank > kSmallStepMaxRank ||
      step.numTokens > kSmallStepMaxTokens || kSplits < 1 || kSplits > 65535)
    return cudaErrorInvalidValue;
  const int c = module.numSlices, R = module.maxRank, uStride = c * R;
  const int perSplit = (module.in + kSplits - 1) / kSplits;
  const int kPerSplit = (perSplit + kStepK - 1) / kStepK * kStepK;
  const dim3 grid(kSplits, groupsOf(step));
  const size_t smemBytes = static_cast<size_t>(kShrinkWarps) * kGroupRows * (uStride + 1) * sizeof(float);
  const bool vec = module.in % 8 == 0 && xStride % 8 == 0 && aligned16(x) && aligned16(module.a);
  const auto* a = static_cast<const uint16_t*>(module.a);
  const auto* xs = static_cast<const uint16_t*>(x);
  auto* partials = static_cast<float*>(workspace);
  const size_t aSlotStride = static_cast<size_t>(c) * R * module.in;
  auto launch = [&](auto kernel) -> cudaError_t {
    // Every launch (dynamic + static shared memory may pass the 48 KB default): not a stream operation, fine under
    // graph capture.
    const cudaError_t attribute = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smemBytes));
    if (attribute != cudaSuccess) {
      cudaGetLastError();
      return attribute;
    }
    return loraLaunch(kernel, grid, dim3(kThreads), smemBytes, stream, a, module.in, aSlotStride, c, step.segIndptr, step.weightIndices,
                      step.segmentRanks, step.permutation, step.slotRanks, step.maxSegments, step.numTokens, xs, xStride, partials,
                      uStride, kPerSplit, groupsOf(step) == 1 || loraSmallEarlyTrigger() ? 1 : 0, loraSmallV10() ? 1 : 0);
  };
  auto byTiles = [&](auto kernel2, auto kernel4, auto kernel6, auto kernel8) -> cudaError_t {
    switch (shrinkTilesFor(uStride)) {
      case 2: return launch(kernel2);
      case 4: return launch(kernel4);
      case 6: return launch(kernel6);
      default: return launch(kernel8);
    }
  };
  auto byType = [&](auto tag, auto vecTag) -> cudaError_t {
    using T = decltype(tag);
    constexpr bool kVec = decltype(vecTag)::value;
    return byTiles(smallShrinkKernel<T, kVec, 2>, smallShrinkKernel<T, kVec, 4>, smallShrinkKernel<T, kVec, 6>,
                   smallShrinkKernel<T, kVec, kChunkTiles>);
  };
  if (dtype == ActDType::BF16) return vec ? byType(__nv_bfloat16{}, std::true_type{}) : byType(__nv_bfloat16{}, std::false_type{});
  return vec ? byType(__half{}, std::true_type{}) : byType(__half{}, std::false_type{});
}

}  // namespace tslora::cuda::lora
