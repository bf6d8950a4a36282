// The engine's attention, greedy-row and qkv post-processing kernels run on the host CUDA emulator (emu/cuda-emu.h;
// the .cu files rewritten by emu/transform.mjs and linked in) against plain fp64 references:
//  - launchAttention: decode batches with mixed context lengths (key splits + merge, direct writes), with and without
//    scratch; prefill chunks with a cached prefix and query tiles straddling sequences (tensor-core kernel); head dims
//    16 / 64 / 128 / 256 and 20 (the fallback kernel), GQA and MHA, bf16 and fp16, scattered KV blocks;
//  - launchGreedyRows: ties planted across chunk edges, −inf / +inf rows, against the CPU sampler's argmax and
//    logSumExp (native/src/cpu/sampling.cpp), chunked and whole-row;
//  - launchQkvPost: bias, q/k RMSNorm and RoPE into q and the paged cache;
//  - launchAddRmsNorm: residual add and RMSNorm (vector and scalar kernels, row maps, add-only);
//  - launchSwiglu: 8-wide and scalar kernels;
//  - launchSkinnyGemm (decode GEMM, M ≤ 8) against fp64 for every K split, launchSkinnyGemmSwiglu (gate_up with
//    SwiGLU in the epilogue) bit-identical to launchSkinnyGemm + launchSwiglu, launchSkinnyGemmQkvRope (qkv with
//    bias / RoPE / cache write in the epilogue) bit-identical to launchSkinnyGemm + launchQkvPost (8B / 1B shapes too
//    on the GPU, where FMA contraction could tell them apart).
// Prints "N failures"; exit code 1 on any failure.
// The same file also runs on a real GPU: built by nvcc with -DTSLORA_KERNEL_TEST_ON_GPU (buffers in managed memory,
// a device sync after each launch), it checks the compiled kernels and then times them at the 1B decode / prefill
// shapes (--bench):
//   nvcc -std=c++17 -O3 -gencode arch=compute_90a,code=sm_90a -DTSLORA_KERNEL_TEST_ON_GPU -Inative/include -Inative/src/cuda
//     -Inative/src/cuda/engine native/src/cuda/engine/test/kernel-emu-test.cpp
//     native/src/cuda/engine/{attention,attention-prefill,greedy,kernels,skinny-gemm}.cu -o /tmp/kernel-test
//   /tmp/kernel-test --bench
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <initializer_list>
#include <random>
#include <vector>

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "../attention-prefill.h"
#include "../kernels.h"
#include "../skinny-gemm.h"
#include "cpu-greedy-reference.h"
#include "device-buf.h"

using namespace tslora::cuda;

namespace {

int failures = 0;
void expect(bool ok, const char* what) {
  if (ok) return;
  ++failures;
  std::printf("FAIL: %s\n", what);
}


uint16_t toBits(Act act, float x) {
  if (act == Act::BF16) return __bfloat16_as_ushort(__float2bfloat16_rn(x));
  return __half_as_ushort(__float2half_rn(x));
}
float fromBits(Act act, uint16_t b) {
  if (act == Act::BF16) return __bfloat162float(__ushort_as_bfloat16(b));
  return __half2float(__ushort_as_half(b));
}

// The step tables of a paged-attention / cache-write launch (device pointers); numSeqs left 0 (unknown).
AttnTables pagedTables(const int32_t* positions, const int32_t* tokenSeq, const int32_t* blockTables, int maxBlocksPerSeq,
                       int blockSize) {
  AttnTables tabs;
  tabs.positions = positions;
  tabs.tokenSeq = tokenSeq;
  tabs.blockTables = blockTables;
  tabs.maxBlocksPerSeq = maxBlocksPerSeq;
  tabs.blockSize = blockSize;
  return tabs;
}

// ---- attention ----------------------------------------------------------------------------------------------------

struct SeqPlan {
  int contextBefore;  // keys already cached
  int newTokens;      // query rows this step (positions contextBefore …)
};

void checkAttention(const char* name, Act act, int H, int KvH, int D, const std::vector<SeqPlan>& seqs,
                    size_t scratchFloats, std::mt19937& rng) {
  const int bs = 16, maxBlocksPerSeq = 200, B = static_cast<int>(seqs.size());
  const int numBlocks = B * maxBlocksPerSeq;
  const size_t kvW = static_cast<size_t>(KvH) * D;
  std::normal_distribution<float> n01(0.0f, 1.0f);
  Buf<uint16_t> kCache(static_cast<size_t>(numBlocks) * bs * kvW), vCache(kCache.size());
  for (auto& x : kCache) x = toBits(act, n01(rng));
  for (auto& x : vCache) x = toBits(act, n01(rng));
  Buf<int32_t> ids(numBlocks);
  for (int i = 0; i < numBlocks; ++i) ids[i] = i;
  std::shuffle(ids.begin(), ids.end(), rng);
  std::vector<int32_t> positions, tokenSeq;
  for (int b = 0; b < B; ++b)
    for (int i = 0; i < seqs[b].newTokens; ++i) {
      positions.push_back(seqs[b].contextBefore + i);
      tokenSeq.push_back(b);
    }
  const int T = static_cast<int>(positions.size());
  Buf<uint16_t> q(static_cast<size_t>(T) * H * D), out(q.size(), toBits(act, NAN));
  Buf<int32_t> dPositions(positions), dTokenSeq(tokenSeq);
  const float qScale = 2.5f;  // peaked softmax: the running max moves between tiles and splits
  for (auto& x : q) x = toBits(act, n01(rng) * qScale);
  Buf<float> scratchBuf(scratchFloats);
  const bool scratch = scratchFloats > 0;
  AttnTables tabs = pagedTables(dPositions.data(), dTokenSeq.data(), ids.data(), maxBlocksPerSeq, bs);
  tabs.numSeqs = B;
  const HeadShape hs{H, KvH, D};
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));
  const cudaError_t st = launchAttention(act, q.data(), T, hs, scale, tabs, kCache.data(), vCache.data(), out.data(),
                                         scratch ? scratchBuf.data() : nullptr, scratchBuf.size() * sizeof(float), nullptr);
  deviceSync(name);
  char what[200];
  std::snprintf(what, sizeof what, "%s: launch status %d", name, static_cast<int>(st));
  expect(st == cudaSuccess, what);
  double worst = 0.0, errSq = 0.0, refSq = 0.0;
  const int G = H / KvH;
  for (int t = 0; t < T; ++t) {
    const int32_t* table = ids.data() + static_cast<size_t>(tokenSeq[t]) * maxBlocksPerSeq;
    const int numKeys = positions[t] + 1;
    for (int h = 0; h < H; ++h) {
      const int kvh = h / G;
      std::vector<double> p(numKeys);
      double mx = -INFINITY;
      for (int j = 0; j < numKeys; ++j) {
        const size_t off = (static_cast<size_t>(table[j / bs]) * bs + j % bs) * kvW + static_cast<size_t>(kvh) * D;
        double dot = 0.0;
        for (int d = 0; d < D; ++d)
          dot += static_cast<double>(fromBits(act, q[(static_cast<size_t>(t) * H + h) * D + d])) * fromBits(act, kCache[off + d]);
        p[j] = dot * scale;
        mx = std::max(mx, p[j]);
      }
      double sum = 0.0;
      for (double& x : p) sum += (x = std::exp(x - mx));
      for (int d = 0; d < D; ++d) {
        double ref = 0.0;
        for (int j = 0; j < numKeys; ++j) {
          const size_t off = (static_cast<size_t>(table[j / bs]) * bs + j % bs) * kvW + static_cast<size_t>(kvh) * D;
          ref += p[j] / sum * fromBits(act, vCache[off + d]);
        }
        const double got = fromBits(act, out[(static_cast<size_t>(t) * H + h) * D + d]);
        const double err = std::isfinite(got) ? std::fabs(got - ref) : INFINITY;
        worst = std::max(worst, err);
        errSq += err * err;
        refSq += ref * ref;
      }
    }
  }
  const double relL2 = std::sqrt(errSq / std::max(refSq, 1e-30));
  const double tol = act == Act::BF16 ? 3e-2 : 5e-3;
  std::snprintf(what, sizeof what, "%s: max |err| %.3g, relative L2 %.3g (tolerance %.g)", name, worst, relL2, tol);
  std::printf("%s\n", what);
  expect(worst < tol && relL2 < tol / 3, what);
}

