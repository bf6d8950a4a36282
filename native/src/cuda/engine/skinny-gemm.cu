// Skinny GEMM (skinny-gemm.h). Block = 8 warps = (8 / KS) column groups × KS K-slices; a column group owns two
// adjacent output columns n0, n0 + 1 (= two rows of w). Warp (g, s) walks 16-byte vectors v = s·32 + lane,
// s·32 + lane + KS·32, … of both weight rows and of the M activation rows, accumulating 2·M fp32 sums; the sums are
// reduced over the warp by shuffles and over the KS slices in shared memory, in a fixed order, so a row's result
// does not depend on M or on which other rows share the launch.
// Launched as a programmatic dependent (pdl.h): each warp loads its first weight vectors before pdlWait(), so the
// weight stream is already under way while the kernel before it (which writes x) finishes; the loop then keeps the
// next iteration's weight vectors in flight while the current ones are used (the sums and their order unchanged).
// One wave ahead (opt-in, TSLORA_CUDA_SKINNY_PREFETCH=1, until a device run measures it): before the wait, each block also asks L2 for the first
// bytes of every weight row of the block one wave of resident blocks after it (cp.async.bulk.prefetch), up to
// kPrefetchBudgetBytes over the grid, so the DRAM stream keeps going while a short kernel before this one runs.
// Epilogue modes: plain (y = the sums); SwiGLU (launchSkinnyGemmSwiglu: w is gate_up [2I, K], a column group owns
// gate row i and up row I + i, the epilogue rounds both sums to the activation dtype and writes silu(gate)·up as
// launchSwiglu would); qkv RoPE (launchSkinnyGemmQkvRope: a column group owns dims i and i + D/2 of one head, the
// epilogue rounds both, adds the bias, rotates q and k and writes q and the paged cache as launchQkvPost would).
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cstdint>

#include "../lora_env_flag.h"
#include "act-convert.cuh"
#include "pdl.h"
#include "rope.cuh"
#include "skinny-gemm.h"

