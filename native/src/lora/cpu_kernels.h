// The CPU LoRA kernels proper, templated on the pool's weight storage W (float, uint16_t = bf16 bits, or int8_t codes
// whose scales KernelArgs carries).
// Both strategies run this code; they differ in the tiles (see lora_apply.cpp). Only [0, r) of a slot is read.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "cpu_dot.h"
#include "cpu_expand.h"
#include "lora_internal.h"
#include "tslora/parallel.h"

namespace tslora::lora::detail {

constexpr int kShrinkColsPerItem = 16;  // U columns (c*r space) per parallel work item
constexpr int kExpandColsPerItem = 512;  // output columns per parallel work item (32 panels)
// Smallest share of work worth handing to another thread (FMAs): a batch-1 decode step stays on the caller.
constexpr double kMinFmasPerChunk = 48 * 1024;

inline int minChunkFor(double totalFmas, int items) {
  if (items <= 0 || totalFmas <= 0) return 1;
  const double perItem = totalFmas / items;
  return static_cast<int>(std::max(1.0, std::ceil(kMinFmasPerChunk / perItem)));
}

struct Tile {
  int begin, end;  // positions in the (permuted) row order
  int slot, rank;
};

inline int rowAt(const int32_t* permutation, int position) { return permutation ? permutation[position] : position; }

struct KernelArgs {
  const std::vector<Tile>& tiles;
  const int32_t* perm;
  const ModuleShape& shape;
  int R;
  bool embed;
  const float* x;
  int xStride;
  float* y;
  int yStride, yOffset;
  float* u;  // [numTokens, c*R] by physical row
  int uStride;
  const int32_t* tokenIds;
  ThreadPool& threads;
  bool shrinkDone = false;  // u was computed by the caller (fused into the base GEMM): expand only
  // I8 pools: [S, aScaleSlotElems] A-row scales. The shrink (here or the caller's) leaves raw dot products with the
  // codes in u, and the expand applies the scales (ExpandRange::uScale).
  const float* aScaleAll = nullptr;
  size_t aScaleSlotElems = 0;
};

template <typename W>
void runLoraKernels(const KernelArgs& k, const W* aAll, size_t aSlotElems, const W* bAll, size_t bSlotElems) {
  const std::vector<Tile>& tiles = k.tiles;
  const ModuleShape& shape = k.shape;
  const int c = shape.numSlices, R = k.R, in = shape.in, uStride = k.uStride, xStride = k.xStride;
  const int32_t* perm = k.perm;
  const float* x = k.x;
  float* y = k.y;
  float* u = k.u;
  const int yStride = k.yStride, yOffset = k.yOffset;
  ThreadPool& threads = k.threads;
  const bool embed = k.embed;
  const int32_t* tokenIds = k.tokenIds;
  if (embed) {  // shrink = a column gather from A [R, vocab]
    for (const Tile& t : tiles)
      for (int pos = t.begin; pos < t.end; ++pos) {
        const int row = rowAt(perm, pos), id = tokenIds[row];
        if (id < 0 || id >= in) throw std::invalid_argument("LoRA apply: token id " + std::to_string(id) + " outside the vocabulary");
        const W* a = aAll + aSlotElems * t.slot;
        for (int k = 0; k < t.rank; ++k) u[static_cast<size_t>(row) * uStride + k] = toFloat(a[static_cast<size_t>(k) * in + id]);
      }
  } else if (!k.shrinkDone) {
    const int shrinkBlocks = (c * R + kShrinkColsPerItem - 1) / kShrinkColsPerItem;
    double shrinkFmas = 0;
    for (const Tile& t : tiles) shrinkFmas += static_cast<double>(t.end - t.begin) * c * t.rank * in;
    const int shrinkItems = static_cast<int>(tiles.size()) * shrinkBlocks;
    parallelFor(threads, 0, shrinkItems, minChunkFor(shrinkFmas, shrinkItems), [&](int itemBegin, int itemEnd) {
      for (int item = itemBegin; item < itemEnd; ++item) {
        const Tile& t = tiles[item / shrinkBlocks];
        const int n0 = (item % shrinkBlocks) * kShrinkColsPerItem, n1 = std::min(c * t.rank, n0 + kShrinkColsPerItem);
        const W* aSlot = aAll + aSlotElems * t.slot;  // rows [0, c*r) only
        // Two A rows × four input rows per micro-block (six loads feed eight 8-wide FMAs).
        const float* rows[4];
        for (int n = n0; n < n1; n += 2) {
          const int na = std::min(2, n1 - n);
          const W* a[2] = {aSlot + static_cast<size_t>(n) * in, aSlot + static_cast<size_t>(n + na - 1) * in};
          int pos = t.begin;
          for (; pos < t.end; pos += 4) {
            const int nx = std::min(4, t.end - pos);
            for (int i = 0; i < 4; ++i) rows[i] = x + static_cast<size_t>(rowAt(perm, pos + std::min(i, nx - 1))) * xStride;
            float out[2][4];
            if (nx == 4) dotBlock<2, 4>(a, rows, in, out);
            else if (nx == 1) {
              float one[2][1];
              dotBlock<2, 1>(a, rows, in, one);
              out[0][0] = one[0][0];
              out[1][0] = one[1][0];
            } else dotBlock<2, 4>(a, rows, in, out);  // 2-3 rows: the spare lanes repeat the last row
            for (int i = 0; i < na; ++i)
              for (int j = 0; j < nx; ++j) u[static_cast<size_t>(rowAt(perm, pos + j)) * uStride + n + i] = out[i][j];
          }
        }
      }
    });
  }

  // Expand work is grouped by runs of consecutive tiles of one slot (csgmv: every chunk of an adapter): a block of
  // Bᵀ is loaded once per group of rows of the run.
  struct Run {
    int firstTile, endTile, firstRow;  // firstRow: index of its first row in runRows
  };
  std::vector<Run> runs;
  std::vector<int32_t> runRows;  // physical rows of every run, in run order
  for (int i = 0; i < static_cast<int>(tiles.size()); ++i) {
    const Tile& t = tiles[i];
    if (runs.empty() || tiles[runs.back().endTile - 1].slot != t.slot)
      runs.push_back({i, i, static_cast<int>(runRows.size())});
    runs.back().endTile = i + 1;
    for (int pos = t.begin; pos < t.end; ++pos) runRows.push_back(rowAt(perm, pos));
  }
  runs.push_back({0, 0, static_cast<int>(runRows.size())});  // sentinel: the end of the last run's rows
  const int numRuns = static_cast<int>(runs.size()) - 1;
  int widest = 0;
  for (int j = 0; j < c; ++j) widest = std::max(widest, shape.sliceOffsets[j + 1] - shape.sliceOffsets[j]);
  const int expandBlocks = (widest + kExpandColsPerItem - 1) / kExpandColsPerItem;
  const int itemsPerRun = c * expandBlocks;
  double expandFmas = 0;
  for (int i = 0; i < numRuns; ++i)
    expandFmas += static_cast<double>(runs[i + 1].firstRow - runs[i].firstRow) * shape.outTotal() * tiles[runs[i].firstTile].rank;
  const int expandItems = numRuns * itemsPerRun;
  parallelFor(threads, 0, expandItems, minChunkFor(expandFmas, expandItems), [&](int itemBegin, int itemEnd) {
    for (int item = itemBegin; item < itemEnd; ++item) {
      const int ri = item / itemsPerRun;
      const Run& run = runs[ri];
      const int j = (item % itemsPerRun) / expandBlocks;
      const int offset = shape.sliceOffsets[j], width = shape.sliceOffsets[j + 1] - offset;
      const int n0 = (item % expandBlocks) * kExpandColsPerItem, n1 = std::min(width, n0 + kExpandColsPerItem);
      if (n0 >= n1) continue;
      const int slot = tiles[run.firstTile].slot, r = tiles[run.firstTile].rank;
      const float* uScale = k.aScaleAll ? k.aScaleAll + k.aScaleSlotElems * slot + j * r : nullptr;
      expandRange({runRows.data() + run.firstRow, runs[ri + 1].firstRow - run.firstRow, u + j * r, uStride, y + yOffset,
                   yStride, r, offset + n0, offset + n1, uScale},
                  bAll + bSlotElems * slot);
    }
  });
}

}  // namespace tslora::lora::detail
