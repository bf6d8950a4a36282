// Small-step (decode) LoRA shrink: partial U = X·Aᵀ per K split, for position groups of 16 rows (lora_small_step.cuh).
// Grid (splits, groups), 8 warps. Work items = (run, 64-column chunk, 64-K step) of the block's K range, dealt to
// the warps round robin, so a group of several adapters keeps every warp busy with loads in flight at once. A warp
// step: lane (g = lane/4, t = lane%4) loads 16 consecutive elements of x rows g and g+8 and of A row n (two 16-byte
// loads each, straight from global memory) and feeds four mma.m16n8k16 with K permuted: logical k {2t, 2t+1, 2t+8,
// 2t+9} of sub-step s is physical t*16 + 4s + {0, 1, 2, 3}, the same bijection for both operands, so every dot
// product is unchanged. Each warp adds its fragments into its own shared-memory accumulator; the block sums the four
// in a fixed order and writes its split's partial [numTokens, c*R] rows by position.
#include <algorithm>

#include "lora_small_step.cuh"

namespace tslora::cuda::lora {
namespace {

using namespace small;

constexpr int kThreads = 256;  // 8 warps: long K (down_proj) and several adapters per group still one item per warp
constexpr int kWarps = kThreads / 32;
constexpr int kStepK = 64;      // K per warp step: 4 lanes x 16 elements
constexpr int kChunkTiles = 8;  // mma N tiles (8 U columns each) per item: 64 columns
constexpr int kChunkCols = kChunkTiles * 8;
constexpr int kMaxSplits = 32;
constexpr int kMinKPerSplit = 128;
// Every expand block re-reads the split partials of its rows and slice (16 x R x splits floats, from L2): the split
// count is capped so that all of them together stay near this many bytes (gate_up's 112 column blocks per group, or
// lm_head's ~500, would otherwise read tens of MB after the shrink).
constexpr double kPartialReadBudgetBytes = 16.0 * (1 << 20);
constexpr int kTargetShrinkBlocks = 64, kMinPolicySplits = 8, kMaxPolicySplits = 16;

template <typename T> __device__ __forceinline__ void mma16816(float (&c)[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3,
                                                               uint32_t b0, uint32_t b1);
template <> __device__ __forceinline__ void mma16816<__nv_bfloat16>(float (&c)[4], uint32_t a0, uint32_t a1, uint32_t a2,
                                                                    uint32_t a3, uint32_t b0, uint32_t b1) {
  asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
               : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
               : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}
template <> __device__ __forceinline__ void mma16816<__half>(float (&c)[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3,
                                                             uint32_t b0, uint32_t b1) {
  asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
               : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
               : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

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

// Dynamic shared memory: kWarps accumulators of fp32 [kGroupRows, uStride + 1].
template <typename T, bool kVec>
__global__ void __launch_bounds__(kThreads) smallShrinkKernel(
    const uint16_t* __restrict__ a, int in, size_t aSlotStride, int numSlices, const int32_t* __restrict__ segIndptr,
    const int32_t* __restrict__ weightIndices, const int32_t* __restrict__ segmentRanks,
    const int32_t* __restrict__ permutation, const int32_t* __restrict__ slotRanks,
    int maxSegments, int numTokens, const uint16_t* __restrict__ x, int xStride, float* __restrict__ partials, int uStride,
    int kPerSplit, int triggerEarly) {
  // PDL trigger placement (run 6 vs run 8): at kernel start the expand's early blocks overlap most of this grid, which
  // pays for one position group (batch 1: 18.8 against 24.1 µs per layer) but slows several groups, whose early
  // blocks compete with this grid's loads (64 rows: +3.4 µs); there the trigger waits for the main loads below.
#if __CUDA_ARCH__ >= 900  // PDL (griddepcontrol) exists from sm_90; older GPUs get plain stream order
  if (triggerEarly) asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
#endif
  __shared__ GroupRows g;
  extern __shared__ float accShared[];
  const int p0 = blockIdx.y * kGroupRows;
  loadGroup(segIndptr, weightIndices, segmentRanks, permutation, slotRanks, maxSegments, numTokens, p0, g);
  if (g.numRuns == 0) return;
  const int ld = uStride + 1;
  for (int e = threadIdx.x; e < kWarps * kGroupRows * ld; e += kThreads) accShared[e] = 0.0f;
  __syncthreads();

  const int split = blockIdx.x, k0 = split * kPerSplit, k1 = min(in, k0 + kPerSplit);
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
    for (int c0 = 0; c0 < nEff; c0 += kChunkCols)
      for (int st = 0; st < steps; ++st, ++item) {
        if (item % kWarps != warp) continue;  // warp-uniform
        const int k = k0 + st * kStepK + t * 16;
        uint32_t xa[8], xb[8], bw[kChunkTiles][8];
        load16<kVec>(slotA == w ? xRowA : nullptr, k, k1, xa);  // rows of other runs count as zero
        load16<kVec>(slotB == w ? xRowB : nullptr, k, k1, xb);
#pragma unroll
        for (int nt = 0; nt < kChunkTiles; ++nt) {
          const int n = c0 + nt * 8 + gr;
          load16<kVec>(n < nEff ? aSlot + static_cast<size_t>(n) * in : nullptr, k, k1, bw[nt]);
        }
        float acc[kChunkTiles][4];
#pragma unroll
        for (int nt = 0; nt < kChunkTiles; ++nt) acc[nt][0] = acc[nt][1] = acc[nt][2] = acc[nt][3] = 0.0f;
#pragma unroll
        for (int s = 0; s < 4; ++s)
#pragma unroll
          for (int nt = 0; nt < kChunkTiles; ++nt)
            if (c0 + nt * 8 < nEff)  // warp-uniform
              mma16816<T>(acc[nt], xa[2 * s], xb[2 * s], xa[2 * s + 1], xb[2 * s + 1], bw[nt][2 * s], bw[nt][2 * s + 1]);
#pragma unroll
        for (int nt = 0; nt < kChunkTiles; ++nt) {  // C fragment: rows gr, gr+8; columns nt*8 + 2t, +1
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
  // The main loads are done: let the expand (a programmatic dependent launch) start its table, weight and y loads
  // now. It still waits (griddepcontrol.wait) for this grid's completion before it reads the partials. Blocks that
  // returned early count as triggered; a second trigger is harmless.
#if __CUDA_ARCH__ >= 900  // PDL (griddepcontrol) exists from sm_90; older GPUs get plain stream order
  asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
#endif
  __syncthreads();
  float* out = partials + static_cast<size_t>(split) * numTokens * uStride;
  for (int e = threadIdx.x; e < kGroupRows * uStride; e += kThreads) {
    const int row = e / uStride, n = e % uStride;
    if (g.slot[row] < 0 || n >= numSlices * g.rank[row]) continue;
    float sum = 0.0f;
#pragma unroll
    for (int wi = 0; wi < kWarps; ++wi) sum += accShared[(wi * kGroupRows + row) * ld + n];
    out[static_cast<size_t>(p0 + row) * uStride + n] = sum;
  }
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
  const int wanted = std::clamp((kTargetShrinkBlocks + groups - 1) / groups, kMinPolicySplits, kMaxPolicySplits);
  const int maxByK = std::max(1, (module.in + kMinKPerSplit - 1) / kMinKPerSplit);
  long long columnBlocks = 0;
  for (int j = 0; j < module.numSlices; ++j)
    columnBlocks += (module.sliceOffsets[j + 1] - module.sliceOffsets[j] + kExpandColumns - 1) / kExpandColumns;
  const double partialBytesPerSplit = static_cast<double>(groups) * std::max(1LL, columnBlocks) * kGroupRows * module.maxRank * sizeof(float);
  const int maxByTraffic = std::max(1, static_cast<int>(kPartialReadBudgetBytes / partialBytesPerSplit));
  return std::max(1, std::min({wanted, maxByK, kMaxSplits, maxByTraffic}));
}

size_t loraSmallStepWorkspaceBytes(const DeviceModule& module, const DeviceStep& step, int kSplits) {
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
  const size_t smemBytes = static_cast<size_t>(kWarps) * kGroupRows * (uStride + 1) * sizeof(float);
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
    kernel<<<grid, kThreads, smemBytes, stream>>>(a, module.in, aSlotStride, c, step.segIndptr, step.weightIndices, step.segmentRanks, step.permutation,
                                                  step.slotRanks, step.maxSegments, step.numTokens, xs, xStride, partials, uStride,
                                                  kPerSplit, groupsOf(step) == 1 ? 1 : 0);
    return cudaGetLastError();
  };
  if (dtype == ActDType::BF16) return vec ? launch(smallShrinkKernel<__nv_bfloat16, true>) : launch(smallShrinkKernel<__nv_bfloat16, false>);
  return vec ? launch(smallShrinkKernel<__half, true>) : launch(smallShrinkKernel<__half, false>);
}

}  // namespace tslora::cuda::lora
