// Host check (g++, no GPU) of the rules the CUDA attention and greedy kernels are built on: the key-split plan and the
// tile-by-tile online softmax with split merge (attention-merge.h) against a direct fp64 softmax, and the chunked
// greedy rows (greedy-rule.h: chunk plan, first-argmax across chunks, fp64 logsumexp from rescaled chunk sums)
// against the CPU sampler's argmax and logSumExp (copied from native/src/cpu/sampling.cpp). The kernels follow the
// same steps per block; this driver replays them serially. Prints "N failures" and exits non-zero on any failure.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <random>
#include <vector>

#include "../attention-merge.h"
#include "../greedy-rule.h"
#include "cpu-greedy-reference.h"

using namespace tslora::cuda;

namespace {

int failures = 0;
void expect(bool ok, const char* what, double a = 0, double b = 0) {
  if (ok) return;
  ++failures;
  std::printf("FAIL: %s (%.9g vs %.9g)\n", what, a, b);
}

// ---- attention --------------------------------------------------------------------------------------------------

// Out of one query head over keys [0, numKeys): split plan → per split, tiles of tk keys with the online softmax →
// merge (or direct normalisation when one split covers the token), as pagedAttentionKernel + mergeSplitsKernel do.
std::vector<float> splitAttention(const std::vector<float>& q, const std::vector<float>& K, const std::vector<float>& V,
                                  int D, int numKeys, const KeySplits& plan, int tk) {
  std::vector<float> out(D, 0.0f);
  std::vector<float> m, l;
  std::vector<std::vector<float>> acc;
  for (int s = 0; s * plan.keysPerSplit < numKeys && s < plan.numSplits; ++s) {
    const int kBegin = s * plan.keysPerSplit, kEnd = std::min(numKeys, kBegin + plan.keysPerSplit);
    float mRun = -INFINITY, lRun = 0.0f;
    std::vector<float> a(D, 0.0f);
    for (int k0 = kBegin; k0 < kEnd; k0 += tk) {
      std::vector<float> score(tk, -INFINITY);
      for (int j = 0; j < tk; ++j) {
        if (k0 + j >= kEnd) continue;
        float dot = 0.0f;
        for (int d = 0; d < D; ++d) dot += q[d] * K[static_cast<size_t>(k0 + j) * D + d];
        score[j] = dot;
      }
      float mx = -INFINITY;
      for (float sc : score) mx = std::max(mx, sc);
      const float mNew = std::max(mRun, mx);
      float sum = 0.0f;
      for (float& sc : score) {
        sc = softmaxWeight(sc, mNew);
        sum += sc;
      }
      const float corr = softmaxCorrection(mRun, mNew);
      lRun = lRun * corr + sum;
      mRun = mNew;
      for (int d = 0; d < D; ++d) {
        float v = a[d] * corr;
        for (int j = 0; j < tk; ++j) v += score[j] * (k0 + j < kEnd ? V[static_cast<size_t>(k0 + j) * D + d] : 0.0f);
        a[d] = v;
      }
    }
    m.push_back(mRun);
    l.push_back(lRun);
    acc.push_back(a);
  }
  if (numKeys <= plan.keysPerSplit) {
    for (int d = 0; d < D; ++d) out[d] = acc[0][d] / l[0];
    return out;
  }
  float M = -INFINITY;
  for (float x : m) M = std::max(M, x);
  float L = 0.0f;
  for (size_t s = 0; s < m.size(); ++s) L += l[s] * softmaxWeight(m[s], M);
  for (int d = 0; d < D; ++d) {
    float v = 0.0f;
    for (size_t s = 0; s < m.size(); ++s) v += acc[s][d] * softmaxWeight(m[s], M);
    out[d] = v / L;
  }
  return out;
}

void checkAttention(std::mt19937& rng, int T, int numKeys, long long maxKeys, int tk, size_t scratchBytes) {
  const int D = 64, H = 32, KvH = 8;
  const KeySplits plan = planKeySplits(T, H, KvH, D, maxKeys, tk, 132, scratchBytes);
  char what[160];
  std::snprintf(what, sizeof what, "plan T=%d maxKeys=%lld scratch=%zu: splits=%d keys/split=%d", T, maxKeys,
                scratchBytes, plan.numSplits, plan.keysPerSplit);
  expect(plan.numSplits >= 1 && plan.keysPerSplit > 0 && plan.keysPerSplit % tk == 0, what);
  expect(static_cast<long long>(plan.numSplits) * plan.keysPerSplit >= maxKeys, what);
  expect(static_cast<long long>(plan.numSplits - 1) * plan.keysPerSplit < maxKeys, what);  // no split always empty
  if (plan.numSplits > 1)
    expect(static_cast<size_t>(T) * H * plan.numSplits * (D + 2) * sizeof(float) <= scratchBytes, what);
  std::normal_distribution<float> n01(0.0f, 1.0f);
  std::vector<float> q(D), K(static_cast<size_t>(numKeys) * D), V(K.size());
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));
  for (float& x : q) x = n01(rng) * 3.0f * scale;  // peaked softmax: max shifts between tiles and splits
  for (float& x : K) x = n01(rng);
  for (float& x : V) x = n01(rng);
  const std::vector<float> got = splitAttention(q, K, V, D, numKeys, plan, tk);
  std::vector<double> score(numKeys);
  double mx = -INFINITY;
  for (int j = 0; j < numKeys; ++j) {
    double dot = 0.0;
    for (int d = 0; d < D; ++d) dot += static_cast<double>(q[d]) * K[static_cast<size_t>(j) * D + d];
    score[j] = dot;
    mx = std::max(mx, dot);
  }
  double sum = 0.0;
  for (double& s : score) sum += (s = std::exp(s - mx));
  double worst = 0.0, norm = 0.0;
  for (int d = 0; d < D; ++d) {
    double ref = 0.0;
    for (int j = 0; j < numKeys; ++j) ref += score[j] / sum * V[static_cast<size_t>(j) * D + d];
    worst = std::max(worst, std::fabs(ref - got[d]));
    norm = std::max(norm, std::fabs(ref));
  }
  std::snprintf(what, sizeof what, "attention T=%d keys=%d maxKeys=%lld splits=%d: max |err| / max |ref|", T, numKeys,
                maxKeys, plan.numSplits);
  expect(worst <= 1e-5 * std::max(1.0, norm) + 1e-6, what, worst, norm);
}

