// LoRA passes: see lora-passes.h.
#include "lora-passes.h"

#include <algorithm>

namespace tslora::cuda {

std::vector<int32_t> loraRowSlots(const cpu::StepInputView& s) {
  std::vector<int32_t> rowSlot(s.tokenIds.size, -1);
  for (size_t g = 0; g < s.loraWeightIndices.size; ++g) {
    for (int m = s.loraSegIndptr[g]; m < s.loraSegIndptr[g + 1]; ++m) {
      const int row = s.loraPermutation.size ? s.loraPermutation[m] : m;
      rowSlot[row] = s.loraWeightIndices[g];
    }
  }
  return rowSlot;
}

std::vector<RowRange> planLoraPasses(const cpu::StepInputView& s, const std::vector<int32_t>& rowSlot,
                                     const int32_t* tokenSeq, int numSlots, int maxSegments, int maxRows,
                                     int coalesceAboveRows) {
  const int T = static_cast<int>(s.tokenIds.size);
  const int C = std::max(1, s.loraChunkSize);
  const bool coalesce = s.loraCsgmv && coalesceAboveRows > 0;
  std::vector<RowRange> passes;
  std::vector<int> slotRows(std::max(numSlots, 1), 0);
  int r0 = 0, segments = 0, merged = 0, lastSeq = -1;  // merged: the pass's segments if buildPassLora coalesces it
  bool baseSeen = false;
  auto segmentsAdded = [&](int r) {
    if (!s.loraCsgmv) return tokenSeq[r] != lastSeq ? 1 : 0;  // triton: one segment per sequence
    const int slot = rowSlot[r];
    if (slot < 0) return baseSeen ? 0 : 1;  // csgmv: all base rows share one segment
    return slotRows[slot] % C == 0 ? 1 : 0;  // a new chunk of C rows
  };
  auto mergedAdded = [&](int r) {  // coalesced csgmv: one segment per slot
    const int slot = rowSlot[r];
    return slot < 0 ? (baseSeen ? 0 : 1) : (slotRows[slot] == 0 ? 1 : 0);
  };
  // The pass's segments if it ended with row r (n rows): coalesced above the bound, else chunks. Every pass ends
  // right after a row this admitted, so each final pass fits under its own form.
  auto over = [&](int n, int add, int addMerged) {
    return (coalesce && n > coalesceAboveRows ? merged + addMerged : segments + add) > maxSegments;
  };
  for (int r = 0; r < T; ++r) {
    int add = segmentsAdded(r), addMerged = coalesce ? mergedAdded(r) : add;
    if (r > r0 && (over(r - r0 + 1, add, addMerged) || r - r0 + 1 > maxRows)) {
      passes.push_back({r0, r});
      r0 = r;
      segments = merged = 0;
      lastSeq = -1;
      baseSeen = false;
      std::fill(slotRows.begin(), slotRows.end(), 0);
      add = segmentsAdded(r);
      addMerged = coalesce ? mergedAdded(r) : add;
    }
    segments += add;
    merged += addMerged;
    if (rowSlot[r] >= 0) ++slotRows[rowSlot[r]];
    else baseSeen = true;
    lastSeq = tokenSeq[r];
  }
  passes.push_back({r0, T});
  return passes;
}

void buildPassLora(const cpu::StepInputView& s, const std::vector<int32_t>& rowSlot, const int32_t* tokenSeq,
                   RowRange range, PassLora& out, int coalesceAboveRows) {
  const int n = range.r1 - range.r0;
  out.indptr.assign(1, 0);
  out.weights.clear();
  out.permutation.clear();
  out.active = false;
  int longest = 1;
  if (!s.loraCsgmv) {  // triton: one segment per sequence run, identity order
    for (int i = 0; i < n;) {
      int j = i + 1;
      while (j < n && tokenSeq[range.r0 + j] == tokenSeq[range.r0 + i]) ++j;
      out.indptr.push_back(j);
      out.weights.push_back(rowSlot[range.r0 + i]);
      longest = std::max(longest, j - i);
      i = j;
    }
  } else {  // csgmv: rows grouped by slot (stable), adapter rows in chunks of C, base rows in one segment
    // Coalesced (a pass of more than coalesceAboveRows rows): each slot's rows in one segment.
    const bool coalesce = coalesceAboveRows > 0 && n > coalesceAboveRows;
    const int C = coalesce ? n : std::max(1, s.loraChunkSize);
    out.permutation.resize(n);
    for (int i = 0; i < n; ++i) out.permutation[i] = i;
    std::stable_sort(out.permutation.begin(), out.permutation.end(),
                     [&](int32_t a, int32_t b) { return rowSlot[range.r0 + a] < rowSlot[range.r0 + b]; });
    for (int i = 0; i < n;) {
      const int slot = rowSlot[range.r0 + out.permutation[i]];
      int j = i + 1;
      while (j < n && rowSlot[range.r0 + out.permutation[j]] == slot && (slot < 0 || j - i < C)) ++j;
      out.indptr.push_back(j);
      out.weights.push_back(slot);
      if (slot >= 0) longest = std::max(longest, j - i);
      i = j;
    }
    longest = coalesce ? std::max(longest, std::max(1, s.loraChunkSize)) : C;
  }
  for (int32_t w : out.weights) out.active |= w >= 0;
  out.view.csgmv = s.loraCsgmv;
  out.view.segIndptr = out.indptr.data();
  out.view.weightIndices = out.weights.data();
  out.view.numSegments = static_cast<int>(out.weights.size());
  out.view.permutation = s.loraCsgmv ? out.permutation.data() : nullptr;
  out.view.numTokens = n;
  out.view.chunkSize = longest;
}

}  // namespace tslora::cuda
