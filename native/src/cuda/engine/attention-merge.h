// Online-softmax rules shared by the paged attention kernels (attention.cu) and their host check
// (test/attention-greedy-rules-test.cpp): one head's running state over a run of keys is (m = max score so far,
// l = Σ exp(s − m), acc = Σ exp(s − m) · v). A new tile of scores moves m to mNew and rescales l and acc by
// softmaxCorrection(m, mNew); key splits computed by different blocks merge the same way (weight of split s =
// softmaxWeight(m_s, M) with M the largest m_s). Masked keys have score −inf and weight 0, also when every score is −inf.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>

#include "host-device.h"

namespace tslora::cuda {

TSLORA_HD float softmaxWeight(float score, float runningMax) {
  return score == -INFINITY ? 0.0f : expf(score - runningMax);
}

// Factor for state accumulated under mOld once the running max is mNew (≥ mOld): nothing accumulated yet → 0.
TSLORA_HD float softmaxCorrection(float mOld, float mNew) { return mOld == -INFINITY ? 0.0f : expf(mOld - mNew); }

// How every token's keys are cut into splits (one block each, grid z): enough (token, KV head, split) blocks for ~4
// per SM, never fewer than kMinSplitKeys keys per split, nor more splits than the scratch holds (numHeads ·
// (headDim + 2) fp32 per token and split). maxKeys bounds every token's key count (the block-table capacity), so
// numSplits · keysPerSplit ≥ maxKeys.
constexpr int kMinSplitKeys = 256;

// Steps that mix long prompts with decode rows run both attention kernels: the tensor-core prefill kernel takes the
// rows of sequences with at least kPrefillMinRows rows in the launch, the split kernel the others.
constexpr int kPrefillMinRows = 16;

// Rows of row t's sequence among rows [0, T) (rows are sequences in order: tokenSeq is non-decreasing).
TSLORA_HD int seqRowCount(const int32_t* tokenSeq, int T, int t) {
  const int32_t s = tokenSeq[t];
  int lo = 0, hi = t;  // first row of the sequence
  while (lo < hi) {
    const int mid = (lo + hi) / 2;
    if (tokenSeq[mid] < s) lo = mid + 1;
    else hi = mid;
  }
  int lo2 = t + 1, hi2 = T;  // one past its last row
  while (lo2 < hi2) {
    const int mid = (lo2 + hi2) / 2;
    if (tokenSeq[mid] <= s) lo2 = mid + 1;
    else hi2 = mid;
  }
  return lo2 - lo;
}

struct KeySplits {
  int numSplits = 1;
  int keysPerSplit = 0;  // a multiple of tileKeys
};

inline KeySplits planKeySplits(int T, int numHeads, int numKvHeads, int headDim, long long maxKeys, int tileKeys,
                               int smCount, size_t scratchBytes) {
  maxKeys = std::max(1LL, maxKeys);
  const long long tiles = (maxKeys + tileKeys - 1) / tileKeys;
  const long long baseBlocks = static_cast<long long>(T) * numKvHeads;
  const long long target = 4LL * smCount;
  long long splits = baseBlocks >= target ? 1 : (target + baseBlocks - 1) / baseBlocks;
  // At least kMinSplitKeys per split: short contexts stay in one split (no merge launch), and a block's several
  // tiles cost less than the merge pass would.
  const long long minTiles = std::max(1, kMinSplitKeys / tileKeys);
  splits = std::min(splits, (tiles + minTiles - 1) / minTiles);
  const size_t perSplitBytes = std::max<size_t>(1, static_cast<size_t>(T) * numHeads * (headDim + 2) * sizeof(float));
  const long long fit = static_cast<long long>(scratchBytes / perSplitBytes);
  splits = std::max(1LL, std::min(splits, std::min(fit, 65535LL)));
  const long long tilesPerSplit = (tiles + splits - 1) / splits;
  KeySplits plan;
  plan.keysPerSplit = static_cast<int>(tilesPerSplit * tileKeys);
  plan.numSplits = static_cast<int>((tiles + tilesPerSplit - 1) / tilesPerSplit);
  return plan;
}

}  // namespace tslora::cuda
