// Prefill attention on tensor cores (attention-prefill.cu), used by launchAttention (attention.cu) for steps whose
// sequences bring many tokens each; decode-like steps keep the split kernel of attention.cu.
#pragma once
#include <cuda_runtime.h>

#include "kernels.h"

namespace tslora::cuda {

// Whether the tensor-core kernel takes this step: head dim 64 or 128, at most 16 q heads per KV head, ≥ 64 tokens
// and ≥ 16 tokens per sequence on average (numSeqs = 0: unknown, never).
bool prefillAttentionFits(int T, int numSeqs, const HeadShape& hs);

// Same contract as launchAttention (q, kCache, vCache 16-byte aligned); bf16 = activations are bf16, else fp16.
cudaError_t launchPrefillAttention(bool bf16, const void* q, int T, const HeadShape& hs, float scale,
                                   const AttnTables& tabs, const void* kCache, const void* vCache, void* out,
                                   cudaStream_t s);

}  // namespace tslora::cuda
