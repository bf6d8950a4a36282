// Skinny GEMM for decode: y[M, N] = x[M, K] · w[N, K]ᵀ with M ≤ 8 rows (bf16/fp16 in, fp32 accumulate, y in the
// activation dtype or fp32). A decode step is a handful of rows against every weight once, so the projection is a
// pure weight stream; cuBLAS at M = 1..8 reaches only 24–35 % of the H200's bandwidth on the small projections
// (Nsight Compute, bench/cuda/README.md, run 5). Here every warp streams two weight rows with 16-byte loads and
// keeps the M activation rows in L1, and K is split over up to 8 warps when N alone would leave the GPU idle.
// Header without cuBLAS: blas.cu dispatches to it and falls back to cuBLAS where it does not apply.
#pragma once
#include <cuda_runtime.h>

#include "kernels.h"

namespace tslora::cuda {

constexpr int kSkinnyGemmMaxRows = 8;

// True when the skinny kernel handles this call: K a multiple of 8 (16-byte rows), x and w 16-byte aligned, and few
// enough rows for the weight matrix' size. Measured on the H200 against cublasGemmEx (skinny-gemm-test --bench,
// bench/cuda/README.md): at M = 1 it is as fast or up to 2.4x faster for every projection of Llama-3.2-1B and 3.1-8B;
// with more rows each weight vector feeds more conversions and FMAs per byte, so at M = 4 it only wins on matrices
// up to ~34 MB and at M = 8 only on the smallest (8 MB). Everything else goes through cuBLAS.
bool skinnyGemmApplies(int M, int N, int K, const void* x, const void* w);

// How many warps share the K loop of one column pair (1, 2, 4 or 8): enough warps to fill the GPU (numSms × 64),
// each warp keeping at least two 16-byte vectors of every weight row.
int skinnyGemmKSplit(int N, int K, int numSms);

// Launches on `stream` as a programmatic dependent of the kernel before it (pdl.h: the first weight vectors load
// before the wait for x); y row-major with leading dimension N, Act or fp32 (yF32). Returns the launch status.
cudaError_t launchSkinnyGemm(Act act, const void* x, int M, int K, const void* w, int N, void* y, bool yF32, int kSplit,
                             cudaStream_t stream);

// The gate_up projection with SwiGLU in its epilogue: y[m, i] = silu(g)·u for g, u = (x·gateUpᵀ)[m, i] and [m, I + i]
// each rounded to `act` first, so y is bit-identical to launchSkinnyGemm into [M, 2I] followed by launchSwiglu, and
// the [M, 2I] buffer and the SwiGLU kernel are not needed. gateUp: [2I, K] (gate rows, then up rows); y: [M, I] Act;
// kSplit from skinnyGemmKSplit(2I, K, numSms). Launched as a programmatic dependent like launchSkinnyGemm.
cudaError_t launchSkinnyGemmSwiglu(Act act, const void* x, int M, int K, const void* gateUp, int I, void* y, int kSplit,
                                   cudaStream_t stream);

// Where the fused qkv projection writes (device pointers; launchQkvPost's arguments without q/k norms).
struct SkinnyQkvRope {
  HeadShape hs;
  const float *qBias = nullptr, *kBias = nullptr, *vBias = nullptr;  // [numHeads · D], [numKvHeads · D] ×2, or null
  const float* invFreq = nullptr;                                     // [D / 2]
  AttnTables tabs;                                                    // positions, rows → sequences, block tables
  void *q = nullptr, *kCache = nullptr, *vCache = nullptr;            // [M, numHeads · D] Act; this layer's cache planes
};

// The qkv projection with launchQkvPost in its epilogue, for models without q/k RMSNorm: x · wQkvᵀ (wQkv: [(nH + 2
// nKv) · D, K]) rounded to `act`, + bias, RoPE of q and k, q into out.q and k, v into the paged cache, bit-identical
// to launchSkinnyGemm into [M, qkv] followed by launchQkvPost (no [M, qkv] buffer, no second kernel). M rows are
// token rows 0..M-1 of out.tabs; kSplit from skinnyGemmKSplit((nH + 2 nKv) · D, K, numSms).
cudaError_t launchSkinnyGemmQkvRope(Act act, const void* x, int M, int K, const void* wQkv, const SkinnyQkvRope& out,
                                    int kSplit, cudaStream_t stream);

}  // namespace tslora::cuda
