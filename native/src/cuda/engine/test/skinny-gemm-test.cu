// The skinny decode GEMM (skinny-gemm.cu) against an fp64 CPU reference on random inputs: M = 1..8, the projection
// shapes of Llama-3.2-1B and Llama-3.1-8B plus odd N and short K, bf16 and fp16, activation-dtype and fp32 output,
// every K split. A row must also be bit-identical whatever M it was launched with (decode rows batched or alone).
// The gate_up GEMM with SwiGLU in its epilogue (launchSkinnyGemmSwiglu) must be bit-identical to the GEMM into
// [M, 2I] followed by launchSwiglu (kernels.cu, linked in), for every M and K split.
//   skinny-gemm-test            correctness; exit 0 = all passed, 1 = a failure, 77 = no usable GPU
//   skinny-gemm-test --bench    (built with -DTSLORA_WITH_CUBLAS -lcublas) µs and GB/s of weight bytes, skinny vs
//                               cublasGemmEx, weights rotated over copies larger than L2
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "../kernels.h"
#include "../skinny-gemm.h"
#include "../../test/cuda_check.h"
#include "half-bits.h"
#include "launch-timer.h"
#ifdef TSLORA_WITH_CUBLAS
#include <cublas_v2.h>
#endif

using tslora::cuda::Act;
using tslora::cuda::test::fromBits;
using tslora::cuda::test::toBits;

