// buildStepTables (lora_step_tables.h, the host half of DeviceLoraPool::setStep) on the CPU: triton and csgmv steps
// with base rows, the 16-row split of a csgmv graph, the coalesced csgmv prefill (consecutive chunks of one slot
// merged, base and other slots left alone, the same rows in the same order), padding, the store expand's coverage
// (every row once; a row in no segment, a repeated permutation entry) and the longest segment with base ones counted,
// and the refusals (bounds, slots, permutation entries, the segment budget). Exit 0 = all passed.
#include <cstdio>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "lora_step_tables.h"

namespace cl = tslora::cuda::lora;
using tslora::lora::StepLora;

static int failures = 0;
static void expect(bool ok, const std::string& what) {
  if (!ok) {
    ++failures;
    std::printf("FAIL %s\n", what.c_str());
  }
}

struct Built {
  cl::StepTableShape shape;
  std::vector<int32_t> indptr, weights, segRanks, perm;
};
static Built build(const std::vector<int32_t>& indptr, const std::vector<int32_t>& weights, const std::vector<int32_t>* permutation, int T,
                   bool csgmv, cl::StepTableLimits lim) {
  StepLora step;
  step.csgmv = csgmv;
  step.segIndptr = indptr.data();
  step.weightIndices = weights.data();
  step.numSegments = static_cast<int>(weights.size());
  step.permutation = permutation ? permutation->data() : nullptr;
  step.numTokens = T;
  const std::vector<int32_t> ranks = {16, 8, 0, 64};
  Built b;
  b.indptr.assign(lim.maxSegments + 1, -7);
  b.weights.assign(lim.maxSegments, -7);
  b.segRanks.assign(lim.maxSegments, -7);
  b.perm.assign(std::max(1, T), -7);
  static std::vector<char> rowSeen;  // reused across builds, as DeviceLoraPool does
  b.shape = cl::buildStepTables(step, lim, ranks.data(), b.indptr.data(), b.weights.data(), b.segRanks.data(), b.perm.data(), rowSeen);
  return b;
}
static cl::StepTableLimits limits(int T, bool coalesce, int maxChunkRows = 0, int budget = 16) {
  cl::StepTableLimits lim;
  lim.numSlots = 4;
  lim.maxSegments = 16;
  lim.segmentBudget = budget;
  lim.maxChunkRows = maxChunkRows > 0 ? maxChunkRows : T + 1;
  lim.coalesce = coalesce;
  return lim;
}
static bool throws(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::invalid_argument&) {
    return true;
  }
  return false;
}

int main() {
  // triton: requests of 5 (slot 0), 3 (base), 9 (slot 3): copied, padded with empty base segments.
  {
    const Built b = build({0, 5, 8, 17}, {0, -1, 3}, nullptr, 17, false, limits(17, false));
    expect(b.shape.segments == 3 && b.shape.longestAdapterRows == 9 && b.shape.longestRows == 9 && b.shape.coversAllRows, "triton shape");
    expect(b.indptr[3] == 17 && b.indptr[16] == 17 && b.weights[15] == -1 && b.segRanks[0] == 16 && b.segRanks[1] == 0 &&
               b.segRanks[2] == 64 && b.perm[16] == 16, "triton tables");
  }
  // A long base request beside short adapter ones: the longest segment counts it, the adapter tiles do not.
  {
    const Built b = build({0, 4, 304, 310}, {1, -1, 0}, nullptr, 310, false, limits(310, false));
    expect(b.shape.longestAdapterRows == 6 && b.shape.longestRows == 300 && b.shape.coversAllRows, "long base segment");
  }
  // csgmv, permuted: slot 0 in chunks of 4 (4 + 4 + 2), base (5), slot 1 (4 + 1).
  const std::vector<int32_t> csIndptr = {0, 4, 8, 10, 15, 19, 20}, csWeights = {0, 0, 0, -1, 1, 1};
  std::vector<int32_t> perm(20);
  for (int p = 0; p < 20; ++p) perm[p] = (p * 7) % 20;  // a bijection
  {
    const Built b = build(csIndptr, csWeights, &perm, 20, true, limits(20, false));
    expect(b.shape.segments == 6 && b.shape.longestAdapterRows == 4 && b.shape.longestRows == 5 && b.shape.coversAllRows, "csgmv chunks");
    expect(b.perm[1] == 7 && b.perm[19] == 13, "csgmv permutation copied");
  }
  {
    const Built b = build(csIndptr, csWeights, &perm, 20, true, limits(20, true));
    expect(b.shape.segments == 3 && b.shape.longestAdapterRows == 10 && b.shape.longestRows == 10 && b.shape.coversAllRows, "coalesced shape");
    expect(b.indptr[0] == 0 && b.indptr[1] == 10 && b.indptr[2] == 15 && b.indptr[3] == 20 && b.weights[0] == 0 && b.weights[1] == -1 &&
               b.weights[2] == 1 && b.segRanks[2] == 8 && b.indptr[4] == 20 && b.weights[3] == -1, "coalesced tables");
  }
  // The same slot on both sides of a base segment stays two segments; empty segments merge into their neighbour.
  {
    const Built b = build({0, 3, 5, 5, 8}, {2, -1, -1, 2}, nullptr, 8, true, limits(8, true));
    expect(b.shape.segments == 3 && b.weights[0] == 2 && b.weights[1] == -1 && b.weights[2] == 2 && b.indptr[2] == 5, "no merge across slots");
  }
  // A csgmv decode graph's 16-row tiles: an adapter segment of 40 rows goes up as 16 + 16 + 8, base rows stay whole.
  {
    const Built b = build({0, 40, 70}, {3, -1}, nullptr, 70, true, limits(70, false, 16));
    expect(b.shape.segments == 4 && b.shape.longestAdapterRows == 16 && b.shape.longestRows == 30 && b.indptr[1] == 16 && b.indptr[3] == 40,
           "graph split");
    expect(throws([&] { build({0, 40, 70}, {3, -1}, nullptr, 70, true, limits(70, false, 16, 3)); }), "segment budget");
  }
  // Coverage: a row in no segment, a permutation that repeats a row.
  {
    const Built gap = build({0, 5, 8}, {0, -1}, nullptr, 10, false, limits(10, false));
    expect(!gap.shape.coversAllRows, "rows 8, 9 in no segment");
    std::vector<int32_t> repeat = perm;
    repeat[3] = repeat[4];
    const Built rep = build(csIndptr, csWeights, &repeat, 20, true, limits(20, true));
    expect(!rep.shape.coversAllRows, "a repeated permutation entry");
    const Built none = build({}, {}, nullptr, 0, false, limits(0, false));
    expect(none.shape.segments == 0 && none.shape.coversAllRows && none.indptr[16] == 0, "an empty step");
  }
  // Refusals.
  expect(throws([&] { build({0, 5, 4}, {0, 1}, nullptr, 5, false, limits(5, false)); }), "decreasing indptr");
  expect(throws([&] { build({0, 6}, {0}, nullptr, 5, false, limits(5, false)); }), "segment past T");
  expect(throws([&] { build({0, 5}, {4}, nullptr, 5, false, limits(5, false)); }), "slot out of range");
  expect(throws([&] { build({0, 5}, {-2}, nullptr, 5, false, limits(5, false)); }), "slot below -1");
  const std::vector<int32_t> badPerm = {0, 1, 2, 3, 5};
  expect(throws([&] { build({0, 5}, {0}, &badPerm, 5, true, limits(5, false)); }), "permutation entry out of range");
  std::printf("%d failures\n", failures);
  return failures == 0 ? 0 : 1;
}
