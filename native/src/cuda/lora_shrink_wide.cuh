// The wide tiled shrink (prefill; v10 of bench/lora/README.md; opt-in: measured slower than v5 on an H100): U = X·Aᵀ
// for one (layer, module) where a segment's row tiles are long (maxSegmentRows > 32). The v5 shrink (lora_shrink.cu) ran 64 × 64 tiles with 4 WMMA warps and
// moved ~3 TB/s between L2 and the SMs for 1.5-2 TB/s of DRAM bytes (prefill 8 × 512 r64: 191 µs for the three
// shrinks against a 72 µs bytes floor on an H100). Here a block takes 128 rows × up to NC × 64 U columns (all
// c·r = 192 columns of a qkv slot at r64): x is read once per column block instead of once per 64 columns, and A
// once per 128 rows instead of 64. 8 warps, each owns 16 rows × NC·64 columns (mma.m16n8k16 with ldmatrix
// fragments from a 4-stage cp.async pipeline of 32-K steps, 80-byte shared rows: conflict-free ldmatrix). Split-K
// as in v5 (each split writes its partial; the last block of a tile sums them in split order: deterministic).
// A programmatic dependent launch like every LoRA kernel: tables and the prologue's A stages before pdlWait, x and
// the workspace after it. Needs the 16-byte paths (in, xStride multiples of 8, aligned x / A): lora_shrink.cu keeps
// the v5 kernel for everything else. The host emulator (test/emu/tiled-prepare.mjs) rewrites this file.
#pragma once
#include "lora_kernels.cuh"
#include "lora_launch.cuh"
#include "lora_split_sum.cuh"
#include "lora_tile.cuh"
#include "mma16816.cuh"

namespace tslora::cuda::lora::wide {

constexpr int kThreads = 256;  // 8 warps × 16 rows
constexpr int kBM = 128;
constexpr int kChunk = 64;  // U columns per chunk; a block owns NC chunks
constexpr int kBK = 32;     // K per pipeline stage
constexpr int kLd = kBK + 8;
constexpr int kStages = 4;
constexpr int kMaxChunks = 3;

template <typename T, int NC>
struct WideSmem {
  static constexpr int kStageElems = (kBM + NC * kChunk) * kLd;  // x rows, then A rows
  static constexpr int kBytes = kStages * kStageElems * static_cast<int>(sizeof(T));
};

// ldmatrix.x4: lane l gives the shared address of row l % 8 of 8 × 8 matrix l / 8 (16 bytes); r[i] = matrix i's
// elements (l / 4, 2 (l % 4) .. +1) of this lane, the mma fragment layout.
__device__ __forceinline__ void ldmatrixX4(const void* rowAddress, uint32_t& r0, uint32_t& r1, uint32_t& r2, uint32_t& r3) {
  const unsigned address = static_cast<unsigned>(__cvta_generic_to_shared(rowAddress));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
               : "r"(address));
}