namespace {

struct Case {
  int N, K;
};

// One shape, one dtype, one output kind: every M and K split. Returns the number of failures (printed).
int runShape(const Case& c, Act act, bool yF32, int numSms, std::mt19937& rng) {
  std::uniform_real_distribution<float> uni(-1.0f, 1.0f);
  const int M = tslora::cuda::kSkinnyGemmMaxRows;
  std::vector<uint16_t> x(static_cast<size_t>(M) * c.K), w(static_cast<size_t>(c.N) * c.K);
  for (auto& v : x) v = toBits(uni(rng), act);
  for (auto& v : w) v = toBits(uni(rng) * 0.05f, act);
  std::vector<double> ref(static_cast<size_t>(M) * c.N), mag(ref.size());
  for (int m = 0; m < M; ++m)
    for (int n = 0; n < c.N; ++n) {
      double sum = 0, abs = 0;
      for (int k = 0; k < c.K; ++k) {
        const double p = double(fromBits(x[static_cast<size_t>(m) * c.K + k], act)) * fromBits(w[static_cast<size_t>(n) * c.K + k], act);
        sum += p;
        abs += std::fabs(p);
      }
      ref[static_cast<size_t>(m) * c.N + n] = sum;
      mag[static_cast<size_t>(m) * c.N + n] = abs;
    }
  void *dx, *dw, *dy;
  const size_t yBytes = static_cast<size_t>(M) * c.N * (yF32 ? 4 : 2);
  CHECK(cudaMalloc(&dx, x.size() * 2));
  CHECK(cudaMalloc(&dw, w.size() * 2));
  CHECK(cudaMalloc(&dy, yBytes));
  CHECK(cudaMemcpy(dx, x.data(), x.size() * 2, cudaMemcpyHostToDevice));
  CHECK(cudaMemcpy(dw, w.data(), w.size() * 2, cudaMemcpyHostToDevice));
  int failures = 0;
  std::vector<unsigned char> out(yBytes), rowAlone;
  const int autoSplit = tslora::cuda::skinnyGemmKSplit(c.N, c.K, numSms);
  for (int kSplit : {1, 2, 4, 8}) {
    for (int rows = 1; rows <= M; ++rows) {
      CHECK(cudaMemset(dy, 0xff, yBytes));
      CHECK(tslora::cuda::launchSkinnyGemm(act, dx, rows, c.K, dw, c.N, dy, yF32, kSplit, nullptr));
      CHECK(cudaDeviceSynchronize());
      CHECK(cudaMemcpy(out.data(), dy, yBytes, cudaMemcpyDeviceToHost));
      double worst = 0;
      for (int m = 0; m < rows; ++m)
        for (int n = 0; n < c.N; ++n) {
          const size_t i = static_cast<size_t>(m) * c.N + n;
          float got;
          if (yF32) std::memcpy(&got, out.data() + i * 4, 4);
          else { uint16_t b; std::memcpy(&b, out.data() + i * 2, 2); got = fromBits(b, act); }
          // fp32 accumulation error (~K·2⁻²⁴ of the magnitude) plus the output rounding (half an ulp of the result).
          const double roundingUlp = yF32 ? 0 : std::fabs(ref[i]) * (act == Act::BF16 ? 1.0 / 256 : 1.0 / 1024);
          const double bound = 1e-5 * mag[i] + roundingUlp + 1e-30;
          const double err = std::fabs(double(got) - ref[i]);
          if (!(err <= bound)) worst = std::max(worst, err / bound + (std::isfinite(got) ? 0 : 1e9));
        }
      // Row 0 of every launch must be bit-identical to row 0 launched alone (same K split).
      const size_t rowBytes = static_cast<size_t>(c.N) * (yF32 ? 4 : 2);
      if (rows == 1) rowAlone.assign(out.begin(), out.begin() + rowBytes);
      const bool sameRow = std::memcmp(rowAlone.data(), out.data(), rowBytes) == 0;
      if (worst > 0 || !sameRow) {
        ++failures;
        std::printf("FAIL N %d K %d %s %s M %d kSplit %d: %s\n", c.N, c.K, act == Act::BF16 ? "bf16" : "fp16",
                    yF32 ? "fp32-out" : "act-out", rows, kSplit,
                    !sameRow ? "row 0 differs from row 0 launched alone" : ("error " + std::to_string(worst) + "x the bound").c_str());
      }
    }
  }
  std::printf("N %6d K %5d %s %s: M 1..8 x kSplit 1/2/4/8 checked (auto kSplit %d)\n", c.N, c.K, act == Act::BF16 ? "bf16" : "fp16",
              yF32 ? "fp32-out" : "act-out ", autoSplit);
  cudaFree(dx);
  cudaFree(dw);
  cudaFree(dy);
  return failures;
}

// Fused gate_up + SwiGLU against the two launches it replaces, bit for bit: M = 1..8, every K split. gateUp: [2I, K].
int runSwiglu(int I, int K, Act act, std::mt19937& rng) {
  std::uniform_real_distribution<float> uni(-1.0f, 1.0f);
  const int M = tslora::cuda::kSkinnyGemmMaxRows;
  std::vector<uint16_t> x(static_cast<size_t>(M) * K), w(static_cast<size_t>(2 * I) * K);
  for (auto& v : x) v = toBits(uni(rng), act);
  for (auto& v : w) v = toBits(uni(rng) * 0.1f, act);
  void *dx, *dw, *dgu, *dFused, *dTwo;
  const size_t yBytes = static_cast<size_t>(M) * I * 2;
  CHECK(cudaMalloc(&dx, x.size() * 2));
  CHECK(cudaMalloc(&dw, w.size() * 2));
  CHECK(cudaMalloc(&dgu, 2 * yBytes));
  CHECK(cudaMalloc(&dFused, yBytes));
  CHECK(cudaMalloc(&dTwo, yBytes));
  CHECK(cudaMemcpy(dx, x.data(), x.size() * 2, cudaMemcpyHostToDevice));
  CHECK(cudaMemcpy(dw, w.data(), w.size() * 2, cudaMemcpyHostToDevice));
  std::vector<unsigned char> fused(yBytes), two(yBytes);
  int failures = 0;
  for (int kSplit : {1, 2, 4, 8})
    for (int rows = 1; rows <= M; ++rows) {
      CHECK(cudaMemset(dFused, 0xff, yBytes));
      CHECK(cudaMemset(dTwo, 0xee, yBytes));
      CHECK(tslora::cuda::launchSkinnyGemmSwiglu(act, dx, rows, K, dw, I, dFused, kSplit, nullptr));
      CHECK(tslora::cuda::launchSkinnyGemm(act, dx, rows, K, dw, 2 * I, dgu, false, kSplit, nullptr));
      CHECK(tslora::cuda::launchSwiglu(act, dgu, rows, I, dTwo, nullptr));
      CHECK(cudaDeviceSynchronize());
      CHECK(cudaMemcpy(fused.data(), dFused, yBytes, cudaMemcpyDeviceToHost));
      CHECK(cudaMemcpy(two.data(), dTwo, yBytes, cudaMemcpyDeviceToHost));
      const size_t used = static_cast<size_t>(rows) * I * 2;
      if (std::memcmp(fused.data(), two.data(), used) != 0) {
        ++failures;
        std::printf("FAIL swiglu I %d K %d %s M %d kSplit %d: fused output differs from GEMM + launchSwiglu\n", I, K,
                    act == Act::BF16 ? "bf16" : "fp16", rows, kSplit);
      }
    }
  std::printf("N %6d K %5d %s swiglu: fused vs GEMM + SwiGLU, M 1..8 x kSplit 1/2/4/8 checked\n", 2 * I, K,
              act == Act::BF16 ? "bf16" : "fp16");
  for (void* p : {dx, dw, dgu, dFused, dTwo}) cudaFree(p);
  return failures;
}

#ifdef TSLORA_WITH_CUBLAS
// gate_up + SwiGLU: the fused skinny launch against the skinny GEMM into [M, 2I] followed by launchSwiglu (both as
// the engine launches them, back to back on one stream; TSLORA_CUDA_PDL=0 makes them plain launches).
void benchSwiglu(const char* name, int M, int K, int I, const void* dx, const void* dw, size_t wBytes, int copies,
                 void* dgu, int numSms) {
  void* dy;
  CHECK(cudaMalloc(&dy, static_cast<size_t>(M) * I * 2));
  const int kSplit = tslora::cuda::skinnyGemmKSplit(2 * I, K, numSms);
  double us[2];
  for (int impl = 0; impl < 2; ++impl) {
    auto launch = [&](int i) {
      const void* w = static_cast<const char*>(dw) + wBytes * (i % copies);
      if (impl == 0) {
        CHECK(tslora::cuda::launchSkinnyGemmSwiglu(Act::BF16, dx, M, K, w, I, dy, kSplit, nullptr));
      } else {
        CHECK(tslora::cuda::launchSkinnyGemm(Act::BF16, dx, M, K, w, 2 * I, dgu, false, kSplit, nullptr));
        CHECK(tslora::cuda::launchSwiglu(Act::BF16, dgu, M, I, dy, nullptr));
      }
    };
    us[impl] = meanLaunchUs(launch);
  }
  std::printf("bench %-11s M %d: fused gate_up+SwiGLU %7.1f us | GEMM + SwiGLU kernel %7.1f us | speedup %.2fx\n", name, M,
              us[0], us[1], us[1] / us[0]);
  cudaFree(dy);
}

void bench(int numSms) {
  struct Shape { const char* name; int N, K; bool yF32; };
  const Shape shapes[] = {{"1B qkv", 3072, 2048, false}, {"1B o", 2048, 2048, false}, {"1B gate_up", 16384, 2048, false},
                          {"1B down", 2048, 8192, false}, {"1B lm_head", 128256, 2048, true}, {"8B qkv", 6144, 4096, false},
                          {"8B o", 4096, 4096, false}, {"8B gate_up", 28672, 4096, false}, {"8B down", 4096, 14336, false},
                          {"8B lm_head", 128256, 4096, true}};
  cublasHandle_t h;
  cublasCreate(&h);
  for (const Shape& s : shapes) {
    const size_t wBytes = static_cast<size_t>(s.N) * s.K * 2;
    const int copies = static_cast<int>(std::max<size_t>(2, (size_t{256} << 20) / wBytes + 1));  // > 4x the 60 MB L2
    void *dx, *dy, *dw;
    CHECK(cudaMalloc(&dx, static_cast<size_t>(8) * s.K * 2));
    CHECK(cudaMalloc(&dy, static_cast<size_t>(8) * s.N * 4));
    CHECK(cudaMalloc(&dw, wBytes * copies));
    CHECK(cudaMemset(dw, 0, wBytes * copies));
    CHECK(cudaMemset(dx, 0, static_cast<size_t>(8) * s.K * 2));
    for (int M : {1, 2, 4, 8}) {
      double us[2];
      for (int impl = 0; impl < 2; ++impl) {
        auto launch = [&](int i) {
          const void* w = static_cast<const char*>(dw) + wBytes * (i % copies);
          if (impl == 0) {
            CHECK(tslora::cuda::launchSkinnyGemm(Act::BF16, dx, M, s.K, w, s.N, dy, s.yF32, tslora::cuda::skinnyGemmKSplit(s.N, s.K, numSms), nullptr));
          } else {
            const float alpha = 1, beta = 0;
            cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, s.N, M, s.K, &alpha, w, CUDA_R_16BF, s.K, dx, CUDA_R_16BF, s.K, &beta, dy,
                         s.yF32 ? CUDA_R_32F : CUDA_R_16BF, s.N, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
          }
        };
        us[impl] = meanLaunchUs(launch);
      }
      std::printf("bench %-11s M %d (%s): skinny %7.1f us %6.0f GB/s | cuBLAS %7.1f us %6.0f GB/s | speedup %.2fx\n", s.name, M,
                  tslora::cuda::skinnyGemmApplies(M, s.N, s.K, dx, dw) ? "engine: skinny" : "engine: cuBLAS", us[0], wBytes / us[0] / 1e3, us[1], wBytes / us[1] / 1e3, us[1] / us[0]);
      if (std::strstr(s.name, "gate_up") != nullptr && M <= 2) benchSwiglu(s.name, M, s.K, s.N / 2, dx, dw, wBytes, copies, dy, numSms);
    }
    cudaFree(dx);
    cudaFree(dy);
    cudaFree(dw);
  }
  cublasDestroy(h);
}
#endif

}  // namespace

