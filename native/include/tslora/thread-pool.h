// Persistent CPU worker pool behind parallelFor (parallel.h). Workers spin briefly after each job (decode steps
// issue many short parallel regions back to back) and then sleep on a condition variable.
#pragma once
#include <atomic>
#include <condition_variable>
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
  // Runs fn(chunk) for chunk in [0, numChunks) with chunk 0 on the caller; rethrows the first exception.
  void run(int numChunks, const std::function<void(int)>& fn);

 private:
  void workerLoop(int workerIndex);

  int numThreads_;
  std::vector<std::thread> workers_;
  std::mutex runMutex_;  // one job at a time
  std::mutex sleepMutex_;
  std::condition_variable wake_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0};
  std::atomic<bool> stop_{false};
  const std::function<void(int)>* job_ = nullptr;
  int jobChunks_ = 0;
  std::mutex errorMutex_;
  std::exception_ptr error_;
};

}  // namespace tslora
