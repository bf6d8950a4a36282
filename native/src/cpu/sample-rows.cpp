#include "sample-rows.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "sampling.h"
#include "tslora/parallel.h"

namespace tslora::cpu {

void sampleRows(const StepInputView& s, const float* logits, int vocab, ThreadPool& threads, StepOutputData& out) {
  const int N = static_cast<int>(s.logitRows.size);
  const int V = vocab;
  int K = 0;
  for (int i = 0; i < N; ++i) K = std::max(K, static_cast<int>(s.topLogprobsNum[i]));
  out.topLogprobsK = K;
  out.sampledTokenIds.assign(N, -1);
  out.sampledLogprobs.assign(N, std::nanf(""));
  out.targetLogprobs.assign(N, std::nanf(""));
  out.topLogprobIds.assign(static_cast<size_t>(N) * K, -1);
  out.topLogprobs.assign(static_cast<size_t>(N) * K, std::nanf(""));
  parallelFor(threads, 0, N, 1, [&](int i0, int i1) {
    thread_local std::vector<float> scratch;
    thread_local std::vector<int32_t> order;
    for (int i = i0; i < i1; ++i) {
      SamplingParams p;
      p.sample = s.sampleMask[i] != 0;
      p.temperature = s.temperature[i];
      p.topP = s.topP[i];
      p.topK = s.topK[i];
      p.minP = s.minP[i];
      p.seed = static_cast<uint64_t>(s.rngSeeds[2 * i]) | static_cast<uint64_t>(s.rngSeeds[2 * i + 1]) << 32;
      p.repetitionPenalty = s.repetitionPenalty[i];
      p.frequencyPenalty = s.frequencyPenalty[i];
      p.presencePenalty = s.presencePenalty[i];
      p.penaltyTokenIds = s.penaltyTokenIds.data + s.penaltyIndptr[i];
      p.penaltyOutputCounts = s.penaltyOutputCounts.data + s.penaltyIndptr[i];
      p.numPenaltyTokens = s.penaltyIndptr[i + 1] - s.penaltyIndptr[i];
      p.targetTokenId = s.targetTokenIds[i];
      if (s.suppressIndptr.size > 0) {  // min_new_tokens: EOS and stop ids before the minimum
        p.suppressTokenIds = s.suppressTokenIds.data + s.suppressIndptr[i];
        p.numSuppressTokens = s.suppressIndptr[i + 1] - s.suppressIndptr[i];
      }
      if (s.biasIndptr.size > 0) {  // logit_bias
        p.biasTokenIds = s.biasTokenIds.data + s.biasIndptr[i];
        p.biasValues = s.biasValues.data + s.biasIndptr[i];
        p.numBiasTokens = s.biasIndptr[i + 1] - s.biasIndptr[i];
      }
      SamplingOutput r = sampleRow(logits + static_cast<size_t>(i) * V, V, p, K,
                                   out.topLogprobIds.data() + static_cast<size_t>(i) * K,
                                   out.topLogprobs.data() + static_cast<size_t>(i) * K, scratch, order);
      if (p.sample) {
        out.sampledTokenIds[i] = r.token;
        out.sampledLogprobs[i] = r.sampledLogprob;
      }
      out.targetLogprobs[i] = r.targetLogprob;
    }
  });
}

}  // namespace tslora::cpu
