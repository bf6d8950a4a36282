// LoRA shrink U = X·Aᵀ for one (layer, module), all c slices at once (fused qkv / gate_up shrink), split-K so that
// long K (down_proj: 14336) is spread over many blocks. Tiles: BM rows (one segment's rows, gathered through the
// permutation) × 64 A rows × 64 K, double-buffered with cp.async, bf16/fp16 WMMA with fp32 accumulators.
// A programmatic dependent launch (lora_launch.cuh): the tables and the prologue's A stages are read before pdlWait,
// x and the workspace after it.
#include <mma.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "lora_env_flag.h"
#include "lora_kernels.cuh"
#include "lora_launch.cuh"
#include "lora_shrink_wide_instances.h"
#include "lora_split_sum.cuh"
#include "lora_tile.cuh"

namespace tslora::cuda::lora {
namespace {

using namespace nvcuda;
using detail::Convert;
using detail::RowTile;

constexpr int kThreads = 128;   // 4 warps, each owns 16 U columns
constexpr int kBN = 64;         // U columns (A rows) per block
constexpr int kBK = 64;         // K per pipeline stage
constexpr int kLd = kBK + 8;    // shared row stride in elements (16 bytes of padding against bank conflicts)
constexpr int kLdc = kBN + 4;   // fp32 epilogue stride
constexpr int kMinKPerSplit = 256;
constexpr int kBlocksPerSm = 2;  // split-K target: this many blocks per multiprocessor

// Pipeline depth: four cp.async stages, so a decode block (a few K steps per split) has its whole K range in flight
// after the prologue, and a prefill block keeps three steps of loads ahead of its tensor-core work.
template <typename T, int BM>
struct ShrinkStages {
  static constexpr int kStages = 4;
  static constexpr int kStageBytes = (BM + kBN) * kLd * static_cast<int>(sizeof(T));
  static constexpr int kCBytes = BM * kLdc * static_cast<int>(sizeof(float));
  static constexpr int kBytes = kStages * kStageBytes > kCBytes ? kStages * kStageBytes : kCBytes;
};

template <typename T, int BM, bool kVec>
__global__ void __launch_bounds__(kThreads) shrinkKernel(
    const T* __restrict__ a, int in, size_t aSlotStride, int numSlices, const int32_t* __restrict__ segIndptr,
    const int32_t* __restrict__ weightIndices, const int32_t* __restrict__ permutation, const int32_t* __restrict__ slotRanks,
    int tilesPerSegment, int numTokens, const T* __restrict__ x, int xStride, float* __restrict__ u,
    float* __restrict__ partials, int* __restrict__ counters, int uStride, int kPerSplit) {
  pdlLaunchDependents();
  RowTile t;
  const bool work = detail::rowTileOf(segIndptr, weightIndices, slotRanks, blockIdx.z, tilesPerSegment, BM, t);
  const int nEff = work ? numSlices * t.rank : 0;  // rank-aware: only c*r columns exist for this slot
  const int n0 = blockIdx.x * kBN;
  if (n0 >= nEff) {
    pdlWait();  // every block waits (pdl.h rule 2)
    return;
  }
  const int split = blockIdx.y;
  const int k0 = split * kPerSplit, k1 = min(in, k0 + kPerSplit);
  const int rows = t.end - t.begin;

  constexpr int kStageBytes = ShrinkStages<T, BM>::kStageBytes;
  constexpr int kStages = ShrinkStages<T, BM>::kStages;
  extern __shared__ __align__(128) unsigned char smem[];  // ShrinkStages<T, BM>::kBytes
  __shared__ int rowOf[BM];
  for (int m = threadIdx.x; m < BM; m += kThreads) rowOf[m] = m < rows ? detail::physicalRow(permutation, t.begin + m) : -1;
  __syncthreads();

  const T* aSlot = a + static_cast<size_t>(t.slot) * aSlotStride;
  // A (weights) and x halves of a stage: A may be requested before pdlWait, x only after it.
  auto loadStageA = [&](int buffer, int kBase) {
    T* as = reinterpret_cast<T*>(smem + buffer * kStageBytes) + BM * kLd;
    if constexpr (kVec) {
      for (int v = threadIdx.x; v < kBN * (kBK / 8); v += kThreads) {
        const int n = v / (kBK / 8), kk = (v % (kBK / 8)) * 8, k = kBase + kk;
        const bool ok = n0 + n < nEff && k < k1;
        detail::copyAsync16(as + n * kLd + kk, ok ? aSlot + static_cast<size_t>(n0 + n) * in + k : aSlot, ok);
      }
    } else {  // unaligned shapes or strides: plain element loads
      for (int e = threadIdx.x; e < kBN * kBK; e += kThreads) {
        const int n = e / kBK, kk = e % kBK, k = kBase + kk;
        as[n * kLd + kk] = (n0 + n < nEff && k < k1) ? aSlot[static_cast<size_t>(n0 + n) * in + k] : Convert<T>::fromFloat(0.0f);
      }
    }
  };
  auto loadStageX = [&](int buffer, int kBase) {
    T* xs = reinterpret_cast<T*>(smem + buffer * kStageBytes);
    if constexpr (kVec) {
      for (int v = threadIdx.x; v < BM * (kBK / 8); v += kThreads) {
        const int m = v / (kBK / 8), kk = (v % (kBK / 8)) * 8, k = kBase + kk, p = rowOf[m];
        const bool ok = p >= 0 && k < k1;
        detail::copyAsync16(xs + m * kLd + kk, ok ? x + static_cast<size_t>(p) * xStride + k : x, ok);
      }
    } else {
      for (int e = threadIdx.x; e < BM * kBK; e += kThreads) {
        const int m = e / kBK, kk = e % kBK, k = kBase + kk, p = rowOf[m];
        xs[m * kLd + kk] = (p >= 0 && k < k1) ? x[static_cast<size_t>(p) * xStride + k] : Convert<T>::fromFloat(0.0f);
      }
    }
  };
  auto loadStage = [&](int buffer, int kBase) {
    loadStageX(buffer, kBase);
    loadStageA(buffer, kBase);
  };

  const int warp = threadIdx.x / 32;
  const bool warpActive = n0 + warp * 16 < nEff;
  wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[BM / 16];
#pragma unroll
  for (int mf = 0; mf < BM / 16; ++mf) wmma::fill_fragment(acc[mf], 0.0f);

  const int numK = k1 > k0 ? (k1 - k0 + kBK - 1) / kBK : 0;
  // The A halves of the first stages while the kernel before may still run, the x halves after pdlWait.
  detail::pipelinePrologue<kStages>(numK, [&](int st) { loadStageA(st, k0 + st * kBK); }, [&](int st) { loadStageX(st, k0 + st * kBK); });
  for (int i = 0; i < numK; ++i) {
    const int ahead = i + kStages - 1;
    if (ahead < numK) loadStage(ahead % kStages, k0 + ahead * kBK);
    detail::copyAsyncCommit();
    detail::copyAsyncWait<kStages - 1>();  // stage i has landed
    __syncthreads();
    if (warpActive) {
      const T* xs = reinterpret_cast<const T*>(smem + (i % kStages) * kStageBytes);
      const T* as = xs + BM * kLd;
#pragma unroll
      for (int kk = 0; kk < kBK; kk += 16) {
        wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::col_major> bFrag;  // (k, n) = A[n, k]
        wmma::load_matrix_sync(bFrag, as + warp * 16 * kLd + kk, kLd);
#pragma unroll
        for (int mf = 0; mf < BM / 16; ++mf) {
          wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> aFrag;
          wmma::load_matrix_sync(aFrag, xs + mf * 16 * kLd + kk, kLd);
          wmma::mma_sync(acc[mf], aFrag, bFrag, acc[mf]);
        }
      }
    }
    __syncthreads();
  }
  detail::copyAsyncWait<0>();
  __syncthreads();

  float* cs = reinterpret_cast<float*>(smem);  // reuses the stage buffers
  if (warpActive)
#pragma unroll
    for (int mf = 0; mf < BM / 16; ++mf) wmma::store_matrix_sync(cs + mf * 16 * kLdc + warp * 16, acc[mf], kLdc, wmma::mem_row_major);
  __syncthreads();
  if (gridDim.y == 1) {  // no split: write U directly
    for (int e = threadIdx.x; e < BM * kBN; e += kThreads) {
      const int m = e / kBN, n = e % kBN;
      if (m < rows && n0 + n < nEff) u[static_cast<size_t>(rowOf[m]) * uStride + n0 + n] = cs[m * kLdc + n];
    }
    return;
  }
  float* mine = partials + static_cast<size_t>(split) * numTokens * uStride;
  for (int e = threadIdx.x; e < BM * kBN; e += kThreads) {
    const int m = e / kBN, n = e % kBN;
    if (m < rows && n0 + n < nEff) mine[static_cast<size_t>(rowOf[m]) * uStride + n0 + n] = cs[m * kLdc + n];
  }
  // Split-K reduction without atomics on data: the last split block to arrive sums every partial of this tile.
  int* ticket = counters + blockIdx.z * gridDim.x + blockIdx.x;
  if (!detail::lastSplitArrived(ticket, static_cast<int>(gridDim.y))) return;
  detail::sumSplitPartials(partials, u, numTokens, uStride, static_cast<int>(gridDim.y), rowOf, rows, n0, kBN, nEff, ticket);
}

int tileRowsFor(int maxSegmentRows) { return maxSegmentRows <= 16 ? 16 : maxSegmentRows <= 32 ? 32 : 64; }

struct WorkspaceLayout {
  float* u;
  float* partials;
  int* counters;
  size_t bytes;
};
WorkspaceLayout layoutOf(const DeviceModule& module, const DeviceStep& step, int kSplits, void* base) {
  const size_t uFloats = static_cast<size_t>(step.numTokens) * module.numSlices * module.maxRank;
  const int bm = tileRowsFor(step.maxSegmentRows);
  const size_t tiles = static_cast<size_t>(step.maxSegments) * ((step.maxSegmentRows + bm - 1) / bm);
  const size_t counters = tiles * ((module.numSlices * module.maxRank + kBN - 1) / kBN);
  const size_t partialFloats = kSplits > 1 ? uFloats * kSplits : 0;
  auto* bytes = static_cast<unsigned char*>(base);
  WorkspaceLayout l;
  l.u = reinterpret_cast<float*>(bytes);
  l.partials = reinterpret_cast<float*>(bytes + uFloats * sizeof(float));
  l.counters = step.counters ? step.counters : reinterpret_cast<int*>(bytes + (uFloats + partialFloats) * sizeof(float));
  l.bytes = (uFloats + partialFloats) * sizeof(float) + (step.counters ? 0 : counters * sizeof(int));
  return l;
}

template <typename T, int BM>
cudaError_t launchShrink(const DeviceModule& module, const DeviceStep& step, const void* x, int xStride, void* workspace,
                         int kSplits, cudaStream_t stream) {
  const int c = module.numSlices, R = module.maxRank, uStride = c * R;
  const int tilesPerSegment = (step.maxSegmentRows + BM - 1) / BM;
  const long long gridZ = static_cast<long long>(step.maxSegments) * tilesPerSegment;
  if (gridZ > 65535 || kSplits < 1 || kSplits > 65535) return cudaErrorInvalidConfiguration;
  const int perSplit = (module.in + kSplits - 1) / kSplits;
  const int kPerSplit = (perSplit + kBK - 1) / kBK * kBK;
  const dim3 grid((uStride + kBN - 1) / kBN, kSplits, static_cast<unsigned>(gridZ));
  const size_t aSlotStride = static_cast<size_t>(c) * R * module.in;
  const bool vec = module.in % 8 == 0 && xStride % 8 == 0 && reinterpret_cast<uintptr_t>(x) % 16 == 0 &&
                   reinterpret_cast<uintptr_t>(module.a) % 16 == 0;
  const T* a = static_cast<const T*>(module.a);
  const WorkspaceLayout layout = layoutOf(module, step, kSplits, workspace);
  constexpr int kSmem = ShrinkStages<T, BM>::kBytes;
  auto args = [&](auto kernel) -> cudaError_t {
    // Every launch (a cheap host call, not captured by graphs): the limit is per kernel and per device.
    const cudaError_t attribute = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmem);
    if (attribute != cudaSuccess) return attribute;
    return loraLaunch(kernel, grid, dim3(kThreads), kSmem, stream, a, module.in, aSlotStride, c, step.segIndptr, step.weightIndices,
                      step.permutation, step.slotRanks, tilesPerSegment, step.numTokens, static_cast<const T*>(x), xStride,
                      layout.u, layout.partials, layout.counters, uStride, kPerSplit);
  };
  return vec ? args(shrinkKernel<T, BM, true>) : args(shrinkKernel<T, BM, false>);
}

// The wide shrink (lora_shrink_wide.cuh) for long row tiles: on by default since session 23 with the m64k64 tile.
// Session 14's w8 tile was slower than this file's v5 kernel (bench/lora/README.md v10); session 23's device call (one
// H100, prefill 8 x 512 r64, 8B shapes, shrink alone) measured m64k64 with its automatic 4 splits at qkv 44.6 / gate_up
// 34.1 / down 61.8 us against v5's 61.5 / 45.5 / 83.1, the layer 487.7 -> 444.5 us (bench/lora/README.md v13).
// TSLORA_CUDA_LORA_WIDE_SHRINK=1 / =0 at start-up or loraSetShrinkWide turns it on / off (A/B).
constexpr bool kWideShrinkDefaultOn = true;
constexpr wide::WideTile kWideTileDefault = wide::WideTile::M64K64;
bool& wideFlag() {
  static bool on = envFlag("TSLORA_CUDA_LORA_WIDE_SHRINK", kWideShrinkDefaultOn);
  return on;
}
int& wideBlocksPerSmFlag() {
  static int blocks = [] {
    const char* env = std::getenv("TSLORA_CUDA_LORA_WIDE_BLOCKS_PER_SM");
    return env == nullptr ? 0 : std::max(0, std::atoi(env));
  }();
  return blocks;
}
// The wide shrink's block tile (lora_shrink_wide.cuh WideTile): TSLORA_CUDA_LORA_WIDE_SHRINK_TILE=w8 (session 14's) |
// m128k32 | m128k64 | m64k64 (the default since session 23) | m64k64f (session 25, m64k64's bits with the fragments of
// a step loaded first; not yet run on a GPU), read once; another value is reported on stderr and leaves the default.
wide::WideTile& wideTileFlag() {
  static wide::WideTile tile = [] {
    const char* env = std::getenv("TSLORA_CUDA_LORA_WIDE_SHRINK_TILE");
    if (env == nullptr || *env == '\0') return kWideTileDefault;
    if (const int tile = wide::wideTileFromName(env); tile >= 0) return static_cast<wide::WideTile>(tile);
    std::fprintf(stderr, "tslora: TSLORA_CUDA_LORA_WIDE_SHRINK_TILE=%s is not one of w8, m128k32, m128k64, m64k64, m64k64f; using %s\n", env,
                 wide::wideTileName(kWideTileDefault));
    return kWideTileDefault;
  }();
  return tile;
}
// The wide shrink's split-K through thread-block clusters (lora_shrink_wide.cuh clusterSumSplits; session 22; slower at
// the automatic split counts on an H100 in session 23): TSLORA_CUDA_LORA_WIDE_SHRINK_CLUSTER=1 (read once; off by
// default). Splits are capped at 8 with it.
bool& wideClusterFlag() {
  static bool on = envFlag("TSLORA_CUDA_LORA_WIDE_SHRINK_CLUSTER", false);
  return on;
}
// The wide shrink's switches for a step: its own (DeviceStep::wideShrink*, set by a device pool) or the process's.
struct WideChoice {
  bool on;
  wide::WideTile tile;
  bool cluster;
};
WideChoice wideChoiceOf(const DeviceStep& step) {
  const bool tileGiven = step.wideShrinkTile >= 0 && step.wideShrinkTile < wide::kWideTiles;
  return {step.wideShrink < 0 ? wideFlag() : step.wideShrink == 1,
          tileGiven ? static_cast<wide::WideTile>(step.wideShrinkTile) : wideTileFlag(),
          step.wideShrinkCluster < 0 ? wideClusterFlag() : step.wideShrinkCluster == 1};
}
// Shape conditions of the wide kernel (the pointer alignments are checked at launch; a split count chosen for it is
// still correct for the v5 kernel).
bool wideShape(const DeviceModule& module, const DeviceStep& step, const WideChoice& choice) {
  return choice.on && tileRowsFor(step.maxSegmentRows) == 64 && module.in % 8 == 0;
}

template <typename T>
cudaError_t dispatchShrink(const DeviceModule& module, const DeviceStep& step, const void* x, int xStride, void* u,
                           int kSplits, cudaStream_t stream) {
  const WideChoice choice = wideChoiceOf(step);
  if (wideShape(module, step, choice) && xStride % 8 == 0 && reinterpret_cast<uintptr_t>(x) % 16 == 0 &&
      reinterpret_cast<uintptr_t>(module.a) % 16 == 0) {
    const WorkspaceLayout layout = layoutOf(module, step, kSplits, u);
    return wide::shrinkWide<T>(module, step, x, xStride, layout.u, layout.partials, layout.counters, kSplits, stream, choice.tile,
                               choice.cluster);
  }
  switch (tileRowsFor(step.maxSegmentRows)) {
    case 16: return launchShrink<T, 16>(module, step, x, xStride, u, kSplits, stream);
    case 32: return launchShrink<T, 32>(module, step, x, xStride, u, kSplits, stream);
    default: return launchShrink<T, 64>(module, step, x, xStride, u, kSplits, stream);
  }
}

}  // namespace

