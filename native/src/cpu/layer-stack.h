// What one pass over the decoder layers (and the LM head) works on: the whole model, or one tensor-parallel rank's
// shard of it (native/src/cpu/tp). The code (forward.cpp) is the same for both; a shard differs only in its local
// head / intermediate / vocabulary counts, its weight slices, its KV cache and LoRA pool, and the all-reduce
// after the row-parallel projections (o_proj, down_proj).
#pragma once
#include <cstddef>
#include <functional>
#include <vector>

#include "gemm.h"
#include "kv-cache.h"
#include "model-init.h"
#include "step-io.h"

namespace tslora {
class ThreadPool;
}
namespace tslora::lora {
class LoraPool;
}

namespace tslora::cpu {

struct LayerWeights {
  WeightView q, k, v, o, gate, up, down;
  std::vector<float> inputNorm, postAttentionNorm, qBias, kBias, vBias, qNorm, kNorm;  // small: kept as fp32
};

struct LayerStack {
  ModelDims dims;  // numHeads, numKvHeads, intermediate: this stack's own (a rank's local counts)
  const std::vector<LayerWeights>* layers = nullptr;
  const float* invFreq = nullptr;  // [headDim / 2]
  KvCache* kv = nullptr;
  const lora::LoraPool* lora = nullptr;  // null = LoRA off
  ThreadPool* threads = nullptr;
  // Sums rows [T, hidden] of partial o_proj / down_proj outputs over the ranks in place; empty on a single rank.
  std::function<void(float* rows, size_t numFloats)> allReduce;
};

// Every decoder layer over the step's T rows; hidden [T, hidden] is the residual stream (in and out).
// loraStep: the step's lora::StepLora over the T rows, null when no row uses an adapter.
void runDecoderLayers(const LayerStack& stack, const StepInputView& step, std::vector<float>& hidden,
                      const void* loraStep);

// Final-norms the step's logit rows into finalRows [N, hidden] and writes the logits of LM head rows lmHead
// (vocabulary ids [vocabOffset, vocabOffset + lmHead.rows)) into columns of logits [N, ldLogits].
void computeLogitRows(ThreadPool& threads, const StepInputView& step, const std::vector<float>& hidden,
                      const ModelDims& dims, const std::vector<float>& finalNorm, const WeightView& lmHead,
                      int vocabOffset, std::vector<float>& finalRows, float* logits, int ldLogits);

}  // namespace tslora::cpu
