// Fused small-step (decode) LoRA: shrink and expand of a module in one launch (API and contract in lora_kernels.cuh).
// Grid (clusterSize * columnParts, groups), clusters of clusterSize blocks along x, 256 threads. A cluster = one
// position group of 16 rows and one part of the output columns:
//  1. every block resolves the group (loadGroup), asks L2 for the B rows of the group's adapters, waits for the kernel
//     before (a programmatic dependent launch, lora_launch.cuh: tables and weights only before pdlWait) and asks L2
//     for its y rows, without waiting for them;
//  2. block `rank` of the cluster computes K split `rank` of U = X·Aᵀ (shrinkSplitInto, tensor cores) and sums its
//     warps into its own shared-memory partial [16, c*R];
//  3. barrier.cluster (release/acquire); each block sums the clusterSize partials from distributed shared memory in
//     rank order (the same order in every block: deterministic, and all column parts of a group get the same U),
//     rounded to the activation dtype as the two-kernel pair does;
//  4. each block adds U·Bᵀ to its slice of the columns: one column per thread per pass, the 16 y values loaded at
//     once, the B row of each run (distinct slot) in 16-byte pieces;
//  5. a second barrier.cluster keeps every block's partial alive until its peers have read it.
// A cluster whose group has no LoRA row returns as a whole (all its blocks see the same group).
// Measured on an H100 (bench/lora/README.md v8): slower than the two-kernel pair with PDL everywhere, because every
// phase above is one more dependent memory round trip in one block, the expand runs on the cluster's few blocks
// (the pair's expand has 4 blocks per SM) and a group of several adapters walks its runs one after another; hence
// opt-in (TSLORA_CUDA_LORA_FUSED=1) in DeviceLoraPool.
#include <algorithm>
#include <atomic>

#include <cooperative_groups.h>

#include "lora_launch.cuh"
#include "lora_small_mma.cuh"

