// Small-step (decode) LoRA kernels: shrink and expand whose grids depend only on numTokens, the module and the split
// count (see lora_kernels.cuh). Positions are taken in groups of 16 (one mma M tile); the rows of a group are
// resolved from the segment tables in shared memory (one parallel pass over the segments) and processed per run of
// equal slot, so any adapter mix (triton's one segment per request, csgmv's chunks, graph padding) is handled.
//
// Shrink: grid (splits, groups), 4 warps; a warp step covers 64 K: lane (g = lane/4, t = lane%4) loads 16
// consecutive elements of x rows g and g+8 and of A row n (16 bytes twice) and feeds them to four
// mma.m16n8k16 with K permuted (logical k {2t, 2t+1, 2t+8, 2t+9} of sub-step s = physical t*16 + 4s + {0,1,2,3}:
// the same bijection for both operands, so the dot products are unchanged). No shared-memory staging, so a block's
// whole K range is in flight at once. Warps split K; their sums meet in shared memory; each split writes its own
// partial [numTokens, c*R] slice (by position): no tickets, no atomics, nothing to reset between graph replays.
// Expand: grid (column blocks of 128, slices, groups); sums the split partials of its rows in fixed order, stages the
// run's B tile in shared memory (fp32, k-major) and adds U·Bᵀ in fp32 to 8 consecutive y columns per thread.
#include <algorithm>

#include "lora_kernels.cuh"
#include "lora_tile.cuh"