// ---- greedy rows ----------------------------------------------------------------------------------------------------


void checkGreedy(const char* name, int N, int V, size_t scratchBytes, std::mt19937& rng) {
  std::normal_distribution<float> n01(0.0f, 3.0f);
  Buf<float> logits(static_cast<size_t>(N) * V);
  for (auto& x : logits) x = n01(rng);
  for (int n = 0; n < N; ++n) {
    float* row = logits.data() + static_cast<size_t>(n) * V;
    switch (n % 5) {
      case 1:  // the maximum at several places, chunk edges among them: the first must win
        for (int i : {V - 1, V / 2, std::min(V - 1, 1024), std::min(V - 1, 1023), std::min(V - 1, 4097)}) row[i] = 50.0f;
        break;
      case 2:
        std::fill(row, row + V, -INFINITY);
        break;
      case 3:
        std::fill(row, row + V, 0.25f);
        break;
      case 4:
        row[V - 1] = INFINITY;
        break;
      default:
        break;
    }
  }
  Buf<int32_t> tokens(N, -7);
  Buf<float> logprobs(N, 0.0f);
  Buf<double> scratch(scratchBytes / 8 + 1);
  const cudaError_t st = launchGreedyRows(logits.data(), N, V, tokens.data(), logprobs.data(),
                                          scratchBytes ? scratch.data() : nullptr, scratchBytes, nullptr);
  deviceSync(name);
  char what[200];
  std::snprintf(what, sizeof what, "%s: launch status %d", name, static_cast<int>(st));
  expect(st == cudaSuccess, what);
  int bad = 0;
  for (int n = 0; n < N; ++n) {
    const float* row = logits.data() + static_cast<size_t>(n) * V;
    const int want = cpuArgmax(row, V);
    const float wantLp = static_cast<float>(row[want] - cpuLogSumExp(row, V));
    const bool lpOk = (std::isnan(wantLp) && std::isnan(logprobs[n])) || logprobs[n] == wantLp ||
                      std::fabs(logprobs[n] - wantLp) <= 2e-6f * std::max(1.0f, std::fabs(wantLp));
    if (tokens[n] != want || !lpOk) {
      if (bad++ < 3) std::printf("  %s row %d: token %d vs %d, logprob %.9g vs %.9g\n", name, n, tokens[n], want, logprobs[n], wantLp);
    }
  }
  std::snprintf(what, sizeof what, "%s: %d of %d rows differ from the CPU sampler", name, bad, N);
  std::printf("%s\n", what);
  expect(bad == 0, what);
}

// ---- qkv post-processing ----------------------------------------------------------------------------------------------

