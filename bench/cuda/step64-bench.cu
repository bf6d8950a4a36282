// Where the 8B batch-64 decode step's time goes (issue #12, b64): the engine's base decode layer rebuilt from its own
// launchers (kernels.h: add + RMSNorm, qkv post, paged attention, SwiGLU, greedy rows) and blas.cu's cublasGemmEx call,
// 32 layers with distinct weights (Llama-3.1-8B shapes: hidden 4096, 32 / 8 heads of 128, intermediate 14336, vocab
// 128256, bf16), batch 64 at context 40 with a 16-block table capacity (what a decode graph of bench/cuda/decode.ts
// sees), captured as one CUDA graph per variant and replayed (mean of 10 replays after 3). Prints:
//   - the whole step (no embedding / LoRA) with cublasGemmEx, and with GemmTuner's cuBLASLt choice (gemm-tune.h);
//   - the same step without one kind of kernel (what removing / fusing it away could save, launch gaps included);
//   - the step with launchQkvRopeAttention (TSLORA_CUDA_FUSED_ROPE_ATTN) instead of qkv post + attention;
//   - each kind alone, 32 launches in a graph (per launch);
//   - every cuBLASLt candidate of the four projections and the LM head at M = 64 (and 32), L2 flushed per run.
// Not a test (values are not checked; the kernels' correctness is kernel-emu-test's). Usage:
//   nvcc -std=c++17 -O3 -gencode arch=compute_90a,code=sm_90a --expt-relaxed-constexpr -Inative/include -Inative/src/cuda
//     -Inative/src/cuda/engine bench/cuda/step64-bench.cu native/src/cuda/engine/{attention,attention-prefill,greedy,
//     kernels,gemm-tune}.cu -lcublas -lcublasLt -o /tmp/step64-bench && /tmp/step64-bench [batch]
#include <cublas_v2.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "gemm-tune.h"
#include "kernels.h"

using namespace tslora::cuda;