namespace tslora::cuda {
namespace {

constexpr int kWarps = 8;
constexpr int kThreads = kWarps * 32;
constexpr int kVecElems = 8;  // one 16-byte vector of bf16 / fp16
constexpr size_t kPrefetchBudgetBytes = size_t{16} << 20;  // L2 prefetch one wave ahead, over the whole grid (H100 L2: 50 MB)

template <typename T>
struct Pair;
template <>
struct Pair<__nv_bfloat16> {
  using type = __nv_bfloat162;
  static __device__ __forceinline__ float2 toFloat2(type v) { return __bfloat1622float2(v); }
};
template <>
struct Pair<__half> {
  using type = __half2;
  static __device__ __forceinline__ float2 toFloat2(type v) { return __half22float2(v); }
};

template <typename T>
__device__ __forceinline__ float dot8(const uint4& a, const uint4& b) {
  using P = Pair<T>;
  const typename P::type* pa = reinterpret_cast<const typename P::type*>(&a);
  const typename P::type* pb = reinterpret_cast<const typename P::type*>(&b);
  float sum = 0.0f;
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 fa = P::toFloat2(pa[i]), fb = P::toFloat2(pb[i]);
    sum = fmaf(fa.x, fb.x, sum);
    sum = fmaf(fa.y, fb.y, sum);
  }
  return sum;
}


template <typename T>
__device__ __forceinline__ void store(void* y, size_t index, float v, bool yF32) {
  if (yF32) static_cast<float*>(y)[index] = v;
  else static_cast<T*>(y)[index] = fromF<T>(v);
}

enum Mode : int { kPlain = 0, kSwiglu = 1, kQkvRope = 2 };

// Weight rows (= output columns) r0, r1 of column group `pair`: 2·pair and 2·pair + 1; gate row pair and up row
// N/2 + pair (SwiGLU); dims i and i + D/2 of head pair / (D/2) (qkv RoPE). valid0 / valid1: the row exists.
struct RowPair {
  int r0, r1;
  bool valid0, valid1;
};
template <int kMode>
__device__ __forceinline__ RowPair rowPair(int pair, int N, int headDim) {
  if (kMode == kSwiglu) return {pair, N / 2 + pair, pair < N / 2, pair < N / 2};
  if (kMode == kQkvRope) {
    const int half = headDim / 2, r0 = pair / half * headDim + pair % half;
    return {r0, r0 + half, pair < N / 2, pair < N / 2};
  }
  return {2 * pair, 2 * pair + 1, 2 * pair < N, 2 * pair + 1 < N};
}

// launchQkvPost's arithmetic for dims i and i + D/2 (x1, x2: the GEMM's outputs, already rounded) of `head` (q heads,
// then k, then v) of token row t: bias, RoPE of q and k (fp32 angle, cos / sin in fp64), q to its buffer, k and v
// into the paged cache.
template <typename T>
__device__ __forceinline__ void storeQkvRope(const SkinnyQkvRope& o, int t, int head, int i, float x1, float x2) {
  const int D = o.hs.headDim, half = D / 2, nH = o.hs.numHeads, nKv = o.hs.numKvHeads;
  const int kind = head < nH ? 0 : head < nH + nKv ? 1 : 2;
  const int hIdx = kind == 0 ? head : kind == 1 ? head - nH : head - nH - nKv;
  const float* bias = kind == 0 ? o.qBias : kind == 1 ? o.kBias : o.vBias;
  if (bias) {
    x1 += bias[hIdx * D + i];
    x2 += bias[hIdx * D + i + half];
  }
  const int pos = o.tabs.positions[t];
  float y1 = x1, y2 = x2;
  if (kind < 2) ropePair(o.invFreq, i, pos, y1, y2);  // rope.cuh: the same bits as launchQkvPost
  T* dst;
  if (kind == 0) {
    dst = static_cast<T*>(o.q) + static_cast<size_t>(t) * nH * D + hIdx * D;
  } else {
    const int seq = o.tabs.tokenSeq[t];
    const int block = o.tabs.blockTables[static_cast<size_t>(seq) * o.tabs.maxBlocksPerSeq + pos / o.tabs.blockSize];
    const size_t cacheRow = (static_cast<size_t>(block) * o.tabs.blockSize + pos % o.tabs.blockSize) * nKv * D;
    dst = static_cast<T*>(kind == 1 ? o.kCache : o.vCache) + cacheRow + static_cast<size_t>(hIdx) * D;
  }
  dst[i] = fromF<T>(y1);
  dst[i + half] = fromF<T>(y2);
}

// x: [M, K], w: [N, K] (both row-major, 16-byte aligned rows), y: [M, N] (kSwiglu: [M, N / 2] Act; kQkvRope: unused,
// the outputs are in qkv).
// Prefetch one wave ahead: rows of block blockIdx.x + aheadBlocks, aheadRowBytes (a multiple of 16, ≤ 2K) of each.
// __launch_bounds__(kThreads, 1): the register allocation every device run since ac98379 measured (ptxas gives plain
// (kThreads) another one, e.g. bf16 M = 8: 100 registers instead of 134).
template <typename T, int M, int KS, int kMode>
__global__ void __launch_bounds__(kThreads, 1) skinnyGemmKernel(const T* __restrict__ x, int K, const T* __restrict__ w, int N,
                                                             void* __restrict__ y, bool yF32, int aheadBlocks,
                                                             unsigned aheadRowBytes, SkinnyQkvRope qkv) {
  constexpr int kGroups = kWarps / KS;
  __shared__ float partial[kWarps][2 * M];
  pdlLaunchDependents();
  const int colBlock = blockIdx.x, colBlocks = gridDim.x;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int group = warp / KS, slice = warp % KS;
  const int pair = colBlock * kGroups + group;
  const RowPair rows = rowPair<kMode>(pair, N, qkv.hs.headDim);
  const int r0 = rows.r0, r1 = rows.r1;
  const int numVecs = K / kVecElems;
  const bool has0 = rows.valid0, has1 = rows.valid1;
  // Rows past N read row r0 (always valid when has0) and are never stored.
  const uint4* w0 = reinterpret_cast<const uint4*>(w + static_cast<size_t>(has0 ? r0 : 0) * K);
  const uint4* w1 = reinterpret_cast<const uint4*>(w + static_cast<size_t>(has1 ? r1 : (has0 ? r0 : 0)) * K);
  const uint4* xv = reinterpret_cast<const uint4*>(x);

  // The weight vectors of the first iteration (a: v, b: v + KS·32; zeros past K): weights are written by no kernel,
  // so they are loaded before the wait for x.
  int v = slice * 32 + lane;
  uint4 a0 = make_uint4(0u, 0u, 0u, 0u), a1 = a0, b0 = a0, b1 = a0;
  if (has0 && v < numVecs) {
    a0 = __ldcs(w0 + v);
    a1 = __ldcs(w1 + v);
    if (v + KS * 32 < numVecs) {
      b0 = __ldcs(w0 + v + KS * 32);
      b1 = __ldcs(w1 + v + KS * 32);
    }
  }
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  if (aheadRowBytes > 0 && threadIdx.x < 2 * kGroups && colBlock + aheadBlocks < colBlocks) {
    const RowPair ahead = rowPair<kMode>((colBlock + aheadBlocks) * kGroups + threadIdx.x / 2, N, qkv.hs.headDim);
    const bool second = threadIdx.x % 2 == 1;
    if (second ? ahead.valid1 : ahead.valid0)
      asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;\n" ::"l"(w + static_cast<size_t>(second ? ahead.r1 : ahead.r0) * K),
                   "r"(aheadRowBytes)
                   : "memory");
  }
#endif
  pdlWait();  // x was written by the kernel before this one