namespace tslora::cuda::lora {
namespace {

using detail::Convert;

constexpr int kGroupRows = 16;
constexpr int kShrinkThreads = 128;
constexpr int kShrinkWarps = kShrinkThreads / 32;
constexpr int kStepK = 64;       // K per warp step (4 lanes x 16 elements)
constexpr int kChunkTiles = 8;   // mma N tiles (8 U columns each) per pass: 64 columns
constexpr int kChunkCols = kChunkTiles * 8;
constexpr int kMaxSplits = 32;
constexpr int kMinKPerSplit = 128;
constexpr int kExpandThreads = 128;
constexpr int kExpandBN = 128;   // output columns per block: 16 vectors of 8 columns
constexpr int kExpandLdb = kExpandBN + 4;

struct Slices {
  int offsets[4];
};
__device__ __forceinline__ int sliceOffset(const Slices& s, int j) {
  return j == 0 ? s.offsets[0] : j == 1 ? s.offsets[1] : j == 2 ? s.offsets[2] : s.offsets[3];
}

// Rows of one position group: slot (-1 = base / beyond numTokens / rank 0), rank, physical row; the distinct slots in
// order of first appearance (runs).
struct GroupRows {
  int slot[kGroupRows], rank[kGroupRows], phys[kGroupRows];
  int runSlot[kGroupRows], runRank[kGroupRows];
  int numRuns;
};

__device__ void loadGroup(const int32_t* __restrict__ segIndptr, const int32_t* __restrict__ weightIndices,
                          const int32_t* __restrict__ permutation, const int32_t* __restrict__ slotRanks, int maxSegments,
                          int numTokens, int p0, GroupRows& g) {
  const int tid = threadIdx.x;
  if (tid < kGroupRows) {
    g.slot[tid] = -1;
    g.rank[tid] = 0;
    g.phys[tid] = p0 + tid < numTokens ? detail::physicalRow(permutation, p0 + tid) : 0;
  }
  __syncthreads();
  const int pEnd = min(numTokens, p0 + kGroupRows);
  for (int s = tid; s < maxSegments; s += blockDim.x) {  // segments are disjoint: each position is written once
    const int begin = segIndptr[s], end = segIndptr[s + 1], w = weightIndices[s];
    const int lo = max(begin, p0), hi = min(end, pEnd);
    if (lo >= hi || w < 0) continue;
    const int r = slotRanks[w];
    if (r <= 0) continue;
    for (int p = lo; p < hi; ++p) {
      g.slot[p - p0] = w;
      g.rank[p - p0] = r;
    }
  }
  __syncthreads();
  if (tid == 0) {
    int runs = 0;
    for (int q = 0; q < kGroupRows; ++q) {
      const int w = g.slot[q];
      if (w < 0) continue;
      bool seen = false;
      for (int i = 0; i < runs; ++i) seen = seen || g.runSlot[i] == w;
      if (!seen) {
        g.runSlot[runs] = w;
        g.runRank[runs] = g.rank[q];
        ++runs;
      }
    }
    g.numRuns = runs;
  }
  __syncthreads();
}

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

// Elements [k, k + 16) of a row (raw 16-bit values, two per register, low half first), zero beyond kEnd or when
// row is null. kVec: row and k 16-byte aligned and kEnd a multiple of 8 (each 8-element half is all in or all out).
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

template <typename T, bool kVec>
__global__ void __launch_bounds__(kShrinkThreads) smallShrinkKernel(
    const uint16_t* __restrict__ a, int in, size_t aSlotStride, int numSlices, const int32_t* __restrict__ segIndptr,
    const int32_t* __restrict__ weightIndices, const int32_t* __restrict__ permutation, const int32_t* __restrict__ slotRanks,
    int maxSegments, int numTokens, const uint16_t* __restrict__ x, int xStride, float* __restrict__ partials, int uStride,
    int kPerSplit) {
  // Lets the expand (a programmatic dependent launch) start its weight and y loads while this grid runs; it still
  // waits (griddepcontrol.wait) for this grid's completion before reading the partials.
  asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
  __shared__ GroupRows g;
  __shared__ float red[kShrinkWarps][kGroupRows][kChunkCols + 4];  // per-warp sums of one pass
  const int p0 = blockIdx.y * kGroupRows;
  loadGroup(segIndptr, weightIndices, permutation, slotRanks, maxSegments, numTokens, p0, g);
  if (g.numRuns == 0) return;
  const int split = blockIdx.x, k0 = split * kPerSplit, k1 = min(in, k0 + kPerSplit);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, gr = lane / 4, t = lane % 4;
  const int slotA = g.slot[gr], slotB = g.slot[gr + 8];
  const uint16_t* xRowA = x + static_cast<size_t>(g.phys[gr]) * xStride;
  const uint16_t* xRowB = x + static_cast<size_t>(g.phys[gr + 8]) * xStride;
  float* out = partials + static_cast<size_t>(split) * numTokens * uStride;

  for (int run = 0; run < g.numRuns; ++run) {
    const int w = g.runSlot[run], nEff = numSlices * g.runRank[run];  // rank-aware: A rows [0, c*r) only
    const uint16_t* aSlot = a + static_cast<size_t>(w) * aSlotStride;
    for (int c0 = 0; c0 < nEff; c0 += kChunkCols) {
      float acc[kChunkTiles][4];
#pragma unroll
      for (int nt = 0; nt < kChunkTiles; ++nt) acc[nt][0] = acc[nt][1] = acc[nt][2] = acc[nt][3] = 0.0f;
      for (int kb = k0 + warp * kStepK; kb < k1; kb += kShrinkWarps * kStepK) {
        const int k = kb + t * 16;
        uint32_t xa[8], xb[8], bw[kChunkTiles][8];
        load16<kVec>(slotA == w ? xRowA : nullptr, k, k1, xa);
        load16<kVec>(slotB == w ? xRowB : nullptr, k, k1, xb);
#pragma unroll
        for (int nt = 0; nt < kChunkTiles; ++nt) {
          const int n = c0 + nt * 8 + gr;
          load16<kVec>(n < nEff ? aSlot + static_cast<size_t>(n) * in : nullptr, k, k1, bw[nt]);
        }
#pragma unroll
        for (int s = 0; s < 4; ++s)
#pragma unroll
          for (int nt = 0; nt < kChunkTiles; ++nt)
            if (c0 + nt * 8 < nEff)  // warp-uniform
              mma16816<T>(acc[nt], xa[2 * s], xb[2 * s], xa[2 * s + 1], xb[2 * s + 1], bw[nt][2 * s], bw[nt][2 * s + 1]);
      }
#pragma unroll
      for (int nt = 0; nt < kChunkTiles; ++nt) {  // C fragment: rows gr, gr+8; columns nt*8 + 2t, +1
        red[warp][gr][nt * 8 + 2 * t] = acc[nt][0];
        red[warp][gr][nt * 8 + 2 * t + 1] = acc[nt][1];
        red[warp][gr + 8][nt * 8 + 2 * t] = acc[nt][2];
        red[warp][gr + 8][nt * 8 + 2 * t + 1] = acc[nt][3];
      }
      __syncthreads();
      for (int e = threadIdx.x; e < kGroupRows * kChunkCols; e += kShrinkThreads) {
        const int row = e / kChunkCols, col = e % kChunkCols, n = c0 + col;
        if (n >= nEff || g.slot[row] != w) continue;
        float sum = 0.0f;
#pragma unroll
        for (int wi = 0; wi < kShrinkWarps; ++wi) sum += red[wi][row][col];
        out[static_cast<size_t>(p0 + row) * uStride + n] = sum;
      }
      __syncthreads();
    }
  }
}

template <typename T, bool kVec>
__global__ void __launch_bounds__(kExpandThreads) smallExpandKernel(
    const uint16_t* __restrict__ b, size_t bSlotStride, int R, Slices slices, const int32_t* __restrict__ segIndptr,
    const int32_t* __restrict__ weightIndices, const int32_t* __restrict__ permutation, const int32_t* __restrict__ slotRanks,
    int maxSegments, int numTokens, const float* __restrict__ partials, int splits, int uStride, T* __restrict__ y,
    int yStride, int yOffset) {
  const int j = blockIdx.y, offset = sliceOffset(slices, j), width = sliceOffset(slices, j + 1) - offset;
  const int n0 = blockIdx.x * kExpandBN;
  // Every block, even one with nothing to do, waits for the shrink before it exits: then this grid's completion
  // implies the shrink's, which is what the launches after it on the stream rely on.
  if (n0 >= width) {
    asm volatile("griddepcontrol.wait;\n" ::: "memory");
    return;
  }
  __shared__ GroupRows g;
  __shared__ float sU[kGroupRows][kSmallStepMaxRank + 1];         // this slice's U columns [0, r) per row
  __shared__ __align__(16) float sB[kSmallStepMaxRank][kExpandLdb];  // B tile of one run, k-major
  const int p0 = blockIdx.z * kGroupRows;
  loadGroup(segIndptr, weightIndices, permutation, slotRanks, maxSegments, numTokens, p0, g);
  if (g.numRuns == 0) {
    asm volatile("griddepcontrol.wait;\n" ::: "memory");
    return;
  }

  // Thread items: 8 consecutive columns (vector v) of rows qa and qa + 8.
  const int v = threadIdx.x % 16, qa = threadIdx.x / 16;
  const int col = n0 + v * 8;  // within the slice
  T* yRow[2];
  uint4 yOld[2] = {make_uint4(0u, 0u, 0u, 0u), make_uint4(0u, 0u, 0u, 0u)};
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int q = qa + 8 * h;
    yRow[h] = g.slot[q] >= 0 && col < width ? y + static_cast<size_t>(g.phys[q]) * yStride + yOffset + offset + col : nullptr;
    if constexpr (kVec)  // issued before the partial sums: the y round trip overlaps them
      if (yRow[h] != nullptr) yOld[h] = *reinterpret_cast<const uint4*>(yRow[h]);
  }