void checkQkvPost(const char* name, Act act, bool bias, bool norm, std::mt19937& rng) {
  const int H = 4, KvH = 2, D = 32, half = D / 2, bs = 4, T = 7, maxBlocks = 32;
  const int qW = H * D, kvW = KvH * D, rowW = qW + 2 * kvW;
  std::normal_distribution<float> n01(0.0f, 1.0f);
  Buf<uint16_t> qkv(static_cast<size_t>(T) * rowW);
  for (auto& x : qkv) x = toBits(act, n01(rng));
  Buf<float> qB(qW), kB(kvW), vB(kvW), qN(D), kN(D), invFreq(half);
  for (auto& x : qB) x = n01(rng);
  for (auto& x : kB) x = n01(rng);
  for (auto& x : vB) x = n01(rng);
  for (auto& x : qN) x = 1.0f + 0.2f * n01(rng);
  for (auto& x : kN) x = 1.0f + 0.2f * n01(rng);
  for (int i = 0; i < half; ++i) invFreq[i] = std::pow(10000.0f, -2.0f * i / D);
  const std::vector<int32_t> positions = {0, 1, 2, 3, 4, 37, 100}, tokenSeq = {0, 0, 0, 0, 0, 1, 1};
  Buf<int32_t> tables(2 * maxBlocks);
  Buf<int32_t> dPositions(positions), dTokenSeq(tokenSeq);
  for (int i = 0; i < 2 * maxBlocks; ++i) tables[i] = (i * 5 + 3) % 48;
  tables[maxBlocks + 37 / bs] = 40;
  tables[maxBlocks + 100 / bs] = 41;
  const int numBlocks = 50;
  Buf<uint16_t> qOut(static_cast<size_t>(T) * qW), kCache(static_cast<size_t>(numBlocks) * bs * kvW),
      vCache(kCache.size());
  AttnTables tabs = pagedTables(dPositions.data(), dTokenSeq.data(), tables.data(), maxBlocks, bs);
  const HeadShape hs{H, KvH, D};
  const float eps = 1e-6f;
  launchQkvPost(act, qkv.data(), T, hs, bias ? qB.data() : nullptr, bias ? kB.data() : nullptr, bias ? vB.data() : nullptr,
                norm ? qN.data() : nullptr, norm ? kN.data() : nullptr, eps, invFreq.data(), tabs, qOut.data(),
                kCache.data(), vCache.data(), nullptr);
  deviceSync(name);
  int bad = 0;
  for (int t = 0; t < T; ++t) {
    const int block = tables[static_cast<size_t>(tokenSeq[t]) * maxBlocks + positions[t] / bs];
    const size_t cacheRow = (static_cast<size_t>(block) * bs + positions[t] % bs) * kvW;
    for (int head = 0; head < H + 2 * KvH; ++head) {
      const int kind = head < H ? 0 : head < H + KvH ? 1 : 2;
      const int hIdx = kind == 0 ? head : kind == 1 ? head - H : head - H - KvH;
      const int col = kind == 0 ? hIdx * D : kind == 1 ? qW + hIdx * D : qW + kvW + hIdx * D;
      std::vector<double> x(D);
      double ss = 0.0;
      for (int i = 0; i < D; ++i) {
        x[i] = fromBits(act, qkv[static_cast<size_t>(t) * rowW + col + i]);
        if (bias) x[i] += (kind == 0 ? qB : kind == 1 ? kB : vB)[hIdx * D + i];
        ss += x[i] * x[i];
      }
      if (norm && kind < 2)
        for (int i = 0; i < D; ++i) x[i] = (kind == 0 ? qN : kN)[i] * x[i] / std::sqrt(ss / D + eps);
      if (kind < 2)
        for (int i = 0; i < half; ++i) {
          const double a = static_cast<double>(invFreq[i] * static_cast<float>(positions[t]));
          const double x1 = x[i], x2 = x[i + half];
          x[i] = x1 * std::cos(a) - x2 * std::sin(a);
          x[i + half] = x2 * std::cos(a) + x1 * std::sin(a);
        }
      const uint16_t* got = kind == 0 ? qOut.data() + static_cast<size_t>(t) * qW + hIdx * D
                                      : (kind == 1 ? kCache.data() : vCache.data()) + cacheRow + static_cast<size_t>(hIdx) * D;
      for (int i = 0; i < D; ++i) {
        const double g = fromBits(act, got[i]);
        if (!(std::fabs(g - x[i]) <= 1e-2 * std::max(1.0, std::fabs(x[i])))) ++bad;
      }
    }
  }
  char what[200];
  std::snprintf(what, sizeof what, "%s: %d values differ from the reference", name, bad);
  std::printf("%s\n", what);
  expect(bad == 0, what);
}

// ---- residual add + RMSNorm --------------------------------------------------------------------------------------------

void checkAddRmsNorm(const char* name, Act act, int H, bool withAdd, bool withNorm, bool withRowMap, std::mt19937& rng) {
  const int rows = 3, hiddenRows = 5;
  std::normal_distribution<float> n01(0.0f, 1.0f);
  Buf<float> hidden(static_cast<size_t>(hiddenRows) * H), w(H);
  for (auto& x : hidden) x = n01(rng);
  for (auto& x : w) x = 1.0f + 0.2f * n01(rng);
  Buf<uint16_t> add(static_cast<size_t>(rows) * H), out(add.size(), toBits(act, NAN));
  for (auto& x : add) x = toBits(act, n01(rng));
  Buf<int32_t> rowMap(std::vector<int32_t>{4, 0, 2});
  const std::vector<float> before(hidden.begin(), hidden.end());
  launchAddRmsNorm(act, hidden.data(), withAdd ? add.data() : nullptr, withNorm ? w.data() : nullptr, out.data(),
                   withRowMap ? rowMap.data() : nullptr, rows, H, 1e-5f, nullptr);
  deviceSync(name);
  int bad = 0;
  std::vector<bool> touched(hiddenRows, false);
  for (int r = 0; r < rows; ++r) {
    const int src = withRowMap ? rowMap[r] : r;
    touched[src] = true;
    double ss = 0.0;
    std::vector<double> v(H);
    for (int i = 0; i < H; ++i) {
      v[i] = static_cast<double>(before[static_cast<size_t>(src) * H + i]) +
             (withAdd ? fromBits(act, add[static_cast<size_t>(r) * H + i]) : 0.0);
      ss += v[i] * v[i];
      if (std::fabs(hidden[static_cast<size_t>(src) * H + i] - v[i]) > 1e-5 * std::max(1.0, std::fabs(v[i]))) ++bad;
    }
    if (!withNorm) continue;
    const double inv = 1.0 / std::sqrt(ss / H + 1e-5);
    for (int i = 0; i < H; ++i) {
      const double ref = w[i] * v[i] * inv, got = fromBits(act, out[static_cast<size_t>(r) * H + i]);
      if (!(std::fabs(got - ref) <= 1e-2 * std::max(1.0, std::fabs(ref)))) ++bad;
    }
  }
  for (int r = 0; r < hiddenRows; ++r)
    if (!touched[r])
      for (int i = 0; i < H; ++i) bad += hidden[static_cast<size_t>(r) * H + i] != before[static_cast<size_t>(r) * H + i];
  char what[200];
  std::snprintf(what, sizeof what, "%s: %d values differ from the reference", name, bad);
  std::printf("%s\n", what);
  expect(bad == 0, what);
}

// Prints "<name>: <bad> <what>" and counts a failure when bad > 0.
void reportBad(const char* name, int bad, const char* what) {
  char line[240];
  std::snprintf(line, sizeof line, "%s: %d %s", name, bad, what);
  std::printf("%s\n", line);
  expect(bad == 0, line);
}

