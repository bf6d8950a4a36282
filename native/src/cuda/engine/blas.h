// Dense projections through cuBLAS (cublasGemmEx: bf16/fp16 in, fp32 accumulate). The header does not include
// cuBLAS, so the engine compiles (and is syntax-checked) without the cuBLAS headers; only blas.cu needs them.
#pragma once
#include <cuda_runtime.h>

#include <memory>

#include "kernels.h"

namespace tslora::cuda {

class DecodeGemm;
class GemmTuner;

class Blas {
 public:
  explicit Blas(cudaStream_t stream);  // throws NativeError when cuBLAS cannot start
  ~Blas();
  Blas(const Blas&) = delete;
  Blas& operator=(const Blas&) = delete;

  // y[M, N] (row-major, leading dimension N) = x[M, K] · w[N, K]ᵀ. x, w in `act`; y in `act`, or fp32 if yF32.
  // Decode-sized M goes to the skinny weight-streaming kernel where it is faster (skinny-gemm.h), 9..128 rows to the
  // tensor-core decode GEMM where enabled (decode-gemm.h), 16..128 rows (multiples of 8) with TSLORA_CUDA_GEMM_TUNE=1
  // to cuBLASLt with an algorithm timed once per shape (gemm-tune.h), the rest to cublasGemmEx.
  void gemm(Act act, const void* x, int M, int K, const void* w, int N, void* y, bool yF32);
  // y[M, N] += x[M, K] · w[N, K]ᵀ in `act` (cublasGemmEx with beta = 1: y is read in the epilogue and the sum rounded
  // once). The engine's store-first prefill LoRA (forward.cu) writes the delta into y first, so the expand writes y once
  // instead of reading and writing it after the projection.
  void gemmAccumulate(Act act, const void* x, int M, int K, const void* w, int N, void* y);

  // The skinny kernel's K split for gemm(x[M, K], w[N, K]), or 0 where gemm() would not use the skinny kernel
  // (cuBLAS shapes, TSLORA_CUDA_SKINNY_GEMM=0): the fused skinny launches (skinny-gemm.h) run exactly where it would.
  int skinnyKSplit(int M, int N, int K, const void* x, const void* w) const;

 private:
  static constexpr size_t kWorkspaceBytes = size_t{32} << 20;  // cuBLAS' recommendation for Hopper
  void* handle_ = nullptr;  // cublasHandle_t
  void* workspace_ = nullptr;
  cudaStream_t stream_ = nullptr;
  int numSms_ = 0;
  bool skinnyEnabled_ = true;
  std::unique_ptr<DecodeGemm> decodeGemm_;  // null when TSLORA_CUDA_DECODE_GEMM turns it off
  std::unique_ptr<GemmTuner> tuner_;        // null unless TSLORA_CUDA_GEMM_TUNE=1
};

}  // namespace tslora::cuda
