// One rank's slices of the decoder weights (shard-plan.h): column-parallel matrices are row ranges of the mapped
// checkpoint (views, no copy); row-parallel o_proj / down_proj need a column range of every row, which is not
// contiguous, so the rank owns a packed copy (checkpoint dtype, [hidden, localIn]).
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "../layer-stack.h"
#include "tslora/shard-plan.h"

namespace tslora::cpu::tp {

struct RankWeights {
  ModelDims dims;  // local numHeads, numKvHeads, intermediate
  std::vector<LayerWeights> layers;
  WeightView embed, lmHead;  // vocabulary rows [own.vocab.begin, end)
  std::vector<std::unique_ptr<uint8_t[]>> owned;  // packed o_proj / down_proj column slices
  size_t ownedBytes = 0;
};

RankWeights shardWeights(const ModelDims& full, const std::vector<LayerWeights>& layers, const WeightView& embed,
                         const WeightView& lmHead, const shard::RankShard& own);

}  // namespace tslora::cpu::tp