// ---- SwiGLU ----------------------------------------------------------------------------------------------------------

void checkSwiglu(const char* name, Act act, int T, int I, std::mt19937& rng) {
  std::normal_distribution<float> n01(0.0f, 2.0f);
  Buf<uint16_t> gu(static_cast<size_t>(T) * 2 * I), out(static_cast<size_t>(T) * I, toBits(act, NAN));
  for (auto& x : gu) x = toBits(act, n01(rng));
  launchSwiglu(act, gu.data(), T, I, out.data(), nullptr);
  deviceSync(name);
  int bad = 0;
  for (int t = 0; t < T; ++t)
    for (int i = 0; i < I; ++i) {
      const double g = fromBits(act, gu[static_cast<size_t>(t) * 2 * I + i]);
      const double u = fromBits(act, gu[static_cast<size_t>(t) * 2 * I + I + i]);
      const double ref = g / (1.0 + std::exp(-g)) * u, got = fromBits(act, out[static_cast<size_t>(t) * I + i]);
      if (!(std::fabs(got - ref) <= 1e-2 * std::max(1.0, std::fabs(ref)))) ++bad;
    }
  reportBad(name, bad, "values differ from the reference");
}

// ---- skinny decode GEMM -----------------------------------------------------------------------------------------------

// y[M, N] = x[M, K] · w[N, K]ᵀ in the activation dtype against fp64, every K split: fp32 accumulation error plus half
// an ulp of output rounding.
void checkSkinnyGemm(const char* name, Act act, int M, int N, int K, std::mt19937& rng) {
  std::uniform_real_distribution<float> uni(-1.0f, 1.0f);
  Buf<uint16_t> x(static_cast<size_t>(M) * K), w(static_cast<size_t>(N) * K), y(static_cast<size_t>(M) * N);
  for (auto& v : x) v = toBits(act, uni(rng));
  for (auto& v : w) v = toBits(act, uni(rng) * 0.1f);
  int bad = 0;
  for (int kSplit : {1, 2, 4, 8}) {
    std::fill(y.begin(), y.end(), toBits(act, NAN));
    expect(launchSkinnyGemm(act, x.data(), M, K, w.data(), N, y.data(), false, kSplit, nullptr) == cudaSuccess, name);
    deviceSync(name);
    for (int m = 0; m < M; ++m)
      for (int n = 0; n < N; ++n) {
        double ref = 0, mag = 0;
        for (int k = 0; k < K; ++k) {
          const double p = double(fromBits(act, x[static_cast<size_t>(m) * K + k])) * fromBits(act, w[static_cast<size_t>(n) * K + k]);
          ref += p;
          mag += std::fabs(p);
        }
        const double got = fromBits(act, y[static_cast<size_t>(m) * N + n]);
        const double bound = 1e-5 * mag + std::fabs(ref) * (act == Act::BF16 ? 1.0 / 256 : 1.0 / 1024) + 1e-30;
        if (!(std::fabs(got - ref) <= bound)) ++bad;
      }
  }
  reportBad(name, bad, "values (K splits 1/2/4/8) outside the bound");
}

// The fused gate_up + SwiGLU launch against the GEMM into [M, 2I] followed by launchSwiglu: bit for bit, every K split.
void checkSkinnyGemmSwiglu(const char* name, Act act, int M, int I, int K, std::mt19937& rng) {
  std::uniform_real_distribution<float> uni(-1.0f, 1.0f);
  Buf<uint16_t> x(static_cast<size_t>(M) * K), w(static_cast<size_t>(2 * I) * K), gu(static_cast<size_t>(M) * 2 * I);
  Buf<uint16_t> fused(static_cast<size_t>(M) * I), two(static_cast<size_t>(M) * I);
  for (auto& v : x) v = toBits(act, uni(rng));
  for (auto& v : w) v = toBits(act, uni(rng) * 0.2f);
  int bad = 0;
  for (int kSplit : {1, 2, 4, 8}) {
    std::fill(fused.begin(), fused.end(), toBits(act, NAN));
    std::fill(two.begin(), two.end(), toBits(act, 1.0f));
    expect(launchSkinnyGemmSwiglu(act, x.data(), M, K, w.data(), I, fused.data(), kSplit, nullptr) == cudaSuccess, name);
    expect(launchSkinnyGemm(act, x.data(), M, K, w.data(), 2 * I, gu.data(), false, kSplit, nullptr) == cudaSuccess, name);
    expect(launchSwiglu(act, gu.data(), M, I, two.data(), nullptr) == cudaSuccess, name);
    deviceSync(name);
    for (size_t i = 0; i < fused.size(); ++i) bad += fused[i] != two[i];
  }
  reportBad(name, bad, "values (K splits 1/2/4/8) differ from GEMM + SwiGLU");
}

