// Joined small-step launch (lora_small_joined.cuh): shrink blocks and expand blocks of one module in one 1-D grid, the
// role taken from a ticket. Only the vector paths (16-byte x, A, B and y) and the v10 expand layout; the shrink's mma
// chunks sized by c*R as v11's narrow shrink does (bit-identical to the pair either way).
#include <algorithm>

#include "lora_small_expand_block.cuh"
#include "lora_small_joined.cuh"
#include "lora_small_shrink_block.cuh"

namespace tslora::cuda::lora {
namespace {

using namespace small;

struct JoinedArgs {
  const uint16_t* a;
  const uint16_t* b;
  const uint16_t* x;
  int in, numSlices, R, xStride, uStride, kPerSplit, splits, groups, sliceBlocks, yStride, yOffset;
  size_t aSlotStride, bSlotStride;
  Slices slices;
  float* partials;
};

// The expand blocks' wait: the group's shrink blocks have all arrived (each wrote its partials and fenced before it
// arrived; the partials are then read through L2). Every block triggers its dependents only after its pdlWait (the
// shrink blocks after their main loads, which follow it), so a launch starts only once every block of the one before
// has passed its pdlWait, i.e. once the launch before that one, which used the same ticket set, has completed.
struct AfterArrivals {
  static constexpr bool kTriggerAtStart = false;
  const int* arrivals;
  int needed;
  __device__ __forceinline__ void waitForPartials(int group) const {
    if (threadIdx.x == 0) {
      while (atomicAdd(const_cast<int*>(arrivals + group), 0) < needed) __nanosleep(64);
      __threadfence();
    }
    __syncthreads();
  }
};

// Dynamic shared memory: the larger of the shrink's accumulators and the expand's B stages. Registers bounded for 4
// blocks per SM where the shrink's chunk is <= 4 mma tiles (the expand kernel's own bound), else 2.
template <typename T, int kTiles, int kStages>
__global__ void __launch_bounds__(kShrinkThreads, kTiles <= 4 ? 4 : 2) smallJoinedKernel(JoinedArgs p, DeviceStep step, T* __restrict__ y,
                                                                                        int* __restrict__ tickets) {
  static_assert(kShrinkThreads == kExpandThreads, "one block size for both roles");
  __shared__ int ticketShared;
  if (threadIdx.x == 0) ticketShared = atomicAdd(tickets, 1);  // before pdlWait: nothing before reads or writes this set
  __syncthreads();
  const int ticket = ticketShared, shrinkBlocks = p.splits * p.groups;
  int* arrivals = tickets + 2;
  if (ticket < shrinkBlocks) {
    const int group = ticket / p.splits;
    shrinkBlock<T, true, kTiles>(p.a, p.in, p.aSlotStride, p.numSlices, step.segIndptr, step.weightIndices, step.segmentRanks,
                                 step.permutation, step.slotRanks, step.maxSegments, step.numTokens, p.x, p.xStride, p.partials,
                                 p.uStride, p.kPerSplit, 0, 1, nullptr, nullptr, ticket % p.splits, group, p.splits);
    __threadfence();  // this thread's partials, before the block's arrival
    __syncthreads();
    if (threadIdx.x == 0) atomicAdd(arrivals + group, 1);
  } else {
    const int e = ticket - shrinkBlocks;
    expandBlock<T, kStages, true, AfterArrivals>(p.b, p.bSlotStride, p.R, p.slices, step.segIndptr, step.weightIndices, step.segmentRanks,
                                  step.permutation, step.slotRanks, step.maxSegments, step.numTokens, p.partials, p.splits, p.uStride, y,
                                  p.yStride, p.yOffset, 1, 1, nullptr, e % p.sliceBlocks, 0, e / p.sliceBlocks,
                                  AfterArrivals{arrivals, p.splits});
  }
  // The last block to leave resets the set: every block has taken its ticket and no block waits any more.
  __syncthreads();
  if (threadIdx.x == 0 && atomicAdd(tickets + 1, 1) == static_cast<int>(gridDim.x) - 1) {
    tickets[0] = 0;
    tickets[1] = 0;
    for (int g = 0; g < p.groups; ++g) arrivals[g] = 0;
  }
}

}  // namespace

cudaError_t loraApplyJoined(ActDType dtype, const DeviceModule& module, const DeviceStep& step, const void* x, int xStride,
                            void* workspace, int kSplits, void* y, int yStride, int yOffset, JoinedTickets& tickets,
                            cudaStream_t stream) {
  if (step.maxSegments <= 0 || step.numTokens <= 0) return cudaSuccess;
  if (module.numSlices < 1 || module.numSlices > 3 || module.in < 1 || module.maxRank < 1 || module.maxRank > kSmallStepMaxRank ||
      step.numTokens > kSmallStepMaxTokens || kSplits < 1 || tickets.device == nullptr)
    return cudaErrorInvalidValue;
  const int c = module.numSlices, R = module.maxRank;
  bool vec = module.in % 8 == 0 && xStride % 8 == 0 && small::aligned16(x) && small::aligned16(module.a) && R % 8 == 0 &&
             small::aligned16(module.b) && yStride % 8 == 0 && yOffset % 8 == 0 && small::aligned16(y);
  JoinedArgs p{};
  int sliceBlocks = 0;
  for (int j = 0; j <= c; ++j) {
    p.slices.offsets[j] = module.sliceOffsets[j];
    vec = vec && module.sliceOffsets[j] % 8 == 0;
  }
  for (int j = 0; j < c; ++j) sliceBlocks += (std::max(0, module.sliceOffsets[j + 1] - module.sliceOffsets[j]) + kExpandColumns - 1) / kExpandColumns;
  if (!vec) return cudaErrorNotSupported;
  if (sliceBlocks == 0) return cudaSuccess;
  p.a = static_cast<const uint16_t*>(module.a);
  p.b = static_cast<const uint16_t*>(module.b);
  p.x = static_cast<const uint16_t*>(x);
  p.in = module.in;
  p.numSlices = c;
  p.R = R;
  p.xStride = xStride;
  p.uStride = c * R;
  const int perSplit = (module.in + kSplits - 1) / kSplits;
  p.kPerSplit = (perSplit + kStepK - 1) / kStepK * kStepK;
  p.splits = kSplits;
  p.groups = groupsOf(step);
  p.sliceBlocks = sliceBlocks;
  p.yStride = yStride;
  p.yOffset = yOffset;
  p.aSlotStride = static_cast<size_t>(c) * R * module.in;
  p.bSlotStride = static_cast<size_t>(module.outTotal()) * R;
  p.partials = static_cast<float*>(workspace);
  const int stages = expandStagesFor(R);
  const size_t shrinkSmem = static_cast<size_t>(kShrinkWarps) * kGroupRows * (p.uStride + 1) * sizeof(float);
  const size_t smemBytes = std::max(shrinkSmem, expandSmemBytes(R));
  const dim3 grid(kSplits * p.groups + sliceBlocks * p.groups);
  int* set = tickets.device + (tickets.launches++ % 2) * kJoinedTicketSetInts;
  auto launch = [&](auto kernel, auto* yTyped) -> cudaError_t {
    const cudaError_t limit = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smemBytes));
    if (limit != cudaSuccess) {
      cudaGetLastError();
      return limit;
    }
    return loraLaunch(kernel, grid, dim3(kShrinkThreads), smemBytes, stream, p, step, yTyped, set);
  };
  auto byShape = [&](auto tag) -> cudaError_t {
    using T = decltype(tag);
    T* yt = static_cast<T*>(y);
    const int tiles = narrowShrinkTiles(p.uStride);
    if (stages == 4) {
      if (tiles == 2) return launch(smallJoinedKernel<T, 2, 4>, yt);
      if (tiles == 4) return launch(smallJoinedKernel<T, 4, 4>, yt);
      if (tiles == 6) return launch(smallJoinedKernel<T, 6, 4>, yt);
      return launch(smallJoinedKernel<T, kChunkTiles, 4>, yt);
    }
    if (tiles == 2) return launch(smallJoinedKernel<T, 2, 2>, yt);
    if (tiles == 4) return launch(smallJoinedKernel<T, 4, 2>, yt);
    if (tiles == 6) return launch(smallJoinedKernel<T, 6, 2>, yt);
    return launch(smallJoinedKernel<T, kChunkTiles, 2>, yt);
  };
  return dtype == ActDType::BF16 ? byShape(__nv_bfloat16{}) : byShape(__half{});
}

}  // namespace tslora::cuda::lora
