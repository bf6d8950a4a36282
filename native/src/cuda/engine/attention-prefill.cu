// Prefill attention on tensor cores (attention-prefill.h), flash-attention style with WMMA 16×16×16 fragments.
//
// One block of 4 warps per (tile of query tokens, KV head): the tile's 64 query rows are (token, q head of the GQA
// group) pairs, token-major (row r = token t0 + r / G, head kvHead · G + r % G), so every row shares the K/V tiles;
// warp w owns rows [16w, 16w + 16). A tile may straddle sequences (the step's rows are sequences one after another):
// the block then runs once per sequence segment with the other rows masked. Sequences with fewer than
// kPrefillMinRows rows in the launch (decode rows of a mixed step) are left to the split kernel of attention.cu. Per key tile of 64 keys (K and V rows in
// shared memory, paged through the block table, zeros past the last key):
//   S = Q Kᵀ (WMMA, fp32 accumulate) → shared → scale, causal mask (key > the row's position: −inf), online softmax per
//   row (two lanes per row, fp32; attention-merge.h) → P rounded to the activation dtype → O = O · corr + P V (WMMA
//   on the fp32 O in shared memory, rescaled per row first).
// The running sum l adds the rounded P, so the output is exactly the P-weighted mean of V. Rows and columns of the
// fragments are only touched through shared memory (the fragment layout is opaque).
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <mma.h>

#include <cmath>
#include <cstdint>

#include "act-convert.cuh"
#include "attention-merge.h"
#include "attention-prefill-mma.cuh"
#include "attention-prefill-tiles.cuh"
#include "attention-prefill.h"
#include "lora_env_flag.h"
#include "pdl.h"