// The fused qkv projection + bias + RoPE + cache write against launchSkinnyGemm into [M, qkv] followed by
// launchQkvPost: q and both cache planes bit for bit, every K split; M rows at scattered positions and cache blocks.
void checkSkinnyGemmQkvRope(const char* name, Act act, int M, int H, int KvH, int D, int K, bool bias, std::mt19937& rng) {
  const int qW = H * D, kvW = KvH * D, N = qW + 2 * kvW, bs = 4, maxBlocks = 64, numBlocks = 70;
  std::uniform_real_distribution<float> uni(-1.0f, 1.0f);
  Buf<uint16_t> x(static_cast<size_t>(M) * K), w(static_cast<size_t>(N) * K), qkv(static_cast<size_t>(M) * N);
  for (auto& v : x) v = toBits(act, uni(rng));
  for (auto& v : w) v = toBits(act, uni(rng) * 0.2f);
  Buf<float> qB(qW), kB(kvW), vB(kvW), invFreq(D / 2);
  for (auto* b : {&qB, &kB, &vB})
    for (auto& v : *b) v = uni(rng);
  for (int i = 0; i < D / 2; ++i) invFreq[i] = std::pow(500000.0f, -2.0f * i / D);
  std::vector<int32_t> positions, tokenSeq;
  for (int t = 0; t < M; ++t) {
    positions.push_back((t * 97 + 13) % 251);
    tokenSeq.push_back(t);
  }
  Buf<int32_t> dPositions(positions), dTokenSeq(tokenSeq), tables(static_cast<size_t>(M) * maxBlocks);
  for (size_t i = 0; i < tables.size(); ++i) tables[i] = static_cast<int32_t>((i * 7 + 3) % numBlocks);
  AttnTables tabs = pagedTables(dPositions.data(), dTokenSeq.data(), tables.data(), maxBlocks, bs);
  const HeadShape hs{H, KvH, D};
  const size_t cacheElems = static_cast<size_t>(numBlocks) * bs * kvW;
  Buf<uint16_t> qF(static_cast<size_t>(M) * qW), kF(cacheElems), vF(cacheElems), qT(qF.size()), kT(cacheElems), vT(cacheElems);
  int bad = 0;
  for (int kSplit : {1, 2, 4, 8}) {
    for (auto* b : {&qF, &kF, &vF, &qT, &kT, &vT}) std::fill(b->begin(), b->end(), toBits(act, 3.0f));
    SkinnyQkvRope out;
    out.hs = hs;
    out.qBias = bias ? qB.data() : nullptr;
    out.kBias = bias ? kB.data() : nullptr;
    out.vBias = bias ? vB.data() : nullptr;
    out.invFreq = invFreq.data();
    out.tabs = tabs;
    out.q = qF.data();
    out.kCache = kF.data();
    out.vCache = vF.data();
    expect(launchSkinnyGemmQkvRope(act, x.data(), M, K, w.data(), out, kSplit, nullptr) == cudaSuccess, name);
    expect(launchSkinnyGemm(act, x.data(), M, K, w.data(), N, qkv.data(), false, kSplit, nullptr) == cudaSuccess, name);
    expect(launchQkvPost(act, qkv.data(), M, hs, out.qBias, out.kBias, out.vBias, nullptr, nullptr, 1e-6f, invFreq.data(), tabs,
                         qT.data(), kT.data(), vT.data(), nullptr) == cudaSuccess, name);
    deviceSync(name);
    for (size_t i = 0; i < qF.size(); ++i) bad += qF[i] != qT[i];
    for (size_t i = 0; i < cacheElems; ++i) bad += (kF[i] != kT[i]) + (vF[i] != vT[i]);
  }
  reportBad(name, bad, "values of q / k / v cache (K splits 1/2/4/8) differ from GEMM + launchQkvPost");
}

// ---- qkv post fused into attention: bit-identical to launchQkvPost + launchAttention ------------------------------------

// Decode rows (one per sequence) at the given contexts: q and both cache planes from the two launches against the
// fused launch on copies of the same cache; every output and cache value bit for bit. Contexts on split edges put the
// token's own key in a later split than the first.
void checkQkvRopeAttention(const char* name, Act act, int H, int KvH, int D, bool bias, const std::vector<int>& contexts,
                           size_t scratchFloats, std::mt19937& rng) {
  const int bs = 16, maxBlocksPerSeq = 160, B = static_cast<int>(contexts.size()), numBlocks = B * maxBlocksPerSeq;
  const int qW = H * D, kvW = KvH * D, rowW = qW + 2 * kvW;
  std::normal_distribution<float> n01(0.0f, 1.0f);
  Buf<uint16_t> kA(static_cast<size_t>(numBlocks) * bs * kvW), vA(kA.size()), kB(kA.size()), vB(kA.size());
  for (size_t i = 0; i < kA.size(); ++i) kB[i] = kA[i] = toBits(act, n01(rng)), vB[i] = vA[i] = toBits(act, n01(rng));
  Buf<int32_t> ids(numBlocks);
  for (int i = 0; i < numBlocks; ++i) ids[i] = i;
  std::shuffle(ids.begin(), ids.end(), rng);
  std::vector<int32_t> positions(contexts.begin(), contexts.end()), tokenSeq(B);
  for (int b = 0; b < B; ++b) tokenSeq[b] = b;
  Buf<int32_t> dPositions(positions), dTokenSeq(tokenSeq);
  Buf<uint16_t> qkv(static_cast<size_t>(B) * rowW), q(static_cast<size_t>(B) * qW), outA(q.size()), outB(q.size(), toBits(act, NAN));
  for (auto& x : qkv) x = toBits(act, n01(rng) * 2.0f);
  Buf<float> qB(qW), kBias(kvW), vBias(kvW), invFreq(D / 2);
  for (auto* v : {&qB, &kBias, &vBias})
    for (auto& x : *v) x = n01(rng);
  for (int i = 0; i < D / 2; ++i) invFreq[i] = std::pow(500000.0f, -2.0f * i / D);
  Buf<float> scratchA(scratchFloats), scratchB(scratchFloats);
  AttnTables tabs = pagedTables(dPositions.data(), dTokenSeq.data(), ids.data(), maxBlocksPerSeq, bs);
  tabs.numSeqs = B;
  const HeadShape hs{H, KvH, D};
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));
  const float* qb = bias ? qB.data() : nullptr;
  const float* kb = bias ? kBias.data() : nullptr;
  const float* vb = bias ? vBias.data() : nullptr;
  int bad = 0;
  bad += launchQkvPost(act, qkv.data(), B, hs, qb, kb, vb, nullptr, nullptr, 1e-6f, invFreq.data(), tabs, q.data(), kA.data(),
                       vA.data(), nullptr) != cudaSuccess;
  bad += launchAttention(act, q.data(), B, hs, scale, tabs, kA.data(), vA.data(), outA.data(), scratchA.data(),
                         scratchA.size() * sizeof(float), nullptr) != cudaSuccess;
  QkvRope src;
  src.qkv = qkv.data();
  src.qBias = qb;
  src.kBias = kb;
  src.vBias = vb;
  src.invFreq = invFreq.data();
  bad += launchQkvRopeAttention(act, src, B, hs, scale, tabs, kB.data(), vB.data(), outB.data(), scratchB.data(),
                                scratchB.size() * sizeof(float), nullptr) != cudaSuccess;
  // Several rows of one sequence: refused, nothing launched.
  AttnTables shared = tabs;
  shared.numSeqs = B - 1;
  bad += launchQkvRopeAttention(act, src, B, hs, scale, shared, kB.data(), vB.data(), outB.data(), scratchB.data(),
                                scratchB.size() * sizeof(float), nullptr) != cudaErrorNotSupported;
  deviceSync(name);
  for (size_t i = 0; i < outA.size(); ++i) bad += outA[i] != outB[i];
  for (size_t i = 0; i < kA.size(); ++i) bad += (kA[i] != kB[i]) + (vA[i] != vB[i]);
  reportBad(name, bad, "launch errors or values (out, k / v cache) differ from launchQkvPost + launchAttention");
}

