// TpModel: the tensor-parallel forward step on CPU thread groups (see tp-model.h).
#include "tp-model.h"

#include <algorithm>
#include <thread>

#include "../kv-cache.h"
#include "../lora-step.h"
#include "../ops.h"
#include "../sample-rows.h"
#include "rank-group.h"
#include "rank-lora.h"
#ifdef TSLORA_HAVE_LORA
#include "../../lora/slot_image.h"
#endif
#include "rank-weights.h"
#include "tslora/parallel.h"
#include "tslora/thread-pool.h"

namespace tslora::cpu::tp {

struct RankState {
  RankWeights weights;
  std::unique_ptr<KvCache> kv;
  std::unique_ptr<ThreadPool> threads;
#ifdef TSLORA_HAVE_LORA
  std::unique_ptr<lora::LoraPool> lora;
  EmbedRows embedRows;
#endif
  LayerStack stack;
  std::vector<float> hidden;     // [T, hidden] this rank's copy of the residual stream (identical on every rank)
  std::vector<float> finalRows;  // [N, hidden] final-normed logit rows
};

namespace {

shard::ModelShape shapeOf(const ModelDims& d) {
  return {d.hidden, d.intermediate, d.numHeads, d.numKvHeads, d.headDim, d.vocab};
}

}  // namespace

TpModel::TpModel(const FullModel& model, int tpSize, int kvNumBlocks, int kvBlockSize, WType kvDtype, int numThreads)
    : model_(model), plan_(shard::makeShardPlan(shapeOf(model.dims), tpSize)) {
  const int cores = std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  const int threadsPerRank = std::max(1, (numThreads > 0 ? numThreads : cores) / tpSize);
  group_ = std::make_unique<RankGroup>(tpSize);
  for (int r = 0; r < tpSize; ++r) {
    auto rs = std::make_unique<RankState>();
    rs->weights = shardWeights(model.dims, model.layers, model.embed, model.lmHead, plan_.ranks[r]);
    const ModelDims& local = rs->weights.dims;
    rs->kv = std::make_unique<KvCache>(local.numLayers, kvNumBlocks, kvBlockSize, local.numKvHeads, local.headDim, kvDtype);
    rs->threads = std::make_unique<ThreadPool>(threadsPerRank);
    rs->stack.dims = local;
    rs->stack.layers = &rs->weights.layers;
    rs->stack.invFreq = model.invFreq.data();
    rs->stack.kv = rs->kv.get();
    rs->stack.threads = rs->threads.get();
    rs->stack.allReduce = [this, r](float* rows, size_t numFloats) { group_->allReduce(r, rows, numFloats); };
#ifdef TSLORA_HAVE_LORA
    if (model.loraConfig) rs->lora = std::make_unique<lora::LoraPool>(rankPoolConfig(*model.loraConfig, plan_, r));
    rs->stack.lora = rs->lora.get();
#endif
    ranks_.push_back(std::move(rs));
  }
}

TpModel::~TpModel() = default;

size_t TpModel::kvCacheBytes() const {
  size_t bytes = 0;
  for (const auto& rs : ranks_) bytes += rs->kv->sizeBytes();
  return bytes;
}

size_t TpModel::loraPoolBytes() const {
  size_t bytes = 0;
#ifdef TSLORA_HAVE_LORA
  for (const auto& rs : ranks_) bytes += rs->lora ? rs->lora->sizeBytes() : 0;
#endif
  return bytes;
}

void TpModel::copyKvBlocks(const int32_t* src, const int32_t* dst, int count) {
  for (auto& rs : ranks_) rs->kv->copyBlocks(src, dst, count);
}

#ifdef TSLORA_HAVE_LORA
std::unique_ptr<lora::HostAdapter> TpModel::buildHostImage(const lora::HostAdapter& fp32) const {
  std::vector<std::unique_ptr<lora::HostAdapter>> parts;
  for (int r = 0; r < plan_.tpSize; ++r) {
    const lora::PoolConfig& rankConfig = ranks_[r]->lora->config();
    parts.push_back(lora::buildSlotImage(*sliceHostAdapter(fp32, rankConfig, plan_, r), rankConfig));
  }
  return std::make_unique<RankImages>(fp32.rank(), std::move(parts));
}

// RankImages: a copy per rank; a plain fp32 copy (buildHostAdapter) is sliced and converted on this load.
void TpModel::writeLoraSlot(int slot, const lora::HostAdapter& adapter) {
  const auto* images = dynamic_cast<const RankImages*>(&adapter);
  TSLORA_CHECK(images == nullptr || images->numParts() == plan_.tpSize, "the host adapter was built for ",
               images ? images->numParts() : 0, " ranks, the model has ", plan_.tpSize);
  for (int r = 0; r < plan_.tpSize; ++r) {
    lora::LoraPool& pool = *ranks_[r]->lora;
    if (images) pool.writeSlot(slot, images->part(r));
    else pool.writeSlot(slot, *sliceHostAdapter(adapter, pool.config(), plan_, r));
  }
}

void TpModel::clearLoraSlot(int slot) {
  for (auto& rs : ranks_) rs->lora->clearSlot(slot);
}
#endif

StepOutputData TpModel::forward(const StepInputView& step) {
  const int H = model_.dims.hidden, V = model_.dims.vocab;
  std::vector<float> logits(step.logitRows.size * V);  // [N, V]: each rank fills its vocabulary columns
  group_->reserve(step.tokenIds.size * H);
  const void* loraStep = nullptr;
#ifdef TSLORA_HAVE_LORA
  LoraStep ls;
  if (model_.loraConfig) {
    initTokenSegments(step, ls);
    if (ls.active && model_.loraConfig->targets[static_cast<int>(lora::Module::LmHead)] && step.logitRows.size > 0)
      buildLogitSegments(step, ls);
  }
  if (ls.active) loraStep = &ls;
#endif
  group_->run([&](int rank) { runRank(rank, step, loraStep, logits); });
  StepOutputData out;
  sampleRows(step, logits.data(), V, *ranks_[0]->threads, out);
  if (step.returnLogits) out.logits = std::move(logits);
  return out;
}

// loraStep: the step's LoraStep (lora-step.h), null when no row uses an adapter.
void TpModel::runRank(int rank, const StepInputView& step, const void* loraStep, std::vector<float>& logits) {
  RankState& rs = *ranks_[rank];
  const shard::Range vocab = plan_.ranks[rank].vocab;
  const int T = static_cast<int>(step.tokenIds.size), H = model_.dims.hidden;
  ThreadPool& threads = *rs.threads;

  // Vocab-parallel embedding: rows of tokens outside this rank's range stay zero; the all-reduce fills them.
  rs.hidden.assign(static_cast<size_t>(T) * H, 0.0f);
  parallelFor(threads, 0, T, 4, [&](int t0, int t1) {
    for (int t = t0; t < t1; ++t) {
      const int id = step.tokenIds[t];
      if (id >= vocab.begin && id < vocab.end) loadRow(rs.weights.embed, id - vocab.begin, rs.hidden.data() + static_cast<size_t>(t) * H);
    }
  });
#ifdef TSLORA_HAVE_LORA
  const auto* ls = static_cast<const LoraStep*>(loraStep);
  if (ls && rs.lora->targets(lora::Module::Embed)) {
    selectEmbedRows(ls->tokens, step.tokenIds.data, vocab, rs.embedRows);
    rs.lora->apply(0, lora::Module::Embed, nullptr, 0, rs.hidden.data(), H, 0, rs.embedRows.step, threads,
                   rs.embedRows.localTokenIds.data());
  }
#endif
  group_->allReduce(rank, rs.hidden.data(), rs.hidden.size());

#ifdef TSLORA_HAVE_LORA
  runDecoderLayers(rs.stack, step, rs.hidden, ls ? &ls->tokens : nullptr);
#else
  runDecoderLayers(rs.stack, step, rs.hidden, nullptr);
#endif

  // LM head columns of this rank's vocabulary, straight into the shared logits (the all-gather).
  computeLogitRows(threads, step, rs.hidden, model_.dims, model_.finalNorm, rs.weights.lmHead, vocab.begin,
                   rs.finalRows, logits.data(), model_.dims.vocab);
#ifdef TSLORA_HAVE_LORA
  if (ls && rs.lora->targets(lora::Module::LmHead) && step.logitRows.size > 0) {
    rs.lora->apply(0, lora::Module::LmHead, rs.finalRows.data(), H, logits.data(), model_.dims.vocab, vocab.begin,
                   ls->logits, threads);
  }
#endif
}

}  // namespace tslora::cpu::tp
