// The CPU LoRA kernels proper, templated on the pool's weight storage W (float, or uint16_t = bf16 bits).
// Both strategies run this code; they differ in the tiles (see lora_apply.cpp). Only [0, r) of a slot is read.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "cpu_dot.h"
#include "lora_internal.h"
#include "tslora/parallel.h"

namespace tslora::lora::detail {

constexpr int kShrinkColsPerItem = 16;  // U columns (c*r space) per parallel work item
constexpr int kExpandColsPerItem = 512;  // output columns per parallel work item (32 panels)
// How far ahead the expand prefetches its Bᵀ panels: 4 KiB by default, TSLORA_LORA_EXPAND_PREFETCH_BYTES (0 = none)
// for tuning on a new machine. Read once.
int expandPrefetchBytes();
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
};

// The expand y[i][n] += Σ_{k<r} u[i][k] · Bᵀ[k][n] over the pool's Bᵀ panels (lora_internal.h). Every output
// column is summed in one fixed order, whatever the row grouping, column range or code path: two chains over k
// (even k, odd k, each from 0), then y += even + odd. The two chains halve the add latency a decode row waits on.

// One whole panel (kPanelCols = 16 columns) for NX rows; y[i] points at the panel's first column of row i.
template <int NX, typename W>
inline void expandPanel(const float* const* u, const W* panel, int r, float* const* y) {
  static_assert(kPanelCols == 16, "two vectors per panel row");
  Vec8 even[NX][2] = {}, odd[NX][2] = {};
  int k = 0;
  for (; k + 2 <= r; k += 2) {
    const W* p = panel + static_cast<size_t>(k) * kPanelCols;
    const Vec8 e0 = loadVec8(p), e1 = loadVec8(p + 8), o0 = loadVec8(p + 16), o1 = loadVec8(p + 24);
#pragma GCC unroll 2
    for (int i = 0; i < NX; ++i) {
      even[i][0] += u[i][k] * e0;
      even[i][1] += u[i][k] * e1;
      odd[i][0] += u[i][k + 1] * o0;
      odd[i][1] += u[i][k + 1] * o1;
    }
  }
  if (k < r) {
    const W* p = panel + static_cast<size_t>(k) * kPanelCols;
    const Vec8 e0 = loadVec8(p), e1 = loadVec8(p + 8);
    for (int i = 0; i < NX; ++i) {
      even[i][0] += u[i][k] * e0;
      even[i][1] += u[i][k] * e1;
    }
  }
  for (int i = 0; i < NX; ++i)
    for (int h = 0; h < 2; ++h) {
      const Vec8 sum = even[i][h] + odd[i][h];
      for (int l = 0; l < 8; ++l) y[i][8 * h + l] += sum[l];
    }
}

// Columns [c0, c1) of a panel for one row, one column at a time (a range's ragged ends), in the same order.
template <typename W>
inline void expandPanelColumns(const float* u, const W* panel, int r, int c0, int c1, float* y) {
  for (int c = c0; c < c1; ++c) {
    float even = 0.0f, odd = 0.0f;
    int k = 0;
    for (; k + 2 <= r; k += 2) {
      even += u[k] * toFloat(panel[static_cast<size_t>(k) * kPanelCols + c]);
      odd += u[k + 1] * toFloat(panel[static_cast<size_t>(k + 1) * kPanelCols + c]);
    }
    if (k < r) even += u[k] * toFloat(panel[static_cast<size_t>(k) * kPanelCols + c]);
    y[c] += even + odd;
  }
}

// Prefetches [from, from + bytes) up to `end`, one request per 64-byte line.
inline void prefetchBytes(const char* from, size_t bytes, const char* end) {
  for (const char* p = from; p < from + bytes && p < end; p += 64) __builtin_prefetch(p);
}

// The first expandPrefetchBytes() of the panels expandRunColumns(g0, g1) reads (see LoraPool::prefetchExpand).
template <typename W>
void prefetchRunColumns(const W* panels, int r, int g0, int g1) {
  const W* first = panels + static_cast<size_t>(g0 / kPanelCols) * r * kPanelCols;
  const W* end = panels + static_cast<size_t>((g1 + kPanelCols - 1) / kPanelCols) * r * kPanelCols;
  prefetchBytes(reinterpret_cast<const char*>(first), static_cast<size_t>(expandPrefetchBytes()), reinterpret_cast<const char*>(end));
}

// y[p][g0:g1) += u[p][0:r) · Bᵀ[0:r, g0:g1) for the rows p of one run of a slot (physical row indices), module
// columns [g0, g1) inside one slice. u points at the slice's first shrink column of row 0, y at the module's first
// output column of row 0 (row p at + p * stride), panels at the slot's Bᵀ panels of rank r. Panels outer, rows
// inner: each panel (r × 16 columns) is read once from memory and reused from L1 by every row.
template <typename W>
void expandRunColumns(const int32_t* rows, int numRows, const float* u, int uStride, float* y, int yStride,
                      const W* panels, int r, int g0, int g1) {
  const size_t panelBytes = static_cast<size_t>(r) * kPanelCols * sizeof(W);
  const size_t distance = static_cast<size_t>(expandPrefetchBytes());
  const char* rangeEnd = reinterpret_cast<const char*>(panels + static_cast<size_t>((g1 + kPanelCols - 1) / kPanelCols) * r * kPanelCols);
  for (int p0 = g0 / kPanelCols * kPanelCols; p0 < g1; p0 += kPanelCols) {
    const W* panel = panels + static_cast<size_t>(p0 / kPanelCols) * r * kPanelCols;
    // Software prefetch a fixed distance ahead, inside the range: a decode row's column range is a short stream
    // (a few KiB) that the hardware prefetcher would only pick up halfway.
    if (distance > 0) prefetchBytes(reinterpret_cast<const char*>(panel) + distance, panelBytes, rangeEnd);
    const int c0 = std::max(g0, p0) - p0, c1 = std::min(g1, p0 + kPanelCols) - p0;
    const auto uRow = [&](int i) { return u + static_cast<size_t>(rows[i]) * uStride; };
    const auto yRow = [&](int i) { return y + static_cast<size_t>(rows[i]) * yStride + p0; };
    if (c0 > 0 || c1 < kPanelCols) {
      for (int i = 0; i < numRows; ++i) expandPanelColumns(uRow(i), panel, r, c0, c1, yRow(i));
      continue;
    }
    int i = 0;
    for (; i + 2 <= numRows; i += 2) {
      const float* uPair[2] = {uRow(i), uRow(i + 1)};
      float* yPair[2] = {yRow(i), yRow(i + 1)};
      expandPanel<2>(uPair, panel, r, yPair);
    }
    if (i < numRows) {
      const float* uOne[1] = {uRow(i)};
      float* yOne[1] = {yRow(i)};
      expandPanel<1>(uOne, panel, r, yOne);
    }
  }
}

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
      expandRunColumns(runRows.data() + run.firstRow, runs[ri + 1].firstRow - run.firstRow, u + j * r, uStride,
                       y + yOffset, yStride, bAll + bSlotElems * slot, r, offset + n0, offset + n1);
    }
  });
}

}  // namespace tslora::lora::detail
