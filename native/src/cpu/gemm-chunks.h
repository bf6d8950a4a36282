// How a GEMM cuts its column blocks into the chunks that the thread pool's threads claim in order (gemm.cpp).
#pragma once
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace tslora::cpu {

struct GemmEpilogue;

// Block boundaries of the chunks: the head (blocks of parts with their own output that an epilogue waits for, one
// chunk per thread at most) first, then the rest. Chunk c covers blocks [starts[c], starts[c + 1]).
struct ChunkPlan {
  int headChunks = 0;
  int restPerThread = 1;  // rest chunks per thread it aimed at (OwnedRanges cuts each owner's run into as many)
  std::vector<int> starts;
  int numChunks() const { return static_cast<int>(starts.size()) - 1; }
};

// headBlocks: 0 without an epilogue; colBlock: columns per block.
ChunkPlan planChunks(int headBlocks, int restBlocks, int numThreads, const GemmEpilogue* epilogue, int colBlock);

// Whether a GEMM (without / with an epilogue) runs the blocks after its head on OwnedRanges instead of the ChunkPlan's
// rest chunks (gemm.h setGemmOwnedRanges).
bool gemmOwnedRanges(bool withEpilogue);

// The column blocks of a GEMM (after its head) as one contiguous run per thread ("owner"), cut into subRanges
// pieces that the owner takes front to back: its weight stream runs on from one piece into the next (the decode
// GEMV's prefetch one tile ahead crosses the boundary), where a ChunkPlan's chunks, claimed in turn by whichever
// thread is free, start each of a thread's chunks cold. A thread done with its own run takes the back half of what
// another owner has left (and again, until nothing is left), so a thread that runs late on a shared machine still
// hands over all but the piece it is in. Every column is computed by one call in the same order: same results.
class OwnedRanges {
 public:
  OwnedRanges(int totalBlocks, int numOwners, int subRanges);  // equal runs
  // Owner o's run is blocks [ownerStarts[o], ownerStarts[o + 1]).
  OwnedRanges(const std::vector<int>& ownerStarts, int subRanges);
  int numOwners() const { return numOwners_; }
  // Runs owner's pieces, then whatever is left of the others' (run(b0, b1) on block ranges). Call once per owner,
  // from any thread (ThreadPool::run(numOwners(), ...)).
  template <class Run>
  void work(int owner, Run&& run) {
    for (int piece; (piece = claimFront(owner)) >= 0;) run(starts_[piece], starts_[piece + 1]);
    for (int k = 1; k < numOwners_; ++k) {
      const int other = (owner + k) % numOwners_;
      for (int b0, b1; claimBackHalf(other, b0, b1);) run(starts_[b0], starts_[b1]);
    }
  }

 private:
  static std::vector<int> evenOwners(int totalBlocks, int numOwners);
  int claimFront(int owner);                       // piece index, or -1
  bool claimBackHalf(int owner, int& p0, int& p1);  // pieces [p0, p1)
  struct alignas(64) Slot {
    std::atomic<uint64_t> frontBack{0};  // next piece << 32 | end piece
  };
  int numOwners_;
  std::vector<int> starts_;  // block boundaries of the pieces; owner o's are [o * subRanges, (o + 1) * subRanges)
  std::unique_ptr<Slot[]> slots_;
};

}  // namespace tslora::cpu
