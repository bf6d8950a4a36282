// Rules of the split greedy rows (greedy.cu), shared with their host check (test/attention-greedy-rules-test.cpp).
// A logit row is cut into chunks; each chunk yields (max, FIRST index of its max, Σ exp(x − max) in fp64), and the
// chunks combine to exactly the CPU sampler's argmax (the first maximum of the row: greedyBeats orders equal values by
// index, so the combine order does not matter) and to its logsumexp (fp64 sum; chunk sums rescaled by
// exp(max_c − M) in fp64).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>

#include "host-device.h"

namespace tslora::cuda {

constexpr int32_t kNoIndex = 0x7fffffff;  // index of an empty (or all-NaN) chunk: loses every comparison

struct GreedyPartial {
  float max;      // −inf for an empty chunk
  int32_t idx;    // first index of max in the chunk, kNoIndex when none
  double sumExp;  // Σ exp(x − max) (fp32 exp, fp64 sum); 0 when max is not finite
};

// (v, i) replaces (best, bestIdx): larger, or equal at a lower index (the CPU argmax keeps the first maximum).
TSLORA_HD bool greedyBeats(float v, int32_t i, float best, int32_t bestIdx) {
  return v > best || (v == best && i < bestIdx);
}

TSLORA_HD bool greedyFinite(float x) {
#if defined(__CUDA_ARCH__)
  return isfinite(x);
#else
  return std::isfinite(x);
#endif
}

// A chunk's sum rescaled to the row maximum M (finite): chunks whose max is −inf hold no mass.
TSLORA_HD double greedyScaledSum(const GreedyPartial& p, float rowMax) {
  return p.max == -INFINITY ? 0.0 : p.sumExp * exp(static_cast<double>(p.max) - static_cast<double>(rowMax));
}

// logsumexp of the row from its max and the rescaled fp64 sum; a non-finite max is returned as is (the CPU rule).
TSLORA_HD double greedyLse(float rowMax, double sum) {
  return greedyFinite(rowMax) ? static_cast<double>(rowMax) + log(sum) : static_cast<double>(rowMax);
}

// Chunks per row of N rows of V logits: ~1k logits per chunk when few rows (latency: one row over many SMs), at most
// ~4k when many (bandwidth), never more than the scratch holds (16 bytes per chunk and row). Returns the chunk length;
// chunks = ceil(V / chunkLen), all non-empty. 0: fewer than two chunks fit, scan each row in one block.
inline int greedyChunkLen(int N, int V, size_t scratchBytes) {
  const long long byLatency = std::min<long long>((V + 1023LL) / 1024, (264LL + N - 1) / N);
  long long chunks = std::max<long long>((V + 4095LL) / 4096, byLatency);
  const long long fit = static_cast<long long>(scratchBytes / (static_cast<size_t>(N) * sizeof(GreedyPartial)));
  chunks = std::min({chunks, fit, 65535LL});
  if (chunks < 2) return 0;
  return static_cast<int>((V + chunks - 1) / chunks);
}

}  // namespace tslora::cuda
