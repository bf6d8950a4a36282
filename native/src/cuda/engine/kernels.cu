// Row and elementwise kernels of the CUDA forward (kernels.h): one block per row, or one warp per (token, head) for
// the qkv post-processing; fp32 math, warp-shuffle reductions. Attention is in attention.cu, greedy rows in greedy.cu.
// Every kernel here is launched as a programmatic dependent (pdl.h): it triggers its dependents at once and waits
// (pdlWait) before it reads anything an earlier kernel wrote; before the wait it reads weights only.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "act-convert.cuh"
#include "kernels.h"
#include "pdl.h"
#include "rope.cuh"

namespace tslora::cuda {
namespace {


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
  pdlLaunchDependents();
  pdlWait();
  const int t = blockIdx.x;
  const T* src = embed + static_cast<size_t>(tokenIds[t]) * H;
  float* dst = hidden + static_cast<size_t>(t) * H;
  for (int i = threadIdx.x; i < H; i += blockDim.x) dst[i] = toF(src[i]);
}

// D: the LoRA delta's element type (float, or T with TSLORA_CUDA_LORA_DELTA_ACT; kernels.h LoraDeltaIn), here and in
// the other consumers below.
template <typename T, typename D>
__global__ void addRmsNormKernel(float* hidden, const T* add, const float* w, T* out, const int32_t* rowMap, int H,
                                 float eps, const D* addDelta) {
  pdlLaunchDependents();
  pdlWait();
  const int r = blockIdx.x;
  const int src = rowMap ? rowMap[r] : r;
  float* h = hidden + static_cast<size_t>(src) * H;
  float sumSq = 0.0f;
  for (int i = threadIdx.x; i < H; i += blockDim.x) {
    float v = h[i];
    if (add) {
      const size_t at = static_cast<size_t>(r) * H + i;
      v += addDelta ? withDelta<T>(toF(add[at]), toF(addDelta[at])) : toF(add[at]);
      h[i] = v;
    }
    sumSq += v * v;
  }
  if (!w) return;
  const float inv = rsqrtf(blockSum(sumSq) / H + eps);
  for (int i = threadIdx.x; i < H; i += blockDim.x) out[static_cast<size_t>(r) * H + i] = fromF<T>(w[i] * (h[i] * inv));
}

// Two packed 16-bit values (element 0 in the low half) ↔ two floats.
template <typename T>
__device__ __forceinline__ float2 unpack2(uint32_t bits);
template <>
__device__ __forceinline__ float2 unpack2<__nv_bfloat16>(uint32_t bits) {
  return make_float2(__uint_as_float(bits << 16), __uint_as_float(bits & 0xffff0000u));
}
template <>
__device__ __forceinline__ float2 unpack2<__half>(uint32_t bits) {
  return make_float2(__half2float(__ushort_as_half(static_cast<unsigned short>(bits & 0xffffu))),
                     __half2float(__ushort_as_half(static_cast<unsigned short>(bits >> 16))));
}
__device__ __forceinline__ uint32_t bitsOf(__nv_bfloat16 v) { return __bfloat16_as_ushort(v); }
__device__ __forceinline__ uint32_t bitsOf(__half v) { return __half_as_ushort(v); }
template <typename T>
__device__ __forceinline__ uint32_t pack2(float a, float b) {
  return bitsOf(fromF<T>(a)) | bitsOf(fromF<T>(b)) << 16;
}

// addRmsNormKernel with 16-byte fp32 / 8-byte Act accesses, the row held in registers between the two passes
// (VPT float4 per thread), and the norm weights loaded before the reduction. H % 4 == 0, 16-byte aligned rows.
template <typename T, int VPT, typename D>
__global__ void addRmsNormVecKernel(float* hidden, const T* add, const float* w, T* out, const int32_t* rowMap, int H,
                                    float eps, const D* addDelta) {
  pdlLaunchDependents();
  const int nv = H / 4;
  float4 x[VPT], wv[VPT];
#pragma unroll
  for (int k = 0; k < VPT; ++k) {  // the norm weights: written by no kernel, loaded before the wait
    const int i = threadIdx.x + k * blockDim.x;
    wv[k] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    if (w && i < nv) wv[k] = reinterpret_cast<const float4*>(w)[i];
  }
  pdlWait();
  const int r = blockIdx.x;
  const int src = rowMap ? rowMap[r] : r;
  float4* h = reinterpret_cast<float4*>(hidden + static_cast<size_t>(src) * H);
  const uint2* a = add ? reinterpret_cast<const uint2*>(add + static_cast<size_t>(r) * H) : nullptr;
  const D* ad = add && addDelta ? addDelta + static_cast<size_t>(r) * H : nullptr;
  float sumSq = 0.0f;
#pragma unroll
  for (int k = 0; k < VPT; ++k) {
    const int i = threadIdx.x + k * blockDim.x;
    x[k] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    if (i < nv) {
      float4 v = h[i];
      if (a) {
        const uint2 bits = a[i];
        float2 lo = unpack2<T>(bits.x), hi = unpack2<T>(bits.y);
        if (ad) {
          const float4 d = deltaLoad4<D>(ad, i);
          lo = make_float2(withDelta<T>(lo.x, d.x), withDelta<T>(lo.y, d.y));
          hi = make_float2(withDelta<T>(hi.x, d.z), withDelta<T>(hi.y, d.w));
        }
        v.x += lo.x;
        v.y += lo.y;
        v.z += hi.x;
        v.w += hi.y;
        h[i] = v;
      }
      x[k] = v;
      sumSq += v.x * v.x + v.y * v.y + v.z * v.z + v.w * v.w;
    }
  }
  if (!w) return;
  const float inv = rsqrtf(blockSum(sumSq) / H + eps);
  uint2* o = reinterpret_cast<uint2*>(out + static_cast<size_t>(r) * H);
#pragma unroll
  for (int k = 0; k < VPT; ++k) {
    const int i = threadIdx.x + k * blockDim.x;
    if (i < nv)
      o[i] = make_uint2(pack2<T>(wv[k].x * (x[k].x * inv), wv[k].y * (x[k].y * inv)),
                        pack2<T>(wv[k].z * (x[k].z * inv), wv[k].w * (x[k].w * inv)));
  }
}

// One warp per (token, head), kQkvWarps warps per block: heads [0, nH) of a token are q, [nH, nH + nKv) k, the rest v.
// Shared: [warps][D] fp32 (the head being rotated; RoPE pairs dims i and i + D/2, which may sit in other lanes).
constexpr int kQkvWarps = 8;

template <typename T, typename DeltaT>
__global__ void __launch_bounds__(32 * kQkvWarps)
    qkvPostKernel(const T* qkv, int T_, HeadShape hs, const float* qBias, const float* kBias, const float* vBias,
                  const float* qNorm, const float* kNorm, float eps, const float* invFreq, AttnTables tabs, T* qOut,
                  T* kCache, T* vCache, const DeltaT* qkvDelta) {
  extern __shared__ float buf[];
  pdlLaunchDependents();
  pdlWait();  // every block, before the early return below (pdl.h rule 2)
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
  const DeltaT* dRow = qkvDelta ? qkvDelta + static_cast<size_t>(t) * rowW + col : nullptr;
  float* x = buf + warp * D;
  float sumSq = 0.0f;
  for (int i = lane; i < D; i += 32) {
    float v = dRow ? withDelta<T>(toF(row[i]), toF(dRow[i])) : toF(row[i]);
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
      float x1 = x[i], x2 = x[i + half];
      ropePair(invFreq, i, pos, x1, x2);
      x[i] = x1;
      x[i + half] = x2;
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

template <typename T, typename D>
__global__ void swigluKernel(const T* gu, int T_, int I, T* out, const D* guDelta) {
  pdlLaunchDependents();
  pdlWait();
  const size_t n = static_cast<size_t>(T_) * I;
  for (size_t idx = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; idx < n;
       idx += static_cast<size_t>(gridDim.x) * blockDim.x) {
    const size_t t = idx / I, i = idx % I;
    float g = toF(gu[t * 2 * I + i]);
    float u = toF(gu[t * 2 * I + I + i]);
    if (guDelta) {
      g = withDelta<T>(g, toF(guDelta[t * 2 * I + i]));
      u = withDelta<T>(u, toF(guDelta[t * 2 * I + I + i]));
    }
    out[idx] = fromF<T>(g / (1.0f + expf(-g)) * u);
  }
}

// swigluKernel 8 values at a time (16-byte loads and stores); I % 8 == 0, 16-byte aligned buffers.
template <typename T, typename D>
__global__ void swiglu8Kernel(const T* gu, int T_, int I, T* out, const D* guDelta) {
  pdlLaunchDependents();
  pdlWait();
  const size_t perRow = static_cast<size_t>(I) / 8, n = static_cast<size_t>(T_) * perRow;
  for (size_t idx = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; idx < n;
       idx += static_cast<size_t>(gridDim.x) * blockDim.x) {
    const size_t t = idx / perRow, i8 = idx % perRow;
    const uint4 g = reinterpret_cast<const uint4*>(gu + t * 2 * I)[i8];
    const uint4 u = reinterpret_cast<const uint4*>(gu + t * 2 * I + I)[i8];
    const uint32_t gw[4] = {g.x, g.y, g.z, g.w}, uw[4] = {u.x, u.y, u.z, u.w};
    uint32_t ow[4];
    float4 gd[2] = {}, ud[2] = {};  // the LoRA deltas of the 8 gate and the 8 up values (side expand)
    if (guDelta) {
      const D* gp = guDelta + t * 2 * I + i8 * 8;
      const D* up = guDelta + t * 2 * I + I + i8 * 8;
      gd[0] = deltaLoad4<D>(gp, 0);
      gd[1] = deltaLoad4<D>(gp, 1);
      ud[0] = deltaLoad4<D>(up, 0);
      ud[1] = deltaLoad4<D>(up, 1);
    }
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      float2 gv = unpack2<T>(gw[k]), uv = unpack2<T>(uw[k]);
      if (guDelta) {
        const float4 g4 = gd[k / 2], u4 = ud[k / 2];
        const float2 g2 = k % 2 == 0 ? make_float2(g4.x, g4.y) : make_float2(g4.z, g4.w);
        const float2 u2 = k % 2 == 0 ? make_float2(u4.x, u4.y) : make_float2(u4.z, u4.w);
        gv = make_float2(withDelta<T>(gv.x, g2.x), withDelta<T>(gv.y, g2.y));
        uv = make_float2(withDelta<T>(uv.x, u2.x), withDelta<T>(uv.y, u2.y));
      }
      ow[k] = pack2<T>(gv.x / (1.0f + expf(-gv.x)) * uv.x, gv.y / (1.0f + expf(-gv.y)) * uv.y);
    }
    reinterpret_cast<uint4*>(out)[idx] = make_uint4(ow[0], ow[1], ow[2], ow[3]);
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
  // A plain launch: the step's first kernel follows the table upload (a copy), not a kernel.
  TSLORA_DISPATCH(act, embedKernel<TT><<<T, normThreads(H), 0, s>>>(static_cast<const TT*>(embed), tokenIds, H, hidden));
  return cudaGetLastError();
}

// Instantiates `launch` with the LoRA delta's element type D (float, or the activation dtype TT) and its pointer.
#define TSLORA_DELTA_DISPATCH(delta, ...)                                   \
  if ((delta).act) {                                                        \
    using DD = TT;                                                          \
    const DD* dPtr = static_cast<const DD*>((delta).values);                \
    __VA_ARGS__;                                                            \
  } else {                                                                  \
    using DD = float;                                                       \
    const DD* dPtr = static_cast<const DD*>((delta).values);                \
    __VA_ARGS__;                                                            \
  }

cudaError_t launchAddRmsNorm(Act act, float* hidden, const void* add, const float* w, void* out, const int32_t* rowMap,
                             int rows, int H, float eps, cudaStream_t s, LoraDeltaIn addDelta) {
  if (rows == 0) return cudaSuccess;
  // Vector kernel: ≤ 8 float4 per thread, ≤ 256 threads (a multiple of 32) per row.
  const auto aligned = [](const void* p, uintptr_t n) { return (reinterpret_cast<uintptr_t>(p) & (n - 1)) == 0; };
  const int nv = H / 4;
  int vpt = 1;
  while (vpt < 8 && nv > 256 * vpt) vpt *= 2;
  if (H % 4 == 0 && nv <= 256 * vpt && aligned(hidden, 16) && aligned(add, 8) && aligned(w, 16) && aligned(out, 8) &&
      aligned(addDelta.values, addDelta.act ? 8 : 16)) {
    const int threads = std::max(32, ((nv + vpt - 1) / vpt + 31) / 32 * 32);
    auto h = hidden;
    cudaError_t status = cudaSuccess;
    TSLORA_DISPATCH(act, TSLORA_DELTA_DISPATCH(addDelta, {
      auto a = static_cast<const TT*>(add);
      auto o = static_cast<TT*>(out);
      auto kernel = vpt == 1 ? addRmsNormVecKernel<TT, 1, DD> : vpt == 2 ? addRmsNormVecKernel<TT, 2, DD>
                  : vpt == 4 ? addRmsNormVecKernel<TT, 4, DD> : addRmsNormVecKernel<TT, 8, DD>;
      status = pdlLaunch(kernel, rows, threads, 0, s, h, a, w, o, rowMap, H, eps, dPtr);
    }));
    return status;
  }
  cudaError_t status = cudaSuccess;
  TSLORA_DISPATCH(act, TSLORA_DELTA_DISPATCH(addDelta, status = pdlLaunch(addRmsNormKernel<TT, DD>, rows, normThreads(H), 0, s,
                                          hidden, static_cast<const TT*>(add), w, static_cast<TT*>(out), rowMap, H, eps, dPtr)));
  return status;
}

cudaError_t launchQkvPost(Act act, const void* qkv, int T, const HeadShape& hs, const float* qBias, const float* kBias,
                          const float* vBias, const float* qNorm, const float* kNorm, float eps, const float* invFreq,
                          const AttnTables& tabs, void* qOut, void* kCache, void* vCache, cudaStream_t s,
                          LoraDeltaIn qkvDelta) {
  if (T == 0) return cudaSuccess;
  const long long warpsTotal = static_cast<long long>(T) * (hs.numHeads + 2 * hs.numKvHeads);
  const long long blocks = (warpsTotal + kQkvWarps - 1) / kQkvWarps;
  if (blocks > 0x7fffffffLL) return cudaErrorInvalidValue;
  const size_t smem = static_cast<size_t>(kQkvWarps) * hs.headDim * sizeof(float);
  cudaError_t status = cudaSuccess;
  TSLORA_DISPATCH(act, TSLORA_DELTA_DISPATCH(qkvDelta, status = pdlLaunch(qkvPostKernel<TT, DD>, static_cast<unsigned>(blocks),
                                          32 * kQkvWarps, smem, s, static_cast<const TT*>(qkv), T, hs, qBias, kBias, vBias,
                                          qNorm, kNorm, eps, invFreq, tabs, static_cast<TT*>(qOut), static_cast<TT*>(kCache),
                                          static_cast<TT*>(vCache), dPtr)));
  return status;
}

cudaError_t launchSwiglu(Act act, const void* gu, int T, int I, void* out, cudaStream_t s, LoraDeltaIn guDelta) {
  if (T == 0) return cudaSuccess;
  const size_t n = static_cast<size_t>(T) * I;
  const auto aligned16 = [](const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; };
  if (I % 8 == 0 && aligned16(gu) && aligned16(out) && aligned16(guDelta.values)) {
    const int blocks8 = static_cast<int>(std::min<size_t>((n / 8 + 255) / 256, 65535));
    cudaError_t status = cudaSuccess;
    TSLORA_DISPATCH(act, TSLORA_DELTA_DISPATCH(guDelta, status = pdlLaunch(swiglu8Kernel<TT, DD>, blocks8, 256, 0, s,
                                            static_cast<const TT*>(gu), T, I, static_cast<TT*>(out), dPtr)));
    return status;
  }
  const int blocks = static_cast<int>(std::min<size_t>((n + 255) / 256, 65535));
  cudaError_t status = cudaSuccess;
  TSLORA_DISPATCH(act, TSLORA_DELTA_DISPATCH(guDelta, status = pdlLaunch(swigluKernel<TT, DD>, blocks, 256, 0, s,
                                          static_cast<const TT*>(gu), T, I, static_cast<TT*>(out), dPtr)));
  return status;
}

namespace {
template <typename T>
__global__ void addDeltaKernel(const T* delta, size_t n, float* out) {
  pdlLaunchDependents();
  pdlWait();
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n; i += static_cast<size_t>(gridDim.x) * blockDim.x)
    out[i] += toF(delta[i]);
}
}  // namespace

cudaError_t launchAddDeltaToF32(Act act, const void* delta, size_t n, float* out, cudaStream_t s) {
  if (n == 0) return cudaSuccess;
  const int blocks = static_cast<int>(std::min<size_t>((n + 255) / 256, 65535));
  cudaError_t status = cudaSuccess;
  TSLORA_DISPATCH(act, status = pdlLaunch(addDeltaKernel<TT>, blocks, 256, 0, s, static_cast<const TT*>(delta), n, out));
  return status;
}

}  // namespace tslora::cuda
