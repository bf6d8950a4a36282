// Splitting a LoRA step into passes the device pool takes. The pool's kernels launch grids sized by its static
// segment maximum (every launch pays for all of them, used or not), so the engine keeps that maximum small
// (kLoraSegmentsBase + slots) and runs a step with more segments — triton with many sequences, csgmv with many
// adapter rows — as consecutive passes over row ranges. Rows of a sequence are in position order, so a later pass
// attends to the KV the earlier ones wrote: exactly a chunked prefill, same result as one pass.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "../../cpu/step-io.h"
#include "lora.h"

namespace tslora::cuda {

constexpr int kLoraSegmentsBase = 128;

struct RowRange {
  int r0 = 0, r1 = 0;
};

// Slot of every token row (-1 = base), from the runner's segment tables.
std::vector<int32_t> loraRowSlots(const cpu::StepInputView& step);

// Consecutive row ranges, each needing at most maxSegments segments (under the step's strategy and chunk size) and
// at most maxRows rows. tokenSeq[r] = sequence of row r.
// coalesceAboveRows > 0 (csgmv only; DeviceLoraPool::coalesceAboveRows, the pool's coalesced csgmv prefill): a pass of
// more rows than that counts one segment per slot (and one for the base rows), as buildPassLora then builds it; a
// shorter pass counts chunks as before. Without it a csgmv prefill of 8 × 512 rows in 16-row chunks (256 segments)
// split into two passes at the engine's 136-segment maximum: twice the base GEMMs' weight reads (session 23's H100
// A/B: coalesced csgmv 3.8 ms above triton).
std::vector<RowRange> planLoraPasses(const cpu::StepInputView& step, const std::vector<int32_t>& rowSlot,
                                     const int32_t* tokenSeq, int numSlots, int maxSegments, int maxRows,
                                     int coalesceAboveRows = 0);

// Segment tables of one pass (rows relative to the pass), in the step's strategy.
struct PassLora {
  std::vector<int32_t> indptr, weights, permutation;
  ::tslora::lora::StepLora view;  // points into the vectors above
  bool active = false;  // some segment uses a slot
};
// coalesceAboveRows as for planLoraPasses: a csgmv pass of more rows takes each slot's rows as one segment (chunkSize:
// the longest of them, at least the step's chunk size).
void buildPassLora(const cpu::StepInputView& step, const std::vector<int32_t>& rowSlot, const int32_t* tokenSeq,
                   RowRange range, PassLora& out, int coalesceAboveRows = 0);

}  // namespace tslora::cuda
