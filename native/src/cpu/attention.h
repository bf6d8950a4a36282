// Causal attention of a step's query rows over the paged KV cache (cached prefix + this step's tokens), GQA.
#pragma once
#include <cstdint>

#include "kv-cache.h"

namespace tslora {
class ThreadPool;
}

namespace tslora::cpu {

struct AttentionStep {
  int numSeqs = 0;
  const int32_t* seqTokenStart = nullptr;  // [B+1]
  const int32_t* positions = nullptr;      // [T]
  const int32_t* blockTables = nullptr;    // [B * maxBlocksPerSeq]
  int maxBlocksPerSeq = 0;
};

struct AttentionShape {
  int numHeads = 0;
  int numKvHeads = 0;
  int headDim = 0;
  float scale = 1.0f;  // 1 / sqrt(headDim)
};

// Writes this step's k/v rows ([T, numKvHeads*headDim] at kvStride) into the cache at their positions.
void writeKv(KvCache& cache, int layer, const AttentionStep& step, const float* k, const float* v, int kvStride,
             int kvWidth);

// q: [T, numHeads*headDim] (row stride qStride); out: [T, numHeads*headDim]. Query at position p sees keys [0, p].
void pagedAttention(ThreadPool& pool, KvCache& cache, int layer, const AttentionStep& step, const AttentionShape& s,
                    const float* q, int qStride, float* out);

}  // namespace tslora::cpu
