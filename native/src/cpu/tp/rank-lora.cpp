// Per-rank LoRA pool shapes, adapter slices and embed rows (see rank-lora.h).
#include "rank-lora.h"

#ifdef TSLORA_HAVE_LORA
#include "../../lora/lora_internal.h"

namespace tslora::cpu::tp {

lora::PoolConfig rankPoolConfig(const lora::PoolConfig& full, const shard::ShardPlan& plan, int rank) {
  lora::PoolConfig c = full;
  for (int m = 0; m < lora::kNumModules; ++m) {
    const shard::LoraModuleSlice s = shard::loraModuleSlice(m, plan, rank);
    lora::ModuleShape& shape = c.shapes[m];
    shape.in = s.aInputCols.size();
    shape.numSlices = s.numSlices;
    shape.sliceOffsets[0] = 0;
    for (int j = 0; j < s.numSlices; ++j) shape.sliceOffsets[j + 1] = shape.sliceOffsets[j] + s.bOutputRows[j].size();
  }
  return c;
}

RankImages::RankImages(int rank, std::vector<std::unique_ptr<lora::HostAdapter>> parts)
    : rank_(rank), parts_(std::move(parts)) {
  for (const auto& p : parts_) sizeBytes_ += p->sizeBytes();
}

std::unique_ptr<lora::HostAdapter> sliceHostAdapter(const lora::HostAdapter& adapter, const lora::PoolConfig& rankConfig,
                                                    const shard::ShardPlan& plan, int rank) {
  const auto* full = dynamic_cast<const lora::detail::HostAdapterImpl*>(&adapter);
  TSLORA_CHECK(full != nullptr, "the host adapter was not built by buildHostAdapter");
  const int r = full->rank();
  auto out = std::make_unique<lora::detail::HostAdapterImpl>(r, rankConfig);
  for (int m = 0; m < lora::kNumModules; ++m) {
    if (!rankConfig.targets[m]) continue;
    const auto module = static_cast<lora::Module>(m);
    const shard::LoraModuleSlice s = shard::loraModuleSlice(m, plan, rank);
    const lora::ModuleShape& fullShape = full->config().shapes[m];
    for (int layer = 0; layer < lora::detail::layerCount(rankConfig, module); ++layer) {
      const lora::detail::HostModule& src = full->module(module, layer);
      lora::detail::HostModule& dst = out->module(module, layer);
      dst.present = src.present;
      if (!src.present) continue;
      const int inFull = fullShape.in, inLocal = s.aInputCols.size();
      dst.a.resize(static_cast<size_t>(s.numSlices) * r * inLocal);  // [c*r, inLocal]
      for (int row = 0; row < s.numSlices * r; ++row)
        for (int i = 0; i < inLocal; ++i)
          dst.a[static_cast<size_t>(row) * inLocal + i] = src.a[static_cast<size_t>(row) * inFull + s.aInputCols.begin + i];
      for (int j = 0; j < s.numSlices; ++j) {  // B [outLocal, r]: slice j's kept rows, back to back
        const int fullStart = fullShape.sliceOffsets[j] + s.bOutputRows[j].begin;
        dst.b.insert(dst.b.end(), src.b.begin() + static_cast<size_t>(fullStart) * r,
                     src.b.begin() + static_cast<size_t>(fullStart + s.bOutputRows[j].size()) * r);
      }
    }
  }
  return out;
}

void selectEmbedRows(const lora::StepLora& tokens, const int32_t* tokenIds, shard::Range vocab, EmbedRows& out) {
  out.segIndptr.assign(1, 0);
  out.weightIndices.clear();
  out.permutation.clear();
  out.localTokenIds.assign(tokens.numTokens, 0);
  for (int g = 0; g < tokens.numSegments; ++g) {
    for (int pos = tokens.segIndptr[g]; pos < tokens.segIndptr[g + 1]; ++pos) {
      const int row = tokens.permutation ? tokens.permutation[pos] : pos;
      const int id = tokenIds[row];
      if (id < vocab.begin || id >= vocab.end) continue;
      out.permutation.push_back(row);
      out.localTokenIds[row] = id - vocab.begin;
    }
    out.segIndptr.push_back(static_cast<int32_t>(out.permutation.size()));
    out.weightIndices.push_back(tokens.weightIndices[g]);
  }
  out.step = tokens;
  out.step.segIndptr = out.segIndptr.data();
  out.step.weightIndices = out.weightIndices.data();
  out.step.permutation = out.permutation.data();
}

}  // namespace tslora::cpu::tp
#endif
