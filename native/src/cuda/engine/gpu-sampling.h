// Sampling on the GPU (issue #6): the CPU backend's sampler (native/src/cpu/sampling.cpp) as device kernels, so only
// tokens and log-probabilities come back instead of N × V logits. Same rules, row by row: log-probabilities of the
// raw logits (lse with an fp64 sum; sampled, target and the top K with ties to the lower id), repetition / frequency /
// presence penalties over the distinct-token CSR, logit_bias added, suppressed ids (min_new_tokens) set to -inf, greedy = first maximum of the penalised logits, otherwise
// softmax(l / T) with top-k / top-p / min-p (SGLang's joint rule on the probabilities sorted by (p desc, id asc))
// and the draw u · kept over the cumulative mass, where u = cpu::uniformFromSeed(seed) is computed on the host: the
// SAME stateless RNG as the CPU backend, so a seeded request draws the same token on both whenever the processed
// distributions agree closely (the sums here are block-parallel, not sequential).
#pragma once
#include <cstdint>

#include <cuda_runtime.h>

namespace tslora::cuda {

// One logit row's parameters (host-built, uploaded with the step's penalty CSR behind them).
struct SampleRowParams {
  double uniform = 0;  // cpu::uniformFromSeed(seed)
  float temperature = 0, topP = 1, minP = 0, repetition = 1, frequency = 0, presence = 0;
  int32_t topK = 0, sample = 1, target = -1, penaltyBegin = 0, penaltyEnd = 0;
  int32_t suppressBegin = 0, suppressEnd = 0;  // [begin, end) of this row's suppressed ids (min_new_tokens)
  int32_t biasBegin = 0, biasEnd = 0;          // [begin, end) of this row's logit_bias entries
  int32_t sorted = 0;  // 1: top-k / top-p row, drawn after the segmented sort
};

struct GpuSamplingArgs {
  const float* logits = nullptr;             // [N, V] raw fp32 logits
  int N = 0, V = 0, topLogprobsK = 0;
  const SampleRowParams* rows = nullptr;     // [N]
  const int32_t* penaltyIds = nullptr;       // [P]
  const int32_t* penaltyCounts = nullptr;    // [P]
  const int32_t* suppressIds = nullptr;      // [Q] ids each row must not draw (logit -> -inf after penalties)
  const int32_t* biasIds = nullptr;          // [B] logit_bias ids (distinct per row)
  const float* biasValues = nullptr;         // [B] added to the penalised logits before the suppression
  float* probs = nullptr;                    // [N, V] scratch: penalised logits, then probabilities
  float* sortedProbs = nullptr;              // [N, V]
  int32_t* idsIn = nullptr;                  // [N, V]
  int32_t* idsSorted = nullptr;              // [N, V]
  int32_t* segBegin = nullptr;               // [N] sort segments (empty for rows that need no sort)
  int32_t* segEnd = nullptr;                 // [N]
  double* lse = nullptr;                     // [N]
  // Results, one buffer: tokens [N] | sampled logprobs [N] | target logprobs [N] | top ids [N, K] | top logprobs [N, K]
  int32_t* tokens = nullptr;
  float* sampledLogprobs = nullptr;
  float* targetLogprobs = nullptr;
  int32_t* topIds = nullptr;
  float* topLogprobs = nullptr;
  void* sortTemp = nullptr;                  // CUB temp storage
  size_t sortTempBytes = 0;
  bool anySorted = false;
};

// CUB temp bytes for sorting N rows of V (call once per shape; the caller allocates them).
size_t gpuSamplingSortTempBytes(int N, int V);
// Every kernel of one step's sampling on `stream` (no synchronisation).
cudaError_t launchGpuSampling(const GpuSamplingArgs& a, cudaStream_t stream);

}  // namespace tslora::cuda
