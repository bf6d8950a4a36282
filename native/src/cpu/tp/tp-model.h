// Tensor parallelism on the CPU backend: tpSize ranks as thread groups (rank-group.h), each with its slice of the
// weights (rank-weights.h), its own KV cache (its KV heads), its own LoRA pool (rank-lora.h) and its own kernel
// threads. One forward step runs on all ranks at once:
//   vocab-parallel embedding (+ embed LoRA) → all-reduce → decoder layers (runDecoderLayers with an all-reduce
//   after o_proj and after down_proj) → final norm and the rank's LM head columns (+ lm_head LoRA) written into
//   one shared logits buffer (the all-gather) → sampling on rank 0's threads.
#pragma once
#include <memory>
#include <vector>

#include "../layer-stack.h"
#include "../model-init.h"
#include "../step-io.h"
#include "tslora/shard-plan.h"

#ifdef TSLORA_HAVE_LORA
#include "../../lora/lora.h"
#endif

namespace tslora::cpu::tp {

// The whole model as CpuModel resolved it (views into the mapped checkpoint); sliced per rank.
struct FullModel {
  const ModelDims& dims;
  const std::vector<LayerWeights>& layers;
  const WeightView& embed;
  const WeightView& lmHead;
  const std::vector<float>& finalNorm;
  const std::vector<float>& invFreq;
#ifdef TSLORA_HAVE_LORA
  const lora::PoolConfig* loraConfig;  // null = LoRA off
#endif
};

struct RankState;
class RankGroup;

class TpModel {
 public:
  // Threads: numThreads in all (0 = every core), split evenly over the ranks (at least one each).
  TpModel(const FullModel& model, int tpSize, int kvNumBlocks, int kvBlockSize, WType kvDtype, int numThreads);
  ~TpModel();

  const shard::ShardPlan& plan() const { return plan_; }
  size_t kvCacheBytes() const;
  size_t loraPoolBytes() const;
  void copyKvBlocks(const int32_t* src, const int32_t* dst, int count);
#ifdef TSLORA_HAVE_LORA
  // The host tier's copy of an adapter validated by lora::buildHostAdapter: every rank's slice in its pool's format
  // (RankImages), built once; writeLoraSlot then only copies.
  std::unique_ptr<lora::HostAdapter> buildHostImage(const lora::HostAdapter& fp32) const;
  void writeLoraSlot(int slot, const lora::HostAdapter& adapter);
  void clearLoraSlot(int slot);
#endif
  // The step was validated by CpuModel.
  StepOutputData forward(const StepInputView& step);

 private:
  void runRank(int rank, const StepInputView& step, const void* loraStep, std::vector<float>& logits);

  const FullModel model_;
  shard::ShardPlan plan_;
  std::vector<std::unique_ptr<RankState>> ranks_;
  std::unique_ptr<RankGroup> group_;
};

}  // namespace tslora::cpu::tp
