// Tensor-parallel ranks as thread groups: rank 0 runs on the calling thread, ranks 1..N-1 on persistent threads
// (each rank drives its own ThreadPool for its kernels). The in-process all-reduce is the CPU stand-in for NCCL's:
// a reduce-scatter (rank r sums its share of the elements over all ranks, in rank order) followed by an
// all-gather (every rank copies the sum), so every rank ends with bit-identical rows.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace tslora::cpu::tp {

// Thrown inside a rank whose peer failed while it waited at a barrier; never leaves RankGroup::run.
struct RankAborted {};

// Reusable barrier for N threads; abort() releases the waiters with RankAborted (a failed rank would otherwise
// leave its peers waiting forever). Waiters spin briefly (ranks meet twice per all-reduce, a few microseconds
// apart when cores are free), then sleep on a condition variable (on a shared, oversubscribed machine).
class RankBarrier {
 public:
  explicit RankBarrier(int numThreads) : numThreads_(numThreads) {}
  void wait();
  void abort();
  void reset();  // only while no thread waits

 private:
  bool released(uint64_t generation) const;

  const int numThreads_;
  std::atomic<int> arrived_{0};
  std::atomic<uint64_t> generation_{0};
  std::atomic<bool> aborted_{false};
  std::atomic<int> sleepers_{0};
  std::mutex mutex_;
  std::condition_variable released_;
};

class RankGroup {
 public:
  explicit RankGroup(int numRanks);
  ~RankGroup();
  RankGroup(const RankGroup&) = delete;
  RankGroup& operator=(const RankGroup&) = delete;

  int size() const { return numRanks_; }
  // Runs fn(rank) on every rank at once; returns when all finished; rethrows the first rank's exception.
  void run(const std::function<void(int rank)>& fn);
  // Room for all-reduces of up to numFloats elements (call before run, not from a rank).
  void reserve(size_t numFloats);
  // Called by every rank with its own data[numFloats] (same count on all): afterwards each holds the sum.
  void allReduce(int rank, float* data, size_t numFloats);

 private:
  void rankLoop(int rank);
  void runRank(int rank);

  int numRanks_;
  std::vector<std::thread> threads_;  // ranks 1..N-1
  std::mutex mutex_;
  std::condition_variable wake_, finished_;
  uint64_t generation_ = 0;
  int pending_ = 0;
  bool stop_ = false;
  const std::function<void(int)>* job_ = nullptr;
  std::exception_ptr error_;
  RankBarrier barrier_;
  std::vector<float*> published_;  // [N] each rank's rows during an all-reduce
  std::vector<float> sum_;         // the reduced rows
};

}  // namespace tslora::cpu::tp
