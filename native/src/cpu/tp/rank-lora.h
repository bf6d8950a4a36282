// One rank's LoRA pool, S-LoRA style (shard-plan.h): the rank's pool shape, its slice of a host adapter, and the
// embed rows it serves. Adapters are validated once against the full pool shape (buildHostAdapter), then sliced
// per rank and converted to each rank's pool format once, when they enter the host tier (RankImages).
#pragma once
#ifdef TSLORA_HAVE_LORA
#include <cstdint>
#include <memory>
#include <vector>

#include "../../lora/lora.h"
#include "tslora/shard-plan.h"

namespace tslora::cpu::tp {

lora::PoolConfig rankPoolConfig(const lora::PoolConfig& full, const shard::ShardPlan& plan, int rank);

// An adapter in every rank's pool format (host tier under tensor parallelism): parts[r] is rank r's slice, already
// converted by lora::buildSlotImage, so a slot load copies each part into its rank's pool.
class RankImages final : public lora::HostAdapter {
 public:
  RankImages(int rank, std::vector<std::unique_ptr<lora::HostAdapter>> parts);
  int rank() const override { return rank_; }
  size_t sizeBytes() const override { return sizeBytes_; }
  const lora::HostAdapter& part(int r) const { return *parts_[r]; }
  int numParts() const { return static_cast<int>(parts_.size()); }

 private:
  int rank_;
  size_t sizeBytes_ = 0;
  std::vector<std::unique_ptr<lora::HostAdapter>> parts_;
};

// The rank's part of an adapter built by lora::buildHostAdapter against `full` (A columns / B rows per
// shard::loraModuleSlice), in the layout of rankPoolConfig.
std::unique_ptr<lora::HostAdapter> sliceHostAdapter(const lora::HostAdapter& adapter, const lora::PoolConfig& rankConfig,
                                                    const shard::ShardPlan& plan, int rank);

// The embed LoRA rows of a vocab-parallel rank: only rows whose token lies in its vocabulary range (the others
// add nothing on this rank), with token ids relative to the range. `step` points into this object.
struct EmbedRows {
  std::vector<int32_t> segIndptr, weightIndices, permutation, localTokenIds;
  lora::StepLora step;
};
void selectEmbedRows(const lora::StepLora& tokens, const int32_t* tokenIds, shard::Range vocab, EmbedRows& out);

}  // namespace tslora::cpu::tp
#endif
