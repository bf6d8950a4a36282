// The CPU model: mapped weights, KV cache, LoRA pool, worker threads, and the forward step.
#pragma once
#include <atomic>
#include <memory>
#include <mutex>
#include <vector>

#include "gemm.h"
#include "kv-cache.h"
#include "layer-stack.h"
#include "mapped-file.h"
#include "model-init.h"
#include "step-io.h"
#include "tslora/thread-pool.h"

#ifdef TSLORA_HAVE_LORA
#include "../lora/lora.h"
#endif

namespace tslora::cpu {

namespace tp {
class TpModel;
}

class CpuModel {
 public:
  explicit CpuModel(const ModelInit& init);
  ~CpuModel();

  const ModelDims& dims() const { return dims_; }
  size_t weightBytes() const { return weightBytes_; }
  size_t loraPoolBytes() const;
  int loraSlots() const { return loraSlots_; }
  std::atomic<int64_t>& hostAdapterBytes() { return hostAdapterBytes_; }
  const std::vector<std::unique_ptr<MappedFile>>& files() const { return files_; }
  int tpSize() const { return tpSize_; }

  // The KV cache (under tensor parallelism: every rank's cache; same blocks, its own KV heads).
  int kvNumBlocks() const { return kvNumBlocks_; }
  size_t kvCacheBytes() const;
  // Copies whole blocks in every layer (prefix copy-on-write); ids checked against kvNumBlocks by the caller.
  void copyKvBlocks(const int32_t* src, const int32_t* dst, int count);
#ifdef TSLORA_HAVE_LORA
  // Shape adapters are built and validated against (the whole model's); null when LoRA is off.
  const lora::PoolConfig* loraConfig() const { return loraSlots_ > 0 ? &loraConfig_ : nullptr; }
  // Writes / clears a slot of the pool (under tensor parallelism: the adapter's slice in every rank's pool).
  // The host tier's copy of an adapter (on a worker thread): validated (lora::buildHostAdapter), then converted
  // once to the pool's format (dtype, slot layout, under tensor parallelism every rank's slice), so that
  // writeLoraSlot is plain copies. Throws like buildHostAdapter.
  std::unique_ptr<lora::HostAdapter> buildHostImage(const lora::AdapterInput& input) const;
  void writeLoraSlot(int slot, const lora::HostAdapter& adapter);
  void clearLoraSlot(int slot);
#endif

  // Checks every length, range and table of the step (throws native_invalid_argument), then runs it.
  StepOutputData forward(const StepInputView& step);

 private:
  WeightView resolveMatrix(const TensorSpec& spec, int64_t rows, int64_t cols);
  std::vector<float> resolveVector(const TensorSpec& spec, int64_t n);
  void validate(const StepInputView& step) const;
  void computeLogits(const StepInputView& step, const std::vector<float>& hidden, std::vector<float>& logits);
  void sample(const StepInputView& step, const std::vector<float>& logits, StepOutputData& out);

  ModelDims dims_;
  std::vector<float> invFreq_;
  std::vector<std::unique_ptr<MappedFile>> files_;
  WeightView embed_, lmHead_;
  std::vector<float> finalNorm_;
  std::vector<LayerWeights> layers_;
  size_t weightBytes_ = 0;
  int kvNumBlocks_ = 0, kvBlockSize_ = 0;
  // One rank: the cache, pool and threads below. tpSize > 1: tp_ owns per-rank ones and these stay null.
  int tpSize_ = 1;
  std::unique_ptr<tp::TpModel> tp_;
  std::unique_ptr<KvCache> kv_;
  std::unique_ptr<ThreadPool> threads_;
  int loraSlots_ = 0;
#ifdef TSLORA_HAVE_LORA
  lora::PoolConfig loraConfig_;
  std::unique_ptr<lora::LoraPool> lora_;
#endif
  std::atomic<int64_t> hostAdapterBytes_{0};
  std::mutex forwardMutex_;  // one forward at a time (step buffers below are per model)
  std::vector<float> finalRows_;  // [N, H] final-normed logit rows of the current step (lm_head LoRA input)
};

}  // namespace tslora::cpu
