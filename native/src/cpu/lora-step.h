// The LoRA segment tables of one forward step: the runner's token segments (spec e.3) and the segments of the
// logit rows derived from them for lm_head. Shared by the single-model forward and the tensor-parallel one.
#pragma once
#ifdef TSLORA_HAVE_LORA
#include <cstdint>
#include <vector>

#include "../lora/lora.h"
#include "step-io.h"

namespace tslora::cpu {

struct LoraStep {
  lora::StepLora tokens;  // over the step's T rows, as the runner built it
  lora::StepLora logits;  // over the N logit rows (lm_head), derived by buildLogitSegments
  std::vector<int32_t> logitIndptr, logitWeights, logitPermutation;
  bool active = false;  // some segment uses a slot
};

// Whether the forward fuses a single-slot LoRA shrink into the base GEMM (default on; TSLORA_LORA_FUSED_SHRINK=0
// or the testing op setLoraShrinkFusion turn it off, for benchmarks of both ways in one run). Between steps only.
bool loraShrinkFusion();
void setLoraShrinkFusion(bool on);
// Whether the expand of a fused shrink runs in the base GEMM's epilogue, each thread over the output columns it just
// wrote (default on; TSLORA_LORA_FUSED_EXPAND=0 or setLoraExpandFusion(false): a parallel pass of its own after the
// GEMM, bitwise the same result). Only with the shrink fused. Between steps only.
bool loraExpandFusion();
void setLoraExpandFusion(bool on);

// Fills ls.tokens (views of the step's arrays) and ls.active.
void initTokenSegments(const StepInputView& s, LoraStep& ls);

// Segments of the logit rows for lm_head LoRA: each logit row inherits its token row's slot; csgmv groups rows by
// slot (stable) into chunks, triton keeps one segment per run of equal slots.
void buildLogitSegments(const StepInputView& s, LoraStep& ls);

}  // namespace tslora::cpu
#endif
