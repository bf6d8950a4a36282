// y = x · Wᵀ for weights kept in their checkpoint dtype (bf16 / fp16 / f32, widened to fp32 in the inner loop).
// Each weight row is streamed from memory once per block of up to 64 activation rows, so a decode batch reads the
// weights once per step; threads split the output columns (weight rows).
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "simd.h"

namespace tslora {
class ThreadPool;
}

namespace tslora::cpu {

// A row-major matrix [rows, cols] inside a mapping (or an owned buffer).
struct WeightView {
  const void* data = nullptr;
  WType type = WType::F32;
  int rows = 0;
  int cols = 0;
  size_t bytesPerElement() const { return static_cast<size_t>(wtypeBytes(type)); }
  size_t sizeBytes() const { return static_cast<size_t>(rows) * cols * bytesPerElement(); }
};

// One weight whose output columns land at [outOffset, outOffset + w.rows) of y (fused qkv / gate_up), or of its own
// output rows `out` (stride ldOut) when set: a LoRA shrink riding along the base projection's pass over x.
struct GemmPart {
  WeightView w;
  int outOffset = 0;
  float* out = nullptr;
  int ldOut = 0;
};

// Work on y's columns [c0, c1) (a range of a part without its own output) by the thread that computes them, inside
// the GEMM's parallel region: `before` just before it starts the range (e.g. prefetching what `after` reads, while
// the weights stream), `after` once it wrote the range and every part with its own output is complete. A LoRA
// expand that needs the shrink riding along the same pass adds itself there, with no parallel region of its own.
struct GemmEpilogue {
  std::function<void(int c0, int c1)> before;  // optional
  std::function<void(int c0, int c1)> after;
  // Bytes `after` reads per output column (a fused LoRA expand: its rank × element size of Bᵀ), from which the GEMM
  // chooses how many ranges per thread to cut (gemm-chunks.cpp: epilogueChunksPerThread); 0 = unknown (4 per thread).
  size_t bytesPerColumn = 0;
};

// x: [M, K] with row stride ldx; y: [M, ldy]. Every part must have cols == K. Overwrites the part's columns.
// Parts with their own output run first (in block order), so an epilogue waits for them only briefly.
void gemm(ThreadPool& pool, const float* x, int M, int ldx, const std::vector<GemmPart>& parts, float* y, int ldy,
          const GemmEpilogue* epilogue = nullptr);

// Same, but only for rows listed in rowIndex (x row rowIndex[i] → y row i); used for logit rows.
void gemmRows(ThreadPool& pool, const float* x, const int32_t* rowIndex, int numRows, int ldx, const WeightView& w,
              float* y, int ldy);

// Chunks per thread of a GEMM with an epilogue, after its head: each chunk ends in one epilogue call (a fused LoRA
// expand). 0 = chosen from the epilogue's bytes per thread, each chunk's at least minChunkBytes (512 KiB unless set;
// 0 keeps it; gemm-chunks.cpp: epilogueChunksPerThread; the default); 1-16 = that many. TSLORA_GEMM_EPILOGUE_CHUNKS
// sets the start value. Returns the previous count. Between steps only (benchmarks).
int setGemmEpilogueChunks(int chunksPerThread, size_t minChunkBytes = 0);
// Chunks per thread of a GEMM without an epilogue (default 4, TSLORA_GEMM_CHUNKS; clamped to 1-16). Between steps
// only (benchmarks: whether a base step gains from fewer chunks too).
void setGemmChunks(int chunksPerThread);
// Whether a GEMM gives each thread one contiguous run of its columns (after the head of an epilogue's GEMM), cut into
// as many pieces as it would cut chunks, taken front to back, a thread done with its own taking the back half of
// another's rest (gemm-chunks.h: OwnedRanges), instead of chunks claimed in turn: 0 = never, 1 = GEMMs without an
// epilogue, 2 = every GEMM (the default since session 16's Xeon round; TSLORA_GEMM_OWNED_RANGES). Returns the
// previous mode. Same results in every mode.
// Between steps only.
int setGemmOwnedRanges(int mode);
// How a GEMM's decode GEMV prefetches its weights beyond one tile of rows ahead (simd.h: kPrefetchFar = 1,
// kPrefetchStopAtEnd = 2): baseFlags for the base projections' weights (default kPrefetchFar), ownFlags for parts with
// their own output (a fused LoRA shrink's A; default kPrefetchFar | kPrefetchStopAtEnd); TSLORA_GEMM_BASE_PREFETCH /
// TSLORA_GEMM_OWN_PREFETCH set the start values (0 = neither). Returns the previous pair as baseFlags | ownFlags << 8. Same results whatever the flags.
// Between steps only.
int setGemmPrefetchFlags(int baseFlags, int ownFlags);

// Where the GEMM threads' time goes, summed over threads, while profiling is on (benchmarks: what a LoRA step adds
// to the base step). Ranges of parts without their own output ("base"), of parts with one (a fused LoRA shrink,
// "own"), an epilogue's wait for those ("await") and the epilogue's before + after calls (a fused LoRA expand).
// wallNs: the calling thread's time inside gemm() (from its first chunk to the last thread's end), so a step's time
// outside the GEMMs is its wall time minus this.
struct GemmProfile {
  double baseNs = 0, baseBytes = 0, ownNs = 0, ownBytes = 0, awaitNs = 0, epilogueNs = 0, wallNs = 0;
};
// Off by default (one relaxed load per range); between steps only.
void setGemmProfiling(bool on);
// The sums since the last call; resets them.
GemmProfile takeGemmProfile();

// out[0, cols) = row r of w converted to fp32 (embedding lookup).
void loadRow(const WeightView& w, int row, float* out);

}  // namespace tslora::cpu
