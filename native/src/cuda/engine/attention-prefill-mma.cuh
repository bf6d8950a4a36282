// The prefill attention on mma.sync (session 25; opt-in, TSLORA_CUDA_PREFILL_ATTN_MMA=1, not yet run on a GPU): the same
// blocks, rows, key tiles, sequence segments, causal mask and rounding rules as the WMMA kernel of attention-prefill.cu
// (one block of 4 warps per 64 (token, q head) rows of one KV head; 64-key tiles paged through the block table; P
// rounded to the activation dtype and l summing the rounded P), with Q, the scores, P and O in registers instead of
// shared memory:
//  - Q fragments loaded once per segment (ldmatrix, 16 rows × D per warp);
//  - S = Q·Kᵀ with the K tile's rows as the B operand (ldmatrix, as the wide LoRA shrink loads A);
//  - the online softmax per row over the quad of lanes that holds it (shuffles 1 and 2);
//  - P packed from S's accumulators straight into A fragments (the C layout of two adjacent 8-key tiles is the A layout
//    of one 16-key step), O += P·V with V as the B operand through ldmatrix.trans (V stays [key][d]);
//  - O rescaled in registers; shared memory holds Q, two K / V tiles (the next one's cp.async copies in flight while
//    this one computes) and the rows' positions only: 87 KB at D = 128 instead of the WMMA kernel's ~113 KB.
// Why: the WMMA kernel ran 8 × 512 at ~19 TFLOP/s on an H100 and an H200 alike (bench/cuda/README.md, Session 25).
// Sums run in another order than the WMMA kernel's (the softmax's sums over a quad instead of a lane pair), so the
// results agree within rounding, not bit for bit. The host emulator runs it (ptx-headers-emu.mjs, mma-emu.mjs).
#pragma once
#include <cstdint>

#include "act-convert.cuh"
#include "attention-merge.h"
#include "attention-prefill-tiles.cuh"
#include "kernels.h"
#include "cp-async.cuh"
#include "ldmatrix.cuh"
#include "mma16816.cuh"
#include "pdl.h"

