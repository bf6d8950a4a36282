// The wide tiled shrink (prefill; v10 and v13 of bench/lora/README.md; on by default with the m64k64 tile since session 23,
// which measured it faster than v5 on an H100; session 14's w8 tile was slower): U = X·Aᵀ
// for one (layer, module) where a segment's row tiles are long (maxSegmentRows > 32). The v5 shrink (lora_shrink.cu) ran 64 × 64 tiles with 4 WMMA warps and
// moved ~3 TB/s between L2 and the SMs for 1.5-2 TB/s of DRAM bytes (prefill 8 × 512 r64: 191 µs for the three
// shrinks against a 72 µs bytes floor on an H100). Here a block takes 128 (or 64) rows × up to NC × 64 U columns
// (all c·r = 192 columns of a qkv slot at r64): x is read once per column block instead of once per 64 columns, and A
// once per 128 rows instead of 64. 8 warps of mma.m16n8k16 with ldmatrix fragments from a cp.async pipeline; the
// block tiles (lora_shrink_wide_tiles.h) differ in the warps' layout, the K per stage and the rows per block. Split-K
// as in v5 (each split writes its partial; the last block of a tile sums them in split order: deterministic), or with
// `cluster` (opt-in) inside a thread-block cluster of the splits (lora_split_sum.cuh clusterSumSplits: the same sums).
// A programmatic dependent launch like every LoRA kernel: tables and the prologue's A stages before pdlWait, x and
// the workspace after it. Needs the 16-byte paths (in, xStride multiples of 8, aligned x / A): lora_shrink.cu keeps
// the v5 kernel for everything else. The host emulator (test/emu/tiled-prepare.mjs) rewrites this file.
#pragma once
#include "lora_kernels.cuh"
#include "lora_launch.cuh"
#include "lora_shrink_wide_tiles.h"
#include "lora_split_sum.cuh"
#include "lora_tile.cuh"
#include "mma16816.cuh"

namespace tslora::cuda::lora::wide {

// ldmatrix.x4: lane l gives the shared address of row l % 8 of 8 × 8 matrix l / 8 (16 bytes); r[i] = matrix i's
// elements (l / 4, 2 (l % 4) .. +1) of this lane, the mma fragment layout.
__device__ __forceinline__ void ldmatrixX4(const void* rowAddress, uint32_t& r0, uint32_t& r1, uint32_t& r2, uint32_t& r3) {
  const unsigned address = static_cast<unsigned>(__cvta_generic_to_shared(rowAddress));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
               : "r"(address));
}

