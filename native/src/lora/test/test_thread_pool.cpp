// Test-only stand-in for the CPU backend's ThreadPool + parallelFor (the real one lives in native/src/cpu), so the
// LoRA kernels can be tested and benchmarked without the forward. Persistent workers; chunks are contiguous.
#include "test_thread_pool.h"

#include <algorithm>
#include <exception>

namespace tslora {

ThreadPool::ThreadPool(int numThreads) : numThreads_(std::max(1, numThreads)) {
  for (int i = 1; i < numThreads_; ++i) workers_.emplace_back([this, i] { workerLoop(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  for (auto& w : workers_) w.join();
}

void ThreadPool::workerLoop(int index) {
  uint64_t seen = 0;
  for (;;) {
    std::unique_lock<std::mutex> lock(mutex_);
    wake_.wait(lock, [&] { return stopping_ || generation_ != seen; });
    if (stopping_) return;
    seen = generation_;
    lock.unlock();
    runChunk(index);
    lock.lock();
    if (--pending_ == 0) done_.notify_one();
  }
}

void ThreadPool::runChunk(int index) {
  const int total = end_ - begin_, chunk = (total + numChunks_ - 1) / numChunks_;
  const int b = begin_ + index * chunk, e = std::min(end_, b + chunk);
  if (index >= numChunks_ || b >= e) return;
  try {
    (*fn_)(b, e);
  } catch (...) {
    std::lock_guard<std::mutex> lock(errorMutex_);
    if (!error_) error_ = std::current_exception();
  }
}

void ThreadPool::run(int begin, int end, int minChunk, const std::function<void(int, int)>& fn) {
  if (end <= begin) return;
  const int chunks = std::min(numThreads_, std::max(1, (end - begin) / std::max(1, minChunk)));
  if (chunks == 1) { fn(begin, end); return; }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    begin_ = begin; end_ = end; numChunks_ = chunks; fn_ = &fn; error_ = nullptr;
    pending_ = numThreads_ - 1;
    ++generation_;
  }
  wake_.notify_all();
  runChunk(0);
  std::unique_lock<std::mutex> lock(mutex_);
  done_.wait(lock, [&] { return pending_ == 0; });
  if (error_) std::rethrow_exception(error_);
}

void parallelFor(ThreadPool& pool, int begin, int end, int minChunk, const std::function<void(int, int)>& fn) {
  pool.run(begin, end, minChunk, fn);
}

}  // namespace tslora