template <typename T, int NC>
__global__ void __launch_bounds__(kThreads, NC == 1 ? 3 : 2) shrinkWideKernel(
    const T* __restrict__ a, int in, size_t aSlotStride, int numSlices, const int32_t* __restrict__ segIndptr,
    const int32_t* __restrict__ weightIndices, const int32_t* __restrict__ permutation, const int32_t* __restrict__ slotRanks,
    int tilesPerSegment, int numTokens, const T* __restrict__ x, int xStride, float* __restrict__ u,
    float* __restrict__ partials, int* __restrict__ counters, int uStride, int kPerSplit) {
  pdlLaunchDependents();
  detail::RowTile t;
  const bool work = detail::rowTileOf(segIndptr, weightIndices, slotRanks, blockIdx.z, tilesPerSegment, kBM, t);
  const int nEff = work ? numSlices * t.rank : 0;  // rank-aware: only c*r columns exist for this slot
  constexpr int kBN = NC * kChunk;
  const int n0 = blockIdx.x * kBN;
  if (n0 >= nEff) {
    pdlWait();  // every block waits (pdl.h rule 2)
    return;
  }
  const int k0 = blockIdx.y * kPerSplit, k1 = min(in, k0 + kPerSplit);
  const int rows = t.end - t.begin;

  constexpr int kStageElems = WideSmem<T, NC>::kStageElems;
  extern __shared__ __align__(128) unsigned char smem[];  // WideSmem<T, NC>::kBytes
  T* stages = reinterpret_cast<T*>(smem);
  __shared__ int rowOf[kBM];
  for (int m = threadIdx.x; m < kBM; m += kThreads) rowOf[m] = m < rows ? detail::physicalRow(permutation, t.begin + m) : -1;
  __syncthreads();

  const T* aSlot = a + static_cast<size_t>(t.slot) * aSlotStride;
  // 16-byte chunks (k1 and every chunk start are multiples of 8: a chunk is all in or all out); zeros outside.
  auto loadStageA = [&](int buffer, int kBase) {
    T* as = stages + buffer * kStageElems + kBM * kLd;
#pragma unroll
    for (int i = 0; i < kBN * (kBK / 8) / kThreads; ++i) {
      const int v = threadIdx.x + i * kThreads, n = v / (kBK / 8), kk = (v % (kBK / 8)) * 8, k = kBase + kk;
      const bool ok = n0 + n < nEff && k < k1;
      detail::copyAsync16(as + n * kLd + kk, ok ? aSlot + static_cast<size_t>(n0 + n) * in + k : aSlot, ok);
    }
  };
  auto loadStageX = [&](int buffer, int kBase) {
    T* xs = stages + buffer * kStageElems;
#pragma unroll
    for (int i = 0; i < kBM * (kBK / 8) / kThreads; ++i) {
      const int v = threadIdx.x + i * kThreads, m = v / (kBK / 8), kk = (v % (kBK / 8)) * 8, k = kBase + kk, p = rowOf[m];
      const bool ok = p >= 0 && k < k1;
      detail::copyAsync16(xs + m * kLd + kk, ok ? x + static_cast<size_t>(p) * xStride + k : x, ok);
    }
  };

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const bool warpActive = warp * 16 < rows;  // warps wholly below the segment's end skip the MMAs
  float acc[NC][8][4];
#pragma unroll
  for (int c = 0; c < NC; ++c)
#pragma unroll
    for (int nt = 0; nt < 8; ++nt)
#pragma unroll
      for (int q = 0; q < 4; ++q) acc[c][nt][q] = 0.0f;

  const int numK = k1 > k0 ? (k1 - k0 + kBK - 1) / kBK : 0;
  // The A halves of the first stages before pdlWait, the x halves after it.
  detail::pipelinePrologue<kStages>(numK, [&](int st) { loadStageA(st, k0 + st * kBK); }, [&](int st) { loadStageX(st, k0 + st * kBK); });
  // Lane roles in ldmatrix: x rows 16·warp + lane % 16 at k + 8·(lane / 16); A rows (column n of U) 16p + 8·(lane / 16)
  // + lane % 8 at k + 8·((lane / 8) % 2), so r0, r1 = b0, b1 of n tile 2p and r2, r3 those of n tile 2p + 1.
  const int xRow = warp * 16 + lane % 16, xCol = (lane / 16) * 8;
  const int aRow = (lane / 16) * 8 + lane % 8, aCol = ((lane / 8) % 2) * 8;
  for (int i = 0; i < numK; ++i) {
    const int ahead = i + kStages - 1;
    if (ahead < numK) {
      loadStageX(ahead % kStages, k0 + ahead * kBK);
      loadStageA(ahead % kStages, k0 + ahead * kBK);
    }
    detail::copyAsyncCommit();
    detail::copyAsyncWait<kStages - 1>();  // stage i has landed
    __syncthreads();
    if (warpActive) {
      const T* xs = stages + (i % kStages) * kStageElems;
      const T* as = xs + kBM * kLd;
#pragma unroll
      for (int kk = 0; kk < kBK; kk += 16) {
        uint32_t a0, a1, a2, a3;
        ldmatrixX4(xs + xRow * kLd + kk + xCol, a0, a1, a2, a3);
#pragma unroll
        for (int c = 0; c < NC; ++c)
#pragma unroll
          for (int p = 0; p < 4; ++p) {
            if (n0 + c * kChunk + p * 16 >= nEff) continue;  // uniform: rank-aware columns
            uint32_t b0, b1, b2, b3;
            ldmatrixX4(as + (c * kChunk + p * 16 + aRow) * kLd + kk + aCol, b0, b1, b2, b3);
            mma16816<T>(acc[c][2 * p], a0, a1, a2, a3, b0, b1);
            mma16816<T>(acc[c][2 * p + 1], a0, a1, a2, a3, b2, b3);
          }
      }
    }
    __syncthreads();
  }
  detail::copyAsyncWait<0>();

  // Fragments straight to U (one split) or this split's partial: rows 16·warp + g (+8), columns 2t, 2t + 1 of each tile.
  const int g = lane / 4, tq = lane % 4;
  float* dst = gridDim.y == 1 ? u : partials + static_cast<size_t>(blockIdx.y) * numTokens * uStride;
  if (warpActive)
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const int m = warp * 16 + g + half * 8;
      if (m >= rows) continue;
      float* row = dst + static_cast<size_t>(rowOf[m]) * uStride;
#pragma unroll
      for (int c = 0; c < NC; ++c)
#pragma unroll
        for (int nt = 0; nt < 8; ++nt) {
          const int n = n0 + c * kChunk + nt * 8 + 2 * tq;
          if (n < nEff) row[n] = acc[c][nt][2 * half];
          if (n + 1 < nEff) row[n + 1] = acc[c][nt][2 * half + 1];
        }
    }
  if (gridDim.y == 1) return;
  int* ticket = counters + blockIdx.z * gridDim.x + blockIdx.x;
  if (!detail::lastSplitArrived(ticket, static_cast<int>(gridDim.y))) return;
  detail::sumSplitPartials(partials, u, numTokens, uStride, static_cast<int>(gridDim.y), rowOf, rows, n0, kBN, nEff, ticket);
}