  // B tile of one run in shared memory (fp32, k-major): columns [n0, n0 + 128) of the slice, k < r.
  auto fillB = [&](int run) {
    const int w = g.runSlot[run], r = g.runRank[run];
    const uint16_t* bTile = b + static_cast<size_t>(w) * bSlotStride + static_cast<size_t>(offset + n0) * R;
    if (kVec && r % 8 == 0) {  // one 16-byte load = 8 k of one column
      for (int e = threadIdx.x; e < (r / 8) * kExpandBN; e += kExpandThreads) {
        const int c = e % kExpandBN, kc = (e / kExpandBN) * 8;
        uint4 raw = make_uint4(0u, 0u, 0u, 0u);
        if (n0 + c < width) raw = __ldg(reinterpret_cast<const uint4*>(bTile + static_cast<size_t>(c) * R + kc));
        const T* vals = reinterpret_cast<const T*>(&raw);
#pragma unroll
        for (int i = 0; i < 8; ++i) sB[kc + i][c] = Convert<T>::toFloat(vals[i]);
      }
    } else {
      for (int e = threadIdx.x; e < r * kExpandBN; e += kExpandThreads) {
        const int c = e % kExpandBN, k = e / kExpandBN;
        sB[k][c] = n0 + c < width ? Convert<T>::toFloat(reinterpret_cast<const T*>(bTile)[static_cast<size_t>(c) * R + k]) : 0.0f;
      }
    }
  };
  float acc[2][8];
#pragma unroll
  for (int h = 0; h < 2; ++h)
#pragma unroll
    for (int i = 0; i < 8; ++i) acc[h][i] = 0.0f;
  auto addRun = [&](int run) {
    const int w = g.runSlot[run], r = g.runRank[run];
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int q = qa + 8 * h;
      if (g.slot[q] != w) continue;
      for (int k = 0; k < r; ++k) {
        const float u = sU[q][k];
        const float4 b0 = *reinterpret_cast<const float4*>(&sB[k][v * 8]);
        const float4 b1 = *reinterpret_cast<const float4*>(&sB[k][v * 8 + 4]);
        acc[h][0] += u * b0.x; acc[h][1] += u * b0.y; acc[h][2] += u * b0.z; acc[h][3] += u * b0.w;
        acc[h][4] += u * b1.x; acc[h][5] += u * b1.y; acc[h][6] += u * b1.z; acc[h][7] += u * b1.w;
      }
    }
  };
  fillB(0);  // weights and y do not depend on the shrink: loaded before waiting for it

