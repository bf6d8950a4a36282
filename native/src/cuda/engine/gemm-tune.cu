// GemmTuner: see gemm-tune.h. Row-major y = x·wᵀ is column-major yᵀ = op(w)·xᵀ with op(w) = T (w is K×N column-major),
// exactly as blas.cu's cublasGemmEx call: A = w (K×N, ld K, transposed), B = x (K×M, ld K), C = D = y (N×M, ld N).
#include <cublasLt.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "../lora_env_flag.h"
#include "cuda-check.h"
#include "gemm-tune.h"

namespace tslora::cuda {

namespace {

void ltCheck(cublasStatus_t status, const char* what) {
  if (status == CUBLAS_STATUS_SUCCESS) return;
  throw NativeError(status == CUBLAS_STATUS_ALLOC_FAILED ? "native_out_of_memory" : "native_cuda_error",
                    detail::concat("cuBLASLt: ", what, " failed with status ", static_cast<int>(status)));
}

constexpr size_t kFlushBytes = size_t{96} << 20;  // > the H100 / H200 L2 (50 / 60 MB)

std::string describe(const cublasLtMatmulAlgo_t& algo) {
  int id = 0, tile = 0, splitK = 0, stages = 0, swizzle = 0, reduction = 0;
  size_t n = 0;
  cublasLtMatmulAlgoConfigGetAttribute(&algo, CUBLASLT_ALGO_CONFIG_ID, &id, sizeof id, &n);
  cublasLtMatmulAlgoConfigGetAttribute(&algo, CUBLASLT_ALGO_CONFIG_TILE_ID, &tile, sizeof tile, &n);
  cublasLtMatmulAlgoConfigGetAttribute(&algo, CUBLASLT_ALGO_CONFIG_SPLITK_NUM, &splitK, sizeof splitK, &n);
  cublasLtMatmulAlgoConfigGetAttribute(&algo, CUBLASLT_ALGO_CONFIG_STAGES_ID, &stages, sizeof stages, &n);
  cublasLtMatmulAlgoConfigGetAttribute(&algo, CUBLASLT_ALGO_CONFIG_CTA_SWIZZLING, &swizzle, sizeof swizzle, &n);
  cublasLtMatmulAlgoConfigGetAttribute(&algo, CUBLASLT_ALGO_CONFIG_REDUCTION_SCHEME, &reduction, sizeof reduction, &n);
  return detail::concat("algo ", id, " tile ", tile, " splitK ", splitK, " stages ", stages, " swizzle ", swizzle,
                        " reduction ", reduction);
}

}  // namespace

// The descriptors of one shape.
static_assert(sizeof(cublasLtMatmulAlgo_t) == sizeof(GemmCandidate::algo), "GemmCandidate::algo holds one cuBLASLt algo");

struct GemmTuner::Shape {
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
  Shape(Act act, int M, int N, int K, bool yF32) {
    const cudaDataType_t in = act == Act::BF16 ? CUDA_R_16BF : CUDA_R_16F;
    ltCheck(cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32F, CUDA_R_32F), "matmul descriptor");
    const cublasOperation_t t = CUBLAS_OP_T, nt = CUBLAS_OP_N;
    ltCheck(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &t, sizeof t), "transa");
    ltCheck(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &nt, sizeof nt), "transb");
    ltCheck(cublasLtMatrixLayoutCreate(&a, in, K, N, K), "layout of w");
    ltCheck(cublasLtMatrixLayoutCreate(&b, in, K, M, K), "layout of x");
    ltCheck(cublasLtMatrixLayoutCreate(&c, yF32 ? CUDA_R_32F : in, N, M, N), "layout of y");
  }
  ~Shape() {
    if (c) cublasLtMatrixLayoutDestroy(c);
    if (b) cublasLtMatrixLayoutDestroy(b);
    if (a) cublasLtMatrixLayoutDestroy(a);
    if (op) cublasLtMatmulDescDestroy(op);
  }
  Shape(const Shape&) = delete;
  Shape& operator=(const Shape&) = delete;
};

struct GemmTuner::Tuned {
  std::unique_ptr<Shape> shape;
  cublasLtMatmulAlgo_t algo{};
  bool valid = false;  // false: no candidate ran; the caller's cublasGemmEx takes the shape
};

bool gemmTuneEnabled() {
  static const bool on = lora::envFlag("TSLORA_CUDA_GEMM_TUNE", kGemmTuneDefaultOn);
  return on;
}

GemmTuner::GemmTuner(cudaStream_t stream, void* workspace, size_t workspaceBytes)
    : stream_(stream), workspace_(workspace), workspaceBytes_(workspaceBytes) {
  cublasLtHandle_t h = nullptr;
  ltCheck(cublasLtCreate(&h), "cublasLtCreate");
  lt_ = h;
}

GemmTuner::~GemmTuner() {
  tuned_.clear();
  if (lt_) cublasLtDestroy(static_cast<cublasLtHandle_t>(lt_));
}

