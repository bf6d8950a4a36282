// Per-row logit processing: penalties, logit bias, suppressed tokens, temperature, top-k / top-p / min-p filtering, a stateless seeded draw,
// and log-probabilities of the raw logits (sampled token, a target token, the top K).
#pragma once
#include <cstdint>
#include <vector>

namespace tslora::cpu {

struct SamplingParams {
  bool sample = true;
  float temperature = 0.0f;  // <= 0: greedy (argmax of the penalised logits)
  float topP = 1.0f;
  int topK = 0;  // <= 0: off
  float minP = 0.0f;
  uint64_t seed = 0;
  float repetitionPenalty = 1.0f;
  float frequencyPenalty = 0.0f;
  float presencePenalty = 0.0f;
  const int32_t* penaltyTokenIds = nullptr;
  const int32_t* penaltyOutputCounts = nullptr;
  int numPenaltyTokens = 0;
  // Tokens that must not be drawn (min_new_tokens: EOS and stop ids before enough tokens were generated): their
  // penalised logits become -inf. Ids outside [0, vocab) are ignored. Logprobs still come from the raw logits.
  const int32_t* suppressTokenIds = nullptr;
  int numSuppressTokens = 0;
  // logit_bias: biasValues[i] is added to the penalised logit of biasTokenIds[i] (distinct ids; ids outside
  // [0, vocab) are ignored), before the suppression and the draw. Logprobs still come from the raw logits.
  const int32_t* biasTokenIds = nullptr;
  const float* biasValues = nullptr;
  int numBiasTokens = 0;
  int targetTokenId = -1;
};

struct SamplingOutput {
  int32_t token = -1;
  float sampledLogprob = 0.0f;
  float targetLogprob = 0.0f;  // NaN without a target
};

// logits: [vocab] raw; topIds/topLogprobs: [topK] (may be 0). scratch is reused across calls.
SamplingOutput sampleRow(const float* logits, int vocab, const SamplingParams& p, int topLogprobsK, int32_t* topIds,
                         float* topLogprobs, std::vector<float>& scratch, std::vector<int32_t>& order);

// Uniform double in [0, 1) from a 64-bit seed (splitmix64 finaliser).
double uniformFromSeed(uint64_t seed);

}  // namespace tslora::cpu
