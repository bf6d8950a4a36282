// Paged causal attention of the CUDA forward (kernels.h: launchAttention), decode and prefill alike.
//
// One block of 128 threads per (token, KV head, key split): the G = numHeads / numKvHeads query heads of one GQA group
// share every K/V load. The block walks its keys in tiles of TK keys: the tile's K and V rows (paged: block table →
// cache block → row) go to shared memory with 16-byte loads (staged in registers: the next tile's loads are in flight
// while this one is computed), then scores for G × TK (head, key) pairs, an online softmax per head
// (attention-merge.h), and P·V with each thread owning (head, dim pair) accumulators in registers.
// Long contexts are cut into key splits (grid z) so that a short batch still fills the GPU: each split writes its
// unnormalised output and (m, l) to a scratch buffer and a second kernel merges them; a token whose keys fit one
// split writes its output directly (and the merge skips it). Splits are planned on the host from the step's
// block-table capacity (an upper bound of every token's context), so a captured decode graph stays valid whatever
// the context lengths of later replays. Steps of long prompts (many tokens per sequence) go to the tensor-core kernel
// of attention-prefill.cu instead. Shapes the tiled kernel does not cover (head dim not a multiple of 8 or
// above 256, shared memory over 48 KiB) fall back to the simple kernel at the end of this file.
// Every kernel is a programmatic dependent (pdl.h) that waits before its first read, early-exit blocks included.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "act-convert.cuh"
#include "attention-merge.h"
#include "attention-prefill.h"
#include "kernels.h"
#include "pdl.h"
#include "rope.cuh"