namespace {

#define CK(x)                                                                                  \
  do {                                                                                         \
    cudaError_t e_ = (x);                                                                      \
    if (e_ != cudaSuccess) {                                                                   \
      std::fprintf(stderr, "%s:%d %s failed: %s\n", __FILE__, __LINE__, #x, cudaGetErrorString(e_)); \
      std::exit(1);                                                                            \
    }                                                                                          \
  } while (0)

constexpr int L = 32, H = 4096, NH = 32, NKV = 8, D = 128, I = 14336, V = 128256;
constexpr int QKV = (NH + 2 * NKV) * D, BS = 16, CAP_BLOCKS = 16, CONTEXT = 40;

void* dalloc(size_t bytes, int fill) {
  void* p = nullptr;
  CK(cudaMalloc(&p, bytes));
  CK(cudaMemset(p, fill, bytes));
  return p;
}

struct Model {
  std::vector<void*> qkv, o, gateUp, down, kCache, vCache;
  std::vector<float*> inNorm, postNorm;
  void* lmHead = nullptr;
  float* finalNorm = nullptr;
  float* invFreq = nullptr;
};

struct Bufs {
  float* hidden;
  void *xn, *qkv, *q, *attn, *proj, *gateUp, *mlpAct, *finalRows;
  float* logits;
  int32_t* tables;  // positions [T] | tokenSeq [T] | blockTables [T * CAP] | logitRows [T] | tokens, logprobs
};

cublasHandle_t blas;
cudaStream_t stream;
GemmTuner* tuner = nullptr;
bool useTuner = false;

void gemm(const void* x, int M, int K, const void* w, int N, void* y, bool yF32) {
  if (useTuner && GemmTuner::applies(M) && tuner->run(Act::BF16, x, M, K, w, N, y, yF32)) return;
  const float alpha = 1.0f, beta = 0.0f;
  if (cublasGemmEx(blas, CUBLAS_OP_T, CUBLAS_OP_N, N, M, K, &alpha, w, CUDA_R_16BF, K, x, CUDA_R_16BF, K, &beta, y,
                   yF32 ? CUDA_R_32F : CUDA_R_16BF, N, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT) != CUBLAS_STATUS_SUCCESS) {
    std::fprintf(stderr, "cublasGemmEx failed\n");
    std::exit(1);
  }
}

// Which kinds of kernel a variant launches.
struct Parts {
  bool gemms = true, norms = true, qkvPost = true, attention = true, swiglu = true, head = true;
  bool fusedRopeAttention = false;  // launchQkvRopeAttention instead of qkv post + attention
};

void step(const Model& m, const Bufs& b, int T, const Parts& p) {
  AttnTables tabs;
  tabs.positions = b.tables;
  tabs.tokenSeq = b.tables + T;
  tabs.blockTables = b.tables + 2 * T;
  tabs.maxBlocksPerSeq = CAP_BLOCKS;
  tabs.blockSize = BS;
  tabs.numSeqs = T;
  const HeadShape hs{NH, NKV, D};
  const size_t logitsBytes = static_cast<size_t>(T) * V * 4;
  for (int l = 0; l < L; ++l) {
    if (l == 0 && p.norms) CK(launchAddRmsNorm(Act::BF16, b.hidden, nullptr, m.inNorm[0], b.xn, nullptr, T, H, 1e-5f, stream));
    if (p.gemms) gemm(b.xn, T, H, m.qkv[l], QKV, b.qkv, false);
    if (p.fusedRopeAttention) {
      QkvRope src;
      src.qkv = b.qkv;
      src.invFreq = m.invFreq;
      CK(launchQkvRopeAttention(Act::BF16, src, T, hs, 0.0883883f, tabs, m.kCache[l], m.vCache[l], b.attn, b.logits,
                                logitsBytes, stream));
    }
    if (p.qkvPost && !p.fusedRopeAttention)
      CK(launchQkvPost(Act::BF16, b.qkv, T, hs, nullptr, nullptr, nullptr, nullptr, nullptr, 1e-5f, m.invFreq, tabs, b.q,
                       m.kCache[l], m.vCache[l], stream));
    if (p.attention && !p.fusedRopeAttention)
      CK(launchAttention(Act::BF16, b.q, T, hs, 0.0883883f, tabs, m.kCache[l], m.vCache[l], b.attn, b.logits, logitsBytes,
                         stream));
    if (p.gemms) gemm(b.attn, T, NH * D, m.o[l], H, b.proj, false);
    if (p.norms) CK(launchAddRmsNorm(Act::BF16, b.hidden, b.proj, m.postNorm[l], b.xn, nullptr, T, H, 1e-5f, stream));
    if (p.gemms) gemm(b.xn, T, H, m.gateUp[l], 2 * I, b.gateUp, false);
    if (p.swiglu) CK(launchSwiglu(Act::BF16, b.gateUp, T, I, b.mlpAct, stream));
    if (p.gemms) gemm(b.mlpAct, T, I, m.down[l], H, b.proj, false);
    const float* next = l + 1 < L ? m.inNorm[l + 1] : nullptr;
    if (p.norms) CK(launchAddRmsNorm(Act::BF16, b.hidden, b.proj, next, b.xn, nullptr, T, H, 1e-5f, stream));
  }
  if (!p.head) return;
  int32_t* logitRows = b.tables + 2 * T + T * CAP_BLOCKS;
  CK(launchAddRmsNorm(Act::BF16, b.hidden, nullptr, m.finalNorm, b.finalRows, logitRows, T, H, 1e-5f, stream));
  gemm(b.finalRows, T, H, m.lmHead, V, b.logits, true);
  int32_t* tokens = logitRows + T;
  CK(launchGreedyRows(b.logits, T, V, tokens, reinterpret_cast<float*>(tokens + T), b.gateUp,
                      static_cast<size_t>(T) * 2 * I * 2, stream));
}

// Mean µs of one replay of the captured `body` (10 replays after 3).
double graphUs(const std::function<void()>& body) {
  cudaGraph_t g = nullptr;
  cudaGraphExec_t exec = nullptr;
  CK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
  body();
  CK(cudaStreamEndCapture(stream, &g));
  CK(cudaGraphInstantiate(&exec, g, 0));
  for (int i = 0; i < 3; ++i) CK(cudaGraphLaunch(exec, stream));
  cudaEvent_t a, z;
  CK(cudaEventCreate(&a));
  CK(cudaEventCreate(&z));
  CK(cudaEventRecord(a, stream));
  for (int i = 0; i < 10; ++i) CK(cudaGraphLaunch(exec, stream));
  CK(cudaEventRecord(z, stream));
  CK(cudaEventSynchronize(z));
  float ms = 0.0f;
  CK(cudaEventElapsedTime(&ms, a, z));
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(g);
  cudaEventDestroy(a);
  cudaEventDestroy(z);
  return ms * 1000.0 / 10;
}

}  // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // every line reaches the log even if a time box ends the run
  const int T = argc > 1 ? std::atoi(argv[1]) : 64;
  cudaDeviceProp prop{};
  CK(cudaGetDeviceProperties(&prop, 0));
  std::printf("GPU %s, %d SMs, L2 %d MB; 8B shapes, %d layers, batch %d, context %d (capacity %d blocks of %d)\n",
              prop.name, prop.multiProcessorCount, prop.l2CacheSize >> 20, L, T, CONTEXT, CAP_BLOCKS, BS);
  CK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  if (cublasCreate(&blas) != CUBLAS_STATUS_SUCCESS) return 1;
  cublasSetStream(blas, stream);
  const size_t wsBytes = size_t{32} << 20;
  void* ws = dalloc(wsBytes, 0);
  cublasSetWorkspace(blas, ws, wsBytes);
  GemmTuner tunerObj(stream, ws, wsBytes);
  tuner = &tunerObj;