bool GemmTuner::launch(const Shape& s, const void* algo, const void* x, const void* w, void* y) {
  const float alpha = 1.0f, beta = 0.0f;
  return cublasLtMatmul(static_cast<cublasLtHandle_t>(lt_), s.op, &alpha, w, s.a, x, s.b, &beta, y, s.c, y, s.c,
                        static_cast<const cublasLtMatmulAlgo_t*>(algo), workspace_, workspaceBytes_,
                        stream_) == CUBLAS_STATUS_SUCCESS;
}

std::vector<GemmCandidate> GemmTuner::timeCandidates(Act act, const void* x, int M, int K, const void* w, int N,
                                                     void* y, bool yF32, int reps) {
  Shape shape(act, M, N, K, yF32);
  cublasLtMatmulPreference_t pref = nullptr;
  ltCheck(cublasLtMatmulPreferenceCreate(&pref), "preference");
  const uint64_t ws = workspaceBytes_;
  cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws);
  cublasLtMatmulHeuristicResult_t results[kMaxCandidates] = {};
  int found = 0;
  const cublasStatus_t hs = cublasLtMatmulAlgoGetHeuristic(static_cast<cublasLtHandle_t>(lt_), shape.op, shape.a, shape.b,
                                                           shape.c, shape.c, pref, kMaxCandidates, results, &found);
  cublasLtMatmulPreferenceDestroy(pref);
  std::vector<GemmCandidate> out;
  if (hs != CUBLAS_STATUS_SUCCESS || found <= 0) return out;
  // An L2 flush buffer for the timing (none if the memory is not there: the timings then favour L2-resident weights).
  void* flush = nullptr;
  if (cudaMalloc(&flush, kFlushBytes) != cudaSuccess) {
    cudaGetLastError();
    flush = nullptr;
  }
  cudaEvent_t a = nullptr, b = nullptr;
  cudaCheck(cudaEventCreate(&a), "tuning event");
  cudaCheck(cudaEventCreate(&b), "tuning event");
  for (int i = 0; i < found; ++i) {
    if (results[i].state != CUBLAS_STATUS_SUCCESS) continue;
    if (!launch(shape, &results[i].algo, x, w, y)) continue;  // warm-up; a refused candidate is left out
    double totalMs = 0.0;
    for (int r = 0; r < reps; ++r) {
      if (flush) cudaMemsetAsync(flush, r & 0xff, kFlushBytes, stream_);
      cudaEventRecord(a, stream_);
      launch(shape, &results[i].algo, x, w, y);
      cudaEventRecord(b, stream_);
      cudaCheck(cudaEventSynchronize(b), "tuning run");
      float ms = 0.0f;
      cudaEventElapsedTime(&ms, a, b);
      totalMs += ms;
    }
    GemmCandidate c;
    c.heuristicRank = i;
    c.meanUs = 1000.0 * totalMs / std::max(reps, 1);
    c.config = describe(results[i].algo);
    std::memcpy(c.algo, &results[i].algo, sizeof c.algo);
    out.push_back(c);
  }
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  if (flush) cudaFree(flush);
  return out;
}

bool GemmTuner::run(Act act, const void* x, int M, int K, const void* w, int N, void* y, bool yF32) {
  const Key key{static_cast<int>(act), M, N, K, yF32};
  auto it = tuned_.find(key);
  if (it == tuned_.end()) {
    cudaStreamCaptureStatus capturing = cudaStreamCaptureStatusNone;
    if (cudaStreamIsCapturing(stream_, &capturing) != cudaSuccess || capturing != cudaStreamCaptureStatusNone) return false;
    auto tuned = std::make_unique<Tuned>();
    tuned->shape = std::make_unique<Shape>(act, M, N, K, yF32);
    // Candidates in heuristic order; the fastest mean of 5 flushed runs wins (rank 0 on ties).
    const std::vector<GemmCandidate> times = timeCandidates(act, x, M, K, w, N, y, yF32, 5);
    int best = -1;
    double bestUs = 0.0;
    for (const GemmCandidate& c : times)
      if (best < 0 || c.meanUs < bestUs) best = c.heuristicRank, bestUs = c.meanUs;
    for (const GemmCandidate& c : times)
      if (c.heuristicRank == best) {
        std::memcpy(&tuned->algo, c.algo, sizeof tuned->algo);
        tuned->valid = true;
      }
    if (std::getenv("TSLORA_CUDA_GEMM_TUNE_LOG")) {
      for (const GemmCandidate& c : times)
        std::fprintf(stderr, "tslora gemm tune M=%d N=%d K=%d: #%d %.1f us (%s)%s\n", M, N, K, c.heuristicRank, c.meanUs,
                     c.config.c_str(), c.heuristicRank == best ? "  <- chosen" : "");
    }
    it = tuned_.emplace(key, std::move(tuned)).first;
  }
  const Tuned& t = *it->second;
  return t.valid && launch(*t.shape, &t.algo, x, w, y);
}

}  // namespace tslora::cuda
