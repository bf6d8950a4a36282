// Persistent worker pool and parallelFor (native/include/tslora/parallel.h).
#include "tslora/thread-pool.h"

#include <algorithm>
#include <chrono>

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define TSLORA_PAUSE() _mm_pause()
#else
#define TSLORA_PAUSE() std::this_thread::yield()
#endif

namespace tslora {

namespace {
thread_local bool tInsideJob = false;
// How long an idle worker spins before sleeping: long enough to bridge the gap between the parallel regions of
// one forward step, short enough not to burn a shared core between steps.
constexpr auto kSpinDuration = std::chrono::microseconds(200);
}  // namespace

ThreadPool::ThreadPool(int numThreads) {
  int hw = static_cast<int>(std::thread::hardware_concurrency());
  numThreads_ = numThreads > 0 ? numThreads : std::max(1, hw);
  for (int i = 0; i + 1 < numThreads_; ++i) workers_.emplace_back([this, i] { workerLoop(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(sleepMutex_);
    stop_.store(true);
    generation_.fetch_add(1);
  }
  wake_.notify_all();
  for (auto& w : workers_) w.join();
}

void ThreadPool::workerLoop(int workerIndex) {
  uint64_t seen = 0;
  for (;;) {
    auto spinStart = std::chrono::steady_clock::now();
    int spins = 0;
    while (generation_.load(std::memory_order_acquire) == seen) {
      TSLORA_PAUSE();
      if (++spins % 256 == 0 && std::chrono::steady_clock::now() - spinStart > kSpinDuration) {
        std::unique_lock<std::mutex> lock(sleepMutex_);
        wake_.wait(lock, [&] { return generation_.load(std::memory_order_acquire) != seen; });
      }
    }
    seen = generation_.load(std::memory_order_acquire);
    if (stop_.load()) return;
    int chunk = workerIndex + 1;
    if (chunk < jobChunks_) {
      tInsideJob = true;
      try {
        (*job_)(chunk);
      } catch (...) {
        std::lock_guard<std::mutex> lock(errorMutex_);
        if (!error_) error_ = std::current_exception();
      }
      tInsideJob = false;
    }
    pending_.fetch_sub(1, std::memory_order_acq_rel);
  }
}

void ThreadPool::run(int numChunks, const std::function<void(int)>& fn) {
  if (numChunks <= 0) return;
  if (numChunks == 1 || workers_.empty() || tInsideJob) {
    for (int c = 0; c < numChunks; ++c) fn(c);
    return;
  }
  std::lock_guard<std::mutex> runLock(runMutex_);
  // More chunks than threads: fold them so every chunk still runs exactly once.
  std::function<void(int)> folded;
  const std::function<void(int)>* job = &fn;
  int chunks = numChunks;
  if (numChunks > numThreads_) {
    folded = [&fn, numChunks, this](int t) {
      for (int c = t; c < numChunks; c += numThreads_) fn(c);
    };
    job = &folded;
    chunks = numThreads_;
  }
  error_ = nullptr;
  job_ = job;
  jobChunks_ = chunks;
  pending_.store(static_cast<int>(workers_.size()), std::memory_order_release);
  {
    std::lock_guard<std::mutex> lock(sleepMutex_);
    generation_.fetch_add(1, std::memory_order_acq_rel);
  }
  wake_.notify_all();
  tInsideJob = true;
  try {
    (*job)(0);
  } catch (...) {
    std::lock_guard<std::mutex> lock(errorMutex_);
    if (!error_) error_ = std::current_exception();
  }
  tInsideJob = false;
  int spins = 0;
  while (pending_.load(std::memory_order_acquire) != 0) {
    TSLORA_PAUSE();
    if (++spins > 4096) std::this_thread::yield();
  }
  job_ = nullptr;
  if (error_) {
    std::exception_ptr e = error_;
    error_ = nullptr;
    std::rethrow_exception(e);
  }
}

void parallelFor(ThreadPool& pool, int begin, int end, int minChunk, const std::function<void(int, int)>& fn) {
  int n = end - begin;
  if (n <= 0) return;
  minChunk = std::max(1, minChunk);
  int chunks = std::min(pool.numThreads(), (n + minChunk - 1) / minChunk);
  if (chunks <= 1) {
    fn(begin, end);
    return;
  }
  pool.run(chunks, [&](int c) {
    int b = begin + static_cast<int>(static_cast<int64_t>(n) * c / chunks);
    int e = begin + static_cast<int>(static_cast<int64_t>(n) * (c + 1) / chunks);
    if (b < e) fn(b, e);
  });
}

}  // namespace tslora
