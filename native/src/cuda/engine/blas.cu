// Blas: see blas.h. Row-major y = x·wᵀ is column-major yᵀ = w·xᵀ: op(w) = T (w is K×N column-major), op(x) = N.
#include <cublas_v2.h>

#include "../lora_env_flag.h"
#include "blas.h"
#include "cuda-check.h"
#include "decode-gemm.h"
#include "gemm-tune.h"
#include "skinny-gemm.h"

namespace tslora::cuda {
namespace {

constexpr bool kDecodeGemmDefaultOn = false;

void blasCheck(cublasStatus_t status, const char* what) {
  if (status == CUBLAS_STATUS_SUCCESS) return;
  throw NativeError(status == CUBLAS_STATUS_ALLOC_FAILED ? "native_out_of_memory" : "native_cuda_error",
                    detail::concat("cuBLAS: ", what, " failed with status ", static_cast<int>(status)));
}

}  // namespace

Blas::Blas(cudaStream_t stream) {
  cublasHandle_t h = nullptr;
  blasCheck(cublasCreate(&h), "cublasCreate");
  handle_ = h;
  blasCheck(cublasSetStream(h, stream), "cublasSetStream");
  // A workspace of our own, so that cuBLAS never allocates while a decode step is being captured as a CUDA graph.
  cudaCheck(cudaMalloc(&workspace_, kWorkspaceBytes), "cuBLAS workspace");
  blasCheck(cublasSetWorkspace(h, workspace_, kWorkspaceBytes), "cublasSetWorkspace");
  stream_ = stream;
  int device = 0;
  cudaCheck(cudaGetDevice(&device), "cudaGetDevice");
  cudaCheck(cudaDeviceGetAttribute(&numSms_, cudaDevAttrMultiProcessorCount, device), "SM count");
  // TSLORA_CUDA_SKINNY_GEMM=0 sends every projection to cuBLAS (A/B measurements of the decode path).
  skinnyEnabled_ = lora::envFlag("TSLORA_CUDA_SKINNY_GEMM", true);
  // TSLORA_CUDA_DECODE_GEMM=1 / 0 turns the tensor-core decode GEMM (9..128 rows) on / off; off by default: correct,
  // but on an H100 slower than cuBLAS except the LM heads at M ≤ 16 (docs/gpu.md).
  if (lora::envFlag("TSLORA_CUDA_DECODE_GEMM", kDecodeGemmDefaultOn)) decodeGemm_ = std::make_unique<DecodeGemm>(numSms_);
  // TSLORA_CUDA_GEMM_TUNE=1: cuBLASLt's candidates timed once per decode-sized shape (gemm-tune.h).
  if (gemmTuneEnabled()) tuner_ = std::make_unique<GemmTuner>(stream, workspace_, kWorkspaceBytes);
}

Blas::~Blas() {
  tuner_.reset();
  if (handle_) cublasDestroy(static_cast<cublasHandle_t>(handle_));
  cudaFree(workspace_);
}

void Blas::gemm(Act act, const void* x, int M, int K, const void* w, int N, void* y, bool yF32) {
  if (M == 0 || N == 0) return;
  if (skinnyEnabled_ && skinnyGemmApplies(M, N, K, x, w)) {
    cudaCheck(launchSkinnyGemm(act, x, M, K, w, N, y, yF32, skinnyGemmKSplit(N, K, numSms_), static_cast<cudaStream_t>(stream_)),
              "skinny GEMM launch");
    return;
  }
  // A decode GEMM launch the GPU refuses (a cluster it cannot place) leaves the call to cuBLAS.
  if (decodeGemm_ && decodeGemm_->applies(M, N, K, x, w) &&
      decodeGemm_->run(act, x, M, K, w, N, y, yF32, static_cast<cudaStream_t>(stream_)) == cudaSuccess)
    return;
  if (tuner_ && GemmTuner::applies(M) && tuner_->run(act, x, M, K, w, N, y, yF32)) return;
  const cudaDataType_t in = act == Act::BF16 ? CUDA_R_16BF : CUDA_R_16F;
  const cudaDataType_t out = yF32 ? CUDA_R_32F : in;
  const float alpha = 1.0f, beta = 0.0f;
  blasCheck(cublasGemmEx(static_cast<cublasHandle_t>(handle_), CUBLAS_OP_T, CUBLAS_OP_N, N, M, K, &alpha, w, in, K, x,
                         in, K, &beta, y, out, N, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
            "cublasGemmEx");
}

void Blas::gemmAccumulate(Act act, const void* x, int M, int K, const void* w, int N, void* y) {
  if (M == 0 || N == 0) return;
  const cudaDataType_t in = act == Act::BF16 ? CUDA_R_16BF : CUDA_R_16F;
  const float alpha = 1.0f, beta = 1.0f;
  blasCheck(cublasGemmEx(static_cast<cublasHandle_t>(handle_), CUBLAS_OP_T, CUBLAS_OP_N, N, M, K, &alpha, w, in, K, x,
                         in, K, &beta, y, in, N, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
            "cublasGemmEx (accumulate)");
}

int Blas::skinnyKSplit(int M, int N, int K, const void* x, const void* w) const {
  if (!skinnyEnabled_ || M == 0 || N == 0 || !skinnyGemmApplies(M, N, K, x, w)) return 0;
  return skinnyGemmKSplit(N, K, numSms_);
}

}  // namespace tslora::cuda
