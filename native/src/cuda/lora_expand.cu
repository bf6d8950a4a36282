// LoRA expand Y[:, off_j:] += U_j·B_jᵀ for one (layer, module): grid (widest slice / 128, slices, row tiles), so
// one launch covers every slice of qkv / gate_up. K = the slot's rank r (≤ R), zero-padded to 16 in shared memory;
// the delta is added to Y in fp32 and rounded once (spec e.8).
// A programmatic dependent launch (lora_launch.cuh): the tables and the first B tile are read before pdlWait, U and y
// after it.
#include <mma.h>

#include <algorithm>
#include <cstdlib>
#include <string>

#include "lora_env_flag.h"
#include "lora_expand_wide.cuh"
#include "lora_kernels.cuh"
#include "lora_launch.cuh"
#include "lora_tile.cuh"

namespace tslora::cuda::lora {
namespace {

using namespace nvcuda;
using detail::Convert;
using detail::RowTile;

constexpr int kThreads = 128;  // 4 warps, each owns 32 output columns
constexpr int kBN = 128;       // output columns per block
constexpr int kBK = 64;        // rank chunk per pass
constexpr int kLd = kBK + 8;
constexpr int kLdc = kBN + 4;

struct Slices {
  int offsets[4];
};
// Selects instead of a run-time array index, which would put the kernel-parameter array on the stack.
__device__ __forceinline__ int sliceOffset(const Slices& s, int j) {
  return j == 0 ? s.offsets[0] : j == 1 ? s.offsets[1] : j == 2 ? s.offsets[2] : s.offsets[3];
}

// Vector paths (decided on the host, uniform per launch): kVec = B rows, U rows and Y columns are 16-byte aligned
// (R, c*R, yStride, yOffset and every slice offset multiples of 8); the slot's rank must also be a multiple of 8 for
// the B copy (checked per block). Otherwise element-wise loads.
// kPrefetchY (with kVec only; loraSetExpandPrefetchY): the block's y tile is copied into shared memory by cp.async
// at kernel start, overlapping the B/U loads and the MMAs, and the epilogue reads it there instead of issuing its own
// global round trip; dynamic shared memory (the tile buffers + the y tile).
template <typename T, int BM, bool kVec, bool kPrefetchY>
__global__ void __launch_bounds__(kThreads) expandKernel(
    const T* __restrict__ b, size_t bSlotStride, int R, Slices slices, const int32_t* __restrict__ segIndptr,
    const int32_t* __restrict__ weightIndices, const int32_t* __restrict__ permutation, const int32_t* __restrict__ slotRanks,
    int tilesPerSegment, const float* __restrict__ u, int uStride, T* __restrict__ y, int yStride, int yOffset) {
  pdlLaunchDependents();
  RowTile t;
  const bool work = detail::rowTileOf(segIndptr, weightIndices, slotRanks, blockIdx.z, tilesPerSegment, BM, t);
  const int j = blockIdx.y, offset = sliceOffset(slices, j), width = sliceOffset(slices, j + 1) - offset;
  const int n0 = blockIdx.x * kBN;
  if (!work || n0 >= width) {
    pdlWait();  // every block waits (pdl.h rule 2)
    return;
  }
  const int r = t.rank, rows = t.end - t.begin;

  constexpr int kStageBytes = (BM + kBN) * kLd * static_cast<int>(sizeof(T));
  constexpr int kCBytes = BM * kLdc * static_cast<int>(sizeof(float));
  constexpr int kSmemBytes = kStageBytes > kCBytes ? kStageBytes : kCBytes;
  constexpr int kYLd = kBN + 8;  // prefetched y tile [BM, kYLd] in T after the tile buffers
  unsigned char* smem;
  if constexpr (kPrefetchY) {
    extern __shared__ __align__(128) unsigned char dynamicSmem[];  // kSmemBytes + BM * kYLd * sizeof(T)
    smem = dynamicSmem;
  } else {
    __shared__ __align__(128) unsigned char staticSmem[kSmemBytes];
    smem = staticSmem;
  }
  __shared__ int rowOf[BM];
  for (int m = threadIdx.x; m < BM; m += kThreads) rowOf[m] = m < rows ? detail::physicalRow(permutation, t.begin + m) : -1;
  __syncthreads();
  T* ys = reinterpret_cast<T*>(smem + kSmemBytes);

  T* us = reinterpret_cast<T*>(smem);  // [BM, kLd]   U chunk of this slice, rounded to T
  T* bs = us + BM * kLd;               // [kBN, kLd]  B rows of this block, columns [0, r) only
  const T* bRows = b + static_cast<size_t>(t.slot) * bSlotStride + static_cast<size_t>(offset + n0) * R;
  const bool bVector = kVec && r % 8 == 0;
  const bool uVector = kVec && r % 4 == 0;
  const int warp = threadIdx.x / 32;
  const bool warpActive = n0 + warp * 32 < width;
  wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[BM / 16][2];
#pragma unroll
  for (int mf = 0; mf < BM / 16; ++mf) {
    wmma::fill_fragment(acc[mf][0], 0.0f);
    wmma::fill_fragment(acc[mf][1], 0.0f);
  }

  for (int kb = 0; kb < r; kb += kBK) {
    if (bVector) {  // B tile in flight (cp.async) while U is loaded and converted
#pragma unroll
      for (int i = 0; i < kBN * (kBK / 8) / kThreads; ++i) {
        const int v = threadIdx.x + i * kThreads, n = v / (kBK / 8), kk = (v % (kBK / 8)) * 8;
        const bool ok = n0 + n < width && kb + kk < r;
        detail::copyAsync16(bs + n * kLd + kk, ok ? bRows + static_cast<size_t>(n) * R + kb + kk : bRows, ok);
      }
      detail::copyAsyncCommit();
    } else {
      for (int e = threadIdx.x; e < kBN * kBK; e += kThreads) {
        const int n = e / kBK, k = e % kBK;
        bs[n * kLd + k] = (n0 + n < width && kb + k < r) ? bRows[static_cast<size_t>(n) * R + kb + k] : Convert<T>::fromFloat(0.0f);
      }
    }
    if (kb == 0) {  // the first B tile is requested: now wait for the kernels before (U, y)
      pdlWait();
      if constexpr (kPrefetchY) {
        static_assert(kVec, "the y prefetch needs the 16-byte paths");
        for (int v = threadIdx.x; v < BM * (kBN / 8); v += kThreads) {
          const int m = v / (kBN / 8), n = (v % (kBN / 8)) * 8;
          const bool ok = m < rows && n0 + n < width;
          const T* src = ok ? y + static_cast<size_t>(rowOf[m]) * yStride + yOffset + offset + n0 + n : y;
          detail::copyAsync16(ys + m * kYLd + n, src, ok);
        }
        detail::copyAsyncCommit();  // waited for by the first B-tile wait, or before the epilogue
      }
    }
    if (uVector) {
      constexpr int kPerThread = BM * (kBK / 4) / kThreads;
      float4 vals[kPerThread];
#pragma unroll
      for (int i = 0; i < kPerThread; ++i) {
        const int v = threadIdx.x + i * kThreads, m = v / (kBK / 4), k = (v % (kBK / 4)) * 4;
        vals[i] = (m < rows && kb + k < r)
                      ? __ldcg(reinterpret_cast<const float4*>(u + static_cast<size_t>(rowOf[m]) * uStride + j * r + kb + k))
                      : make_float4(0.f, 0.f, 0.f, 0.f);
      }
#pragma unroll
      for (int i = 0; i < kPerThread; ++i) {
        const int v = threadIdx.x + i * kThreads, m = v / (kBK / 4), k = (v % (kBK / 4)) * 4;
        T* dst = us + m * kLd + k;
        dst[0] = Convert<T>::fromFloat(vals[i].x);
        dst[1] = Convert<T>::fromFloat(vals[i].y);
        dst[2] = Convert<T>::fromFloat(vals[i].z);
        dst[3] = Convert<T>::fromFloat(vals[i].w);
      }
    } else {
      for (int e = threadIdx.x; e < BM * kBK; e += kThreads) {
        const int m = e / kBK, k = e % kBK;
        const float value = (m < rows && kb + k < r) ? __ldcg(u + static_cast<size_t>(rowOf[m]) * uStride + j * r + kb + k) : 0.0f;
        us[m * kLd + k] = Convert<T>::fromFloat(value);
      }
    }
    if (bVector) detail::copyAsyncWait<0>();
    __syncthreads();
    if (warpActive) {
      const int kEnd = min(kBK, r - kb);
      for (int kk = 0; kk < kEnd; kk += 16) {
#pragma unroll
        for (int nf = 0; nf < 2; ++nf) {
          wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::col_major> bFrag;  // (k, n) = B[n, k]
          wmma::load_matrix_sync(bFrag, bs + (warp * 32 + nf * 16) * kLd + kk, kLd);
#pragma unroll
          for (int mf = 0; mf < BM / 16; ++mf) {
            wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> aFrag;
            wmma::load_matrix_sync(aFrag, us + mf * 16 * kLd + kk, kLd);
            wmma::mma_sync(acc[mf][nf], aFrag, bFrag, acc[mf][nf]);
          }
        }
      }
    }
    __syncthreads();
  }

  float* cs = reinterpret_cast<float*>(smem);
  if (warpActive)
#pragma unroll
    for (int mf = 0; mf < BM / 16; ++mf)
#pragma unroll
      for (int nf = 0; nf < 2; ++nf)
        wmma::store_matrix_sync(cs + mf * 16 * kLdc + warp * 32 + nf * 16, acc[mf][nf], kLdc, wmma::mem_row_major);
  if constexpr (kPrefetchY) detail::copyAsyncWait<0>();  // this thread's y copies (r % 8 != 0 never waited above)
  __syncthreads();
  if constexpr (kPrefetchY) {  // y from shared memory: no global load in the epilogue
    for (int v = threadIdx.x; v < BM * (kBN / 8); v += kThreads) {
      const int m = v / (kBN / 8), n = (v % (kBN / 8)) * 8;
      if (m >= rows || n0 + n >= width) continue;
      uint4 old = *reinterpret_cast<const uint4*>(ys + m * kYLd + n);
      T* vals = reinterpret_cast<T*>(&old);
      const float* delta = cs + m * kLdc + n;
#pragma unroll
      for (int q = 0; q < 8; ++q) vals[q] = Convert<T>::fromFloat(Convert<T>::toFloat(vals[q]) + delta[q]);
      *reinterpret_cast<uint4*>(y + static_cast<size_t>(rowOf[m]) * yStride + yOffset + offset + n0 + n) = old;
    }
  } else if constexpr (kVec) {  // 8 columns per thread, every load issued before the first store (latency, not bandwidth)
    constexpr int kPerThread = BM * (kBN / 8) / kThreads;
    uint4 old[kPerThread];
#pragma unroll
    for (int i = 0; i < kPerThread; ++i) {
      const int v = threadIdx.x + i * kThreads, m = v / (kBN / 8), n = (v % (kBN / 8)) * 8;
      if (m < rows && n0 + n < width)
        old[i] = *reinterpret_cast<const uint4*>(y + static_cast<size_t>(rowOf[m]) * yStride + yOffset + offset + n0 + n);
    }
#pragma unroll
    for (int i = 0; i < kPerThread; ++i) {
      const int v = threadIdx.x + i * kThreads, m = v / (kBN / 8), n = (v % (kBN / 8)) * 8;
      if (m >= rows || n0 + n >= width) continue;
      T* vals = reinterpret_cast<T*>(&old[i]);
      const float* delta = cs + m * kLdc + n;
#pragma unroll
      for (int q = 0; q < 8; ++q) vals[q] = Convert<T>::fromFloat(Convert<T>::toFloat(vals[q]) + delta[q]);
      *reinterpret_cast<uint4*>(y + static_cast<size_t>(rowOf[m]) * yStride + yOffset + offset + n0 + n) = old[i];
    }
  } else {
    for (int e = threadIdx.x; e < BM * kBN; e += kThreads) {
      const int m = e / kBN, n = e % kBN;
      if (m >= rows || n0 + n >= width) continue;
      T* dst = y + static_cast<size_t>(rowOf[m]) * yStride + yOffset + offset + n0 + n;
      *dst = Convert<T>::fromFloat(Convert<T>::toFloat(*dst) + cs[m * kLdc + n]);
    }
  }
}

int tileRowsFor(int maxSegmentRows) { return maxSegmentRows <= 16 ? 16 : maxSegmentRows <= 32 ? 32 : 64; }

// The y-prefetch switch: on by default since run 8 (prefill 8 x 512, r64, triton: 513.7 → 500.8 µs per layer, gate_up
// expand 225.9 → 215.3; every driver case passed with it); TSLORA_CUDA_LORA_PREFETCH_Y=0 at start-up, or
// loraSetExpandPrefetchY(false), turns it off.
bool& prefetchYFlag() {
  static bool on = [] {
    const char* env = std::getenv("TSLORA_CUDA_LORA_PREFETCH_Y");
    return env == nullptr || std::string(env) != "0";
  }();
  return on;
}
bool prefetchY() { return prefetchYFlag(); }

template <typename T, int BM>
cudaError_t launchExpandOn(const DeviceModule& module, const DeviceStep& step, const float* u, void* y, int yStride,
                           int yOffset, cudaStream_t stream) {
  const int c = module.numSlices, R = module.maxRank;
  const int tilesPerSegment = (step.maxSegmentRows + BM - 1) / BM;
  const long long gridZ = static_cast<long long>(step.maxSegments) * tilesPerSegment;
  if (gridZ > 65535) return cudaErrorInvalidConfiguration;
  Slices slices{};
  int widest = 0;
  bool vec = R % 8 == 0 && yStride % 8 == 0 && yOffset % 8 == 0 && reinterpret_cast<uintptr_t>(module.b) % 16 == 0 &&
             reinterpret_cast<uintptr_t>(y) % 16 == 0 && reinterpret_cast<uintptr_t>(u) % 16 == 0;
  for (int j = 0; j <= c; ++j) {
    slices.offsets[j] = module.sliceOffsets[j];
    vec = vec && slices.offsets[j] % 8 == 0;
  }
  for (int j = 0; j < c; ++j) widest = widest > slices.offsets[j + 1] - slices.offsets[j] ? widest : slices.offsets[j + 1] - slices.offsets[j];
  const dim3 grid((widest + kBN - 1) / kBN, c, static_cast<unsigned>(gridZ));
  auto launch = [&](auto kernel, int dynamicBytes) -> cudaError_t {
    if (dynamicBytes > 0) {  // per kernel and device; not a stream operation (fine under graph capture)
      const cudaError_t attribute = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, dynamicBytes);
      if (attribute != cudaSuccess) {
        cudaGetLastError();  // do not leave it for the next launch's check
        return attribute;
      }
    }
    return loraLaunch(kernel, grid, dim3(kThreads), dynamicBytes, stream, static_cast<const T*>(module.b),
                      static_cast<size_t>(module.outTotal()) * R, R, slices, step.segIndptr, step.weightIndices, step.permutation,
                      step.slotRanks, tilesPerSegment, u, c * R, static_cast<T*>(y), yStride, yOffset);
  };
  if (vec && prefetchY()) {
    constexpr int kStageBytes = (BM + kBN) * kLd * static_cast<int>(sizeof(T));
    constexpr int kCBytes = BM * kLdc * static_cast<int>(sizeof(float));
    constexpr int kBytes = (kStageBytes > kCBytes ? kStageBytes : kCBytes) + BM * (kBN + 8) * static_cast<int>(sizeof(T));
    return launch(expandKernel<T, BM, true, true>, kBytes);
  }
  if (vec) return launch(expandKernel<T, BM, true, false>, 0);
  return launch(expandKernel<T, BM, false, false>, 0);
}

// The wide expand (lora_expand_wide.cuh) for long row tiles: on by default since session 14's device call (one H100
// 80GB HBM3, bench/lora/results/h100-s14-lead-call): lora_cuda_test's wide paths 1040/1040 and all paths 6000/6000,
// lora_device_pool_test 1360/1360 with it on; prefill 8 x 512 r64 triton 525.4 -> 496.4 us per layer (graph replay;
// gate_up expand 232.5 -> 219.5, down 36.5 -> 27.1, qkv 56.1 -> 57.6). TSLORA_CUDA_LORA_WIDE_EXPAND=0 at start-up or
// loraSetExpandWide(false) turns it off (A/B).
constexpr bool kWideExpandDefaultOn = true;
bool& wideExpandFlag() {
  static bool on = envFlag("TSLORA_CUDA_LORA_WIDE_EXPAND", kWideExpandDefaultOn);
  return on;
}
int& wideExpandBlocksPerSmFlag() {  // 0 = the kernel's default
  static int blocks = [] {
    const char* env = std::getenv("TSLORA_CUDA_LORA_WIDE_EXPAND_BLOCKS_PER_SM");
    return env == nullptr ? 0 : std::max(0, std::atoi(env));
  }();
  return blocks;
}
int& wideExpandStagesFlag() {  // 3 (default) or 4
  static int stages = [] {
    const char* env = std::getenv("TSLORA_CUDA_LORA_WIDE_EXPAND_STAGES");
    return env != nullptr && std::string(env) == "4" ? 4 : 3;
  }();
  return stages;
}
// The lean store layout (lora_expand_wide.cuh Lean; session 24): opt-in until a device run measures it.
// TSLORA_CUDA_LORA_STORE_LEAN=1 / =0 at start-up or loraSetExpandStoreLean; a device pool's own switch
// (DeviceStep::storeLean) wins over this one.
constexpr bool kStoreLeanDefaultOn = false;
bool& storeLeanFlag() {
  static bool on = envFlag("TSLORA_CUDA_LORA_STORE_LEAN", kStoreLeanDefaultOn);
  return on;
}
// The current device's multiprocessor count, asked once per device (not a stream operation: fine under capture).
int multiprocessorCount() {
  static int counts[64] = {};
  int device = 0;
  if (cudaGetDevice(&device) != cudaSuccess || device < 0 || device >= 64) {
    cudaGetLastError();
    return 132;
  }
  if (counts[device] == 0 && cudaDeviceGetAttribute(&counts[device], cudaDevAttrMultiProcessorCount, device) != cudaSuccess) {
    cudaGetLastError();
    return 132;
  }
  return counts[device];
}

bool wideExpandServes(const DeviceModule& module, const DeviceStep& step, const void* y, int yStride, int yOffset) {
  return wideExpandFlag() && tileRowsFor(step.maxSegmentRows) == 64 && wide::expandWideApplies(module, y, yStride, yOffset);
}

template <typename T>
cudaError_t launchWide(const DeviceModule& module, const DeviceStep& step, const float* u, void* y, int yStride, int yOffset,
                       cudaStream_t stream, bool store) {
  const bool lean = store && (step.storeLean < 0 ? storeLeanFlag() : step.storeLean == 1);
  const int blocksPerSm = wideExpandBlocksPerSmFlag();  // 0: the kernel build's own (2, lean 3)
  return wideExpandStagesFlag() == 4
             ? wide::launchExpandWide<T, 4>(module, step, u, y, yStride, yOffset, multiprocessorCount(), stream, blocksPerSm, store, lean)
             : wide::launchExpandWide<T, 3>(module, step, u, y, yStride, yOffset, multiprocessorCount(), stream, blocksPerSm, store, lean);
}

template <typename T>
cudaError_t dispatchExpand(const DeviceModule& module, const DeviceStep& step, const float* u, void* y, int yStride,
                           int yOffset, cudaStream_t stream) {
  if (wideExpandServes(module, step, y, yStride, yOffset)) return launchWide<T>(module, step, u, y, yStride, yOffset, stream, false);
  switch (tileRowsFor(step.maxSegmentRows)) {
    case 16: return launchExpandOn<T, 16>(module, step, u, y, yStride, yOffset, stream);
    case 32: return launchExpandOn<T, 32>(module, step, u, y, yStride, yOffset, stream);
    default: return launchExpandOn<T, 64>(module, step, u, y, yStride, yOffset, stream);
  }
}

}  // namespace

