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

// Launches on `stream`; y row-major with leading dimension N, Act or fp32 (yF32). Returns the launch status.
cudaError_t launchSkinnyGemm(Act act, const void* x, int M, int K, const void* w, int N, void* y, bool yF32, int kSplit,
                             cudaStream_t stream);

}  // namespace tslora::cuda
