// Parallel-for over an index range on the CPU backend's persistent worker pool (implemented in src/cpu).
// Chunks are contiguous; fn(begin, end) is called on worker threads and on the caller. Exceptions thrown by fn
// are rethrown on the caller after every chunk has finished.
#pragma once
#include <functional>

namespace tslora {

class ThreadPool;

// Runs fn over [begin, end) split into at most numThreads contiguous chunks of at least minChunk indices.
void parallelFor(ThreadPool& pool, int begin, int end, int minChunk, const std::function<void(int, int)>& fn);

}  // namespace tslora
