// Joined small-step launch (v11, bench/lora/README.md): a module's small-step shrink and expand in ONE grid, with the
// pair's block code unchanged (lora_small_shrink_block.cuh, lora_small_expand_block.cuh). Each block takes a ticket when
// it starts; the first splits x groups tickets run shrink blocks, the rest expand blocks, which load their tables, B
// tiles and y while the shrink blocks run and then wait for their position group's shrink blocks to arrive (a counter
// per group, written after the partials and a fence) before they sum the partials. A block holding an expand ticket
// only ever waits for lower tickets, which belong to blocks already running, so the grid cannot deadlock whatever the
// hardware's block order. One launch boundary per module instead of two; same sums as the pair: bit-identical.
// The engine's decode path runs the shrink on a side stream under the base GEMM, which a joined launch gives up.
#pragma once
#include "lora_kernels.cuh"

namespace tslora::cuda::lora {

// Ticket memory of loraApplyJoined: device ints, zero before the first launch; every launch leaves them zero (its last
// block resets them). Two sets, used alternately by successive launches on these tickets (launches counts them on the
// host), so a launch that starts while the previous one still runs (programmatic dependent launch) never shares its
// counters. One JoinedTickets per stream of joined launches.
constexpr int kJoinedTicketSetInts = 2 + kSmallStepMaxTokens / 16;  // ticket, exits, one arrival count per position group
constexpr int kJoinedTicketInts = 2 * kJoinedTicketSetInts;
struct JoinedTickets {
  int* device = nullptr;  // kJoinedTicketInts
  unsigned launches = 0;
};

// Y[p, yOffset + off_j + n] += the small-step pair's delta (loraShrinkSmall + loraExpandSmall with kSplits), computed
// with the pair's arithmetic. workspace: loraSmallStepWorkspaceBytes(module, step, kSplits). cudaErrorNotSupported where
// the joined kernel does not apply (any 16-byte condition of the pair's vector paths fails): run the pair then.
cudaError_t loraApplyJoined(ActDType dtype, const DeviceModule& module, const DeviceStep& step, const void* x, int xStride,
                            void* workspace, int kSplits, void* y, int yStride, int yOffset, JoinedTickets& tickets,
                            cudaStream_t stream);

}  // namespace tslora::cuda::lora
