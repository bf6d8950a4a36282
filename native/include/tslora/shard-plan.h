// Tensor-parallel shard plan (Megatron layout, S-LoRA adapter sharding), backend-neutral: which slice of every
// sharded dimension each rank owns. The CPU backend (native/src/cpu/tp) runs ranks as thread groups from it; a
// CUDA/NCCL backend slices its weights and LoRA pool the same way (one rank per GPU).
//
//   q/k/v, gate/up  column-parallel: rank r owns its heads / intermediate columns (rows of W [out, in]).
//   o, down         row-parallel: rank r owns the matching input columns of W; partial outputs are all-reduced.
//   KV heads        split like the q heads they serve; when numKvHeads < tpSize each KV head is replicated on
//                   the tpSize / numKvHeads ranks whose q heads read it.
//   embed, lm_head  vocab-parallel: rank r owns a contiguous vocabulary range (rows of the [V, H] matrices);
//                   the embedding rows are all-reduced (rows outside the range are zero), the logit columns
//                   gathered.
//   LoRA            column-parallel modules (qkv, gate_up, lm_head): A replicated, B split by output rows, so the
//                   shrink result is identical on every rank and the expand needs no communication.
//                   Row-parallel modules (o, down, embed): A split by input columns (embed: vocabulary columns),
//                   B replicated; each rank adds B·(A_r x_r) to its partial output, so the base all-reduce also
//                   sums the LoRA delta (B·Σ_r A_r x_r = B·A x): no communication beyond the base model's.
#pragma once
#include <string>
#include <vector>

#include "tslora/errors.h"

namespace tslora::shard {

// [begin, end) of one dimension.
struct Range {
  int begin = 0;
  int end = 0;
  int size() const { return end - begin; }
  Range scaled(int factor) const { return {begin * factor, end * factor}; }
};

struct ModelShape {
  int hidden = 0, intermediate = 0, numHeads = 0, numKvHeads = 0, headDim = 0, vocab = 0;
};

struct RankShard {
  int rank = 0;
  Range qHeads, kvHeads, intermediate, vocab;
  Range qCols(int headDim) const { return qHeads.scaled(headDim); }    // rows of q_proj, columns of o_proj
  Range kvCols(int headDim) const { return kvHeads.scaled(headDim); }  // rows of k_proj / v_proj
};

enum class LoraSharding {
  SplitBOutputs,  // column-parallel: A replicated, B rows (output features) split
  SplitAInputs,   // row-parallel: A columns (input features) split, B replicated, delta summed by the all-reduce
};

struct ShardPlan {
  int tpSize = 1;
  ModelShape model;
  int kvReplicas = 1;  // ranks holding each KV head (1 = split, > 1 = replicated)
  std::vector<RankShard> ranks;
};

// How one rank slices a LoRA module of the pool (modules in lora::Module order: qkv, o, gate_up, down, embed,
// lm_head). A keeps input columns aInputCols of every row; slice j of B keeps rows bOutputRows[j] (relative to
// the slice's start in the full module), and the rank's module has those rows back to back.
struct LoraModuleSlice {
  LoraSharding sharding = LoraSharding::SplitBOutputs;
  Range aInputCols;
  int numSlices = 1;
  Range bOutputRows[3];
};

inline LoraModuleSlice loraModuleSlice(int module, const ShardPlan& plan, int rank) {
  const ModelShape& m = plan.model;
  const RankShard& s = plan.ranks[rank];
  const Range hidden{0, m.hidden};
  switch (module) {
    case 0: return {LoraSharding::SplitBOutputs, hidden, 3, {s.qCols(m.headDim), s.kvCols(m.headDim), s.kvCols(m.headDim)}};
    case 1: return {LoraSharding::SplitAInputs, s.qCols(m.headDim), 1, {hidden}};
    case 2: return {LoraSharding::SplitBOutputs, hidden, 2, {s.intermediate, s.intermediate}};
    case 3: return {LoraSharding::SplitAInputs, s.intermediate, 1, {hidden}};
    case 4: return {LoraSharding::SplitAInputs, s.vocab, 1, {hidden}};
    case 5: return {LoraSharding::SplitBOutputs, hidden, 1, {s.vocab}};
    default: TSLORA_CHECK(false, "unknown LoRA module index ", module);
  }
  return {};
}

// Why tpSize cannot split this model, or "" when it can. Messages say what was expected and what was given.
inline std::string shardPlanProblem(const ModelShape& m, int tpSize) {
  using detail::concat;
  if (tpSize < 1) return concat("tensor-parallel size must be at least 1, got ", tpSize);
  if (m.numHeads % tpSize != 0)
    return concat("tensor-parallel size ", tpSize, " does not divide the model's ", m.numHeads, " attention heads");
  if (m.numKvHeads % tpSize != 0 && tpSize % m.numKvHeads != 0)
    return concat("tensor-parallel size ", tpSize, " and the model's ", m.numKvHeads,
                  " KV heads must divide one another (KV heads are split, or replicated when fewer than the ranks)");
  if (m.intermediate % tpSize != 0)
    return concat("tensor-parallel size ", tpSize, " does not divide the model's intermediate size ", m.intermediate);
  if (m.vocab < tpSize) return concat("tensor-parallel size ", tpSize, " exceeds the vocabulary size ", m.vocab);
  return "";
}

// Balanced split of n into parts: part i = [i*n/parts, (i+1)*n/parts) (the vocabulary need not divide).
inline Range splitEvenly(int n, int parts, int i) {
  return {static_cast<int>(static_cast<long long>(n) * i / parts),
          static_cast<int>(static_cast<long long>(n) * (i + 1) / parts)};
}

// Throws NativeError("native_invalid_argument") when shardPlanProblem is not empty.
inline ShardPlan makeShardPlan(const ModelShape& m, int tpSize) {
  const std::string problem = shardPlanProblem(m, tpSize);
  TSLORA_CHECK(problem.empty(), problem);
  ShardPlan plan;
  plan.tpSize = tpSize;
  plan.model = m;
  plan.kvReplicas = m.numKvHeads >= tpSize ? 1 : tpSize / m.numKvHeads;
  for (int r = 0; r < tpSize; ++r) {
    RankShard s;
    s.rank = r;
    s.qHeads = splitEvenly(m.numHeads, tpSize, r);
    // Split: kvLocal heads per rank. Replicated: the one KV head that rank r's q heads read (GQA group).
    const int kvStart = r / plan.kvReplicas * (m.numKvHeads >= tpSize ? m.numKvHeads / tpSize : 1);
    s.kvHeads = {kvStart, kvStart + (m.numKvHeads >= tpSize ? m.numKvHeads / tpSize : 1)};
    s.intermediate = splitEvenly(m.intermediate, tpSize, r);
    s.vocab = splitEvenly(m.vocab, tpSize, r);
    plan.ranks.push_back(s);
  }
  return plan;
}

}  // namespace tslora::shard
