#include "sampling.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

namespace tslora::cpu {

double uniformFromSeed(uint64_t seed) {
  uint64_t z = seed + 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return static_cast<double>(z >> 11) * (1.0 / 9007199254740992.0);
}

namespace {

double logSumExp(const float* x, int n) {
  float mx = -INFINITY;
  for (int i = 0; i < n; ++i) mx = std::max(mx, x[i]);
  if (!std::isfinite(mx)) return mx;
  double s = 0.0;
  for (int i = 0; i < n; ++i) s += std::exp(x[i] - mx);  // fp32 exp, fp64 sum: exact enough, 4x cheaper
  return mx + std::log(s);
}

int argmax(const float* x, int n) {
  int best = 0;
  for (int i = 1; i < n; ++i)
    if (x[i] > x[best]) best = i;
  return best;
}

void topLogprobsOf(const float* logits, int vocab, double lse, int k, int32_t* ids, float* lps,
                   std::vector<int32_t>& order) {
  k = std::min(k, vocab);
  order.resize(vocab);
  std::iota(order.begin(), order.end(), 0);
  auto better = [&](int32_t a, int32_t b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); };
  std::partial_sort(order.begin(), order.begin() + k, order.end(), better);
  for (int i = 0; i < k; ++i) {
    ids[i] = order[i];
    lps[i] = static_cast<float>(logits[order[i]] - lse);
  }
}

void applyPenalties(float* l, int vocab, const SamplingParams& p) {
  for (int i = 0; i < p.numPenaltyTokens; ++i) {
    int id = p.penaltyTokenIds[i];
    if (id < 0 || id >= vocab) continue;
    int count = p.penaltyOutputCounts[i];
    float v = l[id];
    if (p.repetitionPenalty != 1.0f) v = v > 0.0f ? v / p.repetitionPenalty : v * p.repetitionPenalty;
    v -= p.frequencyPenalty * static_cast<float>(count);
    if (count > 0) v -= p.presencePenalty;
    l[id] = v;
  }
}

void applyLogitBias(float* l, int vocab, const SamplingParams& p) {
  for (int i = 0; i < p.numBiasTokens; ++i) {
    const int id = p.biasTokenIds[i];
    if (id >= 0 && id < vocab) l[id] += p.biasValues[i];
  }
}

void applySuppression(float* l, int vocab, const SamplingParams& p) {
  for (int i = 0; i < p.numSuppressTokens; ++i) {
    const int id = p.suppressTokenIds[i];
    if (id >= 0 && id < vocab) l[id] = -INFINITY;
  }
}

// Draws from softmax(l / T) restricted by top-k / top-p / min-p (SGLang's joint rule on the sorted probabilities:
// a token is dropped when the mass before it exceeds top_p, when its rank is >= top_k, or when its probability is
// below min_p times the largest).
int drawToken(float* l, int vocab, const SamplingParams& p, std::vector<int32_t>& order) {
  const float invT = 1.0f / p.temperature;
  float mx = -INFINITY;
  for (int i = 0; i < vocab; ++i) {
    l[i] *= invT;
    mx = std::max(mx, l[i]);
  }
  double sum = 0.0;
  for (int i = 0; i < vocab; ++i) {
    float e = std::exp(l[i] - mx);
    l[i] = e;
    sum += e;
  }
  const float invSum = static_cast<float>(1.0 / sum);
  for (int i = 0; i < vocab; ++i) l[i] *= invSum;  // l now holds probabilities
  const float maxProb = std::exp(0.0f) * invSum;
  const float minProb = p.minP > 0.0f ? p.minP * maxProb : 0.0f;
  const bool useTopK = p.topK > 0 && p.topK < vocab;
  const bool useTopP = p.topP < 1.0f;
  const double u = uniformFromSeed(p.seed);

  if (!useTopK && !useTopP) {  // index order is fine: only min-p filters
    double kept = 0.0;
    for (int i = 0; i < vocab; ++i)
      if (l[i] >= minProb) kept += l[i];
    double target = u * kept, cum = 0.0;
    int last = -1;
    for (int i = 0; i < vocab; ++i) {
      if (l[i] < minProb) continue;
      cum += l[i];
      last = i;
      if (cum > target) return i;
    }
    return last >= 0 ? last : argmax(l, vocab);
  }

  order.resize(vocab);
  std::iota(order.begin(), order.end(), 0);
  auto better = [&](int32_t a, int32_t b) { return l[a] > l[b] || (l[a] == l[b] && a < b); };
  int candidates = useTopK ? p.topK : vocab;
  // Sort only as deep as needed: top-p rarely reaches past the first few hundred tokens of a large vocabulary, so
  // grow a sorted prefix until its mass exceeds top_p (a full sort of 150k ids per row would dominate the step).
  int sorted = 0;
  for (int depth = useTopP ? std::min(candidates, 256) : candidates;; depth = std::min(candidates, depth * 8)) {
    std::partial_sort(order.begin() + sorted, order.begin() + depth, order.end(), better);
    sorted = depth;
    if (sorted == candidates || !useTopP) break;
    double mass = 0.0;
    for (int i = 0; i < sorted; ++i) mass += l[order[i]];
    if (mass > p.topP) break;
  }
  candidates = std::min(candidates, sorted);
  int keptCount = 0;
  double before = 0.0, kept = 0.0;
  for (int i = 0; i < candidates; ++i) {
    float prob = l[order[i]];
    if (useTopP && before > p.topP) break;
    before += prob;
    if (prob < minProb) break;  // sorted: everything after is smaller too
    kept += prob;
    keptCount = i + 1;
  }
  if (keptCount == 0) return order[0];
  double target = u * kept, cum = 0.0;
  for (int i = 0; i < keptCount; ++i) {
    cum += l[order[i]];
    if (cum > target) return order[i];
  }
  return order[keptCount - 1];
}

}  // namespace

SamplingOutput sampleRow(const float* logits, int vocab, const SamplingParams& p, int topLogprobsK, int32_t* topIds,
                         float* topLogprobs, std::vector<float>& scratch, std::vector<int32_t>& order) {
  SamplingOutput out;
  const double lse = logSumExp(logits, vocab);
  if (topLogprobsK > 0) topLogprobsOf(logits, vocab, lse, topLogprobsK, topIds, topLogprobs, order);
  out.targetLogprob = p.targetTokenId >= 0 ? static_cast<float>(logits[p.targetTokenId] - lse)
                                           : std::numeric_limits<float>::quiet_NaN();
  if (!p.sample) return out;
  scratch.assign(logits, logits + vocab);
  applyPenalties(scratch.data(), vocab, p);
  applyLogitBias(scratch.data(), vocab, p);
  applySuppression(scratch.data(), vocab, p);
  if (p.temperature <= 0.0f || p.topK == 1) {
    out.token = argmax(scratch.data(), vocab);
  } else {
    out.token = drawToken(scratch.data(), vocab, p, order);
  }
  out.sampledLogprob = static_cast<float>(logits[out.token] - lse);
  return out;
}

}  // namespace tslora::cpu
