// Row and elementwise kernels of the CUDA forward (kernels.h). Simple, correct first: one block per row / token,
// fp32 math, warp-shuffle reductions.
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

// One warp per head: heads [0, nH) are q, [nH, nH + nKv) k, the rest v. Shared: [warps][D] fp32.
template <typename T>
__global__ void qkvPostKernel(const T* qkv, HeadShape hs, const float* qBias, const float* kBias, const float* vBias,
                              const float* qNorm, const float* kNorm, float eps, const float* invFreq, AttnTables tabs,
                              T* qOut, T* kCache, T* vCache) {
  extern __shared__ float buf[];
  const int t = blockIdx.x, lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  const int D = hs.headDim, half = D / 2, nH = hs.numHeads, nKv = hs.numKvHeads;
  const int qW = nH * D, kvW = nKv * D, rowW = qW + 2 * kvW;
  const int pos = tabs.positions[t];
  const int seq = tabs.tokenSeq[t];
  const int block = tabs.blockTables[static_cast<size_t>(seq) * tabs.maxBlocksPerSeq + pos / tabs.blockSize];
  const size_t cacheRow = (static_cast<size_t>(block) * tabs.blockSize + pos % tabs.blockSize) * kvW;
  float* x = buf + warp * D;
  for (int head = warp; head < nH + 2 * nKv; head += warps) {
    const int kind = head < nH ? 0 : head < nH + nKv ? 1 : 2;
    const int hIdx = kind == 0 ? head : kind == 1 ? head - nH : head - nH - nKv;
    const int col = kind == 0 ? hIdx * D : kind == 1 ? qW + hIdx * D : qW + kvW + hIdx * D;
    const float* bias = kind == 0 ? qBias : kind == 1 ? kBias : vBias;
    const T* row = qkv + static_cast<size_t>(t) * rowW + col;
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
    T* dst = kind == 0 ? qOut + static_cast<size_t>(t) * qW + hIdx * D
                       : (kind == 1 ? kCache : vCache) + cacheRow + static_cast<size_t>(hIdx) * D;
    for (int i = lane; i < D; i += 32) dst[i] = fromF<T>(x[i]);
    __syncwarp();
  }
}

// Grid (T, numHeads), kWarps warps: each warp runs an online softmax over keys j ≡ warp (mod kWarps), then the warps
// are merged. Lane l holds dims l, l+32, … (DPL per lane).
constexpr int kAttnWarps = 4;

