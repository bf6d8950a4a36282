// What the store-first prefill LoRA (TSLORA_CUDA_LORA_STORE_FIRST, forward.cu) adds to the base projections: cuBLAS'
// y = x·wᵀ with beta = 0 (the default path: the expand then reads and writes y) against beta = 1 (y holds the LoRA
// delta the store-form expand wrote, read once in the GEMM's epilogue), bf16, Llama-3.1-8B prefill shapes at M rows
// (default 4096: 8 × 512). The extra of beta = 1 per layer (qkv + gate_up + down, the LoRA microbenchmark's modules;
// o beside) belongs to the store strategies' LoRA kernel time (bench/lora `triton store`). A benchmark, not a test.
//   nvcc -std=c++17 -O2 -gencode arch=compute_90a,code=sm_90a -Inative/src/cuda/test -Ibench/lora \
//     bench/cuda/gemm-accumulate-bench.cu bench/lora/bench_fill.cu -lcublas -o /tmp/gab
//   /tmp/gab [M] [out.json]
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "bench_fill.h"  // fillRandomBf16
#include "cuda_check.h"  // CHECK, DeviceBuffer

#define CHECK_BLAS(x)                                                                     \
  do {                                                                                    \
    cublasStatus_t s_ = (x);                                                              \
    if (s_ != CUBLAS_STATUS_SUCCESS) {                                                    \
      std::fprintf(stderr, "%s:%d %s: status %d\n", __FILE__, __LINE__, #x, static_cast<int>(s_)); \
      std::exit(1);                                                                       \
    }                                                                                     \
  } while (0)

namespace {

struct Shape {
  const char* module;
  int n, k;  // y[M, n] = x[M, k] · w[n, k]ᵀ
};

// Median over `rounds` of the mean of `iterations` back-to-back GEMMs, µs.
float gemmUs(cublasHandle_t h, cudaStream_t stream, int m, const Shape& s, const void* x, const void* w, void* y, float beta) {
  const float alpha = 1.0f;
  auto one = [&] {
    CHECK_BLAS(cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, s.n, m, s.k, &alpha, w, CUDA_R_16BF, s.k, x, CUDA_R_16BF, s.k, &beta, y,
                            CUDA_R_16BF, s.n, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
  };
  for (int i = 0; i < 3; ++i) one();
  cudaEvent_t start, stop;
  CHECK(cudaEventCreate(&start));
  CHECK(cudaEventCreate(&stop));
  constexpr int kRounds = 7, kIterations = 10;
  std::vector<float> us;
  for (int r = 0; r < kRounds; ++r) {
    CHECK(cudaEventRecord(start, stream));
    for (int i = 0; i < kIterations; ++i) one();
    CHECK(cudaEventRecord(stop, stream));
    CHECK(cudaEventSynchronize(stop));
    float ms = 0;
    CHECK(cudaEventElapsedTime(&ms, start, stop));
    us.push_back(1e3f * ms / kIterations);
  }
  CHECK(cudaEventDestroy(start));
  CHECK(cudaEventDestroy(stop));
  std::sort(us.begin(), us.end());
  return us[us.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  const int m = argc > 1 ? std::atoi(argv[1]) : 4096;
  if (m < 1) {
    std::fprintf(stderr, "usage: gemm-accumulate-bench [M >= 1] [out.json]\n");
    return 2;
  }
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::printf("skip: no CUDA device\n");
    return 77;
  }
  cudaDeviceProp prop{};
  CHECK(cudaGetDeviceProperties(&prop, 0));
  const std::vector<Shape> shapes = {{"qkv", 6144, 4096}, {"gate_up", 28672, 4096}, {"down", 4096, 14336}, {"o", 4096, 4096}};
  cudaStream_t stream;
  CHECK(cudaStreamCreate(&stream));
  cublasHandle_t h;
  CHECK_BLAS(cublasCreate(&h));
  CHECK_BLAS(cublasSetStream(h, stream));
  std::string json = "{\"gpu\":\"" + std::string(prop.name) + "\",\"m\":" + std::to_string(m) + ",\"modules\":[";
  double layerExtraUs = 0, layerBeta0Us = 0;
  for (size_t i = 0; i < shapes.size(); ++i) {
    const Shape& s = shapes[i];
    DeviceBuffer<__nv_bfloat16> x(static_cast<size_t>(m) * s.k), w(static_cast<size_t>(s.n) * s.k), y(static_cast<size_t>(m) * s.n);
    CHECK(fillRandomBf16(x.ptr, x.count, 1, 1.0f));
    CHECK(fillRandomBf16(w.ptr, w.count, 2, 0.02f));
    CHECK(fillRandomBf16(y.ptr, y.count, 3, 1.0f));
    CHECK(cudaDeviceSynchronize());  // the fills ran on the legacy stream
    // Alternating, so that drift hits both alike.
    const float beta0a = gemmUs(h, stream, m, s, x.ptr, w.ptr, y.ptr, 0.0f), beta1a = gemmUs(h, stream, m, s, x.ptr, w.ptr, y.ptr, 1.0f);
    const float beta1b = gemmUs(h, stream, m, s, x.ptr, w.ptr, y.ptr, 1.0f), beta0b = gemmUs(h, stream, m, s, x.ptr, w.ptr, y.ptr, 0.0f);
    const double beta0 = 0.5 * (beta0a + beta0b), beta1 = 0.5 * (beta1a + beta1b), extra = beta1 - beta0;
    std::printf("%-8s M %d N %5d K %5d: beta 0 %8.1f us, beta 1 %8.1f us, extra %6.1f us (%+.1f %%; y %.0f MB read once more)\n", s.module, m,
                s.n, s.k, beta0, beta1, extra, 100.0 * extra / beta0, 2.0 * m * s.n / 1e6);
    if (std::string(s.module) != "o") { layerExtraUs += extra; layerBeta0Us += beta0; }
    char entry[256];
    std::snprintf(entry, sizeof entry, "%s{\"module\":\"%s\",\"n\":%d,\"k\":%d,\"beta0Us\":%.2f,\"beta1Us\":%.2f,\"extraUs\":%.2f}", i ? "," : "",
                  s.module, s.n, s.k, beta0, beta1, extra);
    json += entry;
  }
  std::printf("%s, M %d: qkv + gate_up + down, beta 0 %.1f us per layer, extra of beta 1 %.1f us per layer\n", prop.name, m, layerBeta0Us, layerExtraUs);
  char tail[160];
  std::snprintf(tail, sizeof tail, "],\"layerBeta0Us\":%.2f,\"layerExtraUs\":%.2f}\n", layerBeta0Us, layerExtraUs);
  json += tail;
  if (argc > 2) {
    FILE* f = std::fopen(argv[2], "w");
    if (f) { std::fputs(json.c_str(), f); std::fclose(f); }
  }
  cublasDestroy(h);
  return 0;
}
