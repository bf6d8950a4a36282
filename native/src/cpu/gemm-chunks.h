// How a GEMM cuts its column blocks into the chunks that the thread pool's threads claim in order (gemm.cpp).
#pragma once
#include <cstddef>
#include <vector>

namespace tslora::cpu {

struct GemmEpilogue;

// Block boundaries of the chunks: the head (blocks of parts with their own output that an epilogue waits for, one
// chunk per thread at most) first, then the rest. Chunk c covers blocks [starts[c], starts[c + 1]).
struct ChunkPlan {
  int headChunks = 0;
  std::vector<int> starts;
  int numChunks() const { return static_cast<int>(starts.size()) - 1; }
};

// headBlocks: 0 without an epilogue; colBlock: columns per block.
ChunkPlan planChunks(int headBlocks, int restBlocks, int numThreads, const GemmEpilogue* epilogue, int colBlock);

}  // namespace tslora::cpu