  // Launched as a programmatic dependent of the shrink (loraExpandSmall), everything above overlaps the shrink's
  // tail; the partials are read only after the shrink grid has completed and flushed. (No-op without PDL.)
  asm volatile("griddepcontrol.wait;\n" ::: "memory");
  const size_t splitStride = static_cast<size_t>(numTokens) * uStride;
  for (int e = threadIdx.x; e < kGroupRows * R; e += kExpandThreads) {
    const int q = e / R, k = e % R, r = g.rank[q];
    float sum = 0.0f;
    if (g.slot[q] >= 0 && k < r) {
      const float* src = partials + static_cast<size_t>(p0 + q) * uStride + j * r + k;
      int s = 0;
      for (; s + 8 <= splits; s += 8) {
        float part[8];
#pragma unroll
        for (int i = 0; i < 8; ++i) part[i] = __ldcg(src + (s + i) * splitStride);
#pragma unroll
        for (int i = 0; i < 8; ++i) sum += part[i];
      }
      for (; s < splits; ++s) sum += __ldcg(src + s * splitStride);
    }
    sU[q][k] = sum;
  }
  __syncthreads();  // sU and the first B tile complete
  addRun(0);
  for (int run = 1; run < g.numRuns; ++run) {
    __syncthreads();  // the previous tile consumed
    fillB(run);
    __syncthreads();
    addRun(run);
  }

#pragma unroll
  for (int h = 0; h < 2; ++h) {
    if (yRow[h] == nullptr) continue;
    if constexpr (kVec) {  // width is a multiple of 8 here: the vector is all in
      T* vals = reinterpret_cast<T*>(&yOld[h]);
#pragma unroll
      for (int i = 0; i < 8; ++i) vals[i] = Convert<T>::fromFloat(Convert<T>::toFloat(vals[i]) + acc[h][i]);
      *reinterpret_cast<uint4*>(yRow[h]) = yOld[h];
    } else {
#pragma unroll
      for (int i = 0; i < 8; ++i)
        if (col + i < width) yRow[h][i] = Convert<T>::fromFloat(Convert<T>::toFloat(yRow[h][i]) + acc[h][i]);
    }
  }
}

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

int groupsOf(const DeviceStep& step) { return (step.numTokens + kGroupRows - 1) / kGroupRows; }

}  // namespace

