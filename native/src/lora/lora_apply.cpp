// CPU twins of the LoRA kernels (spec e.4–e.7). Both strategies run the same tile code; they differ in the
// metadata: "triton" walks each request's segment in BLOCK_S = 16-row tiles, "csgmv" takes tokens permuted by slot
// and chunked to ≤ C rows of one adapter, so each A/B tile is read once per chunk and reused for all of its rows.
// Only the slot's own rank r is read (stale data beyond it is never touched); base segments do no work.
#include <algorithm>
#include <cstdlib>

#include "cpu_kernels.h"
#include "lora_pool_impl.h"

// cpu_dot.h's 8-lane helpers (inline, this file's own) may be emitted out of line at the end of the file, where its
// push / pop of -Wpsabi no longer holds; no vector crosses an ABI boundary (an x86-64-v2 build warned here).
#pragma GCC diagnostic ignored "-Wpsabi"

namespace tslora::lora {
namespace {

constexpr int kTritonBlockRows = 16;  // BLOCK_S of the segment kernels

std::string text(int v) { return std::to_string(v); }

// present: [layer * S + slot] for this module.
std::vector<detail::Tile> buildTiles(const PoolConfig& config, const std::vector<int>& ranks, const std::vector<uint8_t>& present,
                             int layer, const StepLora& step) {
  if (step.numSegments < 0 || step.numTokens < 0) throw std::invalid_argument("LoRA step: negative segment or token count");
  if (step.numSegments > 0 && (step.segIndptr == nullptr || step.weightIndices == nullptr))
    throw std::invalid_argument("LoRA step: missing segIndptr or weightIndices");
  if (step.csgmv && step.chunkSize < 1) throw std::invalid_argument("LoRA step: csgmv chunk size must be at least 1");
  const int tileRows = step.csgmv ? step.chunkSize : kTritonBlockRows;
  std::vector<detail::Tile> tiles;
  std::vector<uint8_t> rowSeen;
  for (int g = 0; g < step.numSegments; ++g) {
    const int begin = step.segIndptr[g], end = step.segIndptr[g + 1], slot = step.weightIndices[g];
    if (begin < 0 || end < begin || end > step.numTokens)
      throw std::invalid_argument("LoRA step: segment " + text(g) + " bounds [" + text(begin) + ", " + text(end) +
                                  ") outside [0, " + text(step.numTokens) + "]");
    if (slot < -1 || slot >= config.numSlots)
      throw std::invalid_argument("LoRA step: segment " + text(g) + " has slot " + text(slot) + ", expected -1.." +
                                  text(config.numSlots - 1));
    if (slot < 0 || begin == end) continue;
    const int rank = ranks[slot];
    if (rank == 0 || !present[static_cast<size_t>(layer) * config.numSlots + slot]) continue;
    if (step.permutation) {
      rowSeen.resize(step.numTokens, 0);
      for (int pos = begin; pos < end; ++pos) {
        const int row = step.permutation[pos];
        if (row < 0 || row >= step.numTokens || rowSeen[row]++)
          throw std::invalid_argument("LoRA step: permutation entry " + text(pos) + " = " + text(row) +
                                      " is out of range or repeated");
      }
    }
    for (int t = begin; t < end; t += tileRows) tiles.push_back({t, std::min(end, t + tileRows), slot, rank});
  }
  return tiles;
}

}  // namespace

bool LoraPool::fusedShrink(int layer, Module module, const StepLora& step, ShrinkMatrix& out) const {
  const PoolConfig& config = impl_->config;
  const int m = static_cast<int>(module);
  if (module == Module::Embed || m < 0 || m >= kNumModules || !config.targets[m]) return false;
  if (!detail::isPerLayer(module)) layer = 0;
  if (layer < 0 || layer >= config.numLayers || step.segIndptr == nullptr || step.weightIndices == nullptr) return false;
  int slot = -1;
  for (int g = 0; g < step.numSegments; ++g) {
    const int s = step.weightIndices[g];
    if (s < 0 || step.segIndptr[g] == step.segIndptr[g + 1]) continue;
    if (s >= config.numSlots || (slot >= 0 && s != slot)) return false;  // several slots (or bad ids: apply throws)
    slot = s;
  }
  if (slot < 0 || impl_->ranks[slot] == 0 || !impl_->present[m][static_cast<size_t>(layer) * config.numSlots + slot]) return false;
  // The same checks as apply() (segment bounds, permutation), and the rows the expand serves.
  const std::vector<detail::Tile> tiles = buildTiles(config, impl_->ranks, impl_->present[m], layer, step);
  out.loraRows.clear();
  for (const detail::Tile& t : tiles)
    for (int pos = t.begin; pos < t.end; ++pos) out.loraRows.push_back(detail::rowAt(step.permutation, pos));
  const ModuleShape& shape = config.shapes[m];
  const Impl::Buffer& buf = impl_->buffers[m][layer];
  out.dtype = config.weightDtype;
  out.aScale = nullptr;
  switch (config.weightDtype) {
    case PoolDType::I8:
      out.a = buf.a8.data() + buf.aSlotElems * slot;
      out.aScale = buf.aScale.data() + buf.aScaleSlotElems * slot;
      break;
    case PoolDType::BF16: out.a = buf.a16.data() + buf.aSlotElems * slot; break;
    default: out.a = buf.a.data() + buf.aSlotElems * slot;
  }
  out.rows = shape.numSlices * impl_->ranks[slot];
  out.cols = shape.in;
  out.uStride = shape.numSlices * config.maxRank;
  out.module = module;
  out.layer = layer;
  out.slot = slot;
  out.rank = impl_->ranks[slot];
  return true;
}

namespace {
// f(j, g0, g1) for every slice j of the module that columns [c0, c1) cross, with its part [g0, g1) of them.
template <typename F>
void forEachSliceRange(const ModuleShape& shape, int c0, int c1, F&& f) {
  for (int j = 0; j < shape.numSlices; ++j) {
    const int g0 = std::max(c0, shape.sliceOffsets[j]), g1 = std::min(c1, shape.sliceOffsets[j + 1]);
    if (g0 < g1) f(j, g0, g1);
  }
}
}  // namespace

void LoraPool::prefetchExpand(const ShrinkMatrix& sm, int c0, int c1) const {
  const Impl::Buffer& buf = impl_->buffers[static_cast<int>(sm.module)][sm.layer];
  forEachSliceRange(impl_->config.shapes[static_cast<int>(sm.module)], c0, c1, [&](int, int g0, int g1) {
    if (sm.dtype == PoolDType::I8) detail::prefetchRunColumns(buf.b8.data() + buf.bSlotElems * sm.slot, sm.rank, g0, g1);
    else if (sm.dtype == PoolDType::BF16) detail::prefetchRunColumns(buf.b16.data() + buf.bSlotElems * sm.slot, sm.rank, g0, g1);
    else detail::prefetchRunColumns(buf.b.data() + buf.bSlotElems * sm.slot, sm.rank, g0, g1);
  });
}

void LoraPool::fusedExpand(const ShrinkMatrix& sm, const float* u, float* y, int yStride, int c0, int c1) const {
  const Impl::Buffer& buf = impl_->buffers[static_cast<int>(sm.module)][sm.layer];
  const int numRows = static_cast<int>(sm.loraRows.size());
  forEachSliceRange(impl_->config.shapes[static_cast<int>(sm.module)], c0, c1, [&](int j, int g0, int g1) {
    const float* uScale = sm.aScale ? sm.aScale + j * sm.rank : nullptr;
    const detail::ExpandRange e{sm.loraRows.data(), numRows, u + j * sm.rank, sm.uStride, y, yStride, sm.rank, g0, g1, uScale};
    if (sm.dtype == PoolDType::I8) detail::expandRange(e, buf.b8.data() + buf.bSlotElems * sm.slot);
    else if (sm.dtype == PoolDType::BF16) detail::expandRange(e, buf.b16.data() + buf.bSlotElems * sm.slot);
    else detail::expandRange(e, buf.b.data() + buf.bSlotElems * sm.slot);
  });
}

void LoraPool::apply(int layer, Module module, const float* x, int xStride, float* y, int yStride, int yOffset,
                     const StepLora& step, ThreadPool& threads, const int32_t* tokenIds, const float* shrunk) const {
  const PoolConfig& config = impl_->config;
  const int m = static_cast<int>(module);
  if (m < 0 || m >= kNumModules || !config.targets[m])
    throw std::invalid_argument("LoRA apply: module is not targeted by the pool");
  if (!detail::isPerLayer(module)) layer = 0;
  if (layer < 0 || layer >= config.numLayers) throw std::invalid_argument("LoRA apply: layer " + text(layer) + " out of range");
  const std::vector<detail::Tile> tiles = buildTiles(config, impl_->ranks, impl_->present[m], layer, step);
  if (tiles.empty()) return;

  const ModuleShape& shape = config.shapes[m];
  const int c = shape.numSlices, R = config.maxRank, in = shape.in;
  const bool embed = module == Module::Embed;
  if (y == nullptr || yOffset < 0 || yStride < yOffset + shape.outTotal())
    throw std::invalid_argument("LoRA apply: output stride " + text(yStride) + " cannot hold columns [" + text(yOffset) +
                                ", " + text(yOffset + shape.outTotal()) + ")");
  if (shrunk && embed) throw std::invalid_argument("LoRA apply: embed has no shrink to precompute");
  if (embed ? tokenIds == nullptr : !shrunk && (x == nullptr || xStride < in))
    throw std::invalid_argument("LoRA apply: missing input rows or input stride below " + text(in));
  const Impl::Buffer& buf = impl_->buffers[m][layer];

  // U: [numTokens, c*R] by physical row; only the columns [0, c*r) of LoRA rows are written and read (spec e.7).
  thread_local std::vector<float> shrinkOut;
  const int uStride = c * R;
  if (!shrunk && shrinkOut.size() < static_cast<size_t>(step.numTokens) * uStride)
    shrinkOut.resize(static_cast<size_t>(step.numTokens) * uStride);
  float* u = shrunk ? const_cast<float*>(shrunk) : shrinkOut.data();  // the kernels only read a precomputed u
  const bool i8 = config.weightDtype == PoolDType::I8;
  const detail::KernelArgs args{tiles, step.permutation, shape, R, embed, x, xStride, y, yStride, yOffset, u, uStride,
                                tokenIds, threads, shrunk != nullptr, i8 ? buf.aScale.data() : nullptr, buf.aScaleSlotElems};
  if (i8)
    detail::runLoraKernels(args, buf.a8.data(), buf.aSlotElems, buf.b8.data(), buf.bSlotElems);
  else if (config.weightDtype == PoolDType::BF16)
    detail::runLoraKernels(args, buf.a16.data(), buf.aSlotElems, buf.b16.data(), buf.bSlotElems);
  else
    detail::runLoraKernels(args, buf.a.data(), buf.aSlotElems, buf.b.data(), buf.bSlotElems);
}

}  // namespace tslora::lora