void loraSetExpandPrefetchY(bool on) { prefetchYFlag() = on; }
void loraSetExpandWide(bool on) { wideExpandFlag() = on; }
void loraSetExpandWideBlocksPerSm(int blocks) { wideExpandBlocksPerSmFlag() = std::max(0, blocks); }
void loraSetExpandWideStages(int stages) { wideExpandStagesFlag() = stages == 4 ? 4 : 3; }
void loraSetExpandStoreLean(bool on) { storeLeanFlag() = on; }
bool loraExpandStoreLeanOn() { return storeLeanFlag(); }
bool loraExpandWideOn() { return wideExpandFlag(); }
bool loraExpandPrefetchY() { return prefetchY(); }

cudaError_t loraExpand(ActDType dtype, const DeviceModule& module, const DeviceStep& step, const float* u, void* y,
                       int yStride, int yOffset, cudaStream_t stream) {
  if (step.maxSegments <= 0 || step.numTokens <= 0) return cudaSuccess;
  if (module.numSlices < 1 || module.numSlices > 3 || module.maxRank < 1) return cudaErrorInvalidValue;
  return dtype == ActDType::BF16 ? dispatchExpand<__nv_bfloat16>(module, step, u, y, yStride, yOffset, stream)
                                 : dispatchExpand<__half>(module, step, u, y, yStride, yOffset, stream);
}

bool loraExpandStoreApplies(const DeviceModule& module, const DeviceStep& step, const void* y, int yStride, int yOffset) {
  return module.numSlices >= 1 && module.numSlices <= 3 && module.maxRank >= 1 && wideExpandServes(module, step, y, yStride, yOffset);
}

int loraExpandStoreRowsPerSegment(const DeviceStep& step) {
  return (step.maxSegmentRows + wide::kExpandBM - 1) / wide::kExpandBM * wide::kExpandBM;  // launchExpandWide's tilesPerSegment
}

cudaError_t loraExpandStore(ActDType dtype, const DeviceModule& module, const DeviceStep& step, const float* u, void* y,
                            int yStride, int yOffset, cudaStream_t stream) {
  if (step.maxSegments <= 0 || step.numTokens <= 0) return cudaSuccess;
  if (!loraExpandStoreApplies(module, step, y, yStride, yOffset)) return cudaErrorNotSupported;
  return dtype == ActDType::BF16 ? launchWide<__nv_bfloat16>(module, step, u, y, yStride, yOffset, stream, true)
                                 : launchWide<__half>(module, step, u, y, yStride, yOffset, stream, true);
}

}  // namespace tslora::cuda::lora
