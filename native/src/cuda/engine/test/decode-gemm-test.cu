// The tensor-core decode GEMM (decode-gemm.cu: M = 9..128 rows) against an fp64 CPU reference on random inputs:
// small and odd shapes at every M from 9 to 128, the Llama-3.2-1B / 3.1-8B projection shapes (LM head with fp32 out)
// at the bucket edges, bf16 and fp16, activation-dtype and fp32 output, forced K splits and both warp tilings.
// Every row must also be bit-identical whatever M (and tiling) it was launched with: decode graphs pad a batch.
//   decode-gemm-test                  correctness; exit 0 = all passed, 1 = a failure, 77 = no usable GPU
//   decode-gemm-test --quick          two small shapes only (the host emulator's run, decode-gemm-emu.h)
//   decode-gemm-test --bench [GB/s]   (built with -DTSLORA_WITH_CUBLAS -lcublas) µs and GB/s of weight bytes per
//                                     shape and M, decode GEMM (engine policy and the best of a split / tiling sweep)
//                                     vs cublasGemmEx, weights rotated over copies larger than L2; GB/s = the read
//                                     bandwidth measured in the same run (bench/cuda/bandwidth.cu) for the fractions
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "../decode-gemm.h"
#include "../../test/cuda_check.h"
#include "half-bits.h"
#ifdef TSLORA_WITH_CUBLAS
#include <cublas_v2.h>
#endif

using tslora::cuda::Act;
using tslora::cuda::test::fromBits;
using tslora::cuda::test::toBits;

