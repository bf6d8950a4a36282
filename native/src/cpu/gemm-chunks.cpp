// GEMM chunk plans (gemm-chunks.h) and their tuning knobs (gemm.h: setGemmChunks, setGemmEpilogueChunks).
#include "gemm-chunks.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>

#include "gemm.h"
#include "tslora/env-int.h"

namespace tslora::cpu {
namespace {

// Chunks per thread, claimed dynamically: a thread that runs late on a shared machine takes fewer. 0 (epilogue
// only) = chosen by epilogueChunksPerThread.
int clampChunks(int n, int least) { return std::min(16, std::max(least, n)); }
int clampOwnedMode(int mode) { return std::min(2, std::max(0, mode)); }
std::atomic<int> gPlainChunks{clampChunks(envInt("TSLORA_GEMM_CHUNKS", 4), 1)};
// 2 = every GEMM. Measured on the Xeon (session 16, bench/native/RESULTS.md): base steps 0.5-5.6 % faster in
// the same processes (4 chunks claimed in turn start each chunk's stream cold), single-stream LoRA steps 0-3.6 points
// faster; the same bits.
constexpr int kOwnedRangesDefault = 2;
std::atomic<int> gOwnedRanges{clampOwnedMode(envInt("TSLORA_GEMM_OWNED_RANGES", kOwnedRangesDefault))};
// 0 = chosen by epilogueChunksPerThread. Measured on the Xeon (session 15, bench/native/RESULTS.md): r16
// single-stream LoRA cost 3.3 % (median of 6 processes) against 5.3 % with a fixed 4 in the same processes.
constexpr int kEpilogueChunksDefault = 0;
std::atomic<int> gEpilogueChunks{clampChunks(envInt("TSLORA_GEMM_EPILOGUE_CHUNKS", kEpilogueChunksDefault), 0)};
// 512 KiB: one chunk per thread for every projection of a 125M-class model up to rank 64 with a bf16 pool (gate | up
// at r64 is 256 KiB of Bᵀ per thread), a few on models of billions of parameters. Measured on the Xeon
// (session 18, bench/results/cpu/issue17-int8-pool/round2): against 16 KiB (until session 18), in 7 lora-profile
// processes, single-stream LoRA cost medians r16 / r64 int8 pool 2.9 / 9.3 % → 2.7 / 7.9 %, bf16 pool 3.8 / 14.5 %
// → 3.4 / 13.7 % (one chunk won 27 of the 28 same-process pairs): each chunk starts both of its streams (the base
// weights and the expand's panels) cold, and on these short ones that cost more than the dynamic claim saved.
std::atomic<size_t> gMinEpilogueChunkBytes{512 << 10};

// Chunks per thread of the blocks after the head when the GEMM has an epilogue. Each chunk ends in one epilogue call
// and starts its weights' stream cold (the decode GEMV prefetches from its second tile of rows on). A fused LoRA
// expand over a short range (a few KiB of Bᵀ at rank 16 on a 125M model's o / down projections) costs more per call
// than per byte, so a chunk is cut only where each one's epilogue still reads gMinEpilogueChunkBytes (512 KiB): 1 to
// 4 per thread (4: as without an epilogue, for large models and ranks, where the dynamic claim balances a late thread).
int epilogueChunksPerThread(const GemmEpilogue& epilogue, int restBlocks, int numThreads, int colBlock) {
  const int fixed = gEpilogueChunks.load(std::memory_order_relaxed);
  if (fixed > 0) return fixed;
  if (epilogue.bytesPerColumn == 0) return 4;
  const double bytesPerThread = static_cast<double>(restBlocks) * colBlock * epilogue.bytesPerColumn / numThreads;
  const double minBytes = static_cast<double>(gMinEpilogueChunkBytes.load(std::memory_order_relaxed));
  return static_cast<int>(std::min(4.0, std::max(1.0, bytesPerThread / minBytes)));
}

int share(int blocks, int k, int chunks) { return static_cast<int>(static_cast<int64_t>(blocks) * k / chunks); }

// One rest chunk per thread after an uneven head (e.g. a rank-16 shrink of one block: one thread has it, the other
// none): the threads claim the rest chunks in the order they finish their head chunks, the smallest head first, so
// the j-th rest chunk gets what evens out the j-th smallest head (equal bytes per block: every part has the same K).
// Without this the thread with the larger head ends late by its difference, which more chunks would have absorbed.
void evenOutHead(const ChunkPlan& plan, int restBlocks, int numThreads, std::vector<int>& restStarts) {
  std::vector<int> heads(numThreads, 0);
  for (int c = 0; c < plan.headChunks; ++c) heads[c] = plan.starts[c + 1] - plan.starts[c];
  std::sort(heads.begin(), heads.end());
  const int headBlocks = plan.starts[plan.headChunks];
  const double perThread = static_cast<double>(headBlocks + restBlocks) / numThreads;
  double end = 0;
  for (int j = 1; j < numThreads; ++j) {
    end += std::max(0.0, perThread - heads[j - 1]);
    restStarts[j] = std::max(restStarts[j - 1], std::min(restBlocks, static_cast<int>(std::lround(end))));
  }
}

}  // namespace

ChunkPlan planChunks(int headBlocks, int restBlocks, int numThreads, const GemmEpilogue* epilogue, int colBlock) {
  ChunkPlan plan;
  plan.headChunks = std::min(headBlocks, numThreads);
  const int perThread = epilogue ? epilogueChunksPerThread(*epilogue, restBlocks, numThreads, colBlock)
                                 : gPlainChunks.load(std::memory_order_relaxed);
  plan.restPerThread = perThread;
  const int restChunks = std::min(restBlocks, numThreads * perThread);
  for (int c = 0; c < plan.headChunks; ++c) plan.starts.push_back(share(headBlocks, c, plan.headChunks));
  plan.starts.push_back(headBlocks);
  std::vector<int> restStarts(restChunks);
  for (int k = 0; k < restChunks; ++k) restStarts[k] = share(restBlocks, k, restChunks);
  if (plan.headChunks > 0 && restChunks == numThreads) evenOutHead(plan, restBlocks, numThreads, restStarts);
  for (int k = 1; k < restChunks; ++k) plan.starts.push_back(headBlocks + restStarts[k]);
  if (restChunks > 0) plan.starts.push_back(headBlocks + restBlocks);
  return plan;
}

int setGemmEpilogueChunks(int chunksPerThread, size_t minChunkBytes) {
  if (minChunkBytes > 0) gMinEpilogueChunkBytes.store(minChunkBytes, std::memory_order_relaxed);
  return gEpilogueChunks.exchange(chunksPerThread <= 0 ? 0 : clampChunks(chunksPerThread, 1), std::memory_order_relaxed);
}

void setGemmChunks(int chunksPerThread) { gPlainChunks.store(clampChunks(chunksPerThread, 1), std::memory_order_relaxed); }

int setGemmOwnedRanges(int mode) { return gOwnedRanges.exchange(clampOwnedMode(mode), std::memory_order_relaxed); }
bool gemmOwnedRanges(bool withEpilogue) { return gOwnedRanges.load(std::memory_order_relaxed) > (withEpilogue ? 1 : 0); }

OwnedRanges::OwnedRanges(int totalBlocks, int numOwners, int subRanges)
    : OwnedRanges(evenOwners(totalBlocks, std::max(1, numOwners)), subRanges) {}

OwnedRanges::OwnedRanges(const std::vector<int>& ownerStarts, int subRanges)
    : numOwners_(static_cast<int>(ownerStarts.size()) - 1), slots_(new Slot[ownerStarts.size() - 1]) {
  subRanges = std::max(1, subRanges);
  for (int o = 0; o < numOwners_; ++o) {
    const int b0 = ownerStarts[o], blocks = ownerStarts[o + 1] - b0;
    for (int k = 0; k < subRanges; ++k) starts_.push_back(b0 + share(blocks, k, subRanges));
    const uint64_t front = static_cast<uint64_t>(o) * subRanges, end = front + subRanges;
    slots_[o].frontBack.store(front << 32 | end, std::memory_order_relaxed);
  }
  starts_.push_back(ownerStarts.back());
}

std::vector<int> OwnedRanges::evenOwners(int totalBlocks, int numOwners) {
  std::vector<int> starts;
  for (int o = 0; o <= numOwners; ++o) starts.push_back(share(totalBlocks, o, numOwners));
  return starts;
}

int OwnedRanges::claimFront(int owner) {
  std::atomic<uint64_t>& fb = slots_[owner].frontBack;
  uint64_t s = fb.load(std::memory_order_relaxed);
  for (;;) {
    const uint64_t front = s >> 32, end = s & 0xffffffffu;
    if (front >= end) return -1;
    if (fb.compare_exchange_weak(s, (front + 1) << 32 | end, std::memory_order_relaxed)) return static_cast<int>(front);
  }
}

bool OwnedRanges::claimBackHalf(int owner, int& p0, int& p1) {
  std::atomic<uint64_t>& fb = slots_[owner].frontBack;
  uint64_t s = fb.load(std::memory_order_relaxed);
  for (;;) {
    const uint64_t front = s >> 32, end = s & 0xffffffffu;
    if (front >= end) return false;
    const uint64_t from = end - std::max<uint64_t>(1, (end - front) / 2);
    if (fb.compare_exchange_weak(s, front << 32 | from, std::memory_order_relaxed)) {
      p0 = static_cast<int>(from);
      p1 = static_cast<int>(end);
      return true;
    }
  }
}

}  // namespace tslora::cpu