namespace tslora::cuda::lora {
namespace {

using namespace small;
using detail::Convert;
namespace cg = cooperative_groups;

constexpr int kThreads = kShrinkThreads;
constexpr int kGroupBytes = (sizeof(GroupRows) + 15) / 16 * 16;
constexpr int kMinKPerSplit = 512;          // K per cluster block: at least one 64-K step per warp for one run and chunk
constexpr int kColumnsPerBlockTarget = 384;  // output columns per block: 1-2 passes of 256 threads
constexpr int kMaxColumnParts = 16;
constexpr int kMaxClusterSize = 16;  // the non-portable cluster limit of sm_90

// Dynamic shared memory: GroupRows | partial fp32 [16, uStride] | U fp32 [16, uStride] | warp accumulators
// fp32 [kShrinkWarps, 16, uStride + 1].
size_t fusedSmemBytes(int uStride) {
  return kGroupBytes + sizeof(float) * (2 * static_cast<size_t>(kGroupRows) * uStride +
                                        static_cast<size_t>(kShrinkWarps) * kGroupRows * (uStride + 1));
}

template <typename T, bool kVec>
__global__ void __launch_bounds__(kThreads, 2) fusedKernel(
    const uint16_t* __restrict__ a, int in, size_t aSlotStride, const uint16_t* __restrict__ b, size_t bSlotStride, int R,
    int numSlices, Slices slices, const int32_t* __restrict__ segIndptr, const int32_t* __restrict__ weightIndices,
    const int32_t* __restrict__ segmentRanks, const int32_t* __restrict__ permutation, const int32_t* __restrict__ slotRanks,
    int maxSegments, int numTokens, const uint16_t* __restrict__ x, int xStride, T* __restrict__ y, int yStride, int yOffset,
    int kPerSplit, int columnsPerBlock) {
#if __CUDA_ARCH__ >= 900  // thread-block clusters exist from sm_90 (the host never launches this on older GPUs)
  extern __shared__ __align__(16) unsigned char smem[];
  GroupRows& g = *reinterpret_cast<GroupRows*>(smem);
  const int uStride = numSlices * R, ld = uStride + 1;
  float* part = reinterpret_cast<float*>(smem + kGroupBytes);
  float* sU = part + kGroupRows * uStride;
  float* acc = sU + kGroupRows * uStride;
  cg::cluster_group cluster = cg::this_cluster();
  const int split = static_cast<int>(cluster.block_rank()), splits = static_cast<int>(cluster.num_blocks());
  const int p0 = blockIdx.y * kGroupRows;
  pdlLaunchDependents();
  loadGroup(segIndptr, weightIndices, segmentRanks, permutation, slotRanks, maxSegments, numTokens, p0, g);
  if (g.numRuns == 0) {
    pdlWait();  // every block waits (pdl.h rule 2)
    return;
  }

  const int outTotal = sliceOffset(slices, numSlices);
  const int n0 = blockIdx.x * columnsPerBlock, n1 = min(outTotal, n0 + columnsPerBlock);
  for (int n = n0 + threadIdx.x; n < n1; n += kThreads)  // expand weights into L2 while the kernel before finishes
    for (int run = 0; run < g.numRuns; ++run) prefetchL2(b + static_cast<size_t>(g.runSlot[run]) * bSlotStride + static_cast<size_t>(n) * R);
  pdlWait();
  for (int n = n0 + threadIdx.x; n < n1; n += kThreads)  // y into L2 while the shrink runs
    for (int q = 0; q < kGroupRows; ++q)
      if (g.slot[q] >= 0) prefetchL2(y + static_cast<size_t>(g.phys[q]) * yStride + yOffset + n);
  for (int e = threadIdx.x; e < kShrinkWarps * kGroupRows * ld; e += kThreads) acc[e] = 0.0f;
  __syncthreads();
  const int k0 = split * kPerSplit, k1 = min(in, k0 + kPerSplit);
  shrinkSplitInto<T, kVec>(a, in, aSlotStride, numSlices, g, x, xStride, k0, k1, acc, ld);
  __syncthreads();
  for (int e = threadIdx.x; e < kGroupRows * uStride; e += kThreads) {
    const int row = e / uStride, n = e % uStride;
    part[e] = g.slot[row] >= 0 && n < numSlices * g.rank[row] ? sumWarpAccumulators(acc, ld, row, n) : 0.0f;
  }
  cluster.sync();  // every peer's partial is written and visible
  for (int e = threadIdx.x; e < kGroupRows * uStride; e += kThreads) {
    float v[kMaxClusterSize];  // every peer's value in flight before the first add (one DSMEM round trip)
#pragma unroll
    for (int s = 0; s < kMaxClusterSize; ++s) v[s] = s < splits ? cluster.map_shared_rank(part, s)[e] : 0.0f;
    float sum = 0.0f;
#pragma unroll
    for (int s = 0; s < kMaxClusterSize; ++s) sum += v[s];
    sU[e] = Convert<T>::toFloat(Convert<T>::fromFloat(sum));  // rounded like the pair's expand (and PEFT's lora_A output)
  }
  __syncthreads();

  for (int n = n0 + threadIdx.x; n < n1; n += kThreads) {
    int j = 0;
    while (j + 1 < numSlices && n >= sliceOffset(slices, j + 1)) ++j;
    float yv[kGroupRows], d[kGroupRows];
#pragma unroll
    for (int q = 0; q < kGroupRows; ++q) {
      yv[q] = g.slot[q] >= 0 ? Convert<T>::toFloat(y[static_cast<size_t>(g.phys[q]) * yStride + yOffset + n]) : 0.0f;
      d[q] = 0.0f;
    }
    for (int run = 0; run < g.numRuns; ++run) {
      const int w = g.runSlot[run], r = g.runRank[run];
      const uint16_t* bRow = b + static_cast<size_t>(w) * bSlotStride + static_cast<size_t>(n) * R;
      for (int kc = 0; kc < r; kc += 8) {
        float bv[8];
        if constexpr (kVec) {  // R % 8 == 0 and B 16-byte aligned: the 8 elements lie inside the slot's R columns
          const uint4 raw = __ldg(reinterpret_cast<const uint4*>(bRow + kc));
          const T* h = reinterpret_cast<const T*>(&raw);
#pragma unroll
          for (int i = 0; i < 8; ++i) bv[i] = kc + i < r ? Convert<T>::toFloat(h[i]) : 0.0f;  // stale beyond r
        } else {
#pragma unroll
          for (int i = 0; i < 8; ++i) {
            uint16_t bits = kc + i < r ? bRow[kc + i] : uint16_t{0};
            bv[i] = kc + i < r ? Convert<T>::toFloat(*reinterpret_cast<const T*>(&bits)) : 0.0f;
          }
        }
#pragma unroll
        for (int q = 0; q < kGroupRows; ++q) {
          if (g.slot[q] != w) continue;
          const float* u = sU + q * uStride + j * r + kc;
          float s = 0.0f;
#pragma unroll
          for (int i = 0; i < 8; ++i) s += kc + i < r ? u[i] * bv[i] : 0.0f;
          d[q] += s;
        }
      }
    }
#pragma unroll
    for (int q = 0; q < kGroupRows; ++q)
      if (g.slot[q] >= 0) y[static_cast<size_t>(g.phys[q]) * yStride + yOffset + n] = Convert<T>::fromFloat(yv[q] + d[q]);
  }
  cluster.sync();  // peers may still be reading this block's partial
#endif
}

int ceilDiv(int a, int b) { return (a + b - 1) / b; }

// Sets the kernel's shared-memory limit (and the non-portable cluster size above 8); with `ask`, also whether the
// device runs clusters of `size` blocks of it (cudaErrorNotSupported if not). Not stream operations: fine under capture.
template <typename Kernel>
cudaError_t prepareClusterLaunch(Kernel kernel, dim3 grid, int size, size_t smemBytes, bool ask) {
  cudaError_t status = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smemBytes));
  if (status == cudaSuccess && size > 8) status = cudaFuncSetAttribute(kernel, cudaFuncAttributeNonPortableClusterSizeAllowed, 1);
  int clusters = 1;
  if (status == cudaSuccess && ask) {
    cudaLaunchAttribute cluster[1];
    cluster[0].id = cudaLaunchAttributeClusterDimension;
    cluster[0].val.clusterDim.x = size;
    cluster[0].val.clusterDim.y = 1;
    cluster[0].val.clusterDim.z = 1;
    cudaLaunchConfig_t config = {grid, dim3(kThreads), smemBytes, nullptr, cluster, 1};  // grid, block, smem, stream, attrs
    status = cudaOccupancyMaxActiveClusters(&clusters, kernel, &config);
  }
  if (status != cudaSuccess) {
    cudaGetLastError();  // reported here, not again by the caller's next launch check
    return status;
  }
  return clusters > 0 ? cudaSuccess : cudaErrorNotSupported;
}

}  // namespace

