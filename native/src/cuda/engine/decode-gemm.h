// Decode GEMM on tensor cores: y[M, N] = x[M, K] · w[N, K]ᵀ for decode batches of 9..128 rows (bf16/fp16 in, fp32
// accumulate, y in the activation dtype or fp32). At these M a projection is still a weight stream (x ≤ 1 MB stays in
// L2), but too many rows for the FMA skinny kernel; cuBLAS reaches ~75 % of bandwidth at M = 64 on an H100.
// Every warp streams 32 weight rows (two mma.m16n8k16 A tiles) straight from global memory into its fragment
// registers, the activations are the B operand (8 tokens per n-tile); K is split over blocks so that even N = 4096
// fills every SM, and the splits' fp32 partials are summed by the last block of a column tile in split order
// (deterministic: a row's result does not depend on M or on the rows beside it).
// Header without cuBLAS: blas.cu dispatches to it and falls back to cuBLAS where it does not apply.
#pragma once
#include <cuda_runtime.h>

#include "kernels.h"

namespace tslora::cuda {

constexpr int kDecodeGemmMinRows = 9;
constexpr int kDecodeGemmMaxRows = 128;
constexpr int kDecodeGemmKStep = 64;        // K per warp step; K must be a multiple of it
constexpr int kDecodeGemmMaxSplits = 16;
constexpr int kDecodeGemmMaxClusterSplits = 8;  // portable thread-block cluster size
constexpr int kDecodeGemmMaxColumnTiles = 4096;  // tickets: N ≤ 4096 × 128 (the LM head's 128256 needs ~1000)

// How many K splits for a projection: a function of (N, K, SM count) only, never of M, so that a row's result is the
// same whatever batch it is launched with (decode graphs pad the batch). About 0.75 blocks per SM, at most 8.
int decodeGemmSplits(int N, int K, int numSms);

// Weight rows per warp tile (16 · mTiles): 32 (two A tiles, x fragments reused twice) or 16 (more weight steps in
// flight where 12 or 16 n-tiles of accumulators fill the registers).
int decodeGemmRowsPerWarp(int M);

// How the K splits of a column tile are summed (always in split order, so both give the same bits): kAuto = a
// thread-block cluster through distributed shared memory where the splits are ≤ 8 (falling back to tickets when the
// GPU cannot place the cluster), kTicket = fp32 partials in global memory summed by the last block of the tile.
enum class DecodeGemmReduce { kAuto, kTicket, kCluster };

// Owns the split partials and the column tiles' tickets (allocated once, at construction: no allocation while a
// decode step is captured as a CUDA graph; the tickets are reset by the block that consumes them, so graph replays
// find them at zero).
class DecodeGemm {
 public:
  explicit DecodeGemm(int numSms);  // throws NativeError when the workspace cannot be allocated
  ~DecodeGemm();
  DecodeGemm(const DecodeGemm&) = delete;
  DecodeGemm& operator=(const DecodeGemm&) = delete;

  // True when this kernel can take the call: M in [9, 128], K a multiple of 64, x and w 16-byte aligned, and
  // decodeGemmSplits(N, K) ≤ 8 (one cluster) or its partials fit the workspace.
  bool applies(int M, int N, int K, const void* x, const void* w) const;

  // Launches on `stream` (splits 0 = decodeGemmSplits; rowsPerWarp 0 = decodeGemmRowsPerWarp;
  // explicit values and the reduction for the tests' sweep and the benchmark). y row-major with leading dimension N. Returns the launch status;
  // cudaErrorInvalidValue (nothing launched) when the call does not apply.
  cudaError_t run(Act act, const void* x, int M, int K, const void* w, int N, void* y, bool yF32, cudaStream_t stream,
                  int splits = 0, int rowsPerWarp = 0, DecodeGemmReduce reduce = DecodeGemmReduce::kAuto) const;

  int numSms() const { return numSms_; }

 private:
  static constexpr size_t kPartialBytes = size_t{32} << 20;
  float* partials_ = nullptr;  // [splits, M, N] fp32 (column tiles' slices), kPartialBytes
  int* tickets_ = nullptr;     // [kDecodeGemmMaxColumnTiles], zero between launches
  int numSms_ = 0;
  bool clusters_ = false;      // thread-block clusters (sm_90+); below, every split count reduces through tickets
};

}  // namespace tslora::cuda