  float acc[M][2];
#pragma unroll
  for (int m = 0; m < M; ++m) acc[m][0] = acc[m][1] = 0.0f;
  if (has0) {
    // Two vectors per weight row per iteration; the next iteration's four loads issue before this one's FMAs.
    for (; v + KS * 32 < numVecs; v += 2 * KS * 32) {
      const uint4 c0 = a0, c1 = a1, d0 = b0, d1 = b1;
      const int next = v + 2 * KS * 32;
      if (next < numVecs) {
        a0 = __ldcs(w0 + next);
        a1 = __ldcs(w1 + next);
        if (next + KS * 32 < numVecs) {
          b0 = __ldcs(w0 + next + KS * 32);
          b1 = __ldcs(w1 + next + KS * 32);
        }
      }
#pragma unroll
      for (int m = 0; m < M; ++m) {
        const uint4 xa = __ldg(xv + static_cast<size_t>(m) * numVecs + v);
        const uint4 xb = __ldg(xv + static_cast<size_t>(m) * numVecs + v + KS * 32);
        acc[m][0] += dot8<T>(xa, c0) + dot8<T>(xb, d0);
        acc[m][1] += dot8<T>(xa, c1) + dot8<T>(xb, d1);
      }
    }
    if (v < numVecs) {  // a0, a1 hold the vectors at v (loaded before the loop or by its last iteration)
#pragma unroll
      for (int m = 0; m < M; ++m) {
        const uint4 xa = __ldg(xv + static_cast<size_t>(m) * numVecs + v);
        acc[m][0] += dot8<T>(xa, a0);
        acc[m][1] += dot8<T>(xa, a1);
      }
    }
  }
#pragma unroll
  for (int m = 0; m < M; ++m)
#pragma unroll
    for (int c = 0; c < 2; ++c)
#pragma unroll
      for (int o = 16; o > 0; o >>= 1) acc[m][c] += __shfl_xor_sync(0xffffffffu, acc[m][c], o);
  if (lane == 0)
#pragma unroll
    for (int m = 0; m < M; ++m) {
      partial[warp][2 * m] = acc[m][0];
      partial[warp][2 * m + 1] = acc[m][1];
    }
  __syncthreads();
  if (kMode != kPlain) {
    // Slice 0 of each group: lane m < M sums both columns over the KS slices in slice order (as below) and rounds
    // them to the activation dtype (the GEMM's output), then applies the next kernel's arithmetic to them.
    if (slice == 0 && has0 && lane < M) {
      float sums[2] = {0.0f, 0.0f};
#pragma unroll
      for (int c = 0; c < 2; ++c)
#pragma unroll
        for (int s = 0; s < KS; ++s) sums[c] += partial[warp + s][2 * lane + c];
      const float a = toF(fromF<T>(sums[0])), b = toF(fromF<T>(sums[1]));
      if (kMode == kSwiglu) {  // launchSwiglu's float expression
        static_cast<T*>(y)[static_cast<size_t>(lane) * (N / 2) + pair] = fromF<T>(a / (1.0f + expf(-a)) * b);
      } else {
        const int half = qkv.hs.headDim / 2;
        storeQkvRope<T>(qkv, lane, pair / half, pair % half, a, b);
      }
    }
    return;
  }
  // Slice 0 of each group sums its KS slices in slice order and writes: lanes 0 .. 2M-1 each take one output.
  if (slice == 0 && has0 && lane < 2 * M) {
    const int m = lane / 2, c = lane % 2;
    if (c == 0 || has1) {
      float sum = 0.0f;
#pragma unroll
      for (int s = 0; s < KS; ++s) sum += partial[warp + s][lane];
      store<T>(y, static_cast<size_t>(m) * N + r0 + c, sum, yF32);
    }
  }
}

