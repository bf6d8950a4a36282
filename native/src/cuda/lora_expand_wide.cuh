// The wide tiled expand (prefill; v10 of bench/lora/README.md, on by default): Y[:, off_j:] += U_j·B_jᵀ for long row
// tiles (maxSegmentRows > 32). The v5 expand (lora_expand.cu) gives each 64-row × 128-column tile its own block, which reads
// its U and B tiles (as many bytes as its y tile) and only then issues its y loads: on an H100 the gate_up expand of
// prefill 8 × 512 r64 ran at 65 % of the bandwidth its 470 MB of y read-modify-write allows. Here a block owns a
// 128-row tile and a strip of 64-column sub-tiles that it walks through a 3-stage cp.async pipeline of (B sub-tile,
// y sub-tile): the y of the next two sub-tiles is in flight while the current one is computed, U is read once per
// block and slice (kept as mma fragments in registers), B once per 128 rows. 8 warps, each 16 rows × 64 columns per
// sub-tile (mma.m16n8k16, B fragments by ldmatrix); the delta is added in fp32 to the y tile in shared memory
// (rounded once, as in v5: spec e.8) and the tile leaves with 16-byte stores.
// A programmatic dependent launch: tables and the prologue's B stages before pdlWait, U and y after it.
// Needs: R <= 64 and a multiple of 8, every slice offset a multiple of 64, 16-byte aligned y rows (yStride, yOffset
// multiples of 8, aligned pointers); lora_expand.cu keeps the v5 kernel for everything else. The host emulator
// (test/emu/tiled-prepare.mjs) rewrites this file.
// Store mode (Store = true, launchExpandWide(..., store)): Y[:, off_j:] = round(U_j·B_jᵀ), y is never read (the y
// half of each stage stays unloaded, the commit groups as they are). The engine's prefill can write the LoRA delta
// first and let the base GEMM add x·Wᵀ with beta = 1, so the expand writes y once instead of reading and writing it:
// half the expand's DRAM bytes. Tiles of base segments and rank-0 slots get zeros in the module's columns, so y holds
// exactly the delta wherever the module writes.
// Lean store (Lean = true, with Store; session 24, TSLORA_CUDA_LORA_STORE_LEAN, opt-in until a device run decides): the
// stages hold only B sub-tiles, and one y tile (128 × 64) serves as every warp's staging for the 16-byte stores (a
// warp only touches its own 16 rows of it, between two block barriers): 46 KB of shared memory instead of 83 at 3
// stages, and the kernel is built for 3 blocks per SM (≤ 80 registers) instead of 2, so more sub-tiles' stores are in
// flight per SM. Same sums and bits as the plain store form.
#pragma once
#include <algorithm>

#include "lora_kernels.cuh"
#include "lora_launch.cuh"
#include "lora_shrink_wide.cuh"  // ldmatrixX4
#include "lora_tile.cuh"
#include "mma16816.cuh"

