#include "attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "cpu-isa.h"
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
      cache.store(cache.key(layer, block, pos % bs), k + static_cast<size_t>(t) * kvStride, kvWidth);
      cache.store(cache.value(layer, block, pos % bs), v + static_cast<size_t>(t) * kvStride, kvWidth);
    }
  }
}

namespace {

struct Task {
  int seq, kvHead, t0, t1;
};

constexpr int kKeyBlock = 2 * kLanes;  // keys per packed K block (two vectors of scores)
constexpr int kPackMinQueryRows = 4;   // tasks with fewer query rows (decode) take per-key dot products

// Scores of the task's query vectors over keys [0, maxKeys) of its KV head. Decode (packed = false): one dot
// product per (query vector, key), as before. Prefill: a block of keys is widened and transposed once (kt[d][j]) and
// reused by every query vector of the task, which broadcasts q[d] into 2 vector FMAs per d. Each score is one fp32
// chain over d either way (the two orders differ by rounding only).
template <WType KT>
void taskScores(const KvCache& cache, int layer, const int32_t* table, int kvHead, const float* const* qv, int nq,
                int maxKeys, int D, float scale, bool packed, float* scores) {
  const int bs = cache.blockSize();
  const size_t headOffsetBytes = static_cast<size_t>(kvHead) * D * (KT == WType::F32 ? 4 : 2);
  auto keyAt = [&](int j) { return static_cast<const char*>(cache.key(layer, table[j / bs], j % bs)) + headOffsetBytes; };
  if (!packed) {
    for (int j = 0; j < maxKeys; ++j) {
      const void* kj = keyAt(j);
      for (int i = 0; i < nq; ++i) {
        VecF a0 = vzero(), a1 = vzero();
        int d = 0;
        for (; d + 2 * kLanes <= D; d += 2 * kLanes) {
          a0 = vfma(vload(qv[i] + d), vloadW<KT>(kj, d), a0);
          a1 = vfma(vload(qv[i] + d + kLanes), vloadW<KT>(kj, d + kLanes), a1);
        }
        for (; d + kLanes <= D; d += kLanes) a0 = vfma(vload(qv[i] + d), vloadW<KT>(kj, d), a0);
        float sum = vsum(vadd(a0, a1));
        for (; d < D; ++d) sum += qv[i][d] * loadScalar<KT>(kj, d);
        scores[static_cast<size_t>(i) * maxKeys + j] = sum * scale;
      }
    }
    return;
  }
  thread_local std::vector<float> kt;  // [D][kKeyBlock], fp32
  kt.resize(static_cast<size_t>(D) * kKeyBlock);
  for (int j0 = 0; j0 < maxKeys; j0 += kKeyBlock) {
    const int nk = std::min(kKeyBlock, maxKeys - j0);
    for (int j = 0; j < kKeyBlock; ++j) {
      const void* kj = j < nk ? keyAt(j0 + j) : nullptr;
      for (int d = 0; d < D; ++d) kt[static_cast<size_t>(d) * kKeyBlock + j] = kj ? loadScalar<KT>(kj, d) : 0.0f;
    }
    for (int i = 0; i < nq; i += 4) {  // 4 query vectors x 2 score vectors = 8 independent chains
      const int ni = std::min(4, nq - i);
      VecF acc[4][2];
      for (int r = 0; r < 4; ++r) acc[r][0] = acc[r][1] = vzero();
      for (int d = 0; d < D; ++d) {
        const VecF k0 = vload(kt.data() + static_cast<size_t>(d) * kKeyBlock);
        const VecF k1 = vload(kt.data() + static_cast<size_t>(d) * kKeyBlock + kLanes);
        for (int r = 0; r < 4; ++r) {
          const VecF qb = vset1(qv[i + std::min(r, ni - 1)][d]);
          acc[r][0] = vfma(qb, k0, acc[r][0]);
          acc[r][1] = vfma(qb, k1, acc[r][1]);
        }
      }
      alignas(64) float block[2 * kLanes];
      for (int r = 0; r < ni; ++r) {
        vstore(block, acc[r][0]);
        vstore(block + kLanes, acc[r][1]);
        float* row = scores + static_cast<size_t>(i + r) * maxKeys + j0;
        for (int j = 0; j < nk; ++j) row[j] = block[j] * scale;
      }
    }
  }
}

// out[i][d] = Σ_j p[i][j] · v_j[d] for the task's query vectors (probs [nq][maxKeys], 0 past a row's own keys): one
// fp32 chain over j per output, the order the former per-key axpy had; 3 query vectors x up to 4 vectors of d stay
// in registers per pass over the values.
template <WType KT>
void taskValues(const KvCache& cache, int layer, const int32_t* table, int kvHead, const float* probs, int nq,
                int maxKeys, int D, float* const* outv) {
  const int bs = cache.blockSize();
  const int dVec = D / kLanes * kLanes;
  auto valueAt = [&](int j) { return cache.value(layer, table[j / bs], j % bs); };
  for (int i = 0; i < nq; i += 3) {
    const int ni = std::min(3, nq - i);
    for (int d0 = 0; d0 < dVec; d0 += 4 * kLanes) {
      const int nv = std::min(4, (dVec - d0) / kLanes);
      VecF acc[3][4];
      for (int r = 0; r < 3; ++r)
        for (int v = 0; v < 4; ++v) acc[r][v] = vzero();
      const int64_t base = static_cast<int64_t>(kvHead) * D + d0;
      for (int j = 0; j < maxKeys; ++j) {
        const void* vj = valueAt(j);
        VecF vv[4];
        for (int v = 0; v < nv; ++v) vv[v] = vloadW<KT>(vj, base + v * kLanes);
        for (int r = 0; r < ni; ++r) {
          const VecF pb = vset1(probs[static_cast<size_t>(i + r) * maxKeys + j]);
          for (int v = 0; v < nv; ++v) acc[r][v] = vfma(pb, vv[v], acc[r][v]);
        }
      }
      for (int r = 0; r < ni; ++r)
        for (int v = 0; v < nv; ++v) vstore(outv[i + r] + d0 + v * kLanes, acc[r][v]);
    }
    for (int r = 0; r < ni; ++r)  // the last D % kLanes dims
      for (int d = dVec; d < D; ++d) {
        float acc = 0.0f;
        for (int j = 0; j < maxKeys; ++j)
          acc += probs[static_cast<size_t>(i + r) * maxKeys + j] * loadScalar<KT>(valueAt(j), static_cast<int64_t>(kvHead) * D + d);
        outv[i + r][d] = acc;
      }
  }
}

// One KV head for query rows [t0, t1) of one sequence: every query head of the group shares each key / value
// load (GQA). Query row t sees keys [0, positions[t]]; its probabilities past that are 0.
template <WType KT>
void attendTask(const KvCache& cache, int layer, const AttentionStep& step, const AttentionShape& s, const Task& task,
                const float* q, int qStride, float* out, std::vector<float>& scores) {
  const int D = s.headDim;
  const int group = s.numHeads / s.numKvHeads;
  const int32_t* table = step.blockTables + static_cast<size_t>(task.seq) * step.maxBlocksPerSeq;
  int maxKeys = 0;
  for (int t = task.t0; t < task.t1; ++t) maxKeys = std::max(maxKeys, step.positions[t] + 1);
  const int nq = (task.t1 - task.t0) * group;
  std::vector<const float*> qv(nq);
  std::vector<float*> ov(nq);
  for (int t = task.t0; t < task.t1; ++t)
    for (int g = 0; g < group; ++g) {
      const size_t head = static_cast<size_t>(task.kvHead) * group + g;
      qv[(t - task.t0) * group + g] = q + static_cast<size_t>(t) * qStride + head * D;
      ov[(t - task.t0) * group + g] = out + static_cast<size_t>(t) * s.numHeads * D + head * D;
    }
  scores.resize(static_cast<size_t>(nq) * maxKeys);
  const bool packed = task.t1 - task.t0 >= kPackMinQueryRows;
  taskScores<KT>(cache, layer, table, task.kvHead, qv.data(), nq, maxKeys, D, s.scale, packed, scores.data());
  const ExpShiftSumFn expShiftSum = cpuKernels().expShiftSum;  // the runtime-chosen copy's vexp
  for (int i = 0; i < nq; ++i) {  // softmax per query vector over its own keys; zeros beyond
    const int numKeys = step.positions[task.t0 + i / group] + 1;
    float* sc = scores.data() + static_cast<size_t>(i) * maxKeys;
    float maxScore = -INFINITY;
    for (int j = 0; j < numKeys; ++j) maxScore = std::max(maxScore, sc[j]);
    const float inv = 1.0f / expShiftSum(sc, numKeys, maxScore);
    for (int j = 0; j < numKeys; ++j) sc[j] *= inv;
    for (int j = numKeys; j < maxKeys; ++j) sc[j] = 0.0f;
  }
  taskValues<KT>(cache, layer, table, task.kvHead, scores.data(), nq, maxKeys, D, ov.data());
}

}  // namespace

void pagedAttention(ThreadPool& pool, KvCache& cache, int layer, const AttentionStep& step, const AttentionShape& s,
                    const float* q, int qStride, float* out) {
  // Query rows per task: a prefill task transposes each block of its keys once for all of its rows (x the group),
  // so longer chunks repack less; 32 still leaves a 256-token prompt 8 tasks per KV head for dynamic claiming.
  constexpr int kQueryChunk = 32;
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
    if (cache.dtype() == WType::BF16)
      attendTask<WType::BF16>(cache, layer, step, s, tasks[i], q, qStride, out, scores);
    else
      attendTask<WType::F32>(cache, layer, step, s, tasks[i], q, qStride, out, scores);
  });
}

}  // namespace tslora::cpu
