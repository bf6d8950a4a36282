// Skinny GEMM (skinny-gemm.h). Block = 8 warps = (8 / KS) column groups × KS K-slices; a column group owns two
// adjacent output columns n0, n0 + 1 (= two rows of w). Warp (g, s) walks 16-byte vectors v = s·32 + lane,
// s·32 + lane + KS·32, … of both weight rows and of the M activation rows, accumulating 2·M fp32 sums; the sums are
// reduced over the warp by shuffles and over the KS slices in shared memory, in a fixed order, so a row's result
// does not depend on M or on which other rows share the launch.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "skinny-gemm.h"

namespace tslora::cuda {
namespace {

constexpr int kWarps = 8;
constexpr int kThreads = kWarps * 32;
constexpr int kVecElems = 8;  // one 16-byte vector of bf16 / fp16

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

__device__ __forceinline__ void storeAs(__nv_bfloat16* y, float v) { *y = __float2bfloat16_rn(v); }
__device__ __forceinline__ void storeAs(__half* y, float v) { *y = __float2half_rn(v); }

template <typename T>
__device__ __forceinline__ void store(void* y, size_t index, float v, bool yF32) {
  if (yF32) static_cast<float*>(y)[index] = v;
  else storeAs(static_cast<T*>(y) + index, v);
}

// x: [M, K], w: [N, K] (both row-major, 16-byte aligned rows), y: [M, N].
template <typename T, int M, int KS>
__global__ void __launch_bounds__(kThreads) skinnyGemmKernel(const T* __restrict__ x, int K, const T* __restrict__ w, int N,
                                                             void* __restrict__ y, bool yF32) {
  constexpr int kGroups = kWarps / KS;
  __shared__ float partial[kWarps][2 * M];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int group = warp / KS, slice = warp % KS;
  const int n0 = (blockIdx.x * kGroups + group) * 2;
  const int numVecs = K / kVecElems;
  const bool has0 = n0 < N, has1 = n0 + 1 < N;
  // Rows past N read row n0 (always valid when has0) and are never stored.
  const uint4* w0 = reinterpret_cast<const uint4*>(w + static_cast<size_t>(has0 ? n0 : 0) * K);
  const uint4* w1 = reinterpret_cast<const uint4*>(w + static_cast<size_t>(has1 ? n0 + 1 : (has0 ? n0 : 0)) * K);
  const uint4* xv = reinterpret_cast<const uint4*>(x);

  float acc[M][2];
#pragma unroll
  for (int m = 0; m < M; ++m) acc[m][0] = acc[m][1] = 0.0f;
  if (has0) {
    int v = slice * 32 + lane;
    // Two vectors per weight row in flight per iteration: the loads of both rows issue before any FMA.
    for (; v + KS * 32 < numVecs; v += 2 * KS * 32) {
      const uint4 a0 = __ldcs(w0 + v), a1 = __ldcs(w1 + v);
      const uint4 b0 = __ldcs(w0 + v + KS * 32), b1 = __ldcs(w1 + v + KS * 32);
#pragma unroll
      for (int m = 0; m < M; ++m) {
        const uint4 xa = __ldg(xv + static_cast<size_t>(m) * numVecs + v);
        const uint4 xb = __ldg(xv + static_cast<size_t>(m) * numVecs + v + KS * 32);
        acc[m][0] += dot8<T>(xa, a0) + dot8<T>(xb, b0);
        acc[m][1] += dot8<T>(xa, a1) + dot8<T>(xb, b1);
      }
    }
    if (v < numVecs) {
      const uint4 a0 = __ldcs(w0 + v), a1 = __ldcs(w1 + v);
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
  // Slice 0 of each group sums its KS slices in slice order and writes: lanes 0 .. 2M-1 each take one output.
  if (slice == 0 && has0 && lane < 2 * M) {
    const int m = lane / 2, c = lane % 2;
    if (c == 0 || has1) {
      float sum = 0.0f;
#pragma unroll
      for (int s = 0; s < KS; ++s) sum += partial[warp + s][lane];
      store<T>(y, static_cast<size_t>(m) * N + n0 + c, sum, yF32);
    }
  }
}

template <typename T, int M>
cudaError_t launchRows(const void* x, int K, const void* w, int N, void* y, bool yF32, int kSplit, cudaStream_t stream) {
  const T* xt = static_cast<const T*>(x);
  const T* wt = static_cast<const T*>(w);
  const int groups = kWarps / kSplit;
  const dim3 grid((N + 2 * groups - 1) / (2 * groups));
  switch (kSplit) {
    case 1: skinnyGemmKernel<T, M, 1><<<grid, kThreads, 0, stream>>>(xt, K, wt, N, y, yF32); break;
    case 2: skinnyGemmKernel<T, M, 2><<<grid, kThreads, 0, stream>>>(xt, K, wt, N, y, yF32); break;
    case 4: skinnyGemmKernel<T, M, 4><<<grid, kThreads, 0, stream>>>(xt, K, wt, N, y, yF32); break;
    case 8: skinnyGemmKernel<T, M, 8><<<grid, kThreads, 0, stream>>>(xt, K, wt, N, y, yF32); break;
    default: return cudaErrorInvalidValue;
  }
  return cudaGetLastError();
}

template <typename T>
cudaError_t launchTyped(const void* x, int M, int K, const void* w, int N, void* y, bool yF32, int kSplit, cudaStream_t s) {
  switch (M) {
    case 1: return launchRows<T, 1>(x, K, w, N, y, yF32, kSplit, s);
    case 2: return launchRows<T, 2>(x, K, w, N, y, yF32, kSplit, s);
    case 3: return launchRows<T, 3>(x, K, w, N, y, yF32, kSplit, s);
    case 4: return launchRows<T, 4>(x, K, w, N, y, yF32, kSplit, s);
    case 5: return launchRows<T, 5>(x, K, w, N, y, yF32, kSplit, s);
    case 6: return launchRows<T, 6>(x, K, w, N, y, yF32, kSplit, s);
    case 7: return launchRows<T, 7>(x, K, w, N, y, yF32, kSplit, s);
    case 8: return launchRows<T, 8>(x, K, w, N, y, yF32, kSplit, s);
    default: return cudaErrorInvalidValue;
  }
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
  if (N <= 0) return cudaSuccess;
  const auto aligned = [](const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; };
  if (M < 1 || M > kSkinnyGemmMaxRows || K <= 0 || K % kVecElems != 0 || !aligned(x) || !aligned(w)) return cudaErrorInvalidValue;
  return act == Act::BF16 ? launchTyped<__nv_bfloat16>(x, M, K, w, N, y, yF32, kSplit, stream)
                          : launchTyped<__half>(x, M, K, w, N, y, yF32, kSplit, stream);
}

}  // namespace tslora::cuda
