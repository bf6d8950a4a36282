// LoRA segment tables of a step (see lora-step.h).
#include "lora-step.h"

#ifdef TSLORA_HAVE_LORA
#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>

namespace tslora::cpu {

namespace {
bool envOn(const char* name) {  // on unless the variable is "0"
  const char* s = std::getenv(name);
  return !(s && std::strcmp(s, "0") == 0);
}
std::atomic<bool> gShrinkFusion{envOn("TSLORA_LORA_FUSED_SHRINK")};
std::atomic<bool> gExpandFusion{envOn("TSLORA_LORA_FUSED_EXPAND")};
}  // namespace

bool loraShrinkFusion() { return gShrinkFusion.load(std::memory_order_relaxed); }
void setLoraShrinkFusion(bool on) { gShrinkFusion.store(on, std::memory_order_relaxed); }
bool loraExpandFusion() { return gExpandFusion.load(std::memory_order_relaxed); }
void setLoraExpandFusion(bool on) { gExpandFusion.store(on, std::memory_order_relaxed); }

void initTokenSegments(const StepInputView& step, LoraStep& ls) {
  ls.active = false;
  for (size_t g = 0; g < step.loraWeightIndices.size; ++g) ls.active |= step.loraWeightIndices[g] >= 0;
  ls.tokens.csgmv = step.loraCsgmv;
  ls.tokens.segIndptr = step.loraSegIndptr.data;
  ls.tokens.weightIndices = step.loraWeightIndices.data;
  ls.tokens.numSegments = static_cast<int>(step.loraWeightIndices.size);
  ls.tokens.permutation = step.loraPermutation.size ? step.loraPermutation.data : nullptr;
  ls.tokens.numTokens = static_cast<int>(step.tokenIds.size);
  ls.tokens.chunkSize = step.loraChunkSize;
}

void buildLogitSegments(const StepInputView& s, LoraStep& ls) {
  const size_t T = s.tokenIds.size, N = s.logitRows.size;
  std::vector<int32_t> rowSlot(T, -1);
  for (size_t g = 0; g < s.loraWeightIndices.size; ++g) {
    for (int m = s.loraSegIndptr[g]; m < s.loraSegIndptr[g + 1]; ++m) {
      int row = s.loraPermutation.size ? s.loraPermutation[m] : m;
      rowSlot[row] = s.loraWeightIndices[g];
    }
  }
  std::vector<int32_t> order(N);
  for (size_t i = 0; i < N; ++i) order[i] = static_cast<int32_t>(i);
  const bool csgmv = s.loraCsgmv;
  if (csgmv) {
    std::stable_sort(order.begin(), order.end(),
                     [&](int32_t a, int32_t b) { return rowSlot[s.logitRows[a]] < rowSlot[s.logitRows[b]]; });
  }
  const int chunk = csgmv ? std::max(1, s.loraChunkSize) : static_cast<int>(std::max<size_t>(N, 1));
  ls.logitIndptr = {0};
  ls.logitWeights.clear();
  int longest = 1;
  for (size_t i = 0; i < N;) {
    int slot = rowSlot[s.logitRows[order[i]]];
    size_t j = i;
    while (j < N && rowSlot[s.logitRows[order[j]]] == slot && static_cast<int>(j - i) < chunk) ++j;
    ls.logitIndptr.push_back(static_cast<int32_t>(j));
    ls.logitWeights.push_back(slot);
    longest = std::max(longest, static_cast<int>(j - i));
    i = j;
  }
  ls.logitPermutation = csgmv ? order : std::vector<int32_t>();
  ls.logits.csgmv = csgmv;
  ls.logits.segIndptr = ls.logitIndptr.data();
  ls.logits.weightIndices = ls.logitWeights.data();
  ls.logits.numSegments = static_cast<int>(ls.logitWeights.size());
  ls.logits.permutation = csgmv ? ls.logitPermutation.data() : nullptr;
  ls.logits.numTokens = static_cast<int>(N);
  ls.logits.chunkSize = csgmv ? chunk : longest;
}
}  // namespace tslora::cpu
#endif