template <typename T, int NC, WideTile Tile, bool Cluster>
__global__ void __launch_bounds__(kThreads, (wideMinBlocks<Tile, NC>())) shrinkWideKernel(
    const T* __restrict__ a, int in, size_t aSlotStride, int numSlices, const int32_t* __restrict__ segIndptr,
    const int32_t* __restrict__ weightIndices, const int32_t* __restrict__ permutation, const int32_t* __restrict__ slotRanks,
    int tilesPerSegment, int numTokens, const T* __restrict__ x, int xStride, float* __restrict__ u,
    float* __restrict__ partials, int* __restrict__ counters, int uStride, int kPerSplit, int clusterSplits) {
  using S = TileShape<Tile, NC>;
  constexpr int kBM = S::kBM, kBK = S::kBK, kLd = S::kLd, kBN = S::kBN, kStages = S::kStages;
  pdlLaunchDependents();
  detail::RowTile t;
  const bool work = detail::rowTileOf(segIndptr, weightIndices, slotRanks, blockIdx.z, tilesPerSegment, kBM, t);
  const int nEff = work ? numSlices * t.rank : 0;  // rank-aware: only c*r columns exist for this slot
  // Grid (column blocks, splits, tiles), or with Cluster (column blocks × splits, 1, tiles) in clusters of the splits.
  const int columnBlock = Cluster ? blockIdx.x / clusterSplits : blockIdx.x;
  const int split = Cluster ? blockIdx.x % clusterSplits : blockIdx.y;
  const int n0 = columnBlock * kBN;
  if (n0 >= nEff) {  // a cluster's blocks share the tile and the column block: all of them leave here or none
    pdlWait();  // every block waits (pdl.h rule 2)
    return;
  }
  const int k0 = split * kPerSplit, k1 = min(in, k0 + kPerSplit);
  const int rows = t.end - t.begin;

  constexpr int kStageElems = S::kStageElems;
  extern __shared__ __align__(128) unsigned char smem[];  // TileShape<Tile, NC>::kBytes
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

  // The warp's tile: rows mBase .. + kWarpRows, U columns nBase .. + kWarpCols of the block's kBN.
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int mBase = (warp / S::kWarpsN) * S::kWarpRows, nBase = (warp % S::kWarpsN) * S::kWarpCols;
  const bool warpActive = mBase < rows && n0 + nBase < nEff;  // warps wholly below the segment's end or beyond the rank skip
  float acc[S::kMTiles][2 * S::kPairs][4];
#pragma unroll
  for (int mt = 0; mt < S::kMTiles; ++mt)
#pragma unroll
    for (int nt = 0; nt < 2 * S::kPairs; ++nt)
#pragma unroll
      for (int q = 0; q < 4; ++q) acc[mt][nt][q] = 0.0f;

  const int numK = k1 > k0 ? (k1 - k0 + kBK - 1) / kBK : 0;
  // The A halves of the first stages before pdlWait, the x halves after it.
  detail::pipelinePrologue<kStages>(numK, [&](int st) { loadStageA(st, k0 + st * kBK); }, [&](int st) { loadStageX(st, k0 + st * kBK); });
  // Lane roles in ldmatrix: x rows mBase + 16 mt + lane % 16 at k + 8·(lane / 16); A rows (column n of U) nBase + 16p +
  // 8·(lane / 16) + lane % 8 at k + 8·((lane / 8) % 2), so r0, r1 = b0, b1 of n tile 2p and r2, r3 those of n tile 2p + 1.
  const int xRow = mBase + lane % 16, xCol = (lane / 16) * 8;
  const int aRow = nBase + (lane / 16) * 8 + lane % 8, aCol = ((lane / 8) % 2) * 8;
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
        uint32_t xf[S::kMTiles][4];
#pragma unroll
        for (int mt = 0; mt < S::kMTiles; ++mt)
          ldmatrixX4(xs + (xRow + 16 * mt) * kLd + kk + xCol, xf[mt][0], xf[mt][1], xf[mt][2], xf[mt][3]);
        if constexpr (S::kFragsFirst) {  // every B fragment of the step first, each in its own registers; no rank branch
          uint32_t bf[S::kPairs][4];
#pragma unroll
          for (int p = 0; p < S::kPairs; ++p)
            ldmatrixX4(as + (aRow + p * 16) * kLd + kk + aCol, bf[p][0], bf[p][1], bf[p][2], bf[p][3]);
#pragma unroll
          for (int p = 0; p < S::kPairs; ++p)
#pragma unroll
            for (int mt = 0; mt < S::kMTiles; ++mt) {
              mma16816<T>(acc[mt][2 * p], xf[mt][0], xf[mt][1], xf[mt][2], xf[mt][3], bf[p][0], bf[p][1]);
              mma16816<T>(acc[mt][2 * p + 1], xf[mt][0], xf[mt][1], xf[mt][2], xf[mt][3], bf[p][2], bf[p][3]);
            }
        } else {
#pragma unroll
          for (int p = 0; p < S::kPairs; ++p) {
            if (n0 + nBase + p * 16 >= nEff) continue;  // uniform: rank-aware columns
            uint32_t b0, b1, b2, b3;
            ldmatrixX4(as + (aRow + p * 16) * kLd + kk + aCol, b0, b1, b2, b3);
#pragma unroll
            for (int mt = 0; mt < S::kMTiles; ++mt) {
              mma16816<T>(acc[mt][2 * p], xf[mt][0], xf[mt][1], xf[mt][2], xf[mt][3], b0, b1);
              mma16816<T>(acc[mt][2 * p + 1], xf[mt][0], xf[mt][1], xf[mt][2], xf[mt][3], b2, b3);
            }
          }
        }
      }
    }
    __syncthreads();
  }
  detail::copyAsyncWait<0>();

  // Every accumulator pair of this lane: row m of the block's tile, column n of its kBN, the values of n and n + 1.
  const int g = lane / 4, tq = lane % 4;
  auto forEachPair = [&](auto&& f) {
#pragma unroll
    for (int mt = 0; mt < S::kMTiles; ++mt)
#pragma unroll
      for (int half = 0; half < 2; ++half)
#pragma unroll
        for (int nt = 0; nt < 2 * S::kPairs; ++nt)
          f(mBase + 16 * mt + g + half * 8, nBase + nt * 8 + 2 * tq, acc[mt][nt][2 * half], acc[mt][nt][2 * half + 1]);
  };
  if constexpr (Cluster) {  // the partial tile into this block's shared memory, summed across the cluster
    constexpr int kTileLd = kBN + 4;
    static_assert(kBM * kTileLd * 4 <= S::kBytes, "the partial tile fits the stage buffers");
    __syncthreads();  // every warp is done with the stages
    float* tile = reinterpret_cast<float*>(smem);
    if (warpActive)
      forEachPair([&](int m, int n, float v0, float v1) { *reinterpret_cast<float2*>(tile + m * kTileLd + n) = make_float2(v0, v1); });
    // Inactive warps' rows and columns are never read: rows >= rows and columns >= nEff are skipped by the sum.
    detail::clusterSumSplits(tile, kTileLd, u, uStride, rowOf, rows, n0, kBN, nEff);
    return;
  }
  // Fragments straight to U (one split) or this split's partial.
  float* dst = gridDim.y == 1 ? u : partials + static_cast<size_t>(split) * numTokens * uStride;
  if (warpActive)
    forEachPair([&](int m, int n, float v0, float v1) {
      if (m >= rows) return;
      float* row = dst + static_cast<size_t>(rowOf[m]) * uStride + n0;
      if (n0 + n < nEff) row[n] = v0;
      if (n0 + n + 1 < nEff) row[n + 1] = v1;
    });
  if (gridDim.y == 1) return;
  int* ticket = counters + blockIdx.z * gridDim.x + blockIdx.x;
  if (!detail::lastSplitArrived(ticket, static_cast<int>(gridDim.y))) return;
  detail::sumSplitPartials(partials, u, numTokens, uStride, static_cast<int>(gridDim.y), rowOf, rows, n0, kBN, nEff, ticket);
}