bool launchArgsOk(int M, int K, const void* x, const void* w) {
  const auto aligned = [](const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; };
  return M >= 1 && M <= kSkinnyGemmMaxRows && K > 0 && K % kVecElems == 0 && aligned(x) && aligned(w);
}

bool prefetchEnabled() {
  static const bool enabled = lora::envFlag("TSLORA_CUDA_SKINNY_PREFETCH", false);
  return enabled;
}

// Blocks of `kernel` resident on the whole GPU at once (one wave); read once per kernel.
template <typename Kernel>
int residentBlocks(Kernel kernel) {
  int device = 0, sms = 0, perSm = 0;
  if (cudaGetDevice(&device) != cudaSuccess || cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device) != cudaSuccess ||
      cudaOccupancyMaxActiveBlocksPerMultiprocessor(&perSm, kernel, kThreads, 0) != cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  return sms * perSm;
}

// What every launch carries besides x, w and the shape.
struct Epilogue {
  void* y;
  bool yF32;
  SkinnyQkvRope qkv;
};

template <typename T, int M, int KS, int kMode>
cudaError_t launchSplit(const T* x, int K, const T* w, int N, const Epilogue& e, cudaStream_t stream) {
  constexpr int kGroups = kWarps / KS;
  const auto kernel = skinnyGemmKernel<T, M, KS, kMode>;
  static const int resident = residentBlocks(kernel);
  const int blocks = (N + 2 * kGroups - 1) / (2 * kGroups);  // N / 2 column groups either way
  // Only when there is a next wave: its first aheadRowBytes of each row, within the budget, ≥ 256 bytes a row.
  unsigned aheadRowBytes = 0;
  const long prefetching = resident > 0 ? std::min(blocks - resident, resident) : 0;
  if (prefetchEnabled() && prefetching > 0) {
    const size_t perRow = std::min<size_t>(static_cast<size_t>(K) * 2, kPrefetchBudgetBytes / (prefetching * 2 * kGroups)) / 16 * 16;
    if (perRow >= 256) aheadRowBytes = static_cast<unsigned>(perRow);
  }
  return pdlLaunch(kernel, blocks, kThreads, 0, stream, x, K, w, N, e.y, e.yF32, resident, aheadRowBytes, e.qkv);
}

template <typename T, int M, int kMode>
cudaError_t launchRows(const void* x, int K, const void* w, int N, int kSplit, const Epilogue& e, cudaStream_t stream) {
  const T* xt = static_cast<const T*>(x);
  const T* wt = static_cast<const T*>(w);
  switch (kSplit) {
    case 1: return launchSplit<T, M, 1, kMode>(xt, K, wt, N, e, stream);
    case 2: return launchSplit<T, M, 2, kMode>(xt, K, wt, N, e, stream);
    case 4: return launchSplit<T, M, 4, kMode>(xt, K, wt, N, e, stream);
    case 8: return launchSplit<T, M, 8, kMode>(xt, K, wt, N, e, stream);
    default: return cudaErrorInvalidValue;
  }
}

