// What both prefill attention kernels (the WMMA one of attention-prefill.cu and the mma.sync one of
// attention-prefill-mma.cuh) do the same way: a block's query tile is kRows (token, q head) rows of one KV head, row r =
// (token t0 + r / G, q head kvh · G + r % G); it runs once per segment (a run of the tile's tokens of one sequence),
// and per segment over key tiles of kKeys keys read through the sequence's block table.
#pragma once
#include <cstdint>

#include "attention-merge.h"
#include "cp-async.cuh"
#include "kernels.h"

namespace tslora::cuda::prefill_tiles {

// The tile's query rows: which KV head, which tokens, how many rows per token (the GQA group).
struct QueryTile {
  int G, tokensPerTile, kvh, t0, tileEnd;
};

// The block's tile: blockIdx.x counts tiles of kRows / G tokens, blockIdx.y is the KV head.
template <int kRows>
__device__ __forceinline__ QueryTile queryTileOf(const HeadShape& hs, int T_) {
  const int G = hs.numHeads / hs.numKvHeads, tokens = kRows / G, t0 = static_cast<int>(blockIdx.x) * tokens;
  return QueryTile{G, tokens, static_cast<int>(blockIdx.y), t0, min(T_, t0 + tokens)};
}

// The segment of the tile that starts at token segStart: its end, the sequence's block table and its key count (the
// largest position among its tokens, plus one). False for a short sequence (fewer than kPrefillMinRows rows in the
// launch): the split kernel of attention.cu takes its rows. Every thread computes the same.
struct Segment {
  int end, numKeys;
  const int32_t* table;
};
__device__ __forceinline__ bool segmentAt(const AttnTables& tabs, int T_, const QueryTile& qt, int segStart, Segment& s) {
  const int seq = tabs.tokenSeq[segStart];
  s.end = segStart + 1;
  while (s.end < qt.tileEnd && tabs.tokenSeq[s.end] == seq) ++s.end;
  if (seqRowCount(tabs.tokenSeq, T_, segStart) < kPrefillMinRows) return false;
  int maxPos = 0;
  for (int t = segStart; t < s.end; ++t) maxPos = max(maxPos, tabs.positions[t]);
  s.numKeys = maxPos + 1;
  s.table = tabs.blockTables + static_cast<size_t>(seq) * tabs.maxBlocksPerSeq;
  return true;
}

// body(segStart, seg) for every segment of the tile that the prefill kernels take, one after another (a short
// sequence's rows are the split kernel's). Every thread of the block runs the same segments.
template <typename Body>
__device__ __forceinline__ void forEachSegment(const AttnTables& tabs, int T_, const QueryTile& qt, Body&& body) {
  for (int segStart = qt.t0; segStart < qt.tileEnd;) {
    Segment seg;
    if (segmentAt(tabs, T_, qt, segStart, seg)) body(segStart, seg);
    segStart = seg.end;
  }
}

// Q rows of the segment [segStart, segEnd) into sQ [kRows][kLd], other rows zero. No barrier: the caller's next one
// publishes them.
template <typename T, int D, int kRows, int kThreads, int kLd>
__device__ __forceinline__ void loadQueryRows(const T* q, const HeadShape& hs, const QueryTile& qt, int segStart, int segEnd,
                                              T* sQ) {
  constexpr int kVecs = D / 8;
  const int tid = threadIdx.x;
  for (int v = tid; v < kRows * kVecs; v += kThreads) {
    const int r = v / kVecs, c = v - r * kVecs;
    const int t = qt.t0 + r / qt.G;
    uint4 val = make_uint4(0u, 0u, 0u, 0u);
    if (r < qt.tokensPerTile * qt.G && t >= segStart && t < segEnd) {
      const size_t row = static_cast<size_t>(t) * hs.numHeads + static_cast<size_t>(qt.kvh) * qt.G + r % qt.G;
      val = reinterpret_cast<const uint4*>(q + row * D)[c];
    }
    *reinterpret_cast<uint4*>(sQ + r * kLd + c * 8) = val;
  }
}

// The rows' positions into sPos [kRows]: −1 for rows outside the segment (every key masked). No barrier either.
template <int kRows>
__device__ __forceinline__ void setRowPositions(const AttnTables& tabs, const QueryTile& qt, int segStart, int segEnd,
                                                int32_t* sPos) {
  const int tid = threadIdx.x;
  if (tid < kRows) {
    const int t = qt.t0 + tid / qt.G;
    sPos[tid] = tid < qt.tokensPerTile * qt.G && t >= segStart && t < segEnd ? tabs.positions[t] : -1;
  }
}

// The cache offset of 16-byte chunk c of key `key` of the KV head (K's and V's: the same layout), through the block
// table; only for keys below the segment's key count.
template <int D>
__device__ __forceinline__ size_t keyChunkOffset(const Segment& seg, int blockSize, int kvW, int kvh, int key, int c) {
  return (static_cast<size_t>(seg.table[key / blockSize]) * blockSize + key % blockSize) * kvW + static_cast<size_t>(kvh) * D +
         static_cast<size_t>(c) * 8;
}

// Keys [k0, k0 + kKeys) of the KV head into sK / sV [kKeys][kLd] through the block table; zeros past numKeys.
// kAsync: by cp.async (cp-async.cuh), one 16-byte copy per chunk, which the caller commits and waits for before a
// barrier and the reads; else through registers, landed when the caller's next barrier passes.
template <typename T, int D, int kKeys, int kThreads, int kLd, bool kAsync = false>
__device__ __forceinline__ void loadKeyTile(const T* kCache, const T* vCache, const HeadShape& hs, int blockSize,
                                            const QueryTile& qt, const Segment& seg, int k0, T* sK, T* sV) {
  constexpr int kVecs = D / 8;
  const int kvW = hs.numKvHeads * D;
  for (int v = threadIdx.x; v < kKeys * kVecs; v += kThreads) {
    const int j = v / kVecs, c = v - j * kVecs;
    const int key = k0 + j;
    const bool valid = key < seg.numKeys;
    if constexpr (kAsync) {
      const size_t off = valid ? keyChunkOffset<D>(seg, blockSize, kvW, qt.kvh, key, c) : 0;
      cpAsync16(sK + j * kLd + c * 8, kCache + off, valid);
      cpAsync16(sV + j * kLd + c * 8, vCache + off, valid);
    } else {
      uint4 kv = make_uint4(0u, 0u, 0u, 0u), vv = make_uint4(0u, 0u, 0u, 0u);
      if (valid) {
        const size_t off = keyChunkOffset<D>(seg, blockSize, kvW, qt.kvh, key, c);
        kv = *reinterpret_cast<const uint4*>(kCache + off);
        vv = *reinterpret_cast<const uint4*>(vCache + off);
      }
      *reinterpret_cast<uint4*>(sK + j * kLd + c * 8) = kv;
      *reinterpret_cast<uint4*>(sV + j * kLd + c * 8) = vv;
    }
  }
}

}  // namespace tslora::cuda::prefill_tiles