namespace tslora::cuda::lora::wide {

constexpr int kExpandThreads = 256;  // 8 warps × 16 rows
constexpr int kExpandBM = 128;
constexpr int kSubCols = 64;  // columns per sub-tile
constexpr int kExpandMaxRank = 64;
constexpr int kLdB = kExpandMaxRank + 8;  // 144-byte rows: conflict-free ldmatrix
constexpr int kLdY = kSubCols + 8;        // 144-byte rows: conflict-free fragment-order adds
constexpr int kExpandStages = 3;  // default pipeline depth (4 fits too: 108 KB, still 2 blocks per SM)

template <typename T, int Stages = kExpandStages, bool Lean = false>
struct ExpandSmem {
  static constexpr int kBElems = kSubCols * kLdB;
  static constexpr int kYElems = kExpandBM * kLdY;
  // B sub-tile, then the y sub-tile; Lean: B sub-tiles only, and one y tile after the last stage (the store staging)
  static constexpr int kStageElems = Lean ? kBElems : kBElems + kYElems;
  static constexpr int kBytes = (Stages * kStageElems + (Lean ? kYElems : 0)) * static_cast<int>(sizeof(T));
};
// Blocks per SM a build of the kernel is made for (its __launch_bounds__ and its strips' default).
constexpr int expandMinBlocks(bool lean) { return lean ? 3 : 2; }

template <typename T>
__device__ __forceinline__ uint32_t packPair(float lo, float hi) {
  const T l = detail::Convert<T>::fromFloat(lo), h = detail::Convert<T>::fromFloat(hi);
  return static_cast<uint32_t>(*reinterpret_cast<const uint16_t*>(&l)) | (static_cast<uint32_t>(*reinterpret_cast<const uint16_t*>(&h)) << 16);
}

struct SliceTable {
  int offsets[4];
};
__device__ __forceinline__ int sliceOf(const SliceTable& s, int numSlices, int column) {
  return numSlices > 2 && column >= s.offsets[2] ? 2 : numSlices > 1 && column >= s.offsets[1] ? 1 : 0;
}

template <typename T, int Stages, bool Store = false, bool Lean = false>
__global__ void __launch_bounds__(kExpandThreads, expandMinBlocks(Lean)) expandWideKernel(
    const T* __restrict__ b, size_t bSlotStride, int R, SliceTable slices, int numSlices, const int32_t* __restrict__ segIndptr,
    const int32_t* __restrict__ weightIndices, const int32_t* __restrict__ permutation, const int32_t* __restrict__ slotRanks,
    int tilesPerSegment, int subPerStrip, int numSub, const float* __restrict__ u, int uStride, T* __restrict__ y, int yStride,
    int yOffset) {
  pdlLaunchDependents();
  detail::RowTile t;
  const bool work = detail::rowTileOf(segIndptr, weightIndices, slotRanks, blockIdx.z, tilesPerSegment, kExpandBM, t);
  const int sub0 = blockIdx.x * subPerStrip, subEnd = min(numSub, sub0 + subPerStrip);
  if (!work || sub0 >= subEnd) {
    pdlWait();  // every block waits (pdl.h rule 2)
    if (Store && t.begin < t.end && sub0 < subEnd) {
      // A base or rank-0 tile with rows (rowTileOf sets begin / end before it rejects): zeros in the strip's columns,
      // where the base GEMM will add x·Wᵀ. 16-byte stores, consecutive threads along a row.
      const int zeroRows = t.end - t.begin, chunksPerRow = (subEnd - sub0) * (kSubCols / 8);
      for (int v = threadIdx.x; v < zeroRows * chunksPerRow; v += kExpandThreads) {
        const int m = v / chunksPerRow, c8 = (v % chunksPerRow) * 8;
        *reinterpret_cast<uint4*>(y + static_cast<size_t>(detail::physicalRow(permutation, t.begin + m)) * yStride + yOffset +
                                  sub0 * kSubCols + c8) = make_uint4(0, 0, 0, 0);
      }
    }
    return;
  }
  const int r = t.rank, rows = t.end - t.begin, numLocal = subEnd - sub0;
  const int kSteps = (r + 15) / 16;  // K = r zero-padded to 16
  static_assert(Store || !Lean, "the lean layout is a store form: it has no y stages to read y into");

  using Smem = ExpandSmem<T, Stages, Lean>;
  constexpr int kStageElems = Smem::kStageElems;
  extern __shared__ __align__(128) unsigned char smem[];  // ExpandSmem<T, Stages>::kBytes
  T* stages = reinterpret_cast<T*>(smem);
  __shared__ int rowOf[kExpandBM];
  for (int m = threadIdx.x; m < kExpandBM; m += kExpandThreads) rowOf[m] = m < rows ? detail::physicalRow(permutation, t.begin + m) : -1;
  __syncthreads();

  const T* bSlot = b + static_cast<size_t>(t.slot) * bSlotStride;
  // B rows [n, n + 64) of the flat output, K chunks of 8 up to kSteps·16: whole chunks below r by cp.async, zeros
  // from r on (B beyond the slot's rank is stale), element-wise where a chunk straddles r.
  auto loadB = [&](int buffer, int local) {
    T* bs = stages + buffer * kStageElems;
    const int n = (sub0 + local) * kSubCols;
    const int chunksPerRow = kSteps * 2;
    for (int v = threadIdx.x; v < kSubCols * chunksPerRow; v += kExpandThreads) {
      const int i = v / chunksPerRow, kk = (v % chunksPerRow) * 8;
      const T* src = bSlot + static_cast<size_t>(n + i) * R + kk;
      if (kk + 8 <= r || kk >= r) {
        detail::copyAsync16(bs + i * kLdB + kk, kk + 8 <= r ? src : bSlot, kk + 8 <= r);
      } else {
        for (int e = 0; e < 8; ++e) bs[i * kLdB + kk + e] = kk + e < r ? src[e] : detail::Convert<T>::fromFloat(0.0f);
      }
    }
  };
  auto loadY = [&](int buffer, int local) {
    if constexpr (!Store) {  // store mode overwrites y, never reads it
      T* ys = stages + buffer * kStageElems + Smem::kBElems;
      const int n = (sub0 + local) * kSubCols;
#pragma unroll
      for (int q = 0; q < kExpandBM * (kSubCols / 8) / kExpandThreads; ++q) {
        const int v = threadIdx.x + q * kExpandThreads, m = v / (kSubCols / 8), c8 = (v % (kSubCols / 8)) * 8;
        const bool ok = m < rows;
        detail::copyAsync16(ys + m * kLdY + c8, ok ? y + static_cast<size_t>(rowOf[m]) * yStride + yOffset + n + c8 : y, ok);
      }
    }
  };

  // The B halves of the first sub-tiles before pdlWait, the y halves after it.
  detail::pipelinePrologue<Stages>(numLocal, [&](int st) { loadB(st, st); }, [&](int st) { loadY(st, st); });

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, tq = lane % 4;
  const bool warpActive = warp * 16 < rows;
  const int bRow = (lane / 16) * 8 + lane % 8, bCol = ((lane / 8) % 2) * 8;  // ldmatrix roles, as in the wide shrink
  uint32_t ua[kExpandMaxRank / 16][4];  // U fragments of this warp's rows for the current slice, rounded to T
  int uSlice = -1;
  for (int local = 0; local < numLocal; ++local) {
    const int ahead = local + Stages - 1;
    if (ahead < numLocal) {
      loadB(ahead % Stages, ahead);
      loadY(ahead % Stages, ahead);
    }
    detail::copyAsyncCommit();
    detail::copyAsyncWait<Stages - 1>();  // sub-tile `local` has landed
    __syncthreads();
    const int n = (sub0 + local) * kSubCols;
    const int j = sliceOf(slices, numSlices, n);
    if (warpActive && j != uSlice) {  // U rows g, g + 8 of the warp, columns j·r + k (k < r, else 0)
      uSlice = j;
      const int mA = warp * 16 + g, mB = mA + 8;
      const float* rowA = mA < rows ? u + static_cast<size_t>(rowOf[mA]) * uStride + j * r : nullptr;
      const float* rowB = mB < rows ? u + static_cast<size_t>(rowOf[mB]) * uStride + j * r : nullptr;
      auto at = [&](const float* row, int k) { return row != nullptr && k < r ? __ldcg(row + k) : 0.0f; };
#pragma unroll
      for (int ks = 0; ks < kExpandMaxRank / 16; ++ks) {
        const int k = ks * 16 + 2 * tq;
        ua[ks][0] = packPair<T>(at(rowA, k), at(rowA, k + 1));
        ua[ks][1] = packPair<T>(at(rowB, k), at(rowB, k + 1));
        ua[ks][2] = packPair<T>(at(rowA, k + 8), at(rowA, k + 9));
        ua[ks][3] = packPair<T>(at(rowB, k + 8), at(rowB, k + 9));
      }
    }
    if (warpActive) {
      const T* bs = stages + (local % Stages) * kStageElems;
      // Lean: the one staging tile after the stages (this warp's 16 rows of it; the iteration's barriers order reuse)
      T* ys = Lean ? stages + Stages * kStageElems : stages + (local % Stages) * kStageElems + Smem::kBElems;
      float acc[8][4];
#pragma unroll
      for (int nt = 0; nt < 8; ++nt)
#pragma unroll
        for (int q = 0; q < 4; ++q) acc[nt][q] = 0.0f;
#pragma unroll
      for (int ks = 0; ks < kExpandMaxRank / 16; ++ks) {
        if (ks >= kSteps) break;  // uniform
#pragma unroll
        for (int p = 0; p < 4; ++p) {
          uint32_t b0, b1, b2, b3;
          ldmatrixX4(bs + (p * 16 + bRow) * kLdB + ks * 16 + bCol, b0, b1, b2, b3);
          mma16816<T>(acc[2 * p], ua[ks][0], ua[ks][1], ua[ks][2], ua[ks][3], b0, b1);
          mma16816<T>(acc[2 * p + 1], ua[ks][0], ua[ks][1], ua[ks][2], ua[ks][3], b2, b3);
        }
      }
      // y += delta (Store: y = delta) in shared memory, in fragment order (rows g / g + 8, columns 2t, 2t + 1 of each
      // 8-column tile)
#pragma unroll
      for (int half = 0; half < 2; ++half) {
        const int m = warp * 16 + g + half * 8;
#pragma unroll
        for (int nt = 0; nt < 8; ++nt) {
          T* pair = ys + m * kLdY + nt * 8 + 2 * tq;
          const float lo = Store ? acc[nt][2 * half] : detail::Convert<T>::toFloat(pair[0]) + acc[nt][2 * half];
          const float hi = Store ? acc[nt][2 * half + 1] : detail::Convert<T>::toFloat(pair[1]) + acc[nt][2 * half + 1];
          pair[0] = detail::Convert<T>::fromFloat(lo);
          pair[1] = detail::Convert<T>::fromFloat(hi);
        }
      }
      __syncwarp();
      // the warp's 16 rows × 64 columns leave as 16-byte stores (rows beyond the segment are not stored)
#pragma unroll
      for (int q = 0; q < 16 * (kSubCols / 8) / 32; ++q) {
        const int e = lane + q * 32, m = warp * 16 + e / (kSubCols / 8), c8 = (e % (kSubCols / 8)) * 8;
        if (m < rows)
          *reinterpret_cast<uint4*>(y + static_cast<size_t>(rowOf[m]) * yStride + yOffset + n + c8) =
              *reinterpret_cast<const uint4*>(ys + m * kLdY + c8);
      }
    }
    __syncthreads();  // the stage is refilled by the next iteration's loads
  }
  detail::copyAsyncWait<0>();
}

// Whether the wide expand serves this module and call (16-byte and 64-column conditions; see the file comment).
inline bool expandWideApplies(const DeviceModule& module, const void* y, int yStride, int yOffset) {
  bool ok = module.maxRank <= kExpandMaxRank && module.maxRank % 8 == 0 && yStride % 8 == 0 && yOffset % 8 == 0 &&
            reinterpret_cast<uintptr_t>(y) % 16 == 0 && reinterpret_cast<uintptr_t>(module.b) % 16 == 0;
  for (int j = 0; j <= module.numSlices; ++j) ok = ok && module.sliceOffsets[j] % kSubCols == 0;
  return ok;
}

// Strips of sub-tiles per row tile: about blocksPerSm (2 fit: 83 KB of stages each; lean: 3) blocks per SM over the
// static tile count (whole waves), at least one. store: y = delta instead of y += delta (the file comment's store mode;
// same smem); lean (with store): the lean store layout. blocksPerSm <= 0: the build's own expandMinBlocks.
template <typename T, int Stages = kExpandStages>
cudaError_t launchExpandWide(const DeviceModule& module, const DeviceStep& step, const float* u, void* y, int yStride, int yOffset,
                             int numMultiprocessors, cudaStream_t stream, int blocksPerSm = 2, bool store = false, bool lean = false) {
  lean = lean && store;
  if (blocksPerSm <= 0) blocksPerSm = expandMinBlocks(lean);
  const int c = module.numSlices, R = module.maxRank;
  const int tilesPerSegment = (step.maxSegmentRows + kExpandBM - 1) / kExpandBM;
  const long long tiles = static_cast<long long>(step.maxSegments) * tilesPerSegment;
  if (tiles > 65535) return cudaErrorInvalidConfiguration;
  const int numSub = module.outTotal() / kSubCols;
  const long long wantedStrips = std::max(1LL, static_cast<long long>(blocksPerSm) * numMultiprocessors / tiles);
  const int strips = static_cast<int>(std::min<long long>(wantedStrips, numSub));
  const int subPerStrip = (numSub + strips - 1) / strips;
  const dim3 grid((numSub + subPerStrip - 1) / subPerStrip, 1, static_cast<unsigned>(tiles));
  SliceTable slices{};
  for (int j = 0; j <= c; ++j) slices.offsets[j] = module.sliceOffsets[j];
  const int smemBytes = lean ? ExpandSmem<T, Stages, true>::kBytes : ExpandSmem<T, Stages>::kBytes;
  auto kernel = lean ? expandWideKernel<T, Stages, true, true> : store ? expandWideKernel<T, Stages, true> : expandWideKernel<T, Stages, false>;
  const cudaError_t attribute = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smemBytes);
  if (attribute != cudaSuccess) return attribute;
  return loraLaunch(kernel, grid, dim3(kExpandThreads), smemBytes, stream, static_cast<const T*>(module.b),
                    static_cast<size_t>(module.outTotal()) * R, R, slices, c, step.segIndptr, step.weightIndices, step.permutation,
                    step.slotRanks, tilesPerSegment, subPerStrip, numSub, u, c * R, static_cast<T*>(y), yStride, yOffset);
}

}  // namespace tslora::cuda::lora::wide
