// Row and elementwise kernels of the CUDA forward (kernels.h): one block per row, or one warp per (token, head) for
// the qkv post-processing; fp32 math, warp-shuffle reductions. Attention is in attention.cu, greedy rows in greedy.cu.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cmath>

#include "kernels.h"

namespace tslora::cuda {
namespace {

__device__ __forceinline__ float toF(__nv_bfloat16 v) { return __bfloat162float(v); }
__device__ __forceinline__ float toF(__half v) { return __half2float(v); }
template <typename T>
__device__ __forceinline__ T fromF(float v);
template <>
__device__ __forceinline__ __nv_bfloat16 fromF<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }
template <>
__device__ __forceinline__ __half fromF<__half>(float v) { return __float2half_rn(v); }

__device__ __forceinline__ float warpSum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// Sum over the block (blockDim.x a multiple of 32, at most 1024); every thread gets the result.
__device__ float blockSum(float v) {
  __shared__ float partial[32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  v = warpSum(v);
  __syncthreads();  // partial may still be read by a previous call
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  float total = 0.0f;
  for (int w = 0; w < warps; ++w) total += partial[w];
  return total;
}

template <typename T>
__global__ void embedKernel(const T* embed, const int32_t* tokenIds, int H, float* hidden) {
  const int t = blockIdx.x;
  const T* src = embed + static_cast<size_t>(tokenIds[t]) * H;
  float* dst = hidden + static_cast<size_t>(t) * H;
  for (int i = threadIdx.x; i < H; i += blockDim.x) dst[i] = toF(src[i]);
}

template <typename T>
__global__ void addRmsNormKernel(float* hidden, const T* add, const float* w, T* out, const int32_t* rowMap, int H,
                                 float eps) {
  const int r = blockIdx.x;
  const int src = rowMap ? rowMap[r] : r;
  float* h = hidden + static_cast<size_t>(src) * H;
  float sumSq = 0.0f;
  for (int i = threadIdx.x; i < H; i += blockDim.x) {
    float v = h[i];
    if (add) {
      v += toF(add[static_cast<size_t>(r) * H + i]);
      h[i] = v;
    }
    sumSq += v * v;
  }
  if (!w) return;
  const float inv = rsqrtf(blockSum(sumSq) / H + eps);
  for (int i = threadIdx.x; i < H; i += blockDim.x) out[static_cast<size_t>(r) * H + i] = fromF<T>(w[i] * (h[i] * inv));
}

// One warp per (token, head), kQkvWarps warps per block: heads [0, nH) of a token are q, [nH, nH + nKv) k, the rest v.
// Shared: [warps][D] fp32 (the head being rotated; RoPE pairs dims i and i + D/2, which may sit in other lanes).
constexpr int kQkvWarps = 8;

template <typename T>
__global__ void __launch_bounds__(32 * kQkvWarps)
    qkvPostKernel(const T* qkv, int T_, HeadShape hs, const float* qBias, const float* kBias, const float* vBias,
                  const float* qNorm, const float* kNorm, float eps, const float* invFreq, AttnTables tabs, T* qOut,
                  T* kCache, T* vCache) {
  extern __shared__ float buf[];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int D = hs.headDim, half = D / 2, nH = hs.numHeads, nKv = hs.numKvHeads;
  const int headsPerToken = nH + 2 * nKv;
  const long long work = static_cast<long long>(blockIdx.x) * kQkvWarps + warp;
  if (work >= static_cast<long long>(T_) * headsPerToken) return;  // whole warp; the kernel has no block barrier
  const int t = static_cast<int>(work / headsPerToken), head = static_cast<int>(work % headsPerToken);
  const int qW = nH * D, kvW = nKv * D, rowW = qW + 2 * kvW;
  const int pos = tabs.positions[t];
  const int kind = head < nH ? 0 : head < nH + nKv ? 1 : 2;
  const int hIdx = kind == 0 ? head : kind == 1 ? head - nH : head - nH - nKv;
  const int col = kind == 0 ? hIdx * D : kind == 1 ? qW + hIdx * D : qW + kvW + hIdx * D;
  const float* bias = kind == 0 ? qBias : kind == 1 ? kBias : vBias;
  const T* row = qkv + static_cast<size_t>(t) * rowW + col;
  float* x = buf + warp * D;
  float sumSq = 0.0f;
  for (int i = lane; i < D; i += 32) {
    float v = toF(row[i]);
    if (bias) v += bias[hIdx * D + i];
    x[i] = v;
    sumSq += v * v;
  }
  const float* norm = kind == 0 ? qNorm : kind == 1 ? kNorm : nullptr;
  if (norm) {
    const float inv = rsqrtf(warpSum(sumSq) / D + eps);
    for (int i = lane; i < D; i += 32) x[i] = norm[i] * (x[i] * inv);
  }
  __syncwarp();
  if (kind < 2) {
    for (int i = lane; i < half; i += 32) {
      const float angle = invFreq[i] * static_cast<float>(pos);  // fp32 product, like transformers
      const float c = static_cast<float>(cos(static_cast<double>(angle)));
      const float s = static_cast<float>(sin(static_cast<double>(angle)));
      const float x1 = x[i], x2 = x[i + half];
      x[i] = x1 * c - x2 * s;
      x[i + half] = x2 * c + x1 * s;
    }
    __syncwarp();
  }
  T* dst;
  if (kind == 0) {
    dst = qOut + static_cast<size_t>(t) * qW + hIdx * D;
  } else {
    const int seq = tabs.tokenSeq[t];
    const int block = tabs.blockTables[static_cast<size_t>(seq) * tabs.maxBlocksPerSeq + pos / tabs.blockSize];
    const size_t cacheRow = (static_cast<size_t>(block) * tabs.blockSize + pos % tabs.blockSize) * kvW;
    dst = (kind == 1 ? kCache : vCache) + cacheRow + static_cast<size_t>(hIdx) * D;
  }
  for (int i = lane; i < D; i += 32) dst[i] = fromF<T>(x[i]);
}

template <typename T>
__global__ void swigluKernel(const T* gu, int T_, int I, T* out) {
  const size_t n = static_cast<size_t>(T_) * I;
  for (size_t idx = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; idx < n;
       idx += static_cast<size_t>(gridDim.x) * blockDim.x) {
    const size_t t = idx / I, i = idx % I;
    const float g = toF(gu[t * 2 * I + i]);
    const float u = toF(gu[t * 2 * I + I + i]);
    out[idx] = fromF<T>(g / (1.0f + expf(-g)) * u);
  }
}

int normThreads(int H) { return H >= 1024 ? 1024 : H >= 256 ? 256 : 128; }

}  // namespace

#define TSLORA_DISPATCH(act, ...)                   \
  if ((act) == Act::BF16) {                         \
    using TT = __nv_bfloat16;                       \
    __VA_ARGS__;                                    \
  } else {                                          \
    using TT = __half;                              \
    __VA_ARGS__;                                    \
  }

cudaError_t launchEmbed(Act act, const void* embed, const int32_t* tokenIds, int T, int H, float* hidden, cudaStream_t s) {
  if (T == 0) return cudaSuccess;
  TSLORA_DISPATCH(act, embedKernel<TT><<<T, normThreads(H), 0, s>>>(static_cast<const TT*>(embed), tokenIds, H, hidden));
  return cudaGetLastError();
}

cudaError_t launchAddRmsNorm(Act act, float* hidden, const void* add, const float* w, void* out, const int32_t* rowMap,
                             int rows, int H, float eps, cudaStream_t s) {
  if (rows == 0) return cudaSuccess;
  TSLORA_DISPATCH(act, addRmsNormKernel<TT><<<rows, normThreads(H), 0, s>>>(hidden, static_cast<const TT*>(add), w,
                                                                            static_cast<TT*>(out), rowMap, H, eps));
  return cudaGetLastError();
}

cudaError_t launchQkvPost(Act act, const void* qkv, int T, const HeadShape& hs, const float* qBias, const float* kBias,
                          const float* vBias, const float* qNorm, const float* kNorm, float eps, const float* invFreq,
                          const AttnTables& tabs, void* qOut, void* kCache, void* vCache, cudaStream_t s) {
  if (T == 0) return cudaSuccess;
  const long long warpsTotal = static_cast<long long>(T) * (hs.numHeads + 2 * hs.numKvHeads);
  const long long blocks = (warpsTotal + kQkvWarps - 1) / kQkvWarps;
  if (blocks > 0x7fffffffLL) return cudaErrorInvalidValue;
  const size_t smem = static_cast<size_t>(kQkvWarps) * hs.headDim * sizeof(float);
  TSLORA_DISPATCH(act, qkvPostKernel<TT><<<static_cast<unsigned>(blocks), 32 * kQkvWarps, smem, s>>>(
                           static_cast<const TT*>(qkv), T, hs, qBias, kBias, vBias, qNorm, kNorm, eps, invFreq, tabs,
                           static_cast<TT*>(qOut), static_cast<TT*>(kCache), static_cast<TT*>(vCache)));
  return cudaGetLastError();
}

cudaError_t launchSwiglu(Act act, const void* gu, int T, int I, void* out, cudaStream_t s) {
  if (T == 0) return cudaSuccess;
  const size_t n = static_cast<size_t>(T) * I;
  const int blocks = static_cast<int>(std::min<size_t>((n + 255) / 256, 65535));
  TSLORA_DISPATCH(act, swigluKernel<TT><<<blocks, 256, 0, s>>>(static_cast<const TT*>(gu), T, I, static_cast<TT*>(out)));
  return cudaGetLastError();
}

namespace {
template <typename T>
__global__ void addDeltaKernel(const T* delta, size_t n, float* out) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n; i += static_cast<size_t>(gridDim.x) * blockDim.x)
    out[i] += toF(delta[i]);
}
}  // namespace

cudaError_t launchAddDeltaToF32(Act act, const void* delta, size_t n, float* out, cudaStream_t s) {
  if (n == 0) return cudaSuccess;
  const int blocks = static_cast<int>(std::min<size_t>((n + 255) / 256, 65535));
  TSLORA_DISPATCH(act, addDeltaKernel<TT><<<blocks, 256, 0, s>>>(static_cast<const TT*>(delta), n, out));
  return cudaGetLastError();
}

}  // namespace tslora::cuda