namespace tslora::cuda {
namespace {

namespace wmma = nvcuda::wmma;


constexpr int kRows = 64;     // query rows per block
constexpr int kKeys = 64;     // keys per tile
constexpr int kThreads = 128;  // 4 warps × 16 rows
constexpr int kSld = kKeys + 4;  // fp32 score row stride (floats; a multiple of 4 for WMMA)
constexpr int kPld = kKeys + 8;  // P row stride (elements; a multiple of 8 for WMMA)

// Shared layout (bytes, every part 32-byte aligned for WMMA):
//   Q [64][D + 8] Act | K [64][D + 8] Act | V [64][D + 8] Act | S [64][kSld] fp32 | P [64][kPld] Act |
//   O [64][D + 4] fp32 | row position [64] int32
template <typename T, int D>
struct PrefillSmem {
  static constexpr int kLd = D + 8;
  static constexpr int kOld = D + 4;
  static constexpr size_t kQ = 0;
  static constexpr size_t kK = kQ + sizeof(T) * kRows * kLd;
  static constexpr size_t kV = kK + sizeof(T) * kKeys * kLd;
  static constexpr size_t kS = kV + sizeof(T) * kKeys * kLd;
  static constexpr size_t kP = kS + sizeof(float) * kRows * kSld;
  static constexpr size_t kO = kP + sizeof(T) * kRows * kPld;
  static constexpr size_t kPos = kO + sizeof(float) * kRows * kOld;
  static constexpr size_t kBytes = kPos + sizeof(int32_t) * kRows;
  static_assert(kK % 32 == 0 && kV % 32 == 0 && kS % 32 == 0 && kP % 32 == 0 && kO % 32 == 0 && kPos % 32 == 0,
                "WMMA needs 256-bit aligned tiles");
};

template <typename T, int D>
__global__ void __launch_bounds__(kThreads)
    prefillAttentionKernel(const T* q, int T_, HeadShape hs, float scale, AttnTables tabs, const T* kCache,
                           const T* vCache, T* out) {
  using L = PrefillSmem<T, D>;
  constexpr int kLd = L::kLd, kOld = L::kOld;
  extern __shared__ __align__(128) unsigned char smem[];
  T* sQ = reinterpret_cast<T*>(smem + L::kQ);
  T* sK = reinterpret_cast<T*>(smem + L::kK);
  T* sV = reinterpret_cast<T*>(smem + L::kV);
  float* sS = reinterpret_cast<float*>(smem + L::kS);
  T* sP = reinterpret_cast<T*>(smem + L::kP);
  float* sO = reinterpret_cast<float*>(smem + L::kO);
  int32_t* sPos = reinterpret_cast<int32_t*>(smem + L::kPos);
  pdlLaunchDependents();
  pdlWait();  // programmatic dependent (pdl.h): q and the cache come from the kernels before it

  const prefill_tiles::QueryTile qt = prefill_tiles::queryTileOf<kRows>(hs, T_);
  const int G = qt.G;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  // Two lanes per row in the softmax: lane pair (2i, 2i+1) owns row 16 · warp + i, half of the keys / dims each.
  const int myRow = 16 * warp + (lane >> 1), myHalf = lane & 1;

  prefill_tiles::forEachSegment(tabs, T_, qt, [&](int segStart, const prefill_tiles::Segment& seg) {
    // Q rows of this segment (others zero, position −1: every key masked), O = 0.
    prefill_tiles::loadQueryRows<T, D, kRows, kThreads, kLd>(q, hs, qt, segStart, seg.end, sQ);
    for (int i = tid; i < kRows * kOld; i += kThreads) sO[i] = 0.0f;
    prefill_tiles::setRowPositions<kRows>(tabs, qt, segStart, seg.end, sPos);
    float m = -INFINITY, l = 0.0f;  // running max / sum of myRow (both lanes of the pair hold them)

    for (int k0 = 0; k0 < seg.numKeys; k0 += kKeys) {
      __syncthreads();  // previous tile's K/V (or the segment's Q/O/positions setup) complete
      prefill_tiles::loadKeyTile<T, D, kKeys, kThreads, kLd>(kCache, vCache, hs, tabs.blockSize, qt, seg, k0, sK, sV);
      __syncthreads();

      // S rows of this warp = Q[16 rows] · Kᵀ (K row-major [key][d] is Kᵀ column-major).
      {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> a;
        wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::col_major> b;
        wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
#pragma unroll
        for (int n = 0; n < kKeys / 16; ++n) {
          wmma::fill_fragment(acc, 0.0f);
#pragma unroll
          for (int kd = 0; kd < D / 16; ++kd) {
            wmma::load_matrix_sync(a, sQ + (16 * warp) * kLd + kd * 16, kLd);
            wmma::load_matrix_sync(b, sK + (16 * n) * kLd + kd * 16, kLd);
            wmma::mma_sync(acc, a, b, acc);
          }
          wmma::store_matrix_sync(sS + (16 * warp) * kSld + 16 * n, acc, kSld, wmma::mem_row_major);
        }
      }
      __syncwarp();

      // Online softmax of myRow over this tile's keys [k0, k0 + 64): this lane scores keys myHalf · 32 + [0, 32).
      {
        const int pos = sPos[myRow];
        const float* s = sS + myRow * kSld + myHalf * 32;
        T* p = sP + myRow * kPld + myHalf * 32;
        const int keyBase = k0 + myHalf * 32;
        float mx = -INFINITY;
#pragma unroll 8
        for (int j = 0; j < 32; ++j) {
          const float x = keyBase + j <= pos ? s[j] * scale : -INFINITY;
          mx = fmaxf(mx, x);
        }
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
        const float mNew = fmaxf(m, mx);
        float sum = 0.0f;
#pragma unroll 8
        for (int j = 0; j < 32; ++j) {
          const float x = keyBase + j <= pos ? s[j] * scale : -INFINITY;
          const T w = fromF<T>(softmaxWeight(x, mNew));
          p[j] = w;
          sum += toF(w);
        }
        sum += __shfl_xor_sync(0xffffffffu, sum, 1);
        const float corr = softmaxCorrection(m, mNew);
        l = l * corr + sum;
        m = mNew;
        float* o = sO + myRow * kOld + myHalf * (D / 2);
#pragma unroll 8
        for (int d = 0; d < D / 2; ++d) o[d] *= corr;
      }
      __syncwarp();

      // O rows of this warp += P[16 rows][64 keys] · V[64 keys][D].
      {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> a;
        wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::row_major> b;
        wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
#pragma unroll
        for (int n = 0; n < D / 16; ++n) {
          float* oTile = sO + (16 * warp) * kOld + 16 * n;
          wmma::load_matrix_sync(acc, oTile, kOld, wmma::mem_row_major);
#pragma unroll
          for (int kk = 0; kk < kKeys / 16; ++kk) {
            wmma::load_matrix_sync(a, sP + (16 * warp) * kPld + 16 * kk, kPld);
            wmma::load_matrix_sync(b, sV + (16 * kk) * kLd + 16 * n, kLd);
            wmma::mma_sync(acc, a, b, acc);
          }
          wmma::store_matrix_sync(oTile, acc, kOld, wmma::mem_row_major);
        }
      }
      __syncwarp();
    }

    // Normalise and write myRow (its half of the dims) when it belongs to this segment.
    if (sPos[myRow] >= 0) {
      const int t = qt.t0 + myRow / G;
      const size_t row = static_cast<size_t>(t) * hs.numHeads + static_cast<size_t>(qt.kvh) * G + myRow % G;
      const float* o = sO + myRow * kOld + myHalf * (D / 2);
      T* dst = out + row * D + myHalf * (D / 2);
      for (int d = 0; d < D / 2; ++d) dst[d] = fromF<T>(o[d] / l);
    }
    __syncthreads();  // the next segment rewrites Q, O and the positions
  });
}

// The mma.sync kernel (attention-prefill-mma.cuh): the same contract, registers instead of shared memory for S, P and O.
template <typename T, int D>
__global__ void __launch_bounds__(prefill_mma::kThreads, 2)
    prefillAttentionMmaKernel(const T* q, int T_, HeadShape hs, float scale, AttnTables tabs, const T* kCache,
                              const T* vCache, T* out) {
  extern __shared__ __align__(128) unsigned char smem[];
  prefill_mma::prefillAttentionMma<T, D>(smem, q, T_, hs, scale, tabs, kCache, vCache, out);
}

// Either kernel over the step's rows: one block per 64-row tile of (token, q head) rows and KV head.
template <typename T, typename Kernel>
cudaError_t launchTiles(Kernel kernel, unsigned threads, size_t smemBytes, const T* q, int T_, const HeadShape& hs, float scale,
                        const AttnTables& tabs, const T* kCache, const T* vCache, T* out, cudaStream_t s) {
  static_assert(prefill_mma::kRows == kRows, "both kernels take the same query tiles");
  const int tokensPerTile = kRows / (hs.numHeads / hs.numKvHeads);
  const cudaError_t status = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smemBytes));
  if (status != cudaSuccess) return status;
  const dim3 grid((T_ + tokensPerTile - 1) / tokensPerTile, hs.numKvHeads);
  return pdlLaunch(kernel, grid, threads, smemBytes, s, q, T_, hs, scale, tabs, kCache, vCache, out);
}