FusedPlan loraFusedPlan(const DeviceModule& module, const DeviceStep& step, int numMultiprocessors) {
  FusedPlan plan;
  if (step.numTokens < 1 || step.numTokens > kSmallStepMaxTokens || step.maxSegments < 1) return plan;
  if (module.maxRank < 1 || module.maxRank > kSmallStepMaxRank || module.numSlices < 1 || module.numSlices > 3 || module.in < 1 ||
      module.outTotal() < 1)
    return plan;
  // K splits = cluster size: a power of two with at least kMinKPerSplit each, at most 16 (the non-portable limit).
  int size = 1;
  while (size < kMaxClusterSize && static_cast<long long>(size) * 2 * kMinKPerSplit <= module.in) size *= 2;
  plan.clusterSize = size;
  // Enough blocks per group that each expands ~kColumnsPerBlockTarget columns; every column part recomputes the group's
  // U (its A and x reads hit L2 after the first), so at most kMaxColumnParts and at most ~2 blocks per SM in total.
  const int wantedBlocks = ceilDiv(module.outTotal(), kColumnsPerBlockTarget);
  const int bySms = std::max(1, 2 * std::max(1, numMultiprocessors) / (groupsOf(step) * size));
  plan.columnParts = std::clamp(ceilDiv(wantedBlocks, size), 1, std::min(kMaxColumnParts, bySms));
  return plan;
}