void loraSetShrinkWide(bool on) { wideFlag() = on; }
bool loraShrinkWideOn() { return wideFlag(); }
void loraSetShrinkWideBlocksPerSm(int blocks) { wideBlocksPerSmFlag() = std::max(0, blocks); }
bool loraSetShrinkWideTile(int tile) {
  if (tile < 0 || tile >= wide::kWideTiles) return false;
  wideTileFlag() = static_cast<wide::WideTile>(tile);
  return true;
}
int loraShrinkWideTile() { return static_cast<int>(wideTileFlag()); }
void loraSetShrinkWideCluster(bool on) { wideClusterFlag() = on; }
bool loraShrinkWideClusterOn() { return wideClusterFlag(); }
const char* loraShrinkWideTileName(int tile) {
  return tile >= 0 && tile < wide::kWideTiles ? wide::wideTileName(static_cast<wide::WideTile>(tile)) : "?";
}

int loraShrinkSplits(const DeviceModule& module, const DeviceStep& step, int numMultiprocessors) {
  const WideChoice choice = wideChoiceOf(step);
  if (wideShape(module, step, choice)) {  // whole waves of the wide kernel's blocks (wide::wideBlocksPerSm per SM)
    const wide::WideTile tile = choice.tile;
    const int chunks = wide::wideChunks(module), tileRows = wide::wideTileRows(tile);
    const long long tiles = static_cast<long long>(std::max(1, step.maxSegments)) * ((step.maxSegmentRows + tileRows - 1) / tileRows);
    const long long blocks = tiles * ((module.numSlices * module.maxRank + chunks * wide::kChunk - 1) / (chunks * wide::kChunk));
    const int perSm = wideBlocksPerSmFlag() > 0 ? wideBlocksPerSmFlag() : wide::wideBlocksPerSm(tile, chunks);
    const long long wanted = static_cast<long long>(perSm) * numMultiprocessors / blocks;
    const int maxByK = std::max(1, module.in / kMinKPerSplit);
    const int most = choice.cluster ? wide::kMaxClusterSplits : 64;  // a cluster holds every split of its tile
    return static_cast<int>(std::max(1LL, std::min<long long>({wanted, maxByK, most})));
  }
  const int bm = tileRowsFor(step.maxSegmentRows);
  const long long tiles = static_cast<long long>(std::max(1, step.maxSegments)) * ((step.maxSegmentRows + bm - 1) / bm);
  const long long blocks = tiles * ((module.numSlices * module.maxRank + kBN - 1) / kBN);
  const long long wanted = (static_cast<long long>(kBlocksPerSm) * numMultiprocessors + blocks - 1) / blocks;
  const int maxByK = std::max(1, module.in / kMinKPerSplit);
  return static_cast<int>(std::max(1LL, std::min<long long>({wanted, maxByK, 64})));
}

size_t loraShrinkCounterBytes(const DeviceModule& module, const DeviceStep& step) {
  DeviceStep own = step;
  own.counters = nullptr;
  const WorkspaceLayout l = layoutOf(module, own, 1, nullptr);
  return l.bytes - static_cast<size_t>(step.numTokens) * module.numSlices * module.maxRank * sizeof(float);
}

size_t loraShrinkWorkspaceBytes(const DeviceModule& module, const DeviceStep& step, int kSplits) {
  return layoutOf(module, step, kSplits, nullptr).bytes;
}

cudaError_t loraShrink(ActDType dtype, const DeviceModule& module, const DeviceStep& step, const void* x, int xStride,
                       void* u, int kSplits, cudaStream_t stream) {
  if (step.maxSegments <= 0 || step.numTokens <= 0) return cudaSuccess;
  if (module.numSlices < 1 || module.numSlices > 3 || module.in < 1 || module.maxRank < 1) return cudaErrorInvalidValue;
  return dtype == ActDType::BF16 ? dispatchShrink<__nv_bfloat16>(module, step, x, xStride, u, kSplits, stream)
                                 : dispatchShrink<__half>(module, step, x, xStride, u, kSplits, stream);
}

}  // namespace tslora::cuda::lora
