// The CPU model: mapped weights, KV cache, LoRA pool, worker threads, and the forward step.
#pragma once
#include <atomic>
#include <memory>
#include <mutex>
#include <vector>

#include "gemm.h"
#include "kv-cache.h"
#include "mapped-file.h"
#include "model-init.h"
#include "step-io.h"
#include "tslora/thread-pool.h"

#ifdef TSLORA_HAVE_LORA
#include "../lora/lora.h"
#endif

namespace tslora::cpu {

struct LayerWeights {
  WeightView q, k, v, o, gate, up, down;
  std::vector<float> inputNorm, postAttentionNorm, qBias, kBias, vBias, qNorm, kNorm;  // small: kept as fp32
};

class CpuModel {
 public:
  explicit CpuModel(const ModelInit& init);
  ~CpuModel();

  const ModelDims& dims() const { return dims_; }
  ThreadPool& threads() { return *threads_; }
  KvCache& kvCache() { return *kv_; }
  size_t weightBytes() const { return weightBytes_; }
  size_t loraPoolBytes() const;
  int loraSlots() const { return loraSlots_; }
  std::atomic<int64_t>& hostAdapterBytes() { return hostAdapterBytes_; }
  const std::vector<std::unique_ptr<MappedFile>>& files() const { return files_; }
#ifdef TSLORA_HAVE_LORA
  lora::LoraPool* loraPool() { return lora_.get(); }
#endif

  // Checks every length, range and table of the step (throws native_invalid_argument), then runs it.
  StepOutputData forward(const StepInputView& step);

 private:
  WeightView resolveMatrix(const TensorSpec& spec, int64_t rows, int64_t cols);
  std::vector<float> resolveVector(const TensorSpec& spec, int64_t n);
  const void* checkedData(const TensorSpec& spec);
  void validate(const StepInputView& step) const;
  // loraStep: the step's token segments (lora::StepLora*), null when no row uses an adapter.
  void runLayers(const StepInputView& step, std::vector<float>& hidden, const void* loraStep);
  void computeLogits(const StepInputView& step, const std::vector<float>& hidden, std::vector<float>& logits);
  void sample(const StepInputView& step, const std::vector<float>& logits, StepOutputData& out);

  ModelDims dims_;
  std::vector<float> invFreq_;
  std::vector<std::unique_ptr<MappedFile>> files_;
  WeightView embed_, lmHead_;
  std::vector<float> finalNorm_;
  std::vector<LayerWeights> layers_;
  size_t weightBytes_ = 0;
  std::unique_ptr<KvCache> kv_;
  std::unique_ptr<ThreadPool> threads_;
  int loraSlots_ = 0;
#ifdef TSLORA_HAVE_LORA
  std::unique_ptr<lora::LoraPool> lora_;
#endif
  std::atomic<int64_t> hostAdapterBytes_{0};
  std::mutex forwardMutex_;  // one forward at a time (step buffers below are per model)
  std::vector<float> finalRows_;  // [N, H] final-normed logit rows of the current step (lm_head LoRA input)
};

}  // namespace tslora::cpu