cudaError_t loraApplyFused(ActDType dtype, const DeviceModule& module, const DeviceStep& step, const FusedPlan& plan, const void* x,
                           int xStride, void* y, int yStride, int yOffset, cudaStream_t stream) {
  if (step.maxSegments <= 0 || step.numTokens <= 0) return cudaSuccess;
  const int size = plan.clusterSize;
  if (module.numSlices < 1 || module.numSlices > 3 || module.in < 1 || module.maxRank < 1 || module.maxRank > kSmallStepMaxRank ||
      step.numTokens > kSmallStepMaxTokens || (size != 1 && size != 2 && size != 4 && size != 8 && size != 16) ||
      plan.columnParts < 1 || plan.columnParts > 64)
    return cudaErrorInvalidValue;
  const int c = module.numSlices, R = module.maxRank, uStride = c * R, outTotal = module.outTotal();
  if (outTotal <= 0) return cudaSuccess;
  Slices slices{};
  for (int j = 0; j <= c; ++j) slices.offsets[j] = module.sliceOffsets[j];
  const int perSplit = ceilDiv(module.in, size);
  const int kPerSplit = ceilDiv(perSplit, kStepK) * kStepK;
  const int blocksPerGroup = size * plan.columnParts;
  const int columnsPerBlock = ceilDiv(ceilDiv(outTotal, blocksPerGroup), 32) * 32;  // warp-aligned column ranges
  const dim3 grid(blocksPerGroup, groupsOf(step));
  const size_t smemBytes = fusedSmemBytes(uStride);
  const bool vec = module.in % 8 == 0 && xStride % 8 == 0 && R % 8 == 0 && aligned16(x) && aligned16(module.a) && aligned16(module.b);
  const auto* a = static_cast<const uint16_t*>(module.a);
  const auto* b = static_cast<const uint16_t*>(module.b);
  const auto* xs = static_cast<const uint16_t*>(x);
  const size_t aSlotStride = static_cast<size_t>(c) * R * module.in, bSlotStride = static_cast<size_t>(outTotal) * R;
  auto launch = [&](auto kernel, auto* yTyped) -> cudaError_t {
    // Checked once per kernel variant, cluster size and shared-memory class (above ~114 KB: one block per SM);
    // 0 unknown, 1 runs, 2 does not.
    static std::atomic<int> fits[10];
    int log2Size = 0;
    while ((1 << log2Size) < size) ++log2Size;
    const int key = log2Size * 2 + (smemBytes > (114u << 10) ? 1 : 0);
    int known = fits[key].load();
    cudaError_t status = prepareClusterLaunch(kernel, grid, size, smemBytes, known == 0);
    if (known == 0) {
      known = status == cudaSuccess ? 1 : 2;
      fits[key].store(known);
    }
    if (known != 1) return cudaErrorNotSupported;
    if (status != cudaSuccess) return status;
    LaunchExtras extras;
    extras.clusterX = static_cast<unsigned>(size);
    return loraLaunch(extras, kernel, grid, dim3(kThreads), smemBytes, stream, a, module.in, aSlotStride, b, bSlotStride, R, c, slices,
                      step.segIndptr, step.weightIndices, step.segmentRanks, step.permutation, step.slotRanks, step.maxSegments,
                      step.numTokens, xs, xStride, yTyped, yStride, yOffset, kPerSplit, columnsPerBlock);
  };
  if (dtype == ActDType::BF16) {
    auto* yt = static_cast<__nv_bfloat16*>(y);
    return vec ? launch(fusedKernel<__nv_bfloat16, true>, yt) : launch(fusedKernel<__nv_bfloat16, false>, yt);
  }
  auto* yt = static_cast<__half*>(y);
  return vec ? launch(fusedKernel<__half, true>, yt) : launch(fusedKernel<__half, false>, yt);
}

}  // namespace tslora::cuda::lora