template <typename T, int DPL>
__global__ void attentionKernel(const T* q, HeadShape hs, float scale, AttnTables tabs, const T* kCache,
                                const T* vCache, T* out) {
  __shared__ float sAcc[kAttnWarps][DPL * 32];
  __shared__ float sMax[kAttnWarps], sSum[kAttnWarps];
  const int t = blockIdx.x, h = blockIdx.y, lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int D = hs.headDim, kvW = hs.numKvHeads * D;
  const int kvh = h / (hs.numHeads / hs.numKvHeads);
  const int numKeys = tabs.positions[t] + 1;
  const int32_t* table = tabs.blockTables + static_cast<size_t>(tabs.tokenSeq[t]) * tabs.maxBlocksPerSeq;
  float qv[DPL], acc[DPL];
  const T* qRow = q + static_cast<size_t>(t) * hs.numHeads * D + static_cast<size_t>(h) * D;
#pragma unroll
  for (int i = 0; i < DPL; ++i) {
    const int d = lane + 32 * i;
    qv[i] = d < D ? toF(qRow[d]) * scale : 0.0f;
    acc[i] = 0.0f;
  }
  float m = -INFINITY, l = 0.0f;
  for (int j = warp; j < numKeys; j += kAttnWarps) {
    const size_t off = (static_cast<size_t>(table[j / tabs.blockSize]) * tabs.blockSize + j % tabs.blockSize) * kvW +
                       static_cast<size_t>(kvh) * D;
    float dot = 0.0f;
#pragma unroll
    for (int i = 0; i < DPL; ++i) {
      const int d = lane + 32 * i;
      if (d < D) dot += qv[i] * toF(kCache[off + d]);
    }
    const float s = warpSum(dot);
    const float mNew = fmaxf(m, s);
    const float corr = __expf(m - mNew);
    const float p = __expf(s - mNew);
    l = l * corr + p;
#pragma unroll
    for (int i = 0; i < DPL; ++i) {
      const int d = lane + 32 * i;
      acc[i] = acc[i] * corr + (d < D ? p * toF(vCache[off + d]) : 0.0f);
    }
    m = mNew;
  }
#pragma unroll
  for (int i = 0; i < DPL; ++i) sAcc[warp][lane + 32 * i] = acc[i];
  if (lane == 0) {
    sMax[warp] = m;
    sSum[warp] = l;
  }
  __syncthreads();
  float M = -INFINITY;
  for (int w = 0; w < kAttnWarps; ++w) M = fmaxf(M, sMax[w]);
  float L = 0.0f;
  for (int w = 0; w < kAttnWarps; ++w) L += sMax[w] == -INFINITY ? 0.0f : sSum[w] * __expf(sMax[w] - M);
  T* oRow = out + static_cast<size_t>(t) * hs.numHeads * D + static_cast<size_t>(h) * D;
  for (int d = threadIdx.x; d < D; d += blockDim.x) {
    float v = 0.0f;
    for (int w = 0; w < kAttnWarps; ++w)
      if (sMax[w] != -INFINITY) v += sAcc[w][d] * __expf(sMax[w] - M);
    oRow[d] = fromF<T>(v / L);
  }
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

constexpr int kGreedyThreads = 512;

__global__ void greedyRowsKernel(const float* logits, int V, int32_t* tokens, float* logprobs) {
  __shared__ float sMax[kGreedyThreads];
  __shared__ int sIdx[kGreedyThreads];
  __shared__ double sSum[kGreedyThreads];
  const float* x = logits + static_cast<size_t>(blockIdx.x) * V;
  float best = -INFINITY;
  int bestIdx = 0x7fffffff;
  for (int i = threadIdx.x; i < V; i += blockDim.x) {
    const float v = x[i];
    if (v > best || (v == best && i < bestIdx)) {
      best = v;
      bestIdx = i;
    }
  }
  sMax[threadIdx.x] = best;
  sIdx[threadIdx.x] = bestIdx;
  __syncthreads();
  for (int stride = blockDim.x / 2; stride > 0; stride >>= 1) {
    if (threadIdx.x < stride) {
      const float o = sMax[threadIdx.x + stride];
      const int oi = sIdx[threadIdx.x + stride];
      if (o > sMax[threadIdx.x] || (o == sMax[threadIdx.x] && oi < sIdx[threadIdx.x])) {
        sMax[threadIdx.x] = o;
        sIdx[threadIdx.x] = oi;
      }
    }
    __syncthreads();
  }
  const float mx = sMax[0];
  const int token = sIdx[0] == 0x7fffffff ? 0 : sIdx[0];
  double sum = 0.0;
  if (isfinite(mx))
    for (int i = threadIdx.x; i < V; i += blockDim.x) sum += static_cast<double>(expf(x[i] - mx));
  __syncthreads();
  sSum[threadIdx.x] = sum;
  __syncthreads();
  for (int stride = blockDim.x / 2; stride > 0; stride >>= 1) {
    if (threadIdx.x < stride) sSum[threadIdx.x] += sSum[threadIdx.x + stride];
    __syncthreads();
  }
  if (threadIdx.x == 0) {
    const double lse = isfinite(mx) ? static_cast<double>(mx) + log(sSum[0]) : static_cast<double>(mx);
    tokens[blockIdx.x] = token;
    logprobs[blockIdx.x] = static_cast<float>(static_cast<double>(x[token]) - lse);
  }
}

int normThreads(int H) { return H >= 1024 ? 1024 : H >= 256 ? 256 : 128; }

template <typename T>
cudaError_t attention(const void* q, int T_, const HeadShape& hs, float scale, const AttnTables& tabs,
                      const void* kCache, const void* vCache, void* out, cudaStream_t s) {
  const dim3 grid(T_, hs.numHeads), block(32 * kAttnWarps);
  auto qp = static_cast<const T*>(q);
  auto kp = static_cast<const T*>(kCache);
  auto vp = static_cast<const T*>(vCache);
  auto op = static_cast<T*>(out);
  const int dpl = (hs.headDim + 31) / 32;
  if (dpl <= 1) attentionKernel<T, 1><<<grid, block, 0, s>>>(qp, hs, scale, tabs, kp, vp, op);
  else if (dpl <= 2) attentionKernel<T, 2><<<grid, block, 0, s>>>(qp, hs, scale, tabs, kp, vp, op);
  else if (dpl <= 4) attentionKernel<T, 4><<<grid, block, 0, s>>>(qp, hs, scale, tabs, kp, vp, op);
  else if (dpl <= 8) attentionKernel<T, 8><<<grid, block, 0, s>>>(qp, hs, scale, tabs, kp, vp, op);
  else if (dpl <= 16) attentionKernel<T, 16><<<grid, block, 0, s>>>(qp, hs, scale, tabs, kp, vp, op);
  else return cudaErrorInvalidValue;
  return cudaGetLastError();
}

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
  const int warps = 8;
  const size_t smem = static_cast<size_t>(warps) * hs.headDim * sizeof(float);
  TSLORA_DISPATCH(act, qkvPostKernel<TT><<<T, 32 * warps, smem, s>>>(
                           static_cast<const TT*>(qkv), hs, qBias, kBias, vBias, qNorm, kNorm, eps, invFreq, tabs,
                           static_cast<TT*>(qOut), static_cast<TT*>(kCache), static_cast<TT*>(vCache)));
  return cudaGetLastError();
}

cudaError_t launchAttention(Act act, const void* q, int T, const HeadShape& hs, float scale, const AttnTables& tabs,
                            const void* kCache, const void* vCache, void* out, cudaStream_t s) {
  if (T == 0) return cudaSuccess;
  if (act == Act::BF16) return attention<__nv_bfloat16>(q, T, hs, scale, tabs, kCache, vCache, out, s);
  return attention<__half>(q, T, hs, scale, tabs, kCache, vCache, out, s);
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

cudaError_t launchGreedyRows(const float* logits, int N, int V, int32_t* tokens, float* logprobs, cudaStream_t s) {
  if (N == 0) return cudaSuccess;
  greedyRowsKernel<<<N, kGreedyThreads, 0, s>>>(logits, V, tokens, logprobs);
  return cudaGetLastError();
}

}  // namespace tslora::cuda