// Column chunks per block: all c·R columns up to kMaxChunks · 64 (wider pools take several column blocks).
inline int wideChunks(const DeviceModule& module) {
  const int chunks = (module.numSlices * module.maxRank + kChunk - 1) / kChunk;
  return chunks < kMaxChunks ? chunks : kMaxChunks;
}

// Launches the wide kernel (the caller has checked the 16-byte conditions and maxSegmentRows >= 64). The tickets:
// index blockIdx.z * gridDim.x + blockIdx.x, below the v5 layout's count (fewer, larger tiles), so the workspace
// layout of lora_shrink.cu serves both kernels.
template <typename T, int NC>
cudaError_t launchShrinkWide(const DeviceModule& module, const DeviceStep& step, const void* x, int xStride, float* u,
                             float* partials, int* counters, int kSplits, cudaStream_t stream) {
  const int c = module.numSlices, R = module.maxRank, uStride = c * R;
  const int tilesPerSegment = (step.maxSegmentRows + kBM - 1) / kBM;
  const long long gridZ = static_cast<long long>(step.maxSegments) * tilesPerSegment;
  if (gridZ > 65535 || kSplits < 1 || kSplits > 65535) return cudaErrorInvalidConfiguration;
  const int perSplit = (module.in + kSplits - 1) / kSplits;
  const int kPerSplit = (perSplit + kBK - 1) / kBK * kBK;
  const dim3 grid((uStride + NC * kChunk - 1) / (NC * kChunk), kSplits, static_cast<unsigned>(gridZ));
  constexpr int kSmem = WideSmem<T, NC>::kBytes;
  auto kernel = shrinkWideKernel<T, NC>;
  const cudaError_t attribute = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmem);
  if (attribute != cudaSuccess) return attribute;
  return loraLaunch(kernel, grid, dim3(kThreads), kSmem, stream, static_cast<const T*>(module.a), module.in,
                    static_cast<size_t>(c) * R * module.in, c, step.segIndptr, step.weightIndices, step.permutation, step.slotRanks,
                    tilesPerSegment, step.numTokens, static_cast<const T*>(x), xStride, u, partials, counters, uStride, kPerSplit);
}

template <typename T>
cudaError_t shrinkWide(const DeviceModule& module, const DeviceStep& step, const void* x, int xStride, float* u, float* partials,
                       int* counters, int kSplits, cudaStream_t stream) {
  switch (wideChunks(module)) {
    case 1: return launchShrinkWide<T, 1>(module, step, x, xStride, u, partials, counters, kSplits, stream);
    case 2: return launchShrinkWide<T, 2>(module, step, x, xStride, u, partials, counters, kSplits, stream);
    default: return launchShrinkWide<T, 3>(module, step, x, xStride, u, partials, counters, kSplits, stream);
  }
}

}  // namespace tslora::cuda::lora::wide
