// Host-only check of the LoRA pass planner (lora-passes.h), run by test/native/cuda-engine-compile.test.ts (no GPU):
// random steps in both strategies, split under small segment / row limits; every pass must respect the limits, the
// passes must tile the rows in order, and each pass's tables must be valid and give every row its own slot. csgmv steps
// also run with coalesced passes (coalesceAboveRows): a pass above the bound must hold each slot in one segment, and
// the coalesced plan must never need more passes than the chunked one.
#include <cstdio>
#include <random>
#include <vector>

#include "../lora-passes.h"

using namespace tslora;

namespace {

int failures = 0;
#define EXPECT(cond, ...)                 \
  do {                                    \
    if (!(cond)) {                        \
      ++failures;                         \
      std::printf("FAIL %s: ", #cond);    \
      std::printf(__VA_ARGS__);           \
      std::printf("\n");                  \
    }                                     \
  } while (0)

template <typename T>
cpu::Span<T> span(const std::vector<T>& v) {
  return {v.data(), v.size()};
}

struct RandomStep {
  std::vector<int32_t> tokens, seqStart, rowSlot, tokenSeq, indptr, weights, perm;
  cpu::StepInputView view;
};

void makeStep(std::mt19937& rng, bool csgmv, int numSlots, int chunk, RandomStep& s) {
  const int B = 1 + rng() % 40;
  s.seqStart = {0};
  s.rowSlot.clear();
  s.tokenSeq.clear();
  std::vector<int32_t> seqSlot(B);
  for (int b = 0; b < B; ++b) {
    const int len = 1 + rng() % 20;
    seqSlot[b] = static_cast<int>(rng() % (numSlots + 1)) - 1;
    for (int i = 0; i < len; ++i) {
      s.rowSlot.push_back(seqSlot[b]);
      s.tokenSeq.push_back(b);
    }
    s.seqStart.push_back(static_cast<int32_t>(s.rowSlot.size()));
  }
  const int T = static_cast<int>(s.rowSlot.size());
  s.tokens.assign(T, 1);
  s.indptr = {0};
  s.weights.clear();
  s.perm.clear();
  if (!csgmv) {
    for (int b = 0; b < B; ++b) {
      s.indptr.push_back(s.seqStart[b + 1]);
      s.weights.push_back(seqSlot[b]);
    }
  } else {  // the runner's csgmv layout: rows grouped by slot, chunks of C, base rows in one segment
    for (int slot = -1; slot < numSlots; ++slot) {
      int inChunk = 0;
      for (int r = 0; r < T; ++r) {
        if (s.rowSlot[r] != slot) continue;
        if (slot >= 0 && inChunk == chunk) {
          s.indptr.push_back(static_cast<int32_t>(s.perm.size()));
          s.weights.push_back(slot);
          inChunk = 0;
        }
        s.perm.push_back(r);
        ++inChunk;
      }
      if (inChunk > 0) {
        s.indptr.push_back(static_cast<int32_t>(s.perm.size()));
        s.weights.push_back(slot);
      }
    }
  }
  s.view = cpu::StepInputView();
  s.view.tokenIds = span(s.tokens);
  s.view.seqTokenStart = span(s.seqStart);
  s.view.loraCsgmv = csgmv;
  s.view.loraSegIndptr = span(s.indptr);
  s.view.loraWeightIndices = span(s.weights);
  s.view.loraPermutation = span(s.perm);
  s.view.loraChunkSize = chunk;
}

}  // namespace

int main() {
  std::mt19937 rng(1234);
  int passesSeen = 0;
  for (int iter = 0; iter < 400; ++iter) {
    const bool csgmv = iter % 2 == 0;
    const int numSlots = 1 + rng() % 6, chunk = csgmv ? (iter % 3 == 0 ? 16 : 4) : 1;
    RandomStep s;
    makeStep(rng, csgmv, numSlots, chunk, s);
    const int T = static_cast<int>(s.rowSlot.size());
    const std::vector<int32_t> rowSlot = cuda::loraRowSlots(s.view);
    EXPECT(rowSlot == s.rowSlot, "iter %d: row slots from the runner tables", iter);
    const int maxSegments = 1 + rng() % 8, maxRows = iter % 4 == 0 ? 7 : 100000;
    const int coalesceAbove = csgmv ? 1 + static_cast<int>(rng() % 12) : 0;
    size_t chunkedPasses = 0;
    for (const int coalesceAboveRows : {0, coalesceAbove}) {
    if (coalesceAboveRows == 0 && chunkedPasses > 0) break;  // triton: one plan
    const auto passes = cuda::planLoraPasses(s.view, rowSlot, s.tokenSeq.data(), numSlots, maxSegments, maxRows, coalesceAboveRows);
    if (coalesceAboveRows == 0) chunkedPasses = passes.size();
    else EXPECT(passes.size() <= chunkedPasses, "iter %d: coalesced plan %zu passes > chunked %zu", iter, passes.size(), chunkedPasses);
    passesSeen += static_cast<int>(passes.size());
    int expectStart = 0;
    for (const auto& range : passes) {
      EXPECT(range.r0 == expectStart && range.r1 > range.r0, "iter %d: passes tile the rows", iter);
      expectStart = range.r1;
      const int n = range.r1 - range.r0;
      EXPECT(n <= maxRows, "iter %d: %d rows > %d", iter, n, maxRows);
      cuda::PassLora pl;
      cuda::buildPassLora(s.view, rowSlot, s.tokenSeq.data(), range, pl, coalesceAboveRows);
      const int G = pl.view.numSegments;
      if (coalesceAboveRows > 0 && n > coalesceAboveRows) {  // one segment per slot present (base rows included)
        std::vector<int> segmentsOf(numSlots + 1, 0);
        for (int g = 0; g < G; ++g) ++segmentsOf[pl.weights[g] + 1];
        for (int slot = -1; slot < numSlots; ++slot)
          EXPECT(segmentsOf[slot + 1] <= 1, "iter %d: slot %d in %d segments of a coalesced pass", iter, slot, segmentsOf[slot + 1]);
      }
      // A pass may exceed the limit only when it is a single row (nothing smaller exists).
      EXPECT(G <= maxSegments || n == 1, "iter %d: %d segments > %d", iter, G, maxSegments);
      EXPECT(pl.indptr.front() == 0 && pl.indptr.back() == n, "iter %d: indptr spans the pass", iter);
      std::vector<int> seen(n, 0);
      bool active = false;
      for (int g = 0; g < G; ++g) {
        const int len = pl.indptr[g + 1] - pl.indptr[g];
        EXPECT(len > 0, "iter %d: empty segment", iter);
        EXPECT(pl.weights[g] < 0 || len <= pl.view.chunkSize, "iter %d: segment longer than chunkSize", iter);
        active |= pl.weights[g] >= 0;
        for (int m = pl.indptr[g]; m < pl.indptr[g + 1]; ++m) {
          const int row = pl.view.permutation ? pl.view.permutation[m] : m;
          EXPECT(row >= 0 && row < n, "iter %d: row out of the pass", iter);
          if (row < 0 || row >= n) continue;
          ++seen[row];
          EXPECT(rowSlot[range.r0 + row] == pl.weights[g], "iter %d: row %d gets slot %d, not %d", iter, row,
                 pl.weights[g], rowSlot[range.r0 + row]);
        }
      }
      for (int r = 0; r < n; ++r) EXPECT(seen[r] == 1, "iter %d: row %d covered %d times", iter, r, seen[r]);
      EXPECT(pl.active == active, "iter %d: active flag", iter);
      EXPECT(pl.view.csgmv == csgmv && pl.view.numTokens == n, "iter %d: view", iter);
    }
    EXPECT(expectStart == T, "iter %d: passes end at T", iter);
    if (!csgmv) break;
    }
  }
  std::printf("lora-passes: %d passes checked, %d failures\n", passesSeen, failures);
  return failures == 0 ? 0 : 1;
}