template <typename T, int kMode>
cudaError_t launchTyped(const void* x, int M, int K, const void* w, int N, int kSplit, const Epilogue& e, cudaStream_t s) {
  switch (M) {
    case 1: return launchRows<T, 1, kMode>(x, K, w, N, kSplit, e, s);
    case 2: return launchRows<T, 2, kMode>(x, K, w, N, kSplit, e, s);
    case 3: return launchRows<T, 3, kMode>(x, K, w, N, kSplit, e, s);
    case 4: return launchRows<T, 4, kMode>(x, K, w, N, kSplit, e, s);
    case 5: return launchRows<T, 5, kMode>(x, K, w, N, kSplit, e, s);
    case 6: return launchRows<T, 6, kMode>(x, K, w, N, kSplit, e, s);
    case 7: return launchRows<T, 7, kMode>(x, K, w, N, kSplit, e, s);
    case 8: return launchRows<T, 8, kMode>(x, K, w, N, kSplit, e, s);
    default: return cudaErrorInvalidValue;
  }
}

template <int kMode>
cudaError_t launchMode(Act act, const void* x, int M, int K, const void* w, int N, int kSplit, const Epilogue& e, cudaStream_t s) {
  if (N <= 0) return cudaSuccess;
  if (!launchArgsOk(M, K, x, w)) return cudaErrorInvalidValue;
  return act == Act::BF16 ? launchTyped<__nv_bfloat16, kMode>(x, M, K, w, N, kSplit, e, s)
                          : launchTyped<__half, kMode>(x, M, K, w, N, kSplit, e, s);
}

}  // namespace

bool skinnyGemmApplies(int M, int N, int K, const void* x, const void* w) {
  const auto aligned = [](const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; };
  if (M < 1 || M > kSkinnyGemmMaxRows || N < 1 || K <= 0 || K % kVecElems != 0 || !aligned(x) || !aligned(w)) return false;
  const double weightBytes = 2.0 * N * K;
  if (M <= 2) return true;
  if (M <= 4) return weightBytes <= 36e6;
  return weightBytes <= 10e6;
}

int skinnyGemmKSplit(int N, int K, int numSms) {
  const long targetWarps = static_cast<long>(numSms) * 64;
  const int numVecs = K / kVecElems;
  int kSplit = 1;
  while (kSplit < kWarps && static_cast<long>((N + 1) / 2) * kSplit < targetWarps && numVecs / (2 * kSplit * 32) >= 1)
    kSplit *= 2;
  return kSplit;
}

cudaError_t launchSkinnyGemm(Act act, const void* x, int M, int K, const void* w, int N, void* y, bool yF32, int kSplit,
                             cudaStream_t stream) {
  return launchMode<kPlain>(act, x, M, K, w, N, kSplit, Epilogue{y, yF32, SkinnyQkvRope{}}, stream);
}

cudaError_t launchSkinnyGemmSwiglu(Act act, const void* x, int M, int K, const void* gateUp, int I, void* y, int kSplit,
                                   cudaStream_t stream) {
  return launchMode<kSwiglu>(act, x, M, K, gateUp, 2 * I, kSplit, Epilogue{y, false, SkinnyQkvRope{}}, stream);
}

cudaError_t launchSkinnyGemmQkvRope(Act act, const void* x, int M, int K, const void* wQkv, const SkinnyQkvRope& out,
                                    int kSplit, cudaStream_t stream) {
  const HeadShape& hs = out.hs;
  if (hs.headDim < 2 || hs.headDim % 2 != 0 || hs.numHeads < 1 || hs.numKvHeads < 1) return cudaErrorInvalidValue;
  return launchMode<kQkvRope>(act, x, M, K, wQkv, (hs.numHeads + 2 * hs.numKvHeads) * hs.headDim, kSplit,
                              Epilogue{nullptr, false, out}, stream);
}

}  // namespace tslora::cuda
