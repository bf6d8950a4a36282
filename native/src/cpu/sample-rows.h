// Host sampling of a step's logit rows with the CPU sampler (sampling.h): the CPU backend's sampling, and the CUDA
// backend's for rows it samples on the host (TSLORA_CUDA_HOST_SAMPLING=1, or logits too large for the GPU sampler).
#pragma once
#include "step-io.h"

namespace tslora {
class ThreadPool;
}

namespace tslora::cpu {

// logits: [step.logitRows.size, vocab] fp32. Fills out's sampled tokens and logprobs, target logprobs and top-K
// logprobs (K = the largest topLogprobsNum of the step); rows split over `threads`.
void sampleRows(const StepInputView& step, const float* logits, int vocab, ThreadPool& threads, StepOutputData& out);

}  // namespace tslora::cpu