namespace {

constexpr int kMaxM = tslora::cuda::kDecodeGemmMaxRows;

struct Case {
  int N, K;
  std::vector<int> rows;        // the M values launched with the engine's policy
  std::vector<int> sweepRows;   // the M values also launched with forced splits and both tilings
  std::vector<int> sweepSplits;
};

// Reference for the checked columns (every column of small shapes; about 1500 of big ones, an odd stride so that
// every fragment position mod 16 is hit, plus the first and last 16).
std::vector<int> checkedColumns(int N, int K) {
  std::vector<int> cols;
  const bool all = static_cast<double>(N) * K <= 4e6;
  const int stride = std::max(7, N / 1500) | 1;
  for (int n = 0; n < N; ++n)
    if (all || n < 16 || n >= N - 16 || n % stride == 0) cols.push_back(n);
  return cols;
}

struct Launch {
  int M, splits, rowsPerWarp;
  tslora::cuda::DecodeGemmReduce reduce;
};
using tslora::cuda::DecodeGemmReduce;
const char* nameOf(DecodeGemmReduce r) { return r == DecodeGemmReduce::kTicket ? "ticket" : r == DecodeGemmReduce::kCluster ? "cluster" : "auto"; }

int runCase(const tslora::cuda::DecodeGemm& gemm, const Case& c, Act act, bool yF32, std::mt19937& rng, int& launches) {
  std::uniform_real_distribution<float> uni(-1.0f, 1.0f);
  std::vector<uint16_t> x(static_cast<size_t>(kMaxM) * c.K), w(static_cast<size_t>(c.N) * c.K);
  for (auto& v : x) v = toBits(uni(rng), act);
  for (auto& v : w) v = toBits(uni(rng) * 0.05f, act);
  const std::vector<int> cols = checkedColumns(c.N, c.K);
  std::vector<float> xf(x.size());
  for (size_t i = 0; i < x.size(); ++i) xf[i] = fromBits(x[i], act);
  std::vector<double> ref(static_cast<size_t>(kMaxM) * cols.size()), mag(ref.size());
  // fp64 sums over the checked columns, the columns dealt to the host's cores.
  const unsigned workers = std::max(1u, std::min(16u, std::thread::hardware_concurrency()));
  std::vector<std::thread> pool;
  for (unsigned wi = 0; wi < workers; ++wi)
    pool.emplace_back([&, wi] {
      std::vector<float> wf(c.K);
      for (size_t j = wi; j < cols.size(); j += workers) {
        for (int k = 0; k < c.K; ++k) wf[k] = fromBits(w[static_cast<size_t>(cols[j]) * c.K + k], act);
        for (int m = 0; m < kMaxM; ++m) {
          double sum = 0, abs = 0;
          const float* xr = &xf[static_cast<size_t>(m) * c.K];
          for (int k = 0; k < c.K; ++k) {
            const double p = double(xr[k]) * wf[k];
            sum += p;
            abs += std::fabs(p);
          }
          ref[static_cast<size_t>(m) * cols.size() + j] = sum;
          mag[static_cast<size_t>(m) * cols.size() + j] = abs;
        }
      }
    });
  for (auto& th : pool) th.join();
  void *dx, *dw, *dy;
  const size_t elemBytes = yF32 ? 4 : 2, yBytes = static_cast<size_t>(kMaxM) * c.N * elemBytes;
  CHECK(cudaMalloc(&dx, x.size() * 2));
  CHECK(cudaMalloc(&dw, w.size() * 2));
  CHECK(cudaMalloc(&dy, yBytes));
  CHECK(cudaMemcpy(dx, x.data(), x.size() * 2, cudaMemcpyHostToDevice));
  CHECK(cudaMemcpy(dw, w.data(), w.size() * 2, cudaMemcpyHostToDevice));

  std::vector<Launch> plan;
  for (int M : c.rows) plan.push_back({M, 0, 0, DecodeGemmReduce::kAuto});
  for (int M : c.sweepRows)
    for (int splits : c.sweepSplits)
      for (int rpw : {16, 32})
        for (DecodeGemmReduce r : {DecodeGemmReduce::kCluster, DecodeGemmReduce::kTicket})
          if (r == DecodeGemmReduce::kTicket || splits <= tslora::cuda::kDecodeGemmMaxClusterSplits)
            plan.push_back({M, splits, rpw, r});
  // Row bits of the first launch of each split count: every later launch with that split count must match them.
  std::vector<std::vector<unsigned char>> rowBits(tslora::cuda::kDecodeGemmMaxSplits + 1);
  std::vector<int> rowBitsM(tslora::cuda::kDecodeGemmMaxSplits + 1, 0);
  std::vector<unsigned char> out(yBytes);
  int failures = 0;
  for (const Launch& l : plan) {
    const int splits = l.splits ? l.splits : tslora::cuda::decodeGemmSplits(c.N, c.K, gemm.numSms());
    CHECK(cudaMemset(dy, 0xff, yBytes));
    CHECK(gemm.run(act, dx, l.M, c.K, dw, c.N, dy, yF32, nullptr, splits, l.rowsPerWarp, l.reduce));
    CHECK(cudaDeviceSynchronize());
    ++launches;
    CHECK(cudaMemcpy(out.data(), dy, yBytes, cudaMemcpyDeviceToHost));
    double worst = 0;
    for (int m = 0; m < l.M; ++m)
      for (size_t j = 0; j < cols.size(); ++j) {
        const size_t i = static_cast<size_t>(m) * c.N + cols[j], r = static_cast<size_t>(m) * cols.size() + j;
        float got;
        if (yF32) std::memcpy(&got, out.data() + i * 4, 4);
        else { uint16_t b; std::memcpy(&b, out.data() + i * 2, 2); got = fromBits(b, act); }
        // fp32 tensor-core accumulation (a few 2⁻²⁴ of the magnitude per add) plus the output rounding.
        const double roundingUlp = yF32 ? 0 : std::fabs(ref[r]) * (act == Act::BF16 ? 1.0 / 256 : 1.0 / 1024);
        const double bound = 3e-5 * mag[r] + roundingUlp + 1e-30;
        const double err = std::fabs(double(got) - ref[r]);
        if (!(err <= bound)) worst = std::max(worst, err / bound + (std::isfinite(got) ? 0 : 1e9));
      }
    // Rows past M must be untouched (0xff fill).
    bool untouched = true;
    for (size_t b = static_cast<size_t>(l.M) * c.N * elemBytes; b < yBytes && untouched; ++b) untouched = out[b] == 0xff;
    // The rows both launches have must be bit-identical to the first launch with this split count.
    auto& bits = rowBits[splits];
    bool same = true;
    if (bits.empty()) {
      bits.assign(out.begin(), out.begin() + static_cast<size_t>(l.M) * c.N * elemBytes);
      rowBitsM[splits] = l.M;
    } else {
      same = std::memcmp(bits.data(), out.data(), static_cast<size_t>(std::min(l.M, rowBitsM[splits])) * c.N * elemBytes) == 0;
    }
    if (worst > 0 || !untouched || !same) {
      ++failures;
      std::printf("FAIL N %d K %d %s %s M %d splits %d rowsPerWarp %d reduce %s: %s\n", c.N, c.K, act == Act::BF16 ? "bf16" : "fp16",
                  yF32 ? "fp32-out" : "act-out", l.M, splits, l.rowsPerWarp, nameOf(l.reduce),
                  !same ? "rows differ from the same rows launched with another M / tiling / reduction"
                  : !untouched ? "wrote rows past M"
                               : ("error " + std::to_string(worst) + "x the bound").c_str());
    }
  }
  std::printf("N %6d K %5d %s %s: %zu launches checked (M %d..%d, auto splits %d)\n", c.N, c.K, act == Act::BF16 ? "bf16" : "fp16",
              yF32 ? "fp32-out" : "act-out ", plan.size(), c.rows.front(), c.rows.back(),
              tslora::cuda::decodeGemmSplits(c.N, c.K, gemm.numSms()));
  cudaFree(dx);
  cudaFree(dw);
  cudaFree(dy);
  return failures;
}

// Inputs the kernel must refuse (status, nothing launched): never an abort.
int checkRefusals(const tslora::cuda::DecodeGemm& gemm) {
  void* d;
  CHECK(cudaMalloc(&d, 1 << 20));
  char* p = static_cast<char*>(d);
  int failures = 0;
  const struct { const char* what; int M, N, K; const void* x; } bad[] = {
      {"M = 8", 8, 64, 64, p}, {"M = 129", 129, 64, 64, p}, {"K = 96 (not a multiple of 64)", 16, 64, 96, p},
      {"misaligned x", 16, 64, 64, p + 2}, {"N = 0", 16, 0, 64, p}};
  for (const auto& b : bad) {
    const cudaError_t s = gemm.run(Act::BF16, b.x, b.M, b.K, p + 65536, b.N, p + 131072, false, nullptr);
    if (s != cudaErrorInvalidValue) {
      ++failures;
      std::printf("FAIL refusal: %s returned %s\n", b.what, cudaGetErrorString(s));
    }
  }
  CHECK(cudaDeviceSynchronize());
  cudaFree(d);
  std::printf("refusals: %zu bad calls refused\n", sizeof bad / sizeof bad[0]);
  return failures;
}

#ifdef TSLORA_WITH_CUBLAS
void bench(const tslora::cuda::DecodeGemm& gemm, double readGBps) {
  struct Shape { const char* name; int N, K; bool yF32; };
  const Shape shapes[] = {{"1B qkv", 3072, 2048, false}, {"1B o", 2048, 2048, false}, {"1B gate_up", 16384, 2048, false},
                          {"1B down", 2048, 8192, false}, {"1B lm_head", 128256, 2048, true}, {"8B qkv", 6144, 4096, false},
                          {"8B o", 4096, 4096, false}, {"8B gate_up", 28672, 4096, false}, {"8B down", 4096, 14336, false},
                          {"8B lm_head", 128256, 4096, true}};
  cublasHandle_t h;
  cublasCreate(&h);
  void* cublasWorkspace;
  CHECK(cudaMalloc(&cublasWorkspace, size_t{32} << 20));
  cublasSetWorkspace(h, cublasWorkspace, size_t{32} << 20);
  std::printf("bench read bandwidth %.0f GB/s (fractions below are of it)\n", readGBps);
  for (const Shape& s : shapes) {
    const size_t wBytes = static_cast<size_t>(s.N) * s.K * 2;
    const int copies = static_cast<int>(std::max<size_t>(2, (size_t{512} << 20) / wBytes + 1));  // > 8x the 50 MB L2
    void *dx, *dy, *dw;
    CHECK(cudaMalloc(&dx, static_cast<size_t>(kMaxM) * s.K * 2));
    CHECK(cudaMalloc(&dy, static_cast<size_t>(kMaxM) * s.N * 4));
    CHECK(cudaMalloc(&dw, wBytes * copies));
    CHECK(cudaMemset(dw, 0, wBytes * copies));
    CHECK(cudaMemset(dx, 0, static_cast<size_t>(kMaxM) * s.K * 2));
    const int iters = std::max(10, std::min(100, static_cast<int>(4e9 / wBytes)));
    for (int M : {9, 16, 24, 32, 48, 64, 96, 128}) {
      // impl -1 = cuBLAS, 0 = engine policy, then the sweep.
      auto time = [&](int splits, int rowsPerWarp, bool cublas, DecodeGemmReduce reduce = DecodeGemmReduce::kAuto) {
        cudaEvent_t a, b;
        cudaEventCreate(&a);
        cudaEventCreate(&b);
        auto launch = [&](int i) {
          const void* w = static_cast<const char*>(dw) + wBytes * (i % copies);
          if (!cublas) {
            CHECK(gemm.run(Act::BF16, dx, M, s.K, w, s.N, dy, s.yF32, nullptr, splits, rowsPerWarp, reduce));
          } else {
            const float alpha = 1, beta = 0;
            cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, s.N, M, s.K, &alpha, w, CUDA_R_16BF, s.K, dx, CUDA_R_16BF, s.K, &beta, dy,
                         s.yF32 ? CUDA_R_32F : CUDA_R_16BF, s.N, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
          }
        };
        for (int i = 0; i < 3; ++i) launch(i);
        cudaEventRecord(a);
        for (int i = 0; i < iters; ++i) launch(i);
        cudaEventRecord(b);
        CHECK(cudaEventSynchronize(b));
        float ms;
        cudaEventElapsedTime(&ms, a, b);
        cudaEventDestroy(a);
        cudaEventDestroy(b);
        return ms * 1000.0 / iters;
      };
      const double cub = time(0, 0, true), mine = time(0, 0, false);
      double best = mine;
      int bestSplits = tslora::cuda::decodeGemmSplits(s.N, s.K, gemm.numSms()), bestRpw = tslora::cuda::decodeGemmRowsPerWarp(M);
      DecodeGemmReduce bestReduce = DecodeGemmReduce::kAuto;
      for (int splits : {1, 2, 3, 4, 5, 6, 7, 8, 12, 16})
        for (int rpw : {16, 32})
          for (DecodeGemmReduce r : {DecodeGemmReduce::kCluster, DecodeGemmReduce::kTicket}) {
            if (splits == 1 && r == DecodeGemmReduce::kTicket) continue;  // one split: no reduction
            if (r == DecodeGemmReduce::kCluster && splits > tslora::cuda::kDecodeGemmMaxClusterSplits) continue;
            if (r == DecodeGemmReduce::kTicket && static_cast<size_t>(splits) * M * s.N * 4 > (size_t{32} << 20)) continue;
            if (splits > s.K / 64) continue;
            const double us = time(splits, rpw, false, r);
            if (us < best) best = us, bestSplits = splits, bestRpw = rpw, bestReduce = r;
          }
      const auto frac = [&](double us) { return wBytes / us / 1e3 / readGBps; };
      std::printf("bench %-10s M %3d: decode-gemm %7.1f us %5.1f%% (splits %d rpw %d) | best %7.1f us %5.1f%% (splits %d rpw %d %s) | "
                  "cuBLAS %7.1f us %5.1f%% | speedup %.2fx best %.2fx\n",
                  s.name, M, mine, 100 * frac(mine), tslora::cuda::decodeGemmSplits(s.N, s.K, gemm.numSms()),
                  tslora::cuda::decodeGemmRowsPerWarp(M), best, 100 * frac(best), bestSplits, bestRpw, nameOf(bestReduce), cub,
                  100 * frac(cub), cub / mine, cub / best);
      std::fflush(stdout);
    }
    cudaFree(dx);
    cudaFree(dy);
    cudaFree(dw);
  }
  cudaFree(cublasWorkspace);
  cublasDestroy(h);
}
#endif

}  // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // a run cut off by a timeout keeps the lines it printed
  int devices = 0;
  const cudaError_t probe = cudaGetDeviceCount(&devices);
  if (probe != cudaSuccess || devices == 0) {
    std::printf("skip: no usable CUDA device (%s)\n", probe != cudaSuccess ? cudaGetErrorString(probe) : "0 devices");
    return 77;
  }
  int numSms = 0;
  CHECK(cudaDeviceGetAttribute(&numSms, cudaDevAttrMultiProcessorCount, 0));
  const tslora::cuda::DecodeGemm gemm(numSms);
  if (argc > 1 && std::string(argv[1]) == "--bench") {
#ifdef TSLORA_WITH_CUBLAS
    bench(gemm, argc > 2 ? std::atof(argv[2]) : 3350.0);
    return 0;
#else
    std::printf("built without TSLORA_WITH_CUBLAS: no benchmark\n");
    return 2;
#endif
  }
  std::mt19937 rng(11);
  const bool quick = argc > 1 && std::string(argv[1]) == "--quick";
  std::vector<int> every, edges = {9, 15, 16, 17, 31, 32, 33, 48, 49, 64, 65, 96, 97, 127, 128};
  for (int M = 9; M <= kMaxM; ++M) every.push_back(M);
  const std::vector<int> sweepRows = {9, 16, 40, 64, 65, 128}, sweepSplits = {1, 2, 3, 5};
  std::vector<Case> cases = {{48, 64, every, sweepRows, sweepSplits},        {136, 192, every, sweepRows, sweepSplits},
                             {1000, 576, edges, sweepRows, sweepSplits},     {3072, 2048, edges, {}, {}},
                             {2048, 8192, edges, sweepRows, sweepSplits},    {6144, 4096, edges, {}, {}},
                             {4096, 14336, edges, {}, {}},                   {28672, 4096, {9, 64, 128}, {}, {}}};
  // Under the host emulator: a column tile cut by N, two and three splits, both tilings, the n-tile edges.
  if (quick) cases = {{48, 128, {9, 17, 64, 65, 128}, {16, 65, 128}, {1, 2}}, {136, 192, {9, 40, 128}, {24, 128}, {1, 3}}};
  int failures = checkRefusals(gemm), configurations = 0, launches = 0;
  for (const Case& c : cases)
    for (Act act : {Act::BF16, Act::F16})
      for (bool yF32 : {false, true}) {
        if (quick && (act == Act::BF16) == yF32) continue;  // bf16 → bf16 and fp16 → fp32 suffice there
        failures += runCase(gemm, c, act, yF32, rng, launches);
        ++configurations;
      }
  // The LM head: fp32 logits, 1B and 8B vocab x hidden (sampled columns).
  for (int K : {2048, 4096}) {
    if (quick) break;
    failures += runCase(gemm, {128256, K, {9, 64, 128}, {}, {}}, Act::BF16, true, rng, launches);
    ++configurations;
  }
  std::printf("%s: %d shape configurations, %d launches, %d failures\n", failures ? "FAIL" : "ok", configurations, launches, failures);
  return failures ? 1 : 0;
}