#ifdef TSLORA_KERNEL_TEST_ON_GPU
// ---- timings on the GPU (--bench): 1B shapes (32 q / 8 kv heads of 64, hidden 2048, inter 8192, vocab 128256), bf16,
// warm L2 (no cache flush), mean of 50 launches after 3 warm-ups.

template <typename F>
void timeIt(const char* what, F launch) {
  for (int i = 0; i < 3; ++i) launch();
  deviceSync(what);
  cudaEvent_t a, b;
  cudaEventCreate(&a);
  cudaEventCreate(&b);
  cudaEventRecord(a);
  for (int i = 0; i < 50; ++i) launch();
  cudaEventRecord(b);
  deviceSync(what);
  float ms = 0.0f;
  cudaEventElapsedTime(&ms, a, b);
  std::printf("  %-58s %9.1f us\n", what, ms * 1000.0f / 50);
  cudaEventDestroy(a);
  cudaEventDestroy(b);
}

// D: the head size (64: the 1B shapes; 128: Llama-3.1-8B's, 32 / 8 heads too).
void benchAttention(const char* what, int B, int tokensPerSeq, int context, int blocksPerSeq, int D = 64) {
  const int H = 32, KvH = 8, bs = 16, V = 128256;
  const size_t kvW = static_cast<size_t>(KvH) * D;
  const int numBlocks = B * blocksPerSeq, T = B * tokensPerSeq;
  uint16_t *k = nullptr, *v = nullptr, *q = nullptr, *out = nullptr;
  float* scratch = nullptr;
  cudaMalloc(&k, static_cast<size_t>(numBlocks) * bs * kvW * 2);
  cudaMalloc(&v, static_cast<size_t>(numBlocks) * bs * kvW * 2);
  cudaMemset(k, 0x3c, static_cast<size_t>(numBlocks) * bs * kvW * 2);
  cudaMemset(v, 0x3c, static_cast<size_t>(numBlocks) * bs * kvW * 2);
  cudaMalloc(&q, static_cast<size_t>(T) * H * D * 2);
  cudaMemset(q, 0x3c, static_cast<size_t>(T) * H * D * 2);
  cudaMalloc(&out, static_cast<size_t>(T) * H * D * 2);
  const size_t scratchBytes = static_cast<size_t>(std::max(B, 1)) * V * 4;  // the logits buffer the forward lends
  cudaMalloc(&scratch, scratchBytes);
  std::vector<int32_t> pos, seq, table(static_cast<size_t>(numBlocks));
  for (int b = 0; b < B; ++b)
    for (int i = 0; i < tokensPerSeq; ++i) {
      pos.push_back(context - tokensPerSeq + i);
      seq.push_back(b);
    }
  for (int i = 0; i < numBlocks; ++i) table[i] = i;
  Buf<int32_t> dPos(pos), dSeq(seq), dTable(table);
  AttnTables tabs = pagedTables(dPos.data(), dSeq.data(), dTable.data(), blocksPerSeq, bs);
  tabs.numSeqs = B;
  const HeadShape hs{H, KvH, D};
  timeIt(what, [&] { launchAttention(Act::BF16, q, T, hs, 1.0f / std::sqrt(static_cast<float>(D)), tabs, k, v, out, scratch,
                                     scratchBytes, nullptr); });
  cudaFree(k);
  cudaFree(v);
  cudaFree(q);
  cudaFree(out);
  cudaFree(scratch);
}

