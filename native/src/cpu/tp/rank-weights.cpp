// shardWeights (see rank-weights.h).
#include "rank-weights.h"

#include <cstring>

namespace tslora::cpu::tp {

namespace {

// Rows [rows.begin, rows.end) of a row-major matrix: a view into the same storage.
WeightView rowSlice(const WeightView& w, shard::Range rows) {
  WeightView s = w;
  s.data = static_cast<const uint8_t*>(w.data) + static_cast<size_t>(rows.begin) * w.cols * w.bytesPerElement();
  s.rows = rows.size();
  return s;
}

std::vector<float> vectorSlice(const std::vector<float>& v, shard::Range r) {
  return r.size() > 0 && !v.empty() ? std::vector<float>(v.begin() + r.begin, v.begin() + r.end) : std::vector<float>();
}

}  // namespace

RankWeights shardWeights(const ModelDims& full, const std::vector<LayerWeights>& layers, const WeightView& embed,
                         const WeightView& lmHead, const shard::RankShard& own) {
  RankWeights out;
  const int D = full.headDim;
  out.dims = full;
  out.dims.numHeads = own.qHeads.size();
  out.dims.numKvHeads = own.kvHeads.size();
  out.dims.intermediate = own.intermediate.size();
  const shard::Range q = own.qCols(D), kv = own.kvCols(D), inter = own.intermediate;

  // Columns [cols.begin, cols.end) of every row, packed into storage the rank owns.
  auto columnSlice = [&out](const WeightView& w, shard::Range cols) {
    const size_t elem = w.bytesPerElement(), rowBytes = static_cast<size_t>(cols.size()) * elem;
    std::unique_ptr<uint8_t[]> packed(new uint8_t[rowBytes * w.rows]);
    for (int r = 0; r < w.rows; ++r) {
      std::memcpy(packed.get() + rowBytes * r,
                  static_cast<const uint8_t*>(w.data) + (static_cast<size_t>(r) * w.cols + cols.begin) * elem, rowBytes);
    }
    WeightView s = w;
    s.data = packed.get();
    s.cols = cols.size();
    out.ownedBytes += rowBytes * w.rows;
    out.owned.push_back(std::move(packed));
    return s;
  };

  for (const LayerWeights& w : layers) {
    LayerWeights s;
    s.q = rowSlice(w.q, q);
    s.k = rowSlice(w.k, kv);
    s.v = rowSlice(w.v, kv);
    s.gate = rowSlice(w.gate, inter);
    s.up = rowSlice(w.up, inter);
    s.o = columnSlice(w.o, q);
    s.down = columnSlice(w.down, inter);
    s.inputNorm = w.inputNorm;
    s.postAttentionNorm = w.postAttentionNorm;
    s.qBias = vectorSlice(w.qBias, q);
    s.kBias = vectorSlice(w.kBias, kv);
    s.vBias = vectorSlice(w.vBias, kv);
    s.qNorm = w.qNorm;  // per head_dim: shared by every head
    s.kNorm = w.kNorm;
    out.layers.push_back(std::move(s));
  }
  out.embed = rowSlice(embed, own.vocab);
  out.lmHead = rowSlice(lmHead, own.vocab);
  return out;
}

}  // namespace tslora::cpu::tp