template <typename T, int D>
cudaError_t launch(bool mma, const void* q, int T_, const HeadShape& hs, float scale, const AttnTables& tabs,
                   const void* kCache, const void* vCache, void* out, cudaStream_t s) {
  const auto* qT = static_cast<const T*>(q);
  const auto *kT = static_cast<const T*>(kCache), *vT = static_cast<const T*>(vCache);
  auto* outT = static_cast<T*>(out);
  return mma ? launchTiles(prefillAttentionMmaKernel<T, D>, prefill_mma::kThreads, prefill_mma::Smem<T, D>::kBytes, qT, T_, hs,
                           scale, tabs, kT, vT, outT, s)
             : launchTiles(prefillAttentionKernel<T, D>, kThreads, PrefillSmem<T, D>::kBytes, qT, T_, hs, scale, tabs, kT, vT, outT, s);
}

// TSLORA_CUDA_PREFILL_ATTN_MMA=1 (read once; opt-in until a GPU run measures it): the mma.sync kernel instead of WMMA.
bool& mmaFlag() {
  static bool on = lora::envFlag("TSLORA_CUDA_PREFILL_ATTN_MMA", false);
  return on;
}

}  // namespace

void setPrefillAttentionMma(bool on) { mmaFlag() = on; }
bool prefillAttentionMmaOn() { return mmaFlag(); }

bool prefillAttentionFits(int T, int numSeqs, const HeadShape& hs) {
  // ≥ 64 rows, and room for at least one sequence of kPrefillMinRows rows (decode-only steps: the split kernel alone).
  if (numSeqs <= 0 || T < 64 || T - (numSeqs - 1) < kPrefillMinRows) return false;
  if (hs.numKvHeads <= 0 || hs.numHeads % hs.numKvHeads != 0 || hs.numKvHeads > 65535) return false;
  const int G = hs.numHeads / hs.numKvHeads;
  return (hs.headDim == 64 || hs.headDim == 128) && G <= 16 && G * hs.headDim <= 1024;
}

cudaError_t launchPrefillAttention(bool bf16, const void* q, int T, const HeadShape& hs, float scale,
                                   const AttnTables& tabs, const void* kCache, const void* vCache, void* out,
                                   cudaStream_t s) {
  const bool mma = mmaFlag();
  if (bf16)
    return hs.headDim == 64 ? launch<__nv_bfloat16, 64>(mma, q, T, hs, scale, tabs, kCache, vCache, out, s)
                            : launch<__nv_bfloat16, 128>(mma, q, T, hs, scale, tabs, kCache, vCache, out, s);
  return hs.headDim == 64 ? launch<__half, 64>(mma, q, T, hs, scale, tabs, kCache, vCache, out, s)
                          : launch<__half, 128>(mma, q, T, hs, scale, tabs, kCache, vCache, out, s);
}

}  // namespace tslora::cuda
