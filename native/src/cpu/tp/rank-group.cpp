// RankGroup and RankBarrier (see rank-group.h).
#include "rank-group.h"

#include <algorithm>
#include <chrono>
#include <cstring>

#include "tslora/errors.h"

namespace tslora::cpu::tp {

namespace {
constexpr auto kBarrierSpin = std::chrono::microseconds(50);
}  // namespace

bool RankBarrier::released(uint64_t generation) const {
  if (generation_.load() != generation) return true;
  if (aborted_.load()) throw RankAborted{};
  return false;
}

void RankBarrier::wait() {
  if (aborted_.load()) throw RankAborted{};
  const uint64_t generation = generation_.load();
  if (arrived_.fetch_add(1) + 1 == numThreads_) {
    arrived_.store(0);
    generation_.fetch_add(1);  // seq_cst: pairs with a sleeper's increment before its last check
    if (sleepers_.load() > 0) {
      std::lock_guard<std::mutex> lock(mutex_);
      released_.notify_all();
    }
    return;
  }
  const auto spinStart = std::chrono::steady_clock::now();
  while (std::chrono::steady_clock::now() - spinStart < kBarrierSpin) {
    if (released(generation)) return;
    std::this_thread::yield();
  }
  std::unique_lock<std::mutex> lock(mutex_);
  sleepers_.fetch_add(1);
  released_.wait(lock, [&] { return generation_.load() != generation || aborted_.load(); });
  sleepers_.fetch_sub(1);
  released(generation);  // throws when aborted before the release
}

void RankBarrier::abort() {
  aborted_.store(true);
  std::lock_guard<std::mutex> lock(mutex_);
  released_.notify_all();
}

void RankBarrier::reset() {
  aborted_.store(false);
  arrived_.store(0);
}

RankGroup::RankGroup(int numRanks) : numRanks_(numRanks), barrier_(numRanks), published_(numRanks, nullptr) {
  TSLORA_CHECK(numRanks >= 1, "a rank group needs at least one rank, got ", numRanks);
  for (int r = 1; r < numRanks; ++r) threads_.emplace_back([this, r] { rankLoop(r); });
}

RankGroup::~RankGroup() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  for (auto& t : threads_) t.join();
}

void RankGroup::reserve(size_t numFloats) {
  if (sum_.size() < numFloats) sum_.resize(numFloats);
}

void RankGroup::runRank(int rank) {
  try {
    (*job_)(rank);
  } catch (const RankAborted&) {
    // a peer failed first; its error is the one reported
  } catch (...) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!error_) error_ = std::current_exception();
    }
    barrier_.abort();
  }
}

void RankGroup::rankLoop(int rank) {
  uint64_t seen = 0;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [&] { return stop_ || generation_ != seen; });
      if (stop_) return;
      seen = generation_;
    }
    runRank(rank);
    std::lock_guard<std::mutex> lock(mutex_);
    if (--pending_ == 0) finished_.notify_all();
  }
}

void RankGroup::run(const std::function<void(int)>& fn) {
  barrier_.reset();
  {
    std::lock_guard<std::mutex> lock(mutex_);
    job_ = &fn;
    error_ = nullptr;
    pending_ = numRanks_ - 1;
    ++generation_;
  }
  wake_.notify_all();
  runRank(0);
  std::unique_lock<std::mutex> lock(mutex_);
  finished_.wait(lock, [&] { return pending_ == 0; });
  job_ = nullptr;
  if (error_) std::rethrow_exception(error_);
}

void RankGroup::allReduce(int rank, float* data, size_t numFloats) {
  if (numRanks_ == 1) return;
  TSLORA_CHECK(numFloats <= sum_.size(), "all-reduce of ", numFloats, " floats exceeds the reserved ", sum_.size());
  published_[rank] = data;
  barrier_.wait();  // every rank's partial rows are published
  // Reduce-scatter: this rank's share of the elements, summed in rank order (the same order for every element).
  const size_t begin = numFloats * rank / numRanks_, end = numFloats * (rank + 1) / numRanks_;
  std::memcpy(sum_.data() + begin, published_[0] + begin, (end - begin) * sizeof(float));
  for (int q = 1; q < numRanks_; ++q) {
    const float* part = published_[q];
    for (size_t i = begin; i < end; ++i) sum_[i] += part[i];
  }
  barrier_.wait();  // the sum is complete; nobody reads the partial rows any more
  std::memcpy(data, sum_.data(), numFloats * sizeof(float));
  // The next all-reduce writes sum_ only after its first barrier, which this rank reaches after this copy.
}

}  // namespace tslora::cpu::tp
