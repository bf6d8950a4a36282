// One forward step's inputs (views of the JS typed arrays, valid during the call) and outputs.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace tslora::cpu {

template <typename T>
struct Span {
  const T* data = nullptr;
  size_t size = 0;
  const T& operator[](size_t i) const { return data[i]; }
};

struct StepInputView {
  Span<int32_t> tokenIds, positions, seqTokenStart, seqContextLen, blockTables;
  int maxBlocksPerSeq = 0;
  bool loraCsgmv = true;
  Span<int32_t> loraSegIndptr, loraWeightIndices, loraPermutation;
  int loraChunkSize = 16;
  Span<int32_t> logitRows;
  Span<uint8_t> sampleMask;
  Span<float> temperature, topP;
  Span<int32_t> topK;
  Span<float> minP;
  Span<uint32_t> rngSeeds;
  Span<float> repetitionPenalty, frequencyPenalty, presencePenalty;
  Span<int32_t> penaltyIndptr, penaltyTokenIds, penaltyOutputCounts, targetTokenIds, topLogprobsNum;
  // Optional CSR of token ids each row must not sample (min_new_tokens); both empty = none. [N+1] and [S].
  Span<int32_t> suppressIndptr, suppressTokenIds;
  // Optional CSR of logit_bias entries per row: [N+1], [B] token ids, [B] values; all empty = none.
  Span<int32_t> biasIndptr, biasTokenIds;
  Span<float> biasValues;
  bool returnLogits = false;
};

struct StepOutputData {
  std::vector<int32_t> sampledTokenIds;
  std::vector<float> sampledLogprobs, targetLogprobs;
  std::vector<int32_t> topLogprobIds;
  std::vector<float> topLogprobs;
  int topLogprobsK = 0;
  std::vector<float> logits;  // [N * V] when returnLogits
};

}  // namespace tslora::cpu