  Model m;
  const int numBlocks = T * CAP_BLOCKS + 1;
  const size_t planeBytes = static_cast<size_t>(numBlocks) * BS * NKV * D * 2;
  for (int l = 0; l < L; ++l) {
    m.qkv.push_back(dalloc(static_cast<size_t>(QKV) * H * 2, 0x3c));
    m.o.push_back(dalloc(static_cast<size_t>(H) * NH * D * 2, 0x3c));
    m.gateUp.push_back(dalloc(static_cast<size_t>(2 * I) * H * 2, 0x3c));
    m.down.push_back(dalloc(static_cast<size_t>(H) * I * 2, 0x3c));
    m.kCache.push_back(dalloc(planeBytes, 0x3c));
    m.vCache.push_back(dalloc(planeBytes, 0x3c));
    m.inNorm.push_back(static_cast<float*>(dalloc(H * 4, 0)));
    m.postNorm.push_back(static_cast<float*>(dalloc(H * 4, 0)));
  }
  m.lmHead = dalloc(static_cast<size_t>(V) * H * 2, 0x3c);
  m.finalNorm = static_cast<float*>(dalloc(H * 4, 0));
  m.invFreq = static_cast<float*>(dalloc(D / 2 * 4, 0));
  Bufs b;
  b.hidden = static_cast<float*>(dalloc(static_cast<size_t>(T) * H * 4, 0));
  b.xn = dalloc(static_cast<size_t>(T) * H * 2, 0x3c);
  b.qkv = dalloc(static_cast<size_t>(T) * QKV * 2, 0x3c);
  b.q = dalloc(static_cast<size_t>(T) * NH * D * 2, 0x3c);
  b.attn = dalloc(static_cast<size_t>(T) * NH * D * 2, 0x3c);
  b.proj = dalloc(static_cast<size_t>(T) * H * 2, 0);
  b.gateUp = dalloc(static_cast<size_t>(T) * 2 * I * 2, 0);
  b.mlpAct = dalloc(static_cast<size_t>(T) * I * 2, 0x3c);
  b.finalRows = dalloc(static_cast<size_t>(T) * H * 2, 0);
  b.logits = static_cast<float*>(dalloc(static_cast<size_t>(T) * V * 4, 0));
  std::vector<int32_t> tables(static_cast<size_t>(T) * (2 + CAP_BLOCKS + 3));
  for (int t = 0; t < T; ++t) {
    tables[t] = CONTEXT;
    tables[T + t] = t;
    for (int k = 0; k < CAP_BLOCKS; ++k) tables[2 * T + t * CAP_BLOCKS + k] = t * CAP_BLOCKS + k;
    tables[2 * T + T * CAP_BLOCKS + t] = t;
  }
  b.tables = static_cast<int32_t*>(dalloc(tables.size() * 4, 0));
  CK(cudaMemcpy(b.tables, tables.data(), tables.size() * 4, cudaMemcpyHostToDevice));