int loraSmallStepSplits(const DeviceModule& module, const DeviceStep& step, int numMultiprocessors) {
  if (step.numTokens < 1 || step.numTokens > kSmallStepMaxTokens || step.maxSegments < 1) return 0;
  if (module.maxRank < 1 || module.maxRank > kSmallStepMaxRank || module.numSlices < 1 || module.numSlices > 3 || module.in < 1)
    return 0;
  const int groups = groupsOf(step);
  const int wanted = std::max(1, (numMultiprocessors + groups - 1) / groups);  // about one block per multiprocessor
  const int maxByK = std::max(1, (module.in + kMinKPerSplit - 1) / kMinKPerSplit);
  return std::max(1, std::min({wanted, maxByK, kMaxSplits}));
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
  const int c = module.numSlices, R = module.maxRank;
  const int perSplit = (module.in + kSplits - 1) / kSplits;
  const int kPerSplit = (perSplit + kStepK - 1) / kStepK * kStepK;
  const dim3 grid(kSplits, groupsOf(step));
  const bool vec = module.in % 8 == 0 && xStride % 8 == 0 && aligned16(x) && aligned16(module.a);
  const auto* a = static_cast<const uint16_t*>(module.a);
  const auto* xs = static_cast<const uint16_t*>(x);
  auto* partials = static_cast<float*>(workspace);
  const size_t aSlotStride = static_cast<size_t>(c) * R * module.in;
  auto launch = [&](auto kernel) {
    kernel<<<grid, kShrinkThreads, 0, stream>>>(a, module.in, aSlotStride, c, step.segIndptr, step.weightIndices, step.permutation,
                                                step.slotRanks, step.maxSegments, step.numTokens, xs, xStride, partials, c * R,
                                                kPerSplit);
  };
  if (dtype == ActDType::BF16) {
    if (vec) launch(smallShrinkKernel<__nv_bfloat16, true>);
    else launch(smallShrinkKernel<__nv_bfloat16, false>);
  } else {
    if (vec) launch(smallShrinkKernel<__half, true>);
    else launch(smallShrinkKernel<__half, false>);
  }
  return cudaGetLastError();
}

cudaError_t loraExpandSmall(ActDType dtype, const DeviceModule& module, const DeviceStep& step, const void* workspace,
                            int kSplits, void* y, int yStride, int yOffset, cudaStream_t stream, bool overlapShrink) {
  if (step.maxSegments <= 0 || step.numTokens <= 0) return cudaSuccess;
  if (module.numSlices < 1 || module.numSlices > 3 || module.maxRank < 1 || module.maxRank > kSmallStepMaxRank ||
      step.numTokens > kSmallStepMaxTokens || kSplits < 1)
    return cudaErrorInvalidValue;
  const int c = module.numSlices, R = module.maxRank;
  Slices slices{};
  int widest = 0;
  bool vec = R % 8 == 0 && yStride % 8 == 0 && yOffset % 8 == 0 && aligned16(module.b) && aligned16(y);
  for (int j = 0; j <= c; ++j) {
    slices.offsets[j] = module.sliceOffsets[j];
    vec = vec && slices.offsets[j] % 8 == 0;
  }
  for (int j = 0; j < c; ++j) widest = std::max(widest, slices.offsets[j + 1] - slices.offsets[j]);
  if (widest <= 0) return cudaSuccess;
  const dim3 grid((widest + kExpandBN - 1) / kExpandBN, c, groupsOf(step));
  const auto* b = static_cast<const uint16_t*>(module.b);
  const auto* partials = static_cast<const float*>(workspace);
  const size_t bSlotStride = static_cast<size_t>(module.outTotal()) * R;
  auto launch = [&](auto kernel, auto* yTyped) {
    cudaLaunchAttribute attribute[1];
    attribute[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attribute[0].val.programmaticStreamSerializationAllowed = 1;
    cudaLaunchConfig_t config = {};
    config.gridDim = grid;
    config.blockDim = dim3(kExpandThreads);
    config.dynamicSmemBytes = 0;
    config.stream = stream;
    config.attrs = attribute;
    config.numAttrs = overlapShrink ? 1 : 0;
    auto go = [&] {
      return cudaLaunchKernelEx(&config, kernel, b, bSlotStride, R, slices, step.segIndptr, step.weightIndices, step.permutation,
                                step.slotRanks, step.maxSegments, step.numTokens, partials, kSplits, c * R, yTyped, yStride, yOffset);
    };
    cudaError_t status = go();
    if (status != cudaSuccess && config.numAttrs > 0) {  // PDL refused (e.g. an old driver): a plain launch is as correct
      cudaGetLastError();
      config.numAttrs = 0;
      status = go();
    }
    return status;
  };
  if (dtype == ActDType::BF16) {
    auto* yt = static_cast<__nv_bfloat16*>(y);
    return vec ? launch(smallExpandKernel<__nv_bfloat16, true>, yt) : launch(smallExpandKernel<__nv_bfloat16, false>, yt);
  }
  auto* yt = static_cast<__half*>(y);
  return vec ? launch(smallExpandKernel<__half, true>, yt) : launch(smallExpandKernel<__half, false>, yt);
}

}  // namespace tslora::cuda::lora