void bench() {
  std::printf("kernel timings (H200 expected; bf16, warm L2):\n");
  benchAttention("attention decode B=1 ctx 62 (8 blocks of 16)", 1, 1, 62, 8);
  benchAttention("attention decode B=8 ctx 62", 8, 1, 62, 8);
  benchAttention("attention decode B=64 ctx 62", 64, 1, 62, 8);
  benchAttention("attention decode B=1 ctx 4096", 1, 1, 4096, 256);
  benchAttention("attention decode B=1 ctx 32768", 1, 1, 32768, 2048);
  benchAttention("attention decode B=64 ctx 2048", 64, 1, 2048, 128);
  benchAttention("attention prefill 8 x 512 (tensor cores)", 8, 512, 512, 32);
  // Llama-3.1-8B's heads (session 25): the prefill kernel ran 8 x 512 with 1B heads at ~19 TFLOP/s on an H100 and an
  // H200 (8.6 GFLOP causal in ~460 us); with 128-dim heads that is 17.2 GFLOP per layer of the 8B prefill step.
  benchAttention("attention prefill 8 x 512 (tensor cores), 8B heads of 128", 8, 512, 512, 32, 128);
  setPrefillAttentionMma(true);  // the mma.sync kernel (session 25) on the same two shapes
  benchAttention("attention prefill 8 x 512 (mma.sync)", 8, 512, 512, 32);
  benchAttention("attention prefill 8 x 512 (mma.sync), 8B heads of 128", 8, 512, 512, 32, 128);
  benchAttention("attention prefill chunk 512 after 3584 cached (mma.sync)", 1, 512, 4096, 256);
  setPrefillAttentionMma(false);
  benchAttention("attention decode B=64 ctx 62, 8B heads of 128", 64, 1, 62, 8, 128);
  benchAttention("attention prefill chunk 512 after 3584 cached", 1, 512, 4096, 256);
  {
    const int V = 128256;
    for (int N : {1, 64}) {
      Buf<float> logits(static_cast<size_t>(N) * V, 0.5f);
      Buf<int32_t> tokens(N);
      Buf<float> logprobs(N);
      const size_t scratchBytes = static_cast<size_t>(N) * 2 * 8192 * 2;  // the gate_up buffer
      Buf<char> scratch(scratchBytes);
      char what[80];
      std::snprintf(what, sizeof what, "greedy rows N=%d V=128256", N);
      timeIt(what, [&] { launchGreedyRows(logits.data(), N, V, tokens.data(), logprobs.data(), scratch.data(), scratchBytes, nullptr); });
    }
  }
  for (int T : {1, 64}) {
    const int H = 32, KvH = 8, D = 64, bs = 16, hidden = 2048, inter = 8192;
    Buf<uint16_t> qkv(static_cast<size_t>(T) * (H + 2 * KvH) * D, 0x3c00), qOut(static_cast<size_t>(T) * H * D);
    Buf<uint16_t> kc(static_cast<size_t>(T) * 8 * bs * KvH * D), vc(kc.size());
    Buf<float> invFreq(D / 2, 0.01f);
    std::vector<int32_t> pos(T, 40), seq(T), table(static_cast<size_t>(T) * 8);
    for (int t = 0; t < T; ++t) seq[t] = t;
    for (size_t i = 0; i < table.size(); ++i) table[i] = static_cast<int32_t>(i);
    Buf<int32_t> dPos(pos), dSeq(seq), dTable(table);
    AttnTables tabs = pagedTables(dPos.data(), dSeq.data(), dTable.data(), 8, bs);
    char what[80];
    std::snprintf(what, sizeof what, "qkv post T=%d", T);
    timeIt(what, [&] {
      launchQkvPost(Act::BF16, qkv.data(), T, HeadShape{H, KvH, D}, nullptr, nullptr, nullptr, nullptr, nullptr, 1e-5f,
                    invFreq.data(), tabs, qOut.data(), kc.data(), vc.data(), nullptr);
    });
    Buf<float> h(static_cast<size_t>(T) * hidden, 1.0f), w(hidden, 1.0f);
    Buf<uint16_t> add(static_cast<size_t>(T) * hidden, 0x3c00), xn(static_cast<size_t>(T) * hidden);
    std::snprintf(what, sizeof what, "add + rmsnorm T=%d H=2048", T);
    timeIt(what, [&] { launchAddRmsNorm(Act::BF16, h.data(), add.data(), w.data(), xn.data(), nullptr, T, hidden, 1e-5f, nullptr); });
    Buf<uint16_t> gu(static_cast<size_t>(T) * 2 * inter, 0x3c00), act(static_cast<size_t>(T) * inter);
    std::snprintf(what, sizeof what, "swiglu T=%d I=8192", T);
    timeIt(what, [&] { launchSwiglu(Act::BF16, gu.data(), T, inter, act.data(), nullptr); });
  }
}
#endif

}  // namespace