  auto run = [&](const char* what, const Parts& p) {
    const double us = graphUs([&] { step(m, b, T, p); });
    std::printf("  %-62s %9.1f us\n", what, us);
    return us;
  };
  std::printf("whole step (graph; no embedding, no LoRA):\n");
  const Parts all;
  const double full = run("all kernels, cublasGemmEx", all);
  std::printf("without one kind (saving = what removing / fusing it away could give, gaps included):\n");
  const struct {
    const char* name;
    bool Parts::*field;
  } kinds[] = {{"add + RMSNorm (2 per layer)", &Parts::norms}, {"qkv post (RoPE, cache write)", &Parts::qkvPost},
               {"attention", &Parts::attention}, {"SwiGLU", &Parts::swiglu},
               {"final norm + LM head + greedy", &Parts::head}, {"projections (cuBLAS)", &Parts::gemms}};
  for (const auto& k : kinds) {
    Parts p;
    p.*(k.field) = false;
    char what[120];
    std::snprintf(what, sizeof what, "without %s", k.name);
    const double us = run(what, p);
    std::printf("  %-62s %9.1f us (%.1f per layer)\n", "  -> saving", full - us, (full - us) / L);
  }
  std::printf("each kind alone, 32 launches in one graph (per launch):\n");
  const struct {
    const char* name;
    Parts p;
  } alone[] = {
      {"add + RMSNorm x2 per layer", Parts{false, true, false, false, false, false}},
      {"qkv post", Parts{false, false, true, false, false, false}},
      {"attention", Parts{false, false, false, true, false, false}},
      {"SwiGLU", Parts{false, false, false, false, true, false}},
      {"projections: qkv + o + gate_up + down", Parts{true, false, false, false, false, false}},
  };
  for (const auto& a : alone) {
    const double us = graphUs([&] { step(m, b, T, a.p); });
    std::printf("  %-62s %9.1f us per layer\n", a.name, us / L);
  }
  const struct {
    const char* name;
    int N, K;
    bool f32;
    const std::vector<void*>* w;
  } shapes[] = {{"qkv", QKV, H, false, &m.qkv}, {"o", H, NH * D, false, &m.o}, {"gate_up", 2 * I, H, false, &m.gateUp},
                {"down", H, I, false, &m.down}, {"lm_head", V, H, true, nullptr}};
  for (const auto& s : shapes) {
    const void* x = s.K == I ? b.mlpAct : b.xn;
    const void* w = s.w ? (*s.w)[0] : m.lmHead;
    void* y = s.f32 ? static_cast<void*>(b.logits) : s.N == H ? b.proj : b.gateUp;
    const double gb = static_cast<double>(s.N) * s.K * 2 / 1e9;
    const double alone = graphUs([&] {
      for (int l = 0; l < L; ++l) gemm(x, T, s.K, s.w ? (*s.w)[l] : m.lmHead, s.N, y, s.f32);
    });
    std::printf("%s M=%d N=%d K=%d (%.1f MB): cublasGemmEx in a graph of 32 %s: %.1f us each (%.2f TB/s)\n", s.name, T,
                s.N, s.K, gb * 1e3, s.w ? "layers" : "repeats", alone / L, gb * 1e6 / (alone / L) / 1e3);
    for (int M : {T, 32}) {
      if (M > T || (M == 32 && T == 32)) continue;
      for (const GemmCandidate& c : tuner->timeCandidates(Act::BF16, x, M, s.K, w, s.N, y, s.f32, 5))
        std::printf("  M=%-3d #%d %8.1f us (%5.2f TB/s)  %s\n", M, c.heuristicRank, c.meanUs, gb * 1e6 / c.meanUs / 1e3,
                    c.config.c_str());
    }
  }
  // The levers last (a new kernel that failed on this GPU would end the run here, after the measurements above).
  std::printf("levers:\n");
  useTuner = true;
  step(m, b, T, all);  // tunes every shape outside the capture
  CK(cudaStreamSynchronize(stream));
  run("all kernels, GemmTuner (cuBLASLt, timed choice)", all);
  // The lever on top of a GEMM choice: qkv rope fused into attention. (An L2 prefetch of the next projection's
  // weights measured +12 % at every window of 8-48 MB on an H100 in session 17 and was removed.)
  const auto levers = [&](const char* gemms) {
    char what[120];
    Parts p;
    p.fusedRopeAttention = true;
    std::snprintf(what, sizeof what, "all, %s, qkv rope fused into attention", gemms);
    run(what, p);
  };
  levers("GemmTuner");
  useTuner = false;
  levers("cublasGemmEx");
  const double fusedAlone = graphUs([&] { step(m, b, T, Parts{false, false, false, false, false, false, true}); });
  std::printf("  %-62s %9.1f us per layer\n", "qkv rope fused into attention, alone", fusedAlone / L);
  return 0;
}
