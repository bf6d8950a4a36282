// Persistent CPU worker pool behind parallelFor (parallel.h). Chunks are claimed dynamically from one atomic word,
// and the calling thread claims chunks too: on a shared, oversubscribed machine a worker that has not been
// scheduled yet does not stall the step, because the caller simply runs its chunk. Idle workers spin briefly
// (the parallel regions of one forward step come back to back) and then sleep on a condition variable.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "tslora/parallel.h"

namespace tslora {

class ThreadPool {
 public:
  // numThreads counts the calling thread: numThreads - 1 workers are started. 0 = hardware concurrency.
  explicit ThreadPool(int numThreads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int numThreads() const { return numThreads_; }
  // Runs fn(chunk) once for every chunk in [0, numChunks) on the workers and the caller; rethrows the first
  // exception after all chunks finished. Nested calls from inside a chunk run serially.
  void run(int numChunks, const std::function<void(int)>& fn);

 private:
  void workerLoop();
  bool claimAndRun(uint64_t observed);

  // state_: generation (bits 40..63) | numChunks (bits 20..39) | next chunk to claim (bits 0..19).
  static constexpr int kChunkBits = 20;
  static constexpr uint64_t kChunkMask = (uint64_t(1) << kChunkBits) - 1;

  int numThreads_;
  std::vector<std::thread> workers_;
  std::mutex runMutex_;  // one job at a time
  std::mutex sleepMutex_;
  std::condition_variable wake_;
  std::atomic<uint64_t> state_{0};
  std::atomic<int> done_{0};
  std::atomic<int> sleepers_{0};
  std::atomic<bool> stop_{false};
  const std::function<void(int)>* jobs_[4] = {nullptr, nullptr, nullptr, nullptr};  // by generation % 4
  std::mutex errorMutex_;
  std::exception_ptr error_;
};

}  // namespace tslora
