// Prefill attention on tensor cores (attention-prefill.cu), used by launchAttention (attention.cu) for steps whose
// sequences bring many tokens each; decode-like steps keep the split kernel of attention.cu.
#pragma once
#include <cuda_runtime.h>

#include "kernels.h"

namespace tslora::cuda {

// Whether to launch the tensor-core kernel for this step: head dim 64 or 128, G ≤ 16 and G · D ≤ 1024, ≥ 64 rows of
// which some sequence may own ≥ kPrefillMinRows (numSeqs = 0: unknown, never). It computes the rows of sequences with
// ≥ kPrefillMinRows rows only; the split kernel of attention.cu, told to skip those, the others.
bool prefillAttentionFits(int T, int numSeqs, const HeadShape& hs);

// Same contract as launchAttention (q, kCache, vCache 16-byte aligned); bf16 = activations are bf16, else fp16.
// The mma.sync kernel (attention-prefill-mma.cuh) instead of the WMMA one: TSLORA_CUDA_PREFILL_ATTN_MMA=1 at start-up or
// this setter (process-wide, not concurrently with launches; tests A/B the two).
void setPrefillAttentionMma(bool on);
bool prefillAttentionMmaOn();

cudaError_t launchPrefillAttention(bool bf16, const void* q, int T, const HeadShape& hs, float scale,
                                   const AttnTables& tabs, const void* kCache, const void* vCache, void* out,
                                   cudaStream_t s);

}  // namespace tslora::cuda