namespace tslora::cuda {
namespace {


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
template <typename T>
__device__ __forceinline__ uint32_t pack2(float a, float b);
template <>
__device__ __forceinline__ uint32_t pack2<__nv_bfloat16>(float a, float b) {
  return static_cast<uint32_t>(__bfloat16_as_ushort(__float2bfloat16_rn(a))) |
         static_cast<uint32_t>(__bfloat16_as_ushort(__float2bfloat16_rn(b))) << 16;
}
template <>
__device__ __forceinline__ uint32_t pack2<__half>(float a, float b) {
  return static_cast<uint32_t>(__half_as_ushort(__float2half_rn(a))) |
         static_cast<uint32_t>(__half_as_ushort(__float2half_rn(b))) << 16;
}

__device__ __forceinline__ float warpSum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float warpMax(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// q (fp32, 8 values at q, 16-byte aligned) · 8 packed K values.
template <typename T>
__device__ __forceinline__ float dot8(const float* q, const uint4 k) {
  const float4 q0 = *reinterpret_cast<const float4*>(q);
  const float4 q1 = *reinterpret_cast<const float4*>(q + 4);
  const float2 a = unpack2<T>(k.x), b = unpack2<T>(k.y), c = unpack2<T>(k.z), d = unpack2<T>(k.w);
  float s = q0.x * a.x;
  s = fmaf(q0.y, a.y, s);
  s = fmaf(q0.z, b.x, s);
  s = fmaf(q0.w, b.y, s);
  s = fmaf(q1.x, c.x, s);
  s = fmaf(q1.y, c.y, s);
  s = fmaf(q1.z, d.x, s);
  s = fmaf(q1.w, d.y, s);
  return s;
}

constexpr int kAttnThreads = 128;
constexpr int kAttnWarps = kAttnThreads / 32;
constexpr int kMaxPairsPerThread = 4;  // G · headDim / 2 ≤ kAttnThreads · 4 (dim-pair accumulators per thread)
constexpr size_t kMaxAttnSmemBytes = 48 * 1024;
constexpr int kMaxTileVecsPerThread = 8;  // TK · headDim / 8 ≤ kAttnThreads · 8 (16-byte K and V vectors per thread)

// How the keys of every token are split over blocks (grid z), and where the splits leave their partial results.
struct SplitPlan {
  int numSplits = 1;
  int keysPerSplit = 0;  // a multiple of the tile; numSplits · keysPerSplit ≥ every token's key count
  float* acc = nullptr;  // [T][numHeads][numSplits][D] unnormalised Σ exp(s − m) · v of each split
  float* ml = nullptr;   // [T][numHeads][numSplits][2]: (m, l) of each split
  int skipRowsFrom = 0;  // > 0: rows whose sequence has at least this many rows belong to the prefill kernel
};

// launchQkvRopeAttention: q heads and the token's own k / v head come from the qkv projection's rows (null qkv: q is
// read from q as usual and the cache is complete).
// D: the LoRA delta's element type (float, or T with TSLORA_CUDA_LORA_DELTA_ACT; kernels.h LoraDeltaIn).
template <typename T, typename D = float>
struct FusedQkv {
  const T* qkv = nullptr;  // [T][q | k | v]
  const D* delta = nullptr;  // optional [T][q | k | v]: the side expand's LoRA delta (act-convert.cuh withDelta)
  const float* qBias = nullptr;
  const float* kBias = nullptr;
  const float* vBias = nullptr;
  const float* invFreq = nullptr;
  T* kCache = nullptr;  // the same planes as the kernel's kCache / vCache, written for the token's own position
  T* vCache = nullptr;
};

// Shared memory: K and V tiles [TK][D + 8] Act (the 16-byte pad keeps row reads of a warp on distinct banks), q of
// the group [G][D] fp32 (pre-scaled), scores / weights [G][TK], per-head correction, running max and sum [G] each.
template <typename T>
size_t pagedSmemBytes(int tk, int D, int G) {
  return 2 * static_cast<size_t>(tk) * (D + 8) * sizeof(T) +
         (static_cast<size_t>(G) * D + static_cast<size_t>(G) * tk + 3 * static_cast<size_t>(G)) * sizeof(float);
}

template <typename T, int TK, typename DeltaT = float>
__global__ void __launch_bounds__(kAttnThreads, 4)
    pagedAttentionKernel(const T* q, HeadShape hs, float scale, AttnTables tabs, const T* kCache, const T* vCache,
                         T* out, SplitPlan plan, FusedQkv<T, DeltaT> fused) {
  extern __shared__ __align__(16) unsigned char smem[];
  pdlLaunchDependents();
  pdlWait();
  const int D = hs.headDim, G = hs.numHeads / hs.numKvHeads, kvW = hs.numKvHeads * D;
  const int stride = D + 8, vecsPerRow = D / 8, halfD = D / 2, pairs = G * halfD;
  const int t = blockIdx.x, kvh = blockIdx.y, split = blockIdx.z;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int numKeys = tabs.positions[t] + 1;
  const int kBegin = split * plan.keysPerSplit;
  if (kBegin >= numKeys) return;  // the whole block: this token's context ends before this split
  if (plan.skipRowsFrom > 0 && seqRowCount(tabs.tokenSeq, gridDim.x, t) >= plan.skipRowsFrom) return;  // prefill's
  const int kEnd = min(numKeys, kBegin + plan.keysPerSplit);
  const bool direct = numKeys <= plan.keysPerSplit;  // one split covers the token: normalise and write here

  T* sK = reinterpret_cast<T*>(smem);
  T* sV = sK + TK * stride;
  float* sQ = reinterpret_cast<float*>(sV + TK * stride);
  float* sP = sQ + G * D;
  float* sCorr = sP + G * TK;
  float* sM = sCorr + G;
  float* sL = sM + G;

  const int32_t* table = tabs.blockTables + static_cast<size_t>(tabs.tokenSeq[t]) * tabs.maxBlocksPerSeq;
  const int bs = tabs.blockSize;
  const size_t headBase = static_cast<size_t>(t) * hs.numHeads + static_cast<size_t>(kvh) * G;  // first q head row
  if (fused.qkv != nullptr) {
    // launchQkvPost fused in (one row per sequence): bias + RoPE of the group's q heads, rounded to T as that kernel
    // stores them, then scaled as below; the block whose keys hold the token's own position first writes its k and v
    // head into the cache (keys of other rows are never read: each row is its own sequence).
    const int pos = numKeys - 1, qW = hs.numHeads * D;
    const T* row = fused.qkv + static_cast<size_t>(t) * (qW + 2 * kvW);
    const DeltaT* dRow = fused.delta ? fused.delta + static_cast<size_t>(t) * (qW + 2 * kvW) : nullptr;
    auto in = [&](int c) { return dRow ? withDelta<T>(toF(row[c]), toF(dRow[c])) : toF(row[c]); };
    for (int p = tid; p < G * halfD; p += kAttnThreads) {
      const int g = p / halfD, i = p - g * halfD, c0 = (kvh * G + g) * D + i;
      float x1 = in(c0), x2 = in(c0 + halfD);
      if (fused.qBias) {
        x1 += fused.qBias[c0];
        x2 += fused.qBias[c0 + halfD];
      }
      ropePair(fused.invFreq, i, pos, x1, x2);
      sQ[g * D + i] = toF(fromF<T>(x1)) * scale;
      sQ[g * D + i + halfD] = toF(fromF<T>(x2)) * scale;
    }
    if (pos >= kBegin && pos < kEnd) {
      const size_t cacheRow = (static_cast<size_t>(table[pos / bs]) * bs + pos % bs) * kvW + static_cast<size_t>(kvh) * D;
      for (int i = tid; i < halfD; i += kAttnThreads) {
        const int c0 = qW + kvh * D + i;
        float x1 = in(c0), x2 = in(c0 + halfD);
        if (fused.kBias) {
          x1 += fused.kBias[kvh * D + i];
          x2 += fused.kBias[kvh * D + i + halfD];
        }
        ropePair(fused.invFreq, i, pos, x1, x2);
        fused.kCache[cacheRow + i] = fromF<T>(x1);
        fused.kCache[cacheRow + i + halfD] = fromF<T>(x2);
      }
      for (int i = tid; i < D; i += kAttnThreads) {
        float v = in(qW + kvW + kvh * D + i);
        if (fused.vBias) v += fused.vBias[kvh * D + i];
        fused.vCache[cacheRow + i] = fromF<T>(v);
      }
      __syncthreads();  // the block's own writes are visible to its loads below
    }
  }
  const uint4* qRow = reinterpret_cast<const uint4*>(q + headBase * D);
  for (int v = tid; fused.qkv == nullptr && v < G * vecsPerRow; v += kAttnThreads) {
    const uint4 raw = qRow[v];
    const float2 a = unpack2<T>(raw.x), b = unpack2<T>(raw.y), c = unpack2<T>(raw.z), d = unpack2<T>(raw.w);
    float* dst = sQ + v * 8;
    dst[0] = a.x * scale;
    dst[1] = a.y * scale;
    dst[2] = b.x * scale;
    dst[3] = b.y * scale;
    dst[4] = c.x * scale;
    dst[5] = c.y * scale;
    dst[6] = d.x * scale;
    dst[7] = d.y * scale;
  }
  if (tid < G) {
    sM[tid] = -INFINITY;
    sL[tid] = 0.0f;
  }
  float2 acc[kMaxPairsPerThread];
#pragma unroll
  for (int k = 0; k < kMaxPairsPerThread; ++k) acc[k] = make_float2(0.0f, 0.0f);

  // One tile's K and V vectors in registers (thread tid holds vectors tid + i · kAttnThreads of the tile): the next
  // tile's loads are in flight while the current one is scored and accumulated. Keys past kEnd are zeros.
  uint4 kReg[kMaxTileVecsPerThread], vReg[kMaxTileVecsPerThread];
  auto loadTile = [&](int k0) {
#pragma unroll
    for (int i = 0; i < kMaxTileVecsPerThread; ++i) {
      const int v = tid + i * kAttnThreads;
      kReg[i] = make_uint4(0u, 0u, 0u, 0u);
      vReg[i] = make_uint4(0u, 0u, 0u, 0u);
      const int j = v / vecsPerRow, c = v - j * vecsPerRow;
      if (v < TK * vecsPerRow && k0 + j < kEnd) {
        const int key = k0 + j;
        const size_t off = (static_cast<size_t>(table[key / bs]) * bs + key % bs) * kvW + static_cast<size_t>(kvh) * D +
                           static_cast<size_t>(c) * 8;
        kReg[i] = *reinterpret_cast<const uint4*>(kCache + off);
        vReg[i] = *reinterpret_cast<const uint4*>(vCache + off);
      }
    }
  };
  loadTile(kBegin);

  for (int k0 = kBegin; k0 < kEnd; k0 += TK) {
    // 1. The tile's K and V rows (keys [k0, k0 + TK)) into shared memory; the next tile's loads start.
#pragma unroll
    for (int i = 0; i < kMaxTileVecsPerThread; ++i) {
      const int v = tid + i * kAttnThreads;
      if (v < TK * vecsPerRow) {
        const int j = v / vecsPerRow, c = v - j * vecsPerRow;
        *reinterpret_cast<uint4*>(sK + j * stride + c * 8) = kReg[i];
        *reinterpret_cast<uint4*>(sV + j * stride + c * 8) = vReg[i];
      }
    }
    __syncthreads();
    if (k0 + TK < kEnd) loadTile(k0 + TK);
    // 2. Scores of every (head, key) pair of the tile; masked keys −inf.
    for (int item = tid; item < G * TK; item += kAttnThreads) {
      const int g = item / TK, j = item - g * TK;
      float score = -INFINITY;
      if (k0 + j < kEnd) {
        const float* qg = sQ + g * D;
        const T* kj = sK + j * stride;
        float dot = 0.0f;
        for (int c = 0; c < D; c += 8) dot += dot8<T>(qg + c, *reinterpret_cast<const uint4*>(kj + c));
        score = dot;
      }
      sP[item] = score;
    }
    __syncthreads();
    // 3. Online softmax per head (one warp per head): scores → weights under the new running max.
    for (int g = warp; g < G; g += kAttnWarps) {
      float* p = sP + g * TK;
      float mx = -INFINITY;
      for (int j = lane; j < TK; j += 32) mx = fmaxf(mx, p[j]);
      mx = warpMax(mx);
      const float mOld = sM[g];
      const float mNew = fmaxf(mOld, mx);
      float sum = 0.0f;
      for (int j = lane; j < TK; j += 32) {
        const float w = softmaxWeight(p[j], mNew);
        p[j] = w;
        sum += w;
      }
      sum = warpSum(sum);  // also orders every lane's read of sM[g] before lane 0 rewrites it
      if (lane == 0) {
        const float corr = softmaxCorrection(mOld, mNew);
        sCorr[g] = corr;
        sL[g] = sL[g] * corr + sum;
        sM[g] = mNew;
      }
    }
    __syncthreads();
    // 4. acc = acc · corr + Σ_j w_j · v_j for each (head, dim pair) this thread owns.
#pragma unroll
    for (int k = 0; k < kMaxPairsPerThread; ++k) {
      const int item = tid + k * kAttnThreads;
      if (item < pairs) {
        const int g = item / halfD, d2 = item - g * halfD;
        const float corr = sCorr[g];
        const float* p = sP + g * TK;
        const T* vCol = sV + 2 * d2;
        float a0 = acc[k].x * corr, a1 = acc[k].y * corr;
#pragma unroll 8
        for (int j = 0; j < TK; ++j) {
          const float w = p[j];
          const float2 v = unpack2<T>(*reinterpret_cast<const uint32_t*>(vCol + j * stride));
          a0 = fmaf(w, v.x, a0);
          a1 = fmaf(w, v.y, a1);
        }
        acc[k] = make_float2(a0, a1);
      }
    }
    __syncthreads();  // the next tile overwrites sK, sV, sP
  }

#pragma unroll
  for (int k = 0; k < kMaxPairsPerThread; ++k) {
    const int item = tid + k * kAttnThreads;
    if (item < pairs) {
      const int g = item / halfD, d2 = item - g * halfD;
      if (direct) {
        const float l = sL[g];
        *reinterpret_cast<uint32_t*>(out + (headBase + g) * D + 2 * d2) = pack2<T>(acc[k].x / l, acc[k].y / l);
      } else {
        float* dst = plan.acc + ((headBase + g) * plan.numSplits + split) * D + 2 * d2;
        dst[0] = acc[k].x;
        dst[1] = acc[k].y;
      }
    }
  }
  if (!direct && tid < G) {
    float* ml = plan.ml + ((headBase + tid) * plan.numSplits + split) * 2;
    ml[0] = sM[tid];
    ml[1] = sL[tid];
  }
}

// Grid (T, numHeads): merges the splits of tokens whose keys span more than one (the others were written directly).
template <typename T>
__global__ void mergeSplitsKernel(HeadShape hs, AttnTables tabs, SplitPlan plan, T* out) {
  pdlLaunchDependents();
  pdlWait();
  const int t = blockIdx.x, h = blockIdx.y, D = hs.headDim;
  const int numKeys = tabs.positions[t] + 1;
  const int ns = min(plan.numSplits, (numKeys + plan.keysPerSplit - 1) / plan.keysPerSplit);
  if (ns <= 1) return;
  if (plan.skipRowsFrom > 0 && seqRowCount(tabs.tokenSeq, gridDim.x, t) >= plan.skipRowsFrom) return;  // prefill's
  const size_t row = static_cast<size_t>(t) * hs.numHeads + h;
  const float* ml = plan.ml + row * plan.numSplits * 2;
  const float* acc = plan.acc + row * plan.numSplits * D;
  float M = -INFINITY;
  for (int s = 0; s < ns; ++s) M = fmaxf(M, ml[2 * s]);
  float L = 0.0f;
  for (int s = 0; s < ns; ++s) L += ml[2 * s + 1] * softmaxWeight(ml[2 * s], M);
  for (int d = threadIdx.x; d < D; d += blockDim.x) {
    float v = 0.0f;
    for (int s = 0; s < ns; ++s) v += acc[static_cast<size_t>(s) * D + d] * softmaxWeight(ml[2 * s], M);
    out[row * D + d] = fromF<T>(v / L);
  }
}

int multiprocessorCount() {
  static int cached[64] = {};
  int device = 0;
  if (cudaGetDevice(&device) != cudaSuccess || device < 0 || device >= 64) return 132;
  if (cached[device] == 0) {
    int n = 0;
    if (cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, device) != cudaSuccess || n <= 0) n = 132;
    cached[device] = n;
  }
  return cached[device];
}

SplitPlan planSplits(int T, const HeadShape& hs, const AttnTables& tabs, int tk, void* scratch, size_t scratchBytes) {
  const KeySplits k = planKeySplits(T, hs.numHeads, hs.numKvHeads, hs.headDim,
                                    static_cast<long long>(tabs.maxBlocksPerSeq) * tabs.blockSize, tk,
                                    multiprocessorCount(), scratch ? scratchBytes : 0);
  SplitPlan plan;
  plan.numSplits = k.numSplits;
  plan.keysPerSplit = k.keysPerSplit;
  if (plan.numSplits > 1) {
    plan.acc = static_cast<float*>(scratch);
    plan.ml = plan.acc + static_cast<size_t>(T) * hs.numHeads * plan.numSplits * hs.headDim;
  }
  return plan;
}

template <typename T, int TK, typename D = float>
cudaError_t pagedAttention(const void* q, int T_, const HeadShape& hs, float scale, const AttnTables& tabs,
                           const void* kCache, const void* vCache, void* out, void* scratch, size_t scratchBytes,
                           int skipRowsFrom, cudaStream_t s, const FusedQkv<T, D>& fused = FusedQkv<T, D>()) {
  const int G = hs.numHeads / hs.numKvHeads;
  SplitPlan plan = planSplits(T_, hs, tabs, TK, scratch, scratchBytes);
  plan.skipRowsFrom = skipRowsFrom;
  const dim3 grid(T_, hs.numKvHeads, plan.numSplits);
  cudaError_t status = pdlLaunch(pagedAttentionKernel<T, TK, D>, grid, kAttnThreads, pagedSmemBytes<T>(TK, hs.headDim, G), s,
                                 static_cast<const T*>(q), hs, scale, tabs, static_cast<const T*>(kCache),
                                 static_cast<const T*>(vCache), static_cast<T*>(out), plan, fused);
  if (status == cudaSuccess && plan.numSplits > 1) {
    const int threads = hs.headDim >= 128 ? 128 : hs.headDim >= 64 ? 64 : 32;
    status = pdlLaunch(mergeSplitsKernel<T>, dim3(T_, hs.numHeads), threads, 0, s, hs, tabs, plan, static_cast<T*>(out));
  }
  return status;
}

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

// ---- Fallback: grid (T, numHeads), 4 warps, each an online softmax over keys j ≡ warp (mod 4), merged at the end.
// Lane l holds dims l, l+32, … (DPL per lane).
constexpr int kSimpleWarps = 4;

template <typename T, int DPL>
__global__ void simpleAttentionKernel(const T* q, HeadShape hs, float scale, AttnTables tabs, const T* kCache,
                                      const T* vCache, T* out) {
  __shared__ float sAcc[kSimpleWarps][DPL * 32];
  __shared__ float sMax[kSimpleWarps], sSum[kSimpleWarps];
  pdlLaunchDependents();
  pdlWait();
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
  for (int j = warp; j < numKeys; j += kSimpleWarps) {
    const size_t off = (static_cast<size_t>(table[j / tabs.blockSize]) * tabs.blockSize + j % tabs.blockSize) * kvW +
                       static_cast<size_t>(kvh) * D;
    float dot = 0.0f;
#pragma unroll
    for (int i = 0; i < DPL; ++i) {
      const int d = lane + 32 * i;
      if (d < D) dot += qv[i] * toF(kCache[off + d]);
    }
    const float sc = warpSum(dot);
    const float mNew = fmaxf(m, sc);
    const float corr = softmaxCorrection(m, mNew);
    const float p = softmaxWeight(sc, mNew);
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
  for (int w = 0; w < kSimpleWarps; ++w) M = fmaxf(M, sMax[w]);
  float L = 0.0f;
  for (int w = 0; w < kSimpleWarps; ++w) L += sSum[w] * softmaxWeight(sMax[w], M);
  T* oRow = out + static_cast<size_t>(t) * hs.numHeads * D + static_cast<size_t>(h) * D;
  for (int d = threadIdx.x; d < D; d += blockDim.x) {
    float v = 0.0f;
    for (int w = 0; w < kSimpleWarps; ++w) v += sAcc[w][d] * softmaxWeight(sMax[w], M);
    oRow[d] = fromF<T>(v / L);
  }
}

template <typename T>
cudaError_t simpleAttention(const void* q, int T_, const HeadShape& hs, float scale, const AttnTables& tabs,
                            const void* kCache, const void* vCache, void* out, cudaStream_t s) {
  const dim3 grid(T_, hs.numHeads), block(32 * kSimpleWarps);
  auto qp = static_cast<const T*>(q);
  auto kp = static_cast<const T*>(kCache);
  auto vp = static_cast<const T*>(vCache);
  auto op = static_cast<T*>(out);
  const int dpl = (hs.headDim + 31) / 32;
  if (dpl > 16) return cudaErrorInvalidValue;
  auto kernel = dpl <= 1 ? simpleAttentionKernel<T, 1> : dpl <= 2 ? simpleAttentionKernel<T, 2>
              : dpl <= 4 ? simpleAttentionKernel<T, 4> : dpl <= 8 ? simpleAttentionKernel<T, 8>
              : simpleAttentionKernel<T, 16>;
  return pdlLaunch(kernel, grid, block, 0, s, qp, hs, scale, tabs, kp, vp, op);
}

// The split kernel's key tile (64 or 32) for this shape and these buffers, or 0 where it does not take them.
template <typename T>
int pagedTileKeys(const HeadShape& hs, const void* q, const void* kCache, const void* vCache, const void* out,
                  const void* scratch) {
  const int D = hs.headDim;
  const bool shapeOk = hs.numKvHeads > 0 && hs.numHeads % hs.numKvHeads == 0 && D % 8 == 0 && D >= 8 && D <= 256 &&
                       hs.numKvHeads <= 65535 && aligned16(q) && aligned16(kCache) && aligned16(vCache) &&
                       aligned16(out) && aligned16(scratch);
  if (!shapeOk) return 0;
  const int G = hs.numHeads / hs.numKvHeads;
  const bool pairsFit = static_cast<long long>(G) * D / 2 <= static_cast<long long>(kAttnThreads) * kMaxPairsPerThread;
  const auto tileFits = [&](int tk) {
    return tk * (D / 8) <= kAttnThreads * kMaxTileVecsPerThread && pagedSmemBytes<T>(tk, D, G) <= kMaxAttnSmemBytes;
  };
  if (pairsFit && D <= 128 && tileFits(64)) return 64;
  if (pairsFit && tileFits(32)) return 32;
  return 0;
}

template <typename T>
cudaError_t attention(const void* q, int T_, const HeadShape& hs, float scale, const AttnTables& tabs,
                      const void* kCache, const void* vCache, void* out, void* scratch, size_t scratchBytes,
                      cudaStream_t s) {
  // Rows of long prompts (sequences with ≥ kPrefillMinRows rows) on tensor cores; the split kernel below then skips
  // them and takes the rest (decode rows of a mixed step, short chunks).
  int skipRowsFrom = 0;
  if (prefillAttentionFits(T_, tabs.numSeqs, hs) && aligned16(q) && aligned16(kCache) && aligned16(vCache)) {
    const cudaError_t st = launchPrefillAttention(std::is_same<T, __nv_bfloat16>::value, q, T_, hs, scale, tabs,
                                                  kCache, vCache, out, s);
    if (st != cudaSuccess) return st;
    if (tabs.numSeqs == 1) return cudaSuccess;  // one sequence of ≥ 64 rows: the prefill kernel took every row
    skipRowsFrom = kPrefillMinRows;
  }
  const int tk = pagedTileKeys<T>(hs, q, kCache, vCache, out, scratch);
  if (tk == 64)
    return pagedAttention<T, 64>(q, T_, hs, scale, tabs, kCache, vCache, out, scratch, scratchBytes, skipRowsFrom, s);
  if (tk == 32)
    return pagedAttention<T, 32>(q, T_, hs, scale, tabs, kCache, vCache, out, scratch, scratchBytes, skipRowsFrom, s);
  // (The prefill kernel's shapes always fit the split kernel: prefillAttentionFits asks G · D ≤ 1024.)
  return simpleAttention<T>(q, T_, hs, scale, tabs, kCache, vCache, out, s);
}

template <typename T, typename D>
cudaError_t qkvRopeAttention(const QkvRope& src, int T_, const HeadShape& hs, float scale, const AttnTables& tabs,
                             void* kCache, void* vCache, void* out, void* scratch, size_t scratchBytes, cudaStream_t s) {
  // The qkv rows stand in for q in the shape check (the fused q load reads them element by element).
  const int tk = pagedTileKeys<T>(hs, src.qkv, kCache, vCache, out, scratch);
  if (tk == 0 || tabs.numSeqs != T_ || src.invFreq == nullptr) return cudaErrorNotSupported;
  FusedQkv<T, D> f;
  f.qkv = static_cast<const T*>(src.qkv);
  f.delta = static_cast<const D*>(src.delta.values);
  f.qBias = src.qBias;
  f.kBias = src.kBias;
  f.vBias = src.vBias;
  f.invFreq = src.invFreq;
  f.kCache = static_cast<T*>(kCache);
  f.vCache = static_cast<T*>(vCache);
  if (tk == 64) return pagedAttention<T, 64, D>(src.qkv, T_, hs, scale, tabs, kCache, vCache, out, scratch, scratchBytes, 0, s, f);
  return pagedAttention<T, 32, D>(src.qkv, T_, hs, scale, tabs, kCache, vCache, out, scratch, scratchBytes, 0, s, f);
}

}  // namespace

cudaError_t launchQkvRopeAttention(Act act, const QkvRope& src, int T, const HeadShape& hs, float scale,
                                   const AttnTables& tabs, void* kCache, void* vCache, void* out, void* scratch,
                                   size_t scratchBytes, cudaStream_t s) {
  if (T == 0) return cudaSuccess;
  // The LoRA delta's element type: the activation dtype with LoraDeltaIn::act, else fp32 (also without a delta).
  if (act == Act::BF16)
    return src.delta.act ? qkvRopeAttention<__nv_bfloat16, __nv_bfloat16>(src, T, hs, scale, tabs, kCache, vCache, out, scratch, scratchBytes, s)
                         : qkvRopeAttention<__nv_bfloat16, float>(src, T, hs, scale, tabs, kCache, vCache, out, scratch, scratchBytes, s);
  return src.delta.act ? qkvRopeAttention<__half, __half>(src, T, hs, scale, tabs, kCache, vCache, out, scratch, scratchBytes, s)
                       : qkvRopeAttention<__half, float>(src, T, hs, scale, tabs, kCache, vCache, out, scratch, scratchBytes, s);
}

cudaError_t launchAttention(Act act, const void* q, int T, const HeadShape& hs, float scale, const AttnTables& tabs,
                            const void* kCache, const void* vCache, void* out, void* scratch, size_t scratchBytes,
                            cudaStream_t s) {
  if (T == 0) return cudaSuccess;
  if (act == Act::BF16) return attention<__nv_bfloat16>(q, T, hs, scale, tabs, kCache, vCache, out, scratch, scratchBytes, s);
  return attention<__half>(q, T, hs, scale, tabs, kCache, vCache, out, scratch, scratchBytes, s);
}

}  // namespace tslora::cuda