// Whether the device can run clusters of `size` blocks of `kernel` with smemBytes each (cached per instantiation and
// size; the host emulator runs any cluster).
template <typename Kernel>
bool clustersFit(Kernel kernel, int size, dim3 grid, int smemBytes) {
  static signed char known[kMaxClusterSplits + 1] = {};  // 0 unknown, 1 yes, -1 no
  if (size < 2 || size > kMaxClusterSplits) return false;
  if (known[size] == 0) {
    cudaLaunchAttribute cluster[1];
    cluster[0].id = cudaLaunchAttributeClusterDimension;
    cluster[0].val.clusterDim.x = static_cast<unsigned>(size);
    cluster[0].val.clusterDim.y = 1;
    cluster[0].val.clusterDim.z = 1;
    cudaLaunchConfig_t config = {grid, dim3(kThreads), static_cast<size_t>(smemBytes), nullptr, cluster, 1};  // grid, block, smem, stream, attrs
    int clusters = 1;
    const cudaError_t status = cudaOccupancyMaxActiveClusters(&clusters, kernel, &config);
    if (status != cudaSuccess) cudaGetLastError();  // not left for the next launch's check
    known[size] = status == cudaSuccess && clusters > 0 ? 1 : -1;
  }
  return known[size] > 0;
}

