// CPU twins of the LoRA kernels (spec e.4–e.7). Both strategies run the same tile code; they differ in the
// metadata: "triton" walks each request's segment in BLOCK_S = 16-row tiles, "csgmv" takes tokens permuted by slot
// and chunked to ≤ C rows of one adapter, so each A/B tile is read once per chunk and reused for all of its rows.
// Only the slot's own rank r is read (stale data beyond it is never touched); base segments do no work.
#include <algorithm>
#include <cmath>

#include "cpu_dot.h"
#include "lora_pool_impl.h"
#include "tslora/parallel.h"

namespace tslora::lora {
namespace {

constexpr int kTritonBlockRows = 16;    // BLOCK_S of the segment kernels
constexpr int kShrinkColsPerItem = 16;  // U columns (c*r space) per parallel work item
constexpr int kExpandColsPerItem = 64;  // output columns per parallel work item
constexpr int kTransposeMinRows = 8;    // rows of one slot from which transposing a block of B pays off
// Smallest share of work worth handing to another thread (FMAs): a batch-1 decode step stays on the caller.
constexpr double kMinFmasPerChunk = 48 * 1024;

int minChunkFor(double totalFmas, int items) {
  if (items <= 0 || totalFmas <= 0) return 1;
  const double perItem = totalFmas / items;
  return static_cast<int>(std::max(1.0, std::ceil(kMinFmasPerChunk / perItem)));
}

struct Tile {
  int begin, end;  // positions in the (permuted) row order
  int slot, rank;
};

inline int rowAt(const int32_t* permutation, int position) { return permutation ? permutation[position] : position; }

std::string text(int v) { return std::to_string(v); }

// present: [layer * S + slot] for this module.
std::vector<Tile> buildTiles(const PoolConfig& config, const std::vector<int>& ranks, const std::vector<uint8_t>& present,
                             int layer, const StepLora& step) {
  if (step.numSegments < 0 || step.numTokens < 0) throw std::invalid_argument("LoRA step: negative segment or token count");
  if (step.numSegments > 0 && (step.segIndptr == nullptr || step.weightIndices == nullptr))
    throw std::invalid_argument("LoRA step: missing segIndptr or weightIndices");
  if (step.csgmv && step.chunkSize < 1) throw std::invalid_argument("LoRA step: csgmv chunk size must be at least 1");
  const int tileRows = step.csgmv ? step.chunkSize : kTritonBlockRows;
  std::vector<Tile> tiles;
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

void LoraPool::apply(int layer, Module module, const float* x, int xStride, float* y, int yStride, int yOffset,
                     const StepLora& step, ThreadPool& threads, const int32_t* tokenIds) const {
  const PoolConfig& config = impl_->config;
  const int m = static_cast<int>(module);
  if (m < 0 || m >= kNumModules || !config.targets[m])
    throw std::invalid_argument("LoRA apply: module is not targeted by the pool");
  if (!detail::isPerLayer(module)) layer = 0;
  if (layer < 0 || layer >= config.numLayers) throw std::invalid_argument("LoRA apply: layer " + text(layer) + " out of range");
  const std::vector<Tile> tiles = buildTiles(config, impl_->ranks, impl_->present[m], layer, step);
  if (tiles.empty()) return;

  const ModuleShape& shape = config.shapes[m];
  const int c = shape.numSlices, R = config.maxRank, in = shape.in;
  const bool embed = module == Module::Embed;
  if (y == nullptr || yOffset < 0 || yStride < yOffset + shape.outTotal())
    throw std::invalid_argument("LoRA apply: output stride " + text(yStride) + " cannot hold columns [" + text(yOffset) +
                                ", " + text(yOffset + shape.outTotal()) + ")");
  if (embed ? tokenIds == nullptr : (x == nullptr || xStride < in))
    throw std::invalid_argument("LoRA apply: missing input rows or input stride below " + text(in));
  const Impl::Buffer& buf = impl_->buffers[m][layer];

  // U: [numTokens, c*R] by physical row; only the columns [0, c*r) of LoRA rows are written and read (spec e.7).
  thread_local std::vector<float> shrinkOut;
  const int uStride = c * R;
  if (shrinkOut.size() < static_cast<size_t>(step.numTokens) * uStride) shrinkOut.resize(static_cast<size_t>(step.numTokens) * uStride);
  float* u = shrinkOut.data();
  const int32_t* perm = step.permutation;

  if (embed) {  // shrink = a column gather from A [R, vocab]
    for (const Tile& t : tiles)
      for (int pos = t.begin; pos < t.end; ++pos) {
        const int row = rowAt(perm, pos), id = tokenIds[row];
        if (id < 0 || id >= in) throw std::invalid_argument("LoRA apply: token id " + text(id) + " outside the vocabulary");
        const float* a = buf.a.data() + buf.aSlotFloats * t.slot;
        for (int k = 0; k < t.rank; ++k) u[static_cast<size_t>(row) * uStride + k] = a[static_cast<size_t>(k) * in + id];
      }
  } else {
    const int shrinkBlocks = (c * R + kShrinkColsPerItem - 1) / kShrinkColsPerItem;
    double shrinkFmas = 0;
    for (const Tile& t : tiles) shrinkFmas += static_cast<double>(t.end - t.begin) * c * t.rank * in;
    const int shrinkItems = static_cast<int>(tiles.size()) * shrinkBlocks;
    parallelFor(threads, 0, shrinkItems, minChunkFor(shrinkFmas, shrinkItems), [&](int itemBegin, int itemEnd) {
      for (int item = itemBegin; item < itemEnd; ++item) {
        const Tile& t = tiles[item / shrinkBlocks];
        const int n0 = (item % shrinkBlocks) * kShrinkColsPerItem, n1 = std::min(c * t.rank, n0 + kShrinkColsPerItem);
        const float* aSlot = buf.a.data() + buf.aSlotFloats * t.slot;  // rows [0, c*r) only
        // Two A rows × four input rows per micro-block (six loads feed eight 8-wide FMAs).
        const float* rows[4];
        for (int n = n0; n < n1; n += 2) {
          const int na = std::min(2, n1 - n);
          const float* a[2] = {aSlot + static_cast<size_t>(n) * in, aSlot + static_cast<size_t>(n + na - 1) * in};
          int pos = t.begin;
          for (; pos < t.end; pos += 4) {
            const int nx = std::min(4, t.end - pos);
            for (int i = 0; i < 4; ++i) rows[i] = x + static_cast<size_t>(rowAt(perm, pos + std::min(i, nx - 1))) * xStride;
            float out[2][4];
            if (nx == 4) detail::dotBlock<2, 4>(a, rows, in, out);
            else if (nx == 1) {
              float one[2][1];
              detail::dotBlock<2, 1>(a, rows, in, one);
              out[0][0] = one[0][0];
              out[1][0] = one[1][0];
            } else detail::dotBlock<2, 4>(a, rows, in, out);  // 2-3 rows: the spare lanes repeat the last row
            for (int i = 0; i < na; ++i)
              for (int j = 0; j < nx; ++j) u[static_cast<size_t>(rowAt(perm, pos + j)) * uStride + n + i] = out[i][j];
          }
        }
      }
    });
  }

  // Expand work is grouped by runs of consecutive tiles of one slot (csgmv: every chunk of an adapter), so a block of
  // B is prepared once per run and reused by all of its rows.
  struct Run {
    int firstTile, endTile, rows;
  };
  std::vector<Run> runs;
  for (int i = 0; i < static_cast<int>(tiles.size()); ++i) {
    const Tile& t = tiles[i];
    if (runs.empty() || tiles[runs.back().endTile - 1].slot != t.slot) runs.push_back({i, i, 0});
    runs.back().endTile = i + 1;
    runs.back().rows += t.end - t.begin;
  }
  int widest = 0;
  for (int j = 0; j < c; ++j) widest = std::max(widest, shape.sliceOffsets[j + 1] - shape.sliceOffsets[j]);
  const int expandBlocks = (widest + kExpandColsPerItem - 1) / kExpandColsPerItem;
  const int itemsPerRun = c * expandBlocks;
  double expandFmas = 0;
  for (const Run& run : runs) expandFmas += static_cast<double>(run.rows) * shape.outTotal() * tiles[run.firstTile].rank;
  const int expandItems = static_cast<int>(runs.size()) * itemsPerRun;
  parallelFor(threads, 0, expandItems, minChunkFor(expandFmas, expandItems), [&](int itemBegin, int itemEnd) {
    thread_local std::vector<float> bt;  // [r, kExpandColsPerItem] transposed block of B
    for (int item = itemBegin; item < itemEnd; ++item) {
      const Run& run = runs[item / itemsPerRun];
      const int j = (item % itemsPerRun) / expandBlocks;
      const int offset = shape.sliceOffsets[j], width = shape.sliceOffsets[j + 1] - offset;
      const int n0 = (item % expandBlocks) * kExpandColsPerItem, n1 = std::min(width, n0 + kExpandColsPerItem);
      if (n0 >= n1) continue;
      const int slot = tiles[run.firstTile].slot, r = tiles[run.firstTile].rank;
      const float* bSlot = buf.b.data() + buf.bSlotFloats * slot;  // [outTotal, R], columns [0, r) only
      if (run.rows < kTransposeMinRows) {  // few rows: r-long dot products straight from B's rows
        for (int ti = run.firstTile; ti < run.endTile; ++ti)
          for (int pos = tiles[ti].begin; pos < tiles[ti].end; ++pos) {
            const int row = rowAt(perm, pos);
            const float* uRow = u + static_cast<size_t>(row) * uStride + j * r;
            float* yRow = y + static_cast<size_t>(row) * yStride + yOffset + offset;
            for (int n = n0; n < n1; ++n) yRow[n] += detail::dot(uRow, bSlot + static_cast<size_t>(offset + n) * R, r);
          }
        continue;
      }
      // Many rows: transpose the block once (bt[k][n], k < r); each row is then y[n0:n1] += Σ_k u[k]·bt[k][:],
      // 8-wide FMAs without horizontal sums.
      bt.assign(static_cast<size_t>(r) * kExpandColsPerItem, 0.0f);
      for (int n = n0; n < n1; ++n) {
        const float* bRow = bSlot + static_cast<size_t>(offset + n) * R;
        for (int k = 0; k < r; ++k) bt[static_cast<size_t>(k) * kExpandColsPerItem + (n - n0)] = bRow[k];
      }
      const int count = n1 - n0;
      for (int ti = run.firstTile; ti < run.endTile; ++ti)
        for (int pos = tiles[ti].begin; pos < tiles[ti].end; ++pos) {
          const int row = rowAt(perm, pos);
          const float* uRow = u + static_cast<size_t>(row) * uStride + j * r;
          float* yRow = y + static_cast<size_t>(row) * yStride + yOffset + offset + n0;
          detail::Vec8 acc[kExpandColsPerItem / 8] = {};
          for (int k = 0; k < r; ++k) {
            const float uk = uRow[k];
            const float* btRow = bt.data() + static_cast<size_t>(k) * kExpandColsPerItem;
#pragma GCC unroll 8
            for (int v = 0; v < kExpandColsPerItem / 8; ++v) acc[v] += uk * detail::loadVec8(btRow + 8 * v);
          }
          for (int v = 0; v < kExpandColsPerItem / 8 && 8 * v < count; ++v)
            for (int l = 0; l < 8 && 8 * v + l < count; ++l) yRow[8 * v + l] += acc[v][l];
        }
    }
  });
}

}  // namespace tslora::lora