// ---- greedy rows --------------------------------------------------------------------------------------------------


GreedyPartial chunkPartial(const float* x, int begin, int end) {
  GreedyPartial p{-INFINITY, kNoIndex, 0.0};
  // The kernel scans with 256 threads in strides; any order gives the same (max, first index) under greedyBeats.
  for (int i = end - 1; i >= begin; --i)
    if (greedyBeats(x[i], i, p.max, p.idx)) {
      p.max = x[i];
      p.idx = i;
    }
  if (greedyFinite(p.max))
    for (int i = begin; i < end; ++i) p.sumExp += static_cast<double>(expf(x[i] - p.max));
  return p;
}

void checkGreedy(std::mt19937& rng, const std::vector<float>& x, int N, size_t scratchBytes, const char* name) {
  const int V = static_cast<int>(x.size());
  const int chunkLen = greedyChunkLen(N, V, scratchBytes);
  float best = -INFINITY;
  int32_t idx = kNoIndex;
  double sum = 0.0;
  if (chunkLen == 0) {
    const GreedyPartial p = chunkPartial(x.data(), 0, V);
    best = p.max, idx = p.idx, sum = p.sumExp;
  } else {
    const int chunks = (V + chunkLen - 1) / chunkLen;
    char what[160];
    std::snprintf(what, sizeof what, "%s: chunk plan N=%d V=%d len=%d", name, N, V, chunkLen);
    expect(chunks >= 2 && (chunks - 1) * chunkLen < V, what);
    expect(static_cast<size_t>(N) * chunks * sizeof(GreedyPartial) <= scratchBytes, what);
    std::vector<GreedyPartial> parts;
    for (int c = 0; c < chunks; ++c) parts.push_back(chunkPartial(x.data(), c * chunkLen, std::min(V, (c + 1) * chunkLen)));
    std::shuffle(parts.begin(), parts.end(), rng);  // the warp combines lanes in any order
    for (const GreedyPartial& p : parts)
      if (greedyBeats(p.max, p.idx, best, idx)) best = p.max, idx = p.idx;
    if (greedyFinite(best))
      for (const GreedyPartial& p : parts) sum += greedyScaledSum(p, best);
  }
  const int token = idx == kNoIndex ? 0 : idx;
  const float logprob = static_cast<float>(static_cast<double>(x[token]) - greedyLse(best, sum));
  const int wantToken = cpuArgmax(x.data(), V);
  const float wantLogprob = static_cast<float>(x[wantToken] - cpuLogSumExp(x.data(), V));
  char what[160];
  std::snprintf(what, sizeof what, "%s: token (N=%d, chunk %d)", name, N, chunkLen);
  expect(token == wantToken, what, token, wantToken);
  std::snprintf(what, sizeof what, "%s: logprob (N=%d, chunk %d)", name, N, chunkLen);
  const bool bothNaN = std::isnan(logprob) && std::isnan(wantLogprob);
  expect(bothNaN || logprob == wantLogprob || std::fabs(logprob - wantLogprob) <= 2e-6 * std::max(1.0f, std::fabs(wantLogprob)),
         what, logprob, wantLogprob);
}

}  // namespace

