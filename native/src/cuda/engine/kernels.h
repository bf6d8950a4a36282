// Elementwise / row kernels of the CUDA forward (everything except the GEMMs and the LoRA kernels).
// Activations are bf16 or fp16 (Act); the residual stream and all reductions are fp32.
#pragma once
#include <cstdint>

#include <cuda_runtime.h>

namespace tslora::cuda {

enum class Act : int { BF16 = 0, F16 = 1 };

// Shapes of one attention layer and the step's per-token tables (device pointers).
struct AttnTables {
  const int32_t* positions = nullptr;    // [T]
  const int32_t* tokenSeq = nullptr;     // [T] sequence of each token row
  const int32_t* blockTables = nullptr;  // [B * maxBlocksPerSeq]
  int maxBlocksPerSeq = 0;
  int blockSize = 0;
  int numSeqs = 0;  // sequences among the T rows (0: unknown); picks the prefill attention kernel, never correctness
};

struct HeadShape {
  int numHeads = 0, numKvHeads = 0, headDim = 0;
};

// A LoRA delta the side expand stored beside a projection's output y (lora_kernels.cuh loraExpandSmallDelta), which the
// projection's consumer takes in as act_round(y + delta): fp32 (the default: bit for bit what the in-place expand
// leaves in y), or with act in the activation dtype (TSLORA_CUDA_LORA_DELTA_ACT=1, opt-in: half the bytes at 64 rows;
// the delta then rounded once more, as PEFT rounds lora_B's output). values null: no delta.
struct LoraDeltaIn {
  const void* values = nullptr;  // [rows, stride] fp32, or Act when act
  bool act = false;
};

// hidden[t, :] = embed[tokenIds[t], :] (fp32).   embed: [V, H] Act
cudaError_t launchEmbed(Act act, const void* embed, const int32_t* tokenIds, int T, int H, float* hidden, cudaStream_t s);

// For each row r: if add, hidden[src] += add[r]; if w, out[r] = w ⊙ rmsnorm(hidden[src]) (src = rowMap ? rowMap[r]
// : r). hidden: [*, H] fp32; add, out: [rows, H] Act.
// addDelta (optional, [rows, H], with add only): a LoRA delta of the projection in add, stored beside it by the
// side expand (LoraDeltaIn); add[r] is taken as act_round(add[r] + addDelta[r]) (act-convert.cuh withDelta), with an
// fp32 delta bit for bit what the in-place expand would have left in add.
cudaError_t launchAddRmsNorm(Act act, float* hidden, const void* add, const float* w, void* out, const int32_t* rowMap,
                             int rows, int H, float eps, cudaStream_t s, LoraDeltaIn addDelta = {});

// Per token: qkv row (+ bias) → optional per-head q/k RMSNorm → RoPE (rotate_half) → q to qOut, k and v into the
// paged cache of this layer ([numBlocks][blockSize][numKvHeads][headDim] each).   qkv: [T, q|k|v] Act
// qkvDelta (optional, [T, q|k|v]): the side expand's LoRA delta, taken in as act_round(qkv + qkvDelta) before the
// bias (as launchAddRmsNorm's addDelta).
cudaError_t launchQkvPost(Act act, const void* qkv, int T, const HeadShape& hs, const float* qBias, const float* kBias,
                          const float* vBias, const float* qNorm, const float* kNorm, float eps, const float* invFreq,
                          const AttnTables& tabs, void* qOut, void* kCache, void* vCache, cudaStream_t s,
                          LoraDeltaIn qkvDelta = {});

// Causal paged attention (attention.cu): token t attends to positions [0, positions[t]] of its sequence (GQA: head h
// reads KV head h / (numHeads / numKvHeads)). Rows of sequences with many rows in the step (prompt chunks; needs
// tabs.numSeqs) run on tensor cores (attention-prefill.cu), the others in the key-split kernel. scratch (device, 16-byte aligned, may be null) holds the partial
// results when a token's keys are split over several blocks: up to scratchBytes are used, and the number of splits
// shrinks to fit (one split, no scratch, when it is null or small). It must not alias q, the cache or out; the forward
// lends the logits buffer, unused until the LM head.   q, out: [T, numHeads * headDim] Act
cudaError_t launchAttention(Act act, const void* q, int T, const HeadShape& hs, float scale, const AttnTables& tabs,
                            const void* kCache, const void* vCache, void* out, void* scratch, size_t scratchBytes,
                            cudaStream_t s);

// launchQkvPost (models without q/k norms: bias + RoPE) and launchAttention as one launch, for steps whose rows are
// one token each of distinct sequences (tabs.numSeqs == T, e.g. decode): each attention block (token, KV head, key
// split) takes its GQA group's q heads straight from the qkv rows, and the block whose keys hold the token's own
// position first writes the token's k and v head into the paged cache. Bit-identical to the two launches (q is
// rounded to Act as launchQkvPost stores it); q is not written. cudaErrorNotSupported, with nothing launched, where
// it does not apply (several rows of one sequence, a shape the split kernel does not take): run the two launches.
struct QkvRope {
  const void* qkv = nullptr;  // [T, q | k | v] Act
  const float* qBias = nullptr;
  const float* kBias = nullptr;
  const float* vBias = nullptr;
  const float* invFreq = nullptr;  // [headDim / 2]
  LoraDeltaIn delta;               // optional [T, q | k | v]: the side expand's LoRA delta (launchQkvPost's qkvDelta)
};
cudaError_t launchQkvRopeAttention(Act act, const QkvRope& src, int T, const HeadShape& hs, float scale,
                                   const AttnTables& tabs, void* kCache, void* vCache, void* out, void* scratch,
                                   size_t scratchBytes, cudaStream_t s);

// act[t, i] = silu(gu[t, i]) * gu[t, I + i].   gu: [T, 2I], act: [T, I]
// guDelta (optional, [T, 2I]): the side expand's LoRA delta, gu taken as act_round(gu + guDelta).
cudaError_t launchSwiglu(Act act, const void* gu, int T, int I, void* out, cudaStream_t s, LoraDeltaIn guDelta = {});

// out[i] += delta[i] for i < n: the lm_head LoRA delta (computed by the LoRA pool in the activation dtype into a
// zeroed buffer) added to the fp32 logits.   delta: [n] Act, out: [n] fp32
cudaError_t launchAddDeltaToF32(Act act, const void* delta, size_t n, float* out, cudaStream_t s);

// Greedy rows on the GPU (greedy.cu; the common serving case, no logits copied back): per row n of logits [N, V]
// fp32, the first index of the maximum and its log-softmax (logit − logsumexp, summed in fp64), what the CPU
// sampleRow returns for temperature 0 without penalties. Each row is split into chunks over many blocks
// (greedy-rule.h) whose partials go to scratch (device, 8-byte aligned, not aliasing logits or the outputs; 16 bytes
// per chunk and row); without room for two chunks per row, one block per row scans it all.
cudaError_t launchGreedyRows(const float* logits, int N, int V, int32_t* tokens, float* logprobs, void* scratch,
                             size_t scratchBytes, cudaStream_t s);

}  // namespace tslora::cuda
