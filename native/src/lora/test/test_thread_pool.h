// Test-only ThreadPool (see test_thread_pool.cpp).
#pragma once
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
  explicit ThreadPool(int numThreads);
  ~ThreadPool();
  void run(int begin, int end, int minChunk, const std::function<void(int, int)>& fn);

 private:
  void workerLoop(int index);
  void runChunk(int index);
  int numThreads_;
  std::vector<std::thread> workers_;
  std::mutex mutex_, errorMutex_;
  std::condition_variable wake_, done_;
  bool stopping_ = false;
  uint64_t generation_ = 0;
  int pending_ = 0, begin_ = 0, end_ = 0, numChunks_ = 1;
  const std::function<void(int, int)>* fn_ = nullptr;
  std::exception_ptr error_;
};

}  // namespace tslora