int main() {
  std::mt19937 rng(1234);
  // Attention: decode (T = 1, 8, 64) and prefill-sized T, short and long contexts, scratch none / small / ample.
  for (int tk : {64, 32}) {
    for (int numKeys : {1, 2, 31, 63, 64, 65, 200, 1500, 3000}) {
      for (size_t scratch : {size_t(0), size_t(40000), size_t(513024), size_t(64) << 20}) {
        checkAttention(rng, 1, numKeys, numKeys, tk, scratch);
        checkAttention(rng, 1, numKeys, ((numKeys + 15) / 16) * 16 + 240, tk, scratch);  // capacity beyond the context
        checkAttention(rng, 8, numKeys, numKeys + 1, tk, scratch);
        checkAttention(rng, 64, numKeys, numKeys, tk, scratch);
      }
    }
    checkAttention(rng, 1, 32768, 32768, tk, 513024);
    checkAttention(rng, 512, 700, 1024, tk, size_t(64) << 20);
  }

  // Greedy rows: vocabularies around the chunk sizes, ties inside and across chunks, infinities.
  std::normal_distribution<float> n01(0.0f, 4.0f);
  for (int V : {1, 5, 1000, 1024, 1025, 4097, 32000, 128256}) {
    for (int N : {1, 3, 64, 300}) {
      for (size_t scratch : {size_t(0), size_t(16) * 2 * N, size_t(4096) * N, size_t(128) << 20}) {
        std::vector<float> x(V);
        for (float& v : x) v = n01(rng);
        checkGreedy(rng, x, N, scratch, "random");
        // The maximum planted in several places: chunk edges, the end, the start; first one must win.
        const int chunkLen = std::max(1, greedyChunkLen(N, V, scratch));
        std::vector<int> at = {V - 1, std::min(V - 1, chunkLen), std::min(V - 1, chunkLen - 1), std::min(V - 1, 2 * chunkLen + 3)};
        std::shuffle(at.begin(), at.end(), rng);
        for (int i : at) x[i] = 100.0f;
        checkGreedy(rng, x, N, scratch, "planted ties");
        std::fill(x.begin(), x.end(), 0.5f);
        checkGreedy(rng, x, N, scratch, "all equal");
        std::fill(x.begin(), x.end(), -INFINITY);
        checkGreedy(rng, x, N, scratch, "all -inf");
        x[V / 2] = 3.0f;
        checkGreedy(rng, x, N, scratch, "one finite");
        x[V - 1] = INFINITY;
        checkGreedy(rng, x, N, scratch, "+inf");
      }
    }
  }
  std::printf("%d failures\n", failures);
  return failures == 0 ? 0 : 1;
}
