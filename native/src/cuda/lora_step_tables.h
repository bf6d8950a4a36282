// The host half of DeviceLoraPool::setStep (lora_device_pool.cu): a StepLora's segments turned into the tables the
// LoRA kernels read, without CUDA, so that CI checks it on the CPU (native/src/cuda/test/lora_step_tables_test.cpp).
//  - checked: segment bounds within [0, T], slots in [-1, numSlots), permutation entries in [0, T);
//  - split: adapter segments longer than maxChunkRows go up as several (a csgmv decode graph on 16-row tiles);
//  - coalesced (the device pool's default for csgmv prefill since session 23): consecutive segments of one slot go up as one (a csgmv prefill on the long-tile kernels);
//  - padded: segments [n, maxSegments) empty, of the base slot (spec e.10).
// What the store-form expand (loraExpandStore) needs is measured too: whether the segments hold every row exactly once,
// and the longest segment with base ones counted.
#pragma once
#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "lora.h"

namespace tslora::cuda::lora {

struct StepTableLimits {
  int numSlots = 0;
  int maxSegments = 0;        // the tables' length (padding up to it)
  int segmentBudget = 0;      // at most this many segments after splitting (the pool's, or a captured grid's)
  int maxChunkRows = 0;       // adapter segments are split into chunks of at most this many rows
  bool coalesce = false;      // merge consecutive segments of one slot
};

struct StepTableShape {
  int segments = 0;           // segments after splitting / merging (before padding)
  int longestAdapterRows = 1; // the longest adapter segment (at least 1): what the kernels' tiles are sized for
  int longestRows = 0;        // the longest segment, base segments included
  bool coversAllRows = false; // every row 0..T-1 in exactly one segment (indptr 0 → T, a bijective permutation)
};

// Writes indptr [maxSegments + 1], weights / segRanks [maxSegments] and perm [T] (identity without a permutation);
// slotRanks: the host mirror of the slots' ranks; rowSeen: the coverage check's scratch, the caller's so that a step
// allocates nothing. Throws std::invalid_argument on bad metadata.
inline StepTableShape buildStepTables(const tslora::lora::StepLora& step, const StepTableLimits& lim, const int32_t* slotRanks,
                                      int32_t* indptr, int32_t* weights, int32_t* segRanks, int32_t* perm,
                                      std::vector<char>& rowSeen) {
  const int G = step.numSegments, T = step.numTokens;
  StepTableShape shape;
  int& segments = shape.segments;
  indptr[0] = G > 0 ? step.segIndptr[0] : 0;
  for (int g = 0; g < G; ++g) {
    const int begin = step.segIndptr[g], end = step.segIndptr[g + 1], slot = step.weightIndices[g];
    if (begin < 0 || end < begin || end > T || slot < -1 || slot >= lim.numSlots)
      throw std::invalid_argument("LoRA device pool: segment " + std::to_string(g) + " is out of range");
    if (lim.coalesce && segments > 0 && weights[segments - 1] == slot) {  // segment g begins where g - 1 ends (one indptr)
      indptr[segments] = end;
      if (slot >= 0) shape.longestAdapterRows = std::max(shape.longestAdapterRows, end - indptr[segments - 1]);
      continue;
    }
    const int rowsPerChunk = slot >= 0 ? lim.maxChunkRows : T + 1;  // base segments do no work: never split
    for (int chunkBegin = begin;;) {
      const int chunkEnd = std::min(end, chunkBegin + rowsPerChunk);
      if (segments >= lim.segmentBudget)
        throw std::invalid_argument("LoRA device pool: step has more than " + std::to_string(lim.segmentBudget) +
                                    " segments once split into " + std::to_string(lim.maxChunkRows) + "-row chunks");
      indptr[segments + 1] = chunkEnd;
      weights[segments] = slot;
      segRanks[segments] = slot >= 0 ? slotRanks[slot] : 0;
      ++segments;
      if (slot >= 0) shape.longestAdapterRows = std::max(shape.longestAdapterRows, chunkEnd - chunkBegin);
      chunkBegin = chunkEnd;
      if (chunkBegin >= end) break;
    }
  }
  for (int g = segments; g < lim.maxSegments; ++g) {  // padding: empty segments of the base slot (spec e.10)
    indptr[g + 1] = indptr[segments];
    weights[g] = -1;
    segRanks[g] = 0;
  }
  for (int p = 0; p < T; ++p) {
    perm[p] = step.permutation ? step.permutation[p] : p;
    if (perm[p] < 0 || perm[p] >= T) throw std::invalid_argument("LoRA device pool: permutation entry out of range");
  }
  for (int g = 0; g < segments; ++g) shape.longestRows = std::max(shape.longestRows, indptr[g + 1] - indptr[g]);
  shape.coversAllRows = G > 0 ? step.segIndptr[0] == 0 && step.segIndptr[G] == T : T == 0;
  if (shape.coversAllRows && step.permutation != nullptr) {
    rowSeen.assign(T, 0);
    for (int p = 0; p < T && shape.coversAllRows; ++p) shape.coversAllRows = !rowSeen[perm[p]]++;
  }
  return shape;
}

}  // namespace tslora::cuda::lora