int main(int argc, char** argv) {
  int devices = 0;
  const cudaError_t probe = cudaGetDeviceCount(&devices);
  if (probe != cudaSuccess || devices == 0) {
    std::printf("skip: no usable CUDA device (%s)\n", probe != cudaSuccess ? cudaGetErrorString(probe) : "0 devices");
    return 77;
  }
  int numSms = 0;
  CHECK(cudaDeviceGetAttribute(&numSms, cudaDevAttrMultiProcessorCount, 0));
  if (argc > 1 && std::string(argv[1]) == "--bench") {
#ifdef TSLORA_WITH_CUBLAS
    bench(numSms);
    return 0;
#else
    std::printf("built without TSLORA_WITH_CUBLAS: no benchmark\n");
    return 2;
#endif
  }
  std::mt19937 rng(7);
  const Case cases[] = {{3072, 2048}, {2048, 2048}, {16384, 2048}, {2048, 8192}, {6144, 4096}, {4096, 14336},
                        {1, 8}, {7, 24}, {333, 72}, {1001, 264}, {130, 4104}};
  int failures = 0, shapes = 0;
  for (const Case& c : cases)
    for (Act act : {Act::BF16, Act::F16})
      for (bool yF32 : {false, true}) {
        failures += runShape(c, act, yF32, numSms, rng);
        ++shapes;
      }
  const Case swigluCases[] = {{8192, 2048}, {14336, 4096}, {7, 24}, {333, 72}, {1001, 264}};  // {I, K}
  for (const Case& c : swigluCases)
    for (Act act : {Act::BF16, Act::F16}) {
      failures += runSwiglu(c.N, c.K, act, rng);
      ++shapes;
    }
  std::printf("%s: %d shape configurations, %d failures\n", failures ? "FAIL" : "ok", shapes, failures);
  return failures ? 1 : 0;
}
