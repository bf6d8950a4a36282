// Overlap scheduling (issue #12): a model's forward steps run on one native step thread, in launch order, so the
// JavaScript that plans step N+1 and streams step N's results runs while step N computes (SGLang's overlap
// scheduler). forwardLaunch copies the step's inputs and queues it; forwardWait returns the oldest launched step's
// output. A decode row whose input token was sampled by the step launched just before it carries a reference
// instead of a token id: tokenIds[t] = -(1 + row) = "the token sampled at logit row `row` of the previous launched
// step", resolved here from that step's output right before the forward runs (the steps run back to back, so the
// previous output is complete by then). Works the same for every backend: the backend's own synchronous forward
// (CPU thread pool; CUDA kernels, graphs and sampler unchanged) runs on this thread.
#pragma once
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "../cpu/step-io.h"
#include "tslora/errors.h"

namespace tslora::napi {

// A StepInputView whose arrays live in this object (the JS typed arrays may change once launch returns).
class OwnedStep {
 public:
  explicit OwnedStep(const cpu::StepInputView& in) : view(in) {
    own(view.tokenIds, tokenIds);
    own(view.positions); own(view.seqTokenStart); own(view.seqContextLen); own(view.blockTables);
    own(view.loraSegIndptr); own(view.loraWeightIndices); own(view.loraPermutation); own(view.logitRows);
    own(view.sampleMask); own(view.temperature); own(view.topP); own(view.topK); own(view.minP); own(view.rngSeeds);
    own(view.repetitionPenalty); own(view.frequencyPenalty); own(view.presencePenalty); own(view.penaltyIndptr);
    own(view.penaltyTokenIds); own(view.penaltyOutputCounts); own(view.targetTokenIds); own(view.topLogprobsNum);
    own(view.suppressIndptr); own(view.suppressTokenIds); own(view.biasIndptr); own(view.biasTokenIds);
    own(view.biasValues);
  }
  OwnedStep(const OwnedStep&) = delete;
  OwnedStep& operator=(const OwnedStep&) = delete;

  // Replaces every reference by the token the previous step sampled at that row (throws on a bad reference).
  void resolveReferences(const std::vector<int32_t>* previousSampled) {
    for (size_t t = 0; t < tokenIds.size(); ++t) {
      if (tokenIds[t] >= 0) continue;
      const int64_t row = -static_cast<int64_t>(tokenIds[t]) - 1;
      if (!previousSampled) {
        throw NativeError("native_invalid_argument", detail::concat("forwardLaunch: tokenIds[", t, "] refers to row ",
                                                                    row, " of the previous step, which failed or never ran"));
      }
      TSLORA_CHECK(row < static_cast<int64_t>(previousSampled->size()), "forwardLaunch: tokenIds[", t,
                   "] refers to row ", row, " of the previous step, which had ", previousSampled->size(), " rows");
      tokenIds[t] = (*previousSampled)[static_cast<size_t>(row)];
    }
  }

  cpu::StepInputView view;

 private:
  template <typename T>
  void own(cpu::Span<T>& span, std::vector<T>& store) {
    store.assign(span.data, span.data + span.size);
    span.data = store.data();
  }
  template <typename T>
  void own(cpu::Span<T>& span) {
    std::vector<uint8_t> bytes(span.size * sizeof(T));
    if (span.size) std::memcpy(bytes.data(), span.data, bytes.size());
    buffers_.push_back(std::move(bytes));
    span.data = reinterpret_cast<const T*>(buffers_.back().data());
  }
  std::vector<int32_t> tokenIds;
  std::deque<std::vector<uint8_t>> buffers_;  // a deque never moves its elements' heap buffers
};

struct StepResult {
  cpu::StepOutputData out;
  std::exception_ptr error;
  double forwardMs = 0;  // the forward alone, on the step thread
};

// Model: anything with `cpu::StepOutputData forward(const cpu::StepInputView&)`.
template <typename Model>
class StepQueue {
 public:
  // At most this many steps launched and not yet waited for (the one computing and the one queued behind it).
  static constexpr int kMaxLaunched = 2;

  explicit StepQueue(std::shared_ptr<Model> model) : model_(std::move(model)), thread_([this] { run(); }) {}

  ~StepQueue() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    changed_.notify_all();
    thread_.join();  // finishes the queued steps first: they may write the KV cache the model still owns
  }

  void launch(std::unique_ptr<OwnedStep> step) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (launched_ >= kMaxLaunched) {
      throw NativeError("native_invalid_argument", detail::concat("forwardLaunch: ", launched_,
                                                                  " steps are launched and not waited for (at most ",
                                                                  kMaxLaunched, "); call forwardWait first"));
    }
    queued_.push_back(std::move(step));
    ++launched_;
    changed_.notify_all();
  }

  // The oldest launched step's result (its error rethrown), blocking until it is there.
  StepResult wait() {
    std::unique_lock<std::mutex> lock(mutex_);
    if (launched_ == 0) throw NativeError("native_invalid_argument", "forwardWait: no step was launched");
    changed_.wait(lock, [this] { return !done_.empty(); });
    StepResult result = std::move(done_.front());
    done_.pop_front();
    --launched_;
    return result;
  }

  // Blocks until no step computes or waits to (their results stay for wait()): before anything else touches the
  // model's memory (slot writes, KV block copies, a synchronous forward, destruction).
  void drain() {
    std::unique_lock<std::mutex> lock(mutex_);
    changed_.wait(lock, [this] { return queued_.empty() && !busy_; });
  }

  int launched() {
    std::lock_guard<std::mutex> lock(mutex_);
    return launched_;
  }

 private:
  void run() {
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
      changed_.wait(lock, [this] { return stop_ || !queued_.empty(); });
      if (queued_.empty()) return;  // stop_ and nothing left
      std::unique_ptr<OwnedStep> step = std::move(queued_.front());
      queued_.pop_front();
      busy_ = true;
      lock.unlock();
      StepResult result = execute(*step);
      lock.lock();
      busy_ = false;
      done_.push_back(std::move(result));
      changed_.notify_all();
    }
  }

  // Thread-local to the step thread: the previous step's sampled ids, null when it failed (or none ran yet).
  StepResult execute(OwnedStep& step) {
    StepResult result;
    try {
      step.resolveReferences(previousOk_ ? &previousSampled_ : nullptr);
      const auto started = std::chrono::steady_clock::now();
      result.out = model_->forward(step.view);
      result.forwardMs = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count();
      previousSampled_ = result.out.sampledTokenIds;
      previousOk_ = true;
    } catch (...) {
      result.error = std::current_exception();
      previousOk_ = false;
    }
    return result;
  }

  std::shared_ptr<Model> model_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<std::unique_ptr<OwnedStep>> queued_;
  std::deque<StepResult> done_;
  int launched_ = 0;
  bool busy_ = false;
  bool stop_ = false;
  std::vector<int32_t> previousSampled_;
  bool previousOk_ = false;
  std::thread thread_;  // last: started once every member above exists
};

}  // namespace tslora::napi
