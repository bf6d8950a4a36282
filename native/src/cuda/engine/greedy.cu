// Greedy rows on the GPU (kernels.h: launchGreedyRows). A row of 128k logits read by one block is latency-bound
// (~170 µs on an H200), so each row is cut into chunks: grid (N, chunks) blocks each reduce their chunk to
// (max, first index of max, Σ exp(x − max) in fp64) (greedy-rule.h), then one warp per row combines the chunks.
// One block per row (greedyWholeRowKernel) remains for when the scratch cannot hold two chunks per row.
// The kernels are programmatic dependents (pdl.h) of the LM head: they wait before reading the logits.
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "greedy-rule.h"
#include "kernels.h"
#include "pdl.h"

namespace tslora::cuda {
namespace {

constexpr int kChunkThreads = 256;
constexpr int kChunkWarps = kChunkThreads / 32;

__device__ __forceinline__ void warpBest(float& best, int32_t& bestIdx) {
  for (int o = 16; o > 0; o >>= 1) {
    const float v = __shfl_xor_sync(0xffffffffu, best, o);
    const int32_t i = __shfl_xor_sync(0xffffffffu, bestIdx, o);
    if (greedyBeats(v, i, best, bestIdx)) {
      best = v;
      bestIdx = i;
    }
  }
}

__device__ __forceinline__ double warpSumD(double v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// Max / first argmax and fp64 Σ exp(x − max) of x[begin, end) over the block; thread 0 gets the partial.
__device__ GreedyPartial blockChunkPartial(const float* x, int begin, int end) {
  __shared__ float sBest[kChunkWarps];
  __shared__ int32_t sIdx[kChunkWarps];
  __shared__ double sSum[kChunkWarps];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  float best = -INFINITY;
  int32_t bestIdx = kNoIndex;
  for (int i = begin + threadIdx.x; i < end; i += kChunkThreads) {
    const float v = x[i];
    if (greedyBeats(v, i, best, bestIdx)) {
      best = v;
      bestIdx = i;
    }
  }
  warpBest(best, bestIdx);
  if (lane == 0) {
    sBest[warp] = best;
    sIdx[warp] = bestIdx;
  }
  __syncthreads();
  best = sBest[0];
  bestIdx = sIdx[0];
  for (int w = 1; w < kChunkWarps; ++w)
    if (greedyBeats(sBest[w], sIdx[w], best, bestIdx)) {
      best = sBest[w];
      bestIdx = sIdx[w];
    }
  double sum = 0.0;
  if (greedyFinite(best))
    for (int i = begin + threadIdx.x; i < end; i += kChunkThreads) sum += static_cast<double>(expf(x[i] - best));
  sum = warpSumD(sum);
  if (lane == 0) sSum[warp] = sum;
  __syncthreads();
  GreedyPartial p{best, bestIdx, 0.0};
  if (threadIdx.x == 0)
    for (int w = 0; w < kChunkWarps; ++w) p.sumExp += sSum[w];
  return p;
}

// Grid (N, chunks): partial of chunk c of row n → parts[n * chunks + c].
__global__ void __launch_bounds__(kChunkThreads)
    greedyChunkKernel(const float* logits, int V, int chunkLen, GreedyPartial* parts) {
  pdlLaunchDependents();
  pdlWait();
  const int n = blockIdx.x, c = blockIdx.y, chunks = gridDim.y;
  const float* x = logits + static_cast<size_t>(n) * V;
  const int begin = c * chunkLen, end = min(V, begin + chunkLen);
  const GreedyPartial p = blockChunkPartial(x, begin, end);
  if (threadIdx.x == 0) parts[static_cast<size_t>(n) * chunks + c] = p;
}

// Writes row n's token and logprob from its maximum, first argmax and fp64 sum relative to the maximum.
__device__ void writeGreedy(const float* x, float rowMax, int32_t idx, double sum, int n, int32_t* tokens,
                            float* logprobs) {
  const int32_t token = idx == kNoIndex ? 0 : idx;  // all-NaN row: index 0, like the CPU argmax
  const double lse = greedyLse(rowMax, sum);
  tokens[n] = token;
  logprobs[n] = static_cast<float>(static_cast<double>(x[token]) - lse);
}

// Grid N, one warp: combine the chunks of row n.
__global__ void greedyCombineKernel(const float* logits, int V, const GreedyPartial* parts, int chunks,
                                    int32_t* tokens, float* logprobs) {
  pdlLaunchDependents();
  pdlWait();
  const int n = blockIdx.x, lane = threadIdx.x;
  const GreedyPartial* row = parts + static_cast<size_t>(n) * chunks;
  float best = -INFINITY;
  int32_t bestIdx = kNoIndex;
  for (int c = lane; c < chunks; c += 32)
    if (greedyBeats(row[c].max, row[c].idx, best, bestIdx)) {
      best = row[c].max;
      bestIdx = row[c].idx;
    }
  warpBest(best, bestIdx);
  double sum = 0.0;
  if (greedyFinite(best))
    for (int c = lane; c < chunks; c += 32) sum += greedyScaledSum(row[c], best);
  sum = warpSumD(sum);
  if (lane == 0) writeGreedy(logits + static_cast<size_t>(n) * V, best, bestIdx, sum, n, tokens, logprobs);
}

// Grid N: the whole row in one block (no scratch).
__global__ void __launch_bounds__(kChunkThreads)
    greedyWholeRowKernel(const float* logits, int V, int32_t* tokens, float* logprobs) {
  pdlLaunchDependents();
  pdlWait();
  const int n = blockIdx.x;
  const float* x = logits + static_cast<size_t>(n) * V;
  const GreedyPartial p = blockChunkPartial(x, 0, V);
  if (threadIdx.x == 0) writeGreedy(x, p.max, p.idx, p.sumExp, n, tokens, logprobs);
}

}  // namespace

cudaError_t launchGreedyRows(const float* logits, int N, int V, int32_t* tokens, float* logprobs, void* scratch,
                             size_t scratchBytes, cudaStream_t s) {
  if (N == 0) return cudaSuccess;
  if (V <= 0) return cudaErrorInvalidValue;
  const bool aligned = (reinterpret_cast<uintptr_t>(scratch) & 7u) == 0;
  const int chunkLen = scratch && aligned ? greedyChunkLen(N, V, scratchBytes) : 0;
  if (chunkLen == 0) {
    return pdlLaunch(greedyWholeRowKernel, N, kChunkThreads, 0, s, logits, V, tokens, logprobs);
  }
  const int used = (V + chunkLen - 1) / chunkLen;  // every chunk non-empty
  auto* parts = static_cast<GreedyPartial*>(scratch);
  const cudaError_t status = pdlLaunch(greedyChunkKernel, dim3(N, used), kChunkThreads, 0, s, logits, V, chunkLen, parts);
  if (status != cudaSuccess) return status;
  return pdlLaunch(greedyCombineKernel, N, 32, 0, s, logits, V, static_cast<const GreedyPartial*>(parts), used, tokens,
                   logprobs);
}

}  // namespace tslora::cuda