// Launches the wide kernel (the caller has checked the 16-byte conditions and maxSegmentRows >= 64). The tickets:
// index blockIdx.z * gridDim.x + blockIdx.x, within the v5 layout's count (tiles of 64 rows or more, column blocks of
// 64 columns or more), so the workspace layout of lora_shrink.cu serves every tile. With `cluster`, kSplits > 1 runs
// as clusters of min(kSplits, 8) blocks (no partials, no tickets) where the device can run them, else as without.
template <typename T, int NC, WideTile Tile>
cudaError_t launchShrinkWide(const DeviceModule& module, const DeviceStep& step, const void* x, int xStride, float* u,
                             float* partials, int* counters, int kSplits, cudaStream_t stream, bool cluster) {
  using S = TileShape<Tile, NC>;
  const int c = module.numSlices, R = module.maxRank, uStride = c * R;
  const int tilesPerSegment = (step.maxSegmentRows + S::kBM - 1) / S::kBM;
  const long long gridZ = static_cast<long long>(step.maxSegments) * tilesPerSegment;
  if (gridZ > 65535 || kSplits < 1 || kSplits > 65535) return cudaErrorInvalidConfiguration;
  const int columnBlocks = (uStride + S::kBN - 1) / S::kBN;
  constexpr int kSmem = S::kBytes;
  auto launch = [&](auto kernel, int splits, dim3 grid, unsigned clusterX) -> cudaError_t {
    const cudaError_t attribute = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmem);
    if (attribute != cudaSuccess) return attribute;
    const int perSplit = (module.in + splits - 1) / splits;
    const int kPerSplit = (perSplit + S::kBK - 1) / S::kBK * S::kBK;
    LaunchExtras extras;
    extras.clusterX = clusterX;
    return loraLaunch(extras, kernel, grid, dim3(kThreads), kSmem, stream, static_cast<const T*>(module.a), module.in,
                      static_cast<size_t>(c) * R * module.in, c, step.segIndptr, step.weightIndices, step.permutation, step.slotRanks,
                      tilesPerSegment, step.numTokens, static_cast<const T*>(x), xStride, u, partials, counters, uStride, kPerSplit,
                      static_cast<int>(clusterX));
  };
  if (cluster && kSplits > 1) {
    const int splits = kSplits < kMaxClusterSplits ? kSplits : kMaxClusterSplits;
    const dim3 grid(static_cast<unsigned>(columnBlocks * splits), 1, static_cast<unsigned>(gridZ));
    auto kernel = shrinkWideKernel<T, NC, Tile, true>;
    // The occupancy query needs the kernel's shared-memory limit raised first.
    const cudaError_t attribute = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmem);
    if (attribute != cudaSuccess) return attribute;
    if (clustersFit(kernel, splits, grid, kSmem)) return launch(kernel, splits, grid, static_cast<unsigned>(splits));
  }
  return launch(shrinkWideKernel<T, NC, Tile, false>, kSplits, dim3(columnBlocks, kSplits, static_cast<unsigned>(gridZ)), 0u);
}

template <typename T, WideTile Tile>
cudaError_t shrinkWideTile(const DeviceModule& module, const DeviceStep& step, const void* x, int xStride, float* u, float* partials,
                           int* counters, int kSplits, cudaStream_t stream, bool cluster) {
  switch (wideChunks(module)) {
    case 1: return launchShrinkWide<T, 1, Tile>(module, step, x, xStride, u, partials, counters, kSplits, stream, cluster);
    case 2: return launchShrinkWide<T, 2, Tile>(module, step, x, xStride, u, partials, counters, kSplits, stream, cluster);
    default: return launchShrinkWide<T, 3, Tile>(module, step, x, xStride, u, partials, counters, kSplits, stream, cluster);
  }
}

// The wide shrink with block tile `tile`; cluster: the cluster split-K (clusterSumSplits) instead of global partials.
template <typename T>
cudaError_t shrinkWide(const DeviceModule& module, const DeviceStep& step, const void* x, int xStride, float* u, float* partials,
                       int* counters, int kSplits, cudaStream_t stream, WideTile tile = WideTile::W8, bool cluster = false) {
  switch (tile) {
    case WideTile::M128K32: return shrinkWideTile<T, WideTile::M128K32>(module, step, x, xStride, u, partials, counters, kSplits, stream, cluster);
    case WideTile::M128K64: return shrinkWideTile<T, WideTile::M128K64>(module, step, x, xStride, u, partials, counters, kSplits, stream, cluster);
    case WideTile::M64K64: return shrinkWideTile<T, WideTile::M64K64>(module, step, x, xStride, u, partials, counters, kSplits, stream, cluster);
    case WideTile::M64K64F: return shrinkWideTile<T, WideTile::M64K64F>(module, step, x, xStride, u, partials, counters, kSplits, stream, cluster);
    default: return shrinkWideTile<T, WideTile::W8>(module, step, x, xStride, u, partials, counters, kSplits, stream, cluster);
  }
}

}  // namespace tslora::cuda::lora::wide