namespace tslora::cuda::prefill_mma {

constexpr int kRows = 64;      // query rows per block: 4 warps × 16
constexpr int kKeys = 64;      // keys per tile
constexpr int kThreads = 128;

// Shared memory: Q [64][D + 8] | K [2][64][D + 8] | V [2][64][D + 8] (Act; the 16-byte pad keeps ldmatrix rows on
// distinct banks; two key tiles, the next one's copies in flight while this one computes) | row position [64] int32.
template <typename T, int D>
struct Smem {
  static constexpr int kLd = D + 8;
  static constexpr int kTileElems = kKeys * kLd;
  static constexpr size_t kQ = 0;
  static constexpr size_t kK = kQ + sizeof(T) * kRows * kLd;
  static constexpr size_t kV = kK + 2 * sizeof(T) * kTileElems;
  static constexpr size_t kPos = kV + 2 * sizeof(T) * kTileElems;
  static constexpr size_t kBytes = kPos + sizeof(int32_t) * kRows;
};

// Two values of T, already rounded, as one 32-bit fragment register (the first in the low half).
template <typename T>
__device__ __forceinline__ uint32_t packRounded(float lo, float hi) {
  const T a = fromF<T>(lo), b = fromF<T>(hi);
  return static_cast<uint32_t>(*reinterpret_cast<const uint16_t*>(&a)) |
         (static_cast<uint32_t>(*reinterpret_cast<const uint16_t*>(&b)) << 16);
}

// Rows of the block's tile: row r = (token t0 + r / G, q head kvh · G + r % G); a segment is a run of the tile's tokens
// of one sequence. Thread (warp w, lane: g = lane / 4, t = lane % 4) owns rows 16w + g and 16w + g + 8 of the mma
// fragments: S columns (keys) 8j + 2t, +1 and O columns (dims) 8n + 2t, +1.
template <typename T, int D>
__device__ __forceinline__ void prefillAttentionMma(unsigned char* smem, const T* q, int T_, HeadShape hs, float scale,
                                                    AttnTables tabs, const T* kCache, const T* vCache, T* out) {
  using L = Smem<T, D>;
  constexpr int kLd = L::kLd, kSteps = D / 16, kDimTiles = D / 8;
  T* sQ = reinterpret_cast<T*>(smem + L::kQ);
  T* sK = reinterpret_cast<T*>(smem + L::kK);
  T* sV = reinterpret_cast<T*>(smem + L::kV);
  int32_t* sPos = reinterpret_cast<int32_t*>(smem + L::kPos);
  pdlLaunchDependents();
  pdlWait();  // programmatic dependent (pdl.h): q and the cache come from the kernels before it

  const prefill_tiles::QueryTile qt = prefill_tiles::queryTileOf<kRows>(hs, T_);
  const int G = qt.G;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, g = lane >> 2, tq = lane & 3;
  const int rowA = 16 * warp + g, rowB = rowA + 8;

  prefill_tiles::forEachSegment(tabs, T_, qt, [&](int segStart, const prefill_tiles::Segment& seg) {
    // Q rows of this segment (others zero, position −1: every key masked); the first key tile's copies in flight.
    prefill_tiles::loadQueryRows<T, D, kRows, kThreads, kLd>(q, hs, qt, segStart, seg.end, sQ);
    prefill_tiles::setRowPositions<kRows>(tabs, qt, segStart, seg.end, sPos);
    prefill_tiles::loadKeyTile<T, D, kKeys, kThreads, kLd, true>(kCache, vCache, hs, tabs.blockSize, qt, seg, 0, sK, sV);
    cpAsyncCommit();
    __syncthreads();
    uint32_t qf[kSteps][4];  // A fragments of the warp's 16 rows, 16 dims per step
#pragma unroll
    for (int kd = 0; kd < kSteps; ++kd)
      ldmatrixX4(sQ + (16 * warp + (lane & 15)) * kLd + kd * 16 + (lane >> 4) * 8, qf[kd][0], qf[kd][1], qf[kd][2], qf[kd][3]);
    const int posA = sPos[rowA], posB = sPos[rowB];
    float o[kDimTiles][4];
#pragma unroll
    for (int n = 0; n < kDimTiles; ++n) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.0f;
    float mA = -INFINITY, mB = -INFINITY, lA = 0.0f, lB = 0.0f;  // running max / sum of rows A and B (the quad agrees)

    const int numTiles = (seg.numKeys + kKeys - 1) / kKeys;
    for (int i = 0; i < numTiles; ++i) {
      const int k0 = i * kKeys;
      const T* tK = sK + (i & 1) * L::kTileElems;
      const T* tV = sV + (i & 1) * L::kTileElems;
      // Tile i + 1 into the other buffer (tile i − 1's: every warp left it at the last iteration's closing barrier).
      if (i + 1 < numTiles)
        prefill_tiles::loadKeyTile<T, D, kKeys, kThreads, kLd, true>(kCache, vCache, hs, tabs.blockSize, qt, seg, k0 + kKeys,
                                                                sK + ((i + 1) & 1) * L::kTileElems, sV + ((i + 1) & 1) * L::kTileElems);
      cpAsyncCommit();
      cpAsyncWait<1>();  // this thread's copies of tile i have landed (tile i + 1's may still be in flight)
      __syncthreads();   // … and every thread's

      // S = Q·Kᵀ: 8 tiles of 8 keys; each accumulator sums the dims in ascending 16-steps.
      float s[kKeys / 8][4];
#pragma unroll
      for (int j = 0; j < kKeys / 8; ++j) s[j][0] = s[j][1] = s[j][2] = s[j][3] = 0.0f;
#pragma unroll
      for (int kd = 0; kd < kSteps; ++kd)
#pragma unroll
        for (int p = 0; p < kKeys / 16; ++p) {  // keys 16p .. 16p + 15: B fragments of key tiles 2p and 2p + 1
          uint32_t b0, b1, b2, b3;
          ldmatrixX4(tK + (16 * p + (lane >> 4) * 8 + (lane & 7)) * kLd + kd * 16 + ((lane >> 3) & 1) * 8, b0, b1, b2, b3);
          mma16816<T>(s[2 * p], qf[kd][0], qf[kd][1], qf[kd][2], qf[kd][3], b0, b1);
          mma16816<T>(s[2 * p + 1], qf[kd][0], qf[kd][1], qf[kd][2], qf[kd][3], b2, b3);
        }

      // Online softmax: scale, causal mask (key > the row's position: −inf), the tile's max per row over the quad.
      float mxA = -INFINITY, mxB = -INFINITY;
#pragma unroll
      for (int j = 0; j < kKeys / 8; ++j)
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const int key = k0 + 8 * j + 2 * tq + e;
          s[j][e] = key <= posA ? s[j][e] * scale : -INFINITY;
          s[j][2 + e] = key <= posB ? s[j][2 + e] * scale : -INFINITY;
          mxA = fmaxf(mxA, s[j][e]);
          mxB = fmaxf(mxB, s[j][2 + e]);
        }
      mxA = fmaxf(mxA, __shfl_xor_sync(0xffffffffu, mxA, 1));
      mxA = fmaxf(mxA, __shfl_xor_sync(0xffffffffu, mxA, 2));
      mxB = fmaxf(mxB, __shfl_xor_sync(0xffffffffu, mxB, 1));
      mxB = fmaxf(mxB, __shfl_xor_sync(0xffffffffu, mxB, 2));
      const float mNewA = fmaxf(mA, mxA), mNewB = fmaxf(mB, mxB);
      // P rounded to T (the WMMA kernel stores it so), summed as rounded, packed into the A fragments of P·V:
      // pf[kb] = keys 16kb .. 16kb + 15 (key tiles 2kb and 2kb + 1).
      uint32_t pf[kKeys / 16][4];
      float sumA = 0.0f, sumB = 0.0f;
#pragma unroll
      for (int j = 0; j < kKeys / 8; ++j) {
        const float a0 = toF(fromF<T>(softmaxWeight(s[j][0], mNewA))), a1 = toF(fromF<T>(softmaxWeight(s[j][1], mNewA)));
        const float b0 = toF(fromF<T>(softmaxWeight(s[j][2], mNewB))), b1 = toF(fromF<T>(softmaxWeight(s[j][3], mNewB)));
        sumA += a0 + a1;
        sumB += b0 + b1;
        pf[j / 2][(j % 2) * 2] = packRounded<T>(a0, a1);      // a0 / a2: row g
        pf[j / 2][(j % 2) * 2 + 1] = packRounded<T>(b0, b1);  // a1 / a3: row g + 8
      }
      sumA += __shfl_xor_sync(0xffffffffu, sumA, 1);
      sumA += __shfl_xor_sync(0xffffffffu, sumA, 2);
      sumB += __shfl_xor_sync(0xffffffffu, sumB, 1);
      sumB += __shfl_xor_sync(0xffffffffu, sumB, 2);
      const float corrA = softmaxCorrection(mA, mNewA), corrB = softmaxCorrection(mB, mNewB);
      lA = lA * corrA + sumA;
      lB = lB * corrB + sumB;
      mA = mNewA;
      mB = mNewB;
#pragma unroll
      for (int n = 0; n < kDimTiles; ++n) {
        o[n][0] *= corrA;
        o[n][1] *= corrA;
        o[n][2] *= corrB;
        o[n][3] *= corrB;
      }

      // O += P·V: V's rows (keys) as B through ldmatrix.trans, 16 dims (two dim tiles) per load.
#pragma unroll
      for (int kb = 0; kb < kKeys / 16; ++kb)
#pragma unroll
        for (int p = 0; p < kDimTiles / 2; ++p) {
          uint32_t b0, b1, b2, b3;
          ldmatrixX4Trans(tV + (16 * kb + (lane & 7) + ((lane >> 3) & 1) * 8) * kLd + 16 * p + (lane >> 4) * 8, b0, b1, b2, b3);
          mma16816<T>(o[2 * p], pf[kb][0], pf[kb][1], pf[kb][2], pf[kb][3], b0, b1);
          mma16816<T>(o[2 * p + 1], pf[kb][0], pf[kb][1], pf[kb][2], pf[kb][3], b2, b3);
        }
      __syncthreads();  // every warp is done with this tile's buffers before the next iteration refills them
    }
    cpAsyncWait<0>();  // (the last iteration's empty group)

    // Normalise and write the thread's columns of rows A and B where they belong to this segment.
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const int r = half ? rowB : rowA, pos = half ? posB : posA;
      const float l = half ? lB : lA;
      if (pos < 0) continue;
      const int t = qt.t0 + r / G;
      const size_t row = static_cast<size_t>(t) * hs.numHeads + static_cast<size_t>(qt.kvh) * G + r % G;
      T* dst = out + row * D + 2 * tq;
#pragma unroll
      for (int n = 0; n < kDimTiles; ++n) {
        dst[8 * n] = fromF<T>(o[n][2 * half] / l);
        dst[8 * n + 1] = fromF<T>(o[n][2 * half + 1] / l);
      }
    }
    __syncthreads();  // the next segment rewrites Q and the positions
  });
}

}  // namespace tslora::cuda::prefill_mma
