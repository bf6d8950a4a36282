#include "attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "simd.h"
#include "tslora/thread-pool.h"

namespace tslora::cpu {

void writeKv(KvCache& cache, int layer, const AttentionStep& step, const float* k, const float* v, int kvStride,
             int kvWidth) {
  const int bs = cache.blockSize();
  for (int b = 0; b < step.numSeqs; ++b) {
    const int32_t* table = step.blockTables + static_cast<size_t>(b) * step.maxBlocksPerSeq;
    for (int t = step.seqTokenStart[b]; t < step.seqTokenStart[b + 1]; ++t) {
      int pos = step.positions[t];
      int block = table[pos / bs];
      std::memcpy(cache.key(layer, block, pos % bs), k + static_cast<size_t>(t) * kvStride, kvWidth * sizeof(float));
      std::memcpy(cache.value(layer, block, pos % bs), v + static_cast<size_t>(t) * kvStride,
                  kvWidth * sizeof(float));
    }
  }
}

namespace {

struct Task {
  int seq, kvHead, t0, t1;
};

// One KV head for query rows [t0, t1) of one sequence: every query head of the group shares each key / value
// load (GQA), scores[g][j] for head g of the group and key position j.
void attendTask(KvCache& cache, int layer, const AttentionStep& step, const AttentionShape& s, const Task& task,
                const float* q, int qStride, float* out, std::vector<float>& scores) {
  const int bs = cache.blockSize();
  const int D = s.headDim;
  const int group = s.numHeads / s.numKvHeads;
  const int32_t* table = step.blockTables + static_cast<size_t>(task.seq) * step.maxBlocksPerSeq;
  for (int t = task.t0; t < task.t1; ++t) {
    const int numKeys = step.positions[t] + 1;
    scores.resize(static_cast<size_t>(group) * numKeys);
    const float* qt = q + static_cast<size_t>(t) * qStride + static_cast<size_t>(task.kvHead) * group * D;
    for (int j = 0; j < numKeys; ++j) {
      const float* kj = cache.key(layer, table[j / bs], j % bs) + static_cast<size_t>(task.kvHead) * D;
      for (int g = 0; g < group; ++g) scores[static_cast<size_t>(g) * numKeys + j] = dotF32(qt + g * D, kj, D) * s.scale;
    }
    for (int g = 0; g < group; ++g) {  // softmax per head; weights normalised in place
      float* sc = scores.data() + static_cast<size_t>(g) * numKeys;
      float maxScore = -INFINITY;
      for (int j = 0; j < numKeys; ++j) maxScore = std::max(maxScore, sc[j]);
      float sum = 0.0f;
      for (int j = 0; j < numKeys; ++j) {
        sc[j] = std::exp(sc[j] - maxScore);
        sum += sc[j];
      }
      const float inv = 1.0f / sum;
      for (int j = 0; j < numKeys; ++j) sc[j] *= inv;
    }
    float* ot = out + static_cast<size_t>(t) * s.numHeads * D + static_cast<size_t>(task.kvHead) * group * D;
    std::memset(ot, 0, static_cast<size_t>(group) * D * sizeof(float));
    for (int j = 0; j < numKeys; ++j) {
      const float* vj = cache.value(layer, table[j / bs], j % bs) + static_cast<size_t>(task.kvHead) * D;
      for (int g = 0; g < group; ++g) axpyF32(ot + g * D, vj, scores[static_cast<size_t>(g) * numKeys + j], D);
    }
  }
}

}  // namespace

void pagedAttention(ThreadPool& pool, KvCache& cache, int layer, const AttentionStep& step, const AttentionShape& s,
                    const float* q, int qStride, float* out) {
  constexpr int kQueryChunk = 16;
  std::vector<Task> tasks;
  for (int b = 0; b < step.numSeqs; ++b) {
    for (int kvh = 0; kvh < s.numKvHeads; ++kvh) {
      for (int t = step.seqTokenStart[b]; t < step.seqTokenStart[b + 1]; t += kQueryChunk) {
        tasks.push_back({b, kvh, t, std::min(t + kQueryChunk, step.seqTokenStart[b + 1])});
      }
    }
  }
  // One task per claim: causal prefill tasks differ in cost, so threads take them dynamically.
  pool.run(static_cast<int>(tasks.size()), [&](int i) {
    thread_local std::vector<float> scores;
    attendTask(cache, layer, step, s, tasks[i], q, qStride, out, scores);
  });
}

}  // namespace tslora::cpu
