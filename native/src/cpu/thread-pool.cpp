// Persistent worker pool and parallelFor (native/include/tslora/parallel.h).
#include "tslora/thread-pool.h"

#include <algorithm>
#include <chrono>

#include "tslora/errors.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define TSLORA_PAUSE() _mm_pause()
#else
#define TSLORA_PAUSE() std::this_thread::yield()
#endif

namespace tslora {

namespace {
thread_local bool tInsideJob = false;
// How long an idle worker spins before sleeping: bridges the gaps between the parallel regions of one forward
// step without burning a shared core between steps.
// Busy-wait (pause) first, then yield so a descheduled caller on an oversubscribed machine gets the core back.
constexpr auto kPauseDuration = std::chrono::microseconds(20);
constexpr auto kSpinDuration = std::chrono::microseconds(150);

uint64_t generationOf(uint64_t s) { return s >> 40; }
}  // namespace

ThreadPool::ThreadPool(int numThreads) {
  int hw = static_cast<int>(std::thread::hardware_concurrency());
  numThreads_ = numThreads > 0 ? numThreads : std::max(1, hw);
  for (int i = 0; i + 1 < numThreads_; ++i) workers_.emplace_back([this] { workerLoop(); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(sleepMutex_);
    stop_.store(true);
  }
  wake_.notify_all();
  for (auto& w : workers_) w.join();
}

// Claims chunks of the job published in `observed` until none is left; false when the job moved on.
bool ThreadPool::claimAndRun(uint64_t observed) {
  const uint64_t gen = generationOf(observed);
  const std::function<void(int)>* job = jobs_[gen % 4];
  uint64_t s = observed;
  for (;;) {
    const uint64_t next = s & kChunkMask;
    const uint64_t total = (s >> kChunkBits) & kChunkMask;
    if (generationOf(s) != gen || next >= total) return false;
    if (!state_.compare_exchange_weak(s, s + 1, std::memory_order_acq_rel, std::memory_order_acquire)) continue;
    tInsideJob = true;
    try {
      (*job)(static_cast<int>(next));
    } catch (...) {
      std::lock_guard<std::mutex> lock(errorMutex_);
      if (!error_) error_ = std::current_exception();
    }
    tInsideJob = false;
    done_.fetch_add(1, std::memory_order_acq_rel);
    s = state_.load(std::memory_order_acquire);
  }
}

void ThreadPool::workerLoop() {
  uint64_t seenGen = 0;
  for (;;) {
    auto spinStart = std::chrono::steady_clock::now();
    int spins = 0;
    uint64_t s;
    while (generationOf(s = state_.load(std::memory_order_acquire)) == seenGen) {
      if (stop_.load(std::memory_order_relaxed)) return;
      TSLORA_PAUSE();
      if (++spins % 64 != 0) continue;
      const auto spun = std::chrono::steady_clock::now() - spinStart;
      if (spun > kPauseDuration) std::this_thread::yield();
      if (spun > kSpinDuration) {
        std::unique_lock<std::mutex> lock(sleepMutex_);
        sleepers_.fetch_add(1);
        wake_.wait(lock, [&] { return stop_.load() || generationOf(state_.load()) != seenGen; });
        sleepers_.fetch_sub(1);
        spinStart = std::chrono::steady_clock::now();
      }
    }
    seenGen = generationOf(s);
    claimAndRun(s);
  }
}

void ThreadPool::run(int numChunks, const std::function<void(int)>& fn) {
  if (numChunks <= 0) return;
  if (numChunks == 1 || workers_.empty() || tInsideJob) {
    for (int c = 0; c < numChunks; ++c) fn(c);
    return;
  }
  TSLORA_CHECK(static_cast<uint64_t>(numChunks) <= kChunkMask, "ThreadPool::run: too many chunks (", numChunks, ")");
  std::lock_guard<std::mutex> runLock(runMutex_);
  const uint64_t gen = (generationOf(state_.load()) + 1) & ((uint64_t(1) << 24) - 1);
  jobs_[gen % 4] = &fn;
  error_ = nullptr;
  done_.store(0, std::memory_order_relaxed);
  const uint64_t published = gen << 40 | static_cast<uint64_t>(numChunks) << kChunkBits;
  state_.store(published);  // seq_cst: pairs with the sleepers_ increment before a worker's last check
  if (sleepers_.load() > 0) {
    std::lock_guard<std::mutex> lock(sleepMutex_);
    wake_.notify_all();
  }
  claimAndRun(published);
  int spins = 0;
  while (done_.load(std::memory_order_acquire) != numChunks) {
    TSLORA_PAUSE();
    if (++spins > 2048) std::this_thread::yield();
  }
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