int main(int argc, char** argv) {
  std::mt19937 rng(42);
  const std::vector<SeqPlan> decode = {{2005, 1}, {1500, 1}, {40, 1}, {0, 1}};
  const std::vector<SeqPlan> prefill = {{500, 100}, {0, 37}, {10, 20}};
  const size_t kBig = size_t(1) << 22;  // scratch floats: as many splits as the plan wants
  // Contexts ending exactly on split edges: 256-key splits (ample scratch), 832-key splits (scratch for 4 splits).
  const std::vector<SeqPlan> edges = {{255, 1}, {511, 1}, {831, 1}, {1663, 1}};
  checkAttention("decode on split edges, 256-key splits", Act::F16, 8, 2, 64, edges, kBig, rng);
  checkAttention("decode on split edges, 832-key splits", Act::F16, 8, 2, 64, edges, 40000 / 4, rng);
  checkAttention("decode d64 gqa4 bf16, splits", Act::BF16, 8, 2, 64, decode, kBig, rng);
  checkAttention("decode d64 gqa4 bf16, no scratch", Act::BF16, 8, 2, 64, decode, 0, rng);
  checkAttention("decode d128 mha f16, splits", Act::F16, 4, 4, 128, decode, kBig, rng);
  checkAttention("decode d256 gqa2 bf16 (32-key tiles), splits", Act::BF16, 4, 2, 256, decode, kBig, rng);
  checkAttention("decode d16 gqa2 f16 (fixture shape), splits", Act::F16, 4, 2, 16, decode, kBig, rng);
  checkAttention("decode d20 (fallback kernel)", Act::F16, 4, 2, 20, {{300, 1}, {5, 1}}, kBig, rng);
  checkAttention("prefill d64 gqa4 bf16 (tensor cores, straddling tiles)", Act::BF16, 8, 2, 64, prefill, kBig, rng);
  checkAttention("prefill d64 gqa4 f16 (tensor cores)", Act::F16, 8, 2, 64, prefill, kBig, rng);
  checkAttention("prefill d128 mha f16 (tensor cores)", Act::F16, 4, 4, 128, prefill, kBig, rng);
  checkAttention("prefill d256 gqa2 bf16 (split kernel)", Act::BF16, 4, 2, 256, prefill, kBig, rng);
  checkAttention("short prefill d64 (split kernel, 5 rows of a long prompt)", Act::F16, 8, 2, 64, {{2000, 5}}, kBig, rng);
  // Mixed steps: long chunks on tensor cores, decode rows and a 5-row chunk on the split kernel, in one launch.
  checkAttention("mixed step d64 bf16: chunks + decodes + short chunk", Act::BF16, 8, 2, 64,
                 {{500, 100}, {2000, 1}, {1500, 1}, {0, 37}, {300, 5}, {10, 20}, {700, 1}, {1700, 20}}, kBig, rng);
  checkAttention("mixed step d128 mha f16, no scratch", Act::F16, 4, 4, 128, {{64, 70}, {900, 1}, {3, 15}, {0, 16}}, 0, rng);
  // The mma.sync prefill kernel (attention-prefill-mma.cuh, TSLORA_CUDA_PREFILL_ATTN_MMA): the same cases against the
  // same references, and Llama-3.1-8B's head shape (4 q heads per KV head of 128).
  setPrefillAttentionMma(true);
  checkAttention("prefill d64 gqa4 bf16 (mma.sync, straddling tiles)", Act::BF16, 8, 2, 64, prefill, kBig, rng);
  checkAttention("prefill d64 gqa4 f16 (mma.sync)", Act::F16, 8, 2, 64, prefill, kBig, rng);
  checkAttention("prefill d128 mha f16 (mma.sync)", Act::F16, 4, 4, 128, prefill, kBig, rng);
  checkAttention("prefill d128 gqa4 bf16 (mma.sync, 8B heads)", Act::BF16, 8, 2, 128, prefill, kBig, rng);
  checkAttention("mixed step d64 bf16 (mma.sync): chunks + decodes + short chunk", Act::BF16, 8, 2, 64,
                 {{500, 100}, {2000, 1}, {1500, 1}, {0, 37}, {300, 5}, {10, 20}, {700, 1}, {1700, 20}}, kBig, rng);
  checkAttention("mixed step d128 mha f16 (mma.sync), no scratch", Act::F16, 4, 4, 128, {{64, 70}, {900, 1}, {3, 15}, {0, 16}}, 0, rng);
  setPrefillAttentionMma(false);
  std::vector<SeqPlan> shortOnes;
  for (int b = 0; b < 10; ++b) shortOnes.push_back({b * 37, 8});
  checkAttention("10 sequences of 8 rows (prefill launched, every row to the split kernel)", Act::F16, 8, 2, 64, shortOnes, kBig, rng);

  checkGreedy("greedy V=128256 N=1 chunked", 1, 128256, 1 << 20, rng);
  checkGreedy("greedy V=128256 N=5 chunked", 5, 128256, 1 << 20, rng);
  checkGreedy("greedy V=16384 N=64 chunked", 64, 16384, 64 * 32768, rng);
  checkGreedy("greedy V=384 N=7 chunked (fixture vocab)", 7, 384, 7 * 256, rng);
  checkGreedy("greedy V=5000 N=5 whole rows (no scratch)", 5, 5000, 0, rng);

  checkAddRmsNorm("add + rmsnorm H=2048 bf16 (vector kernel)", Act::BF16, 2048, true, true, false, rng);
  checkAddRmsNorm("rmsnorm of mapped rows H=2048 f16 (final norm)", Act::F16, 2048, false, true, true, rng);
  checkAddRmsNorm("add only H=4096 bf16", Act::BF16, 4096, true, false, false, rng);
  checkAddRmsNorm("add + rmsnorm H=8192 f16", Act::F16, 8192, true, true, true, rng);
  checkAddRmsNorm("add + rmsnorm H=64 bf16 (fixture)", Act::BF16, 64, true, true, false, rng);
  checkAddRmsNorm("add + rmsnorm H=100 bf16 (vector kernel, partial warp)", Act::BF16, 100, true, true, false, rng);
  checkAddRmsNorm("add + rmsnorm H=18 f16 (scalar kernel)", Act::F16, 18, true, true, true, rng);
  checkAddRmsNorm("add + rmsnorm H=16384 bf16 (scalar kernel)", Act::BF16, 16384, true, true, false, rng);
  checkSwiglu("swiglu I=8192 bf16 (8 at a time)", Act::BF16, 3, 8192, rng);
  checkSwiglu("swiglu I=160 f16 (8 at a time, fixture)", Act::F16, 5, 160, rng);
  checkSwiglu("swiglu I=100 bf16 (scalar)", Act::BF16, 3, 100, rng);
  checkSkinnyGemm("skinny GEMM M=1 N=9 K=520 bf16", Act::BF16, 1, 9, 520, rng);
  checkSkinnyGemm("skinny GEMM M=3 N=6 K=64 f16", Act::F16, 3, 6, 64, rng);
  checkSkinnyGemm("skinny GEMM M=8 N=5 K=1032 bf16", Act::BF16, 8, 5, 1032, rng);
  checkSkinnyGemmSwiglu("skinny gate_up + SwiGLU M=1 I=5 K=520 bf16", Act::BF16, 1, 5, 520, rng);
  checkSkinnyGemmSwiglu("skinny gate_up + SwiGLU M=2 I=16 K=264 f16", Act::F16, 2, 16, 264, rng);
  checkSkinnyGemmSwiglu("skinny gate_up + SwiGLU M=8 I=3 K=48 bf16", Act::BF16, 8, 3, 48, rng);
  checkSkinnyGemmQkvRope("skinny qkv + RoPE M=1 4/2 heads of 16 K=64 bf16", Act::BF16, 1, 4, 2, 16, 64, false, rng);
  checkSkinnyGemmQkvRope("skinny qkv + RoPE M=3 4/2 heads of 32 K=136 f16, bias", Act::F16, 3, 4, 2, 32, 136, true, rng);
#ifdef TSLORA_KERNEL_TEST_ON_GPU
  checkSkinnyGemmQkvRope("skinny qkv + RoPE M=1 8B shape (32/8 heads of 128, K=4096) bf16", Act::BF16, 1, 32, 8, 128, 4096, false, rng);
  checkSkinnyGemmQkvRope("skinny qkv + RoPE M=2 1B shape (32/8 heads of 64, K=2048) bf16, bias", Act::BF16, 2, 32, 8, 64, 2048, true, rng);
  checkSkinnyGemmQkvRope("skinny qkv + RoPE M=8 (8/2 heads of 128, K=512) f16", Act::F16, 8, 8, 2, 128, 512, false, rng);
#endif
  checkQkvRopeAttention("qkv rope + attention d64 gqa4 bf16, bias, split edges", Act::BF16, 8, 2, 64, true,
                        {0, 255, 256, 511, 40, 1700, 831}, kBig, rng);
  checkQkvRopeAttention("qkv rope + attention d128 gqa4 f16, no scratch", Act::F16, 8, 2, 128, false, {3, 300, 1000}, 0, rng);
  checkQkvRopeAttention("qkv rope + attention d128 gqa4 bf16 (8B head shape), splits", Act::BF16, 8, 2, 128, false,
                        {40, 41, 2047, 600}, kBig, rng);
  checkQkvPost("qkv post bf16, bias", Act::BF16, true, false, rng);
  checkQkvPost("qkv post f16, q/k norm", Act::F16, false, true, rng);
  std::printf("%d failures\n", failures);
#ifdef TSLORA_KERNEL_TEST_ON_GPU
  if (argc > 1 && std::strcmp(argv[1], "--bench") == 0) bench();
#else
  (void)argc;
  (void)argv;
#endif
  return failures == 0 ? 0 : 1;
}
