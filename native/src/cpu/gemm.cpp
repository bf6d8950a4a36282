#include "gemm.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <thread>

#include "cpu-isa.h"
#include "tslora/thread-pool.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#endif

namespace tslora::cpu {
namespace {

inline void spinPause() {
#if defined(__x86_64__) || defined(_M_X64)
  _mm_pause();
#else
  std::this_thread::yield();
#endif
}

constexpr int kColBlock = 16;  // weight rows per parallel work item
constexpr int kSplitRows = 16;  // activation rows per block of SplitActs
constexpr int kSplitK = 32;     // k per tile step of SplitActs

// Whether this step's bf16 parts run on tiles: a kernel set with a tile GEMM (amx), a prefill-sized batch (the
// packed path's threshold) and at least one tile step of k.
bool useTileGemm(const CpuKernels& kernels, int M, const std::vector<GemmPart>& parts) {
  if (!kernels.tileGemm || kernels.packMinRows <= 0 || M < kernels.packMinRows) return false;
  if (parts.empty() || parts[0].w.cols < kSplitK) return false;
  for (const GemmPart& p : parts)
    if (p.w.type == WType::BF16) return true;
  return false;
}

// Splits the activation rows once for every thread's columns, 16-row blocks in parallel. The buffer is the calling
// thread's (each TP rank's thread has its own) and grows to the largest prefill: M x K x 2 bytes x terms.
SplitActs splitActivations(ThreadPool& pool, const CpuKernels& kernels, const std::vector<const float*>& xRows, int K) {
  static thread_local std::vector<uint32_t> buffer;
  const int M = static_cast<int>(xRows.size());
  SplitActs acts;
  acts.kFull = K / kSplitK * kSplitK;
  acts.terms = kernels.splitTerms;
  const int numBlocks = (M + kSplitRows - 1) / kSplitRows;
  const size_t blockSize = static_cast<size_t>(acts.terms) * (acts.kFull / 2) * kSplitRows;
  if (buffer.size() < numBlocks * blockSize) buffer.resize(numBlocks * blockSize);
  uint32_t* pairs = buffer.data();
  pool.run(numBlocks, [&](int b) {
    const int m0 = b * kSplitRows;
    kernels.splitRows(xRows.data() + m0, std::min(kSplitRows, M - m0), acts.kFull, acts.terms, pairs + b * blockSize);
  });
  acts.pairs = pairs;
  return acts;
}

std::atomic<bool> gProfiling{false};
// Nanoseconds and bytes per GemmProfile field, in its order.
enum ProfileField { kBaseNs, kBaseBytes, kOwnNs, kOwnBytes, kAwaitNs, kEpilogueNs, kWallNs, kNumProfileFields };
std::atomic<int64_t> gProfile[kNumProfileFields];

int64_t nowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
void addProfile(ProfileField f, int64_t v) { gProfile[f].fetch_add(v, std::memory_order_relaxed); }

// Chunks per thread, claimed dynamically: a thread that runs late on a shared machine takes fewer. 0 (epilogue only)
// = chosen by epilogueChunksPerThread.
int clampChunks(int n, int least) { return std::min(16, std::max(least, n)); }
int envChunks(const char* name, int fallback, int least) {
  const char* s = std::getenv(name);
  return s && *s ? clampChunks(std::atoi(s), least) : fallback;
}
std::atomic<int> gPlainChunks{envChunks("TSLORA_GEMM_CHUNKS", 4, 1)};
constexpr int kEpilogueChunksDefault = 4;  // 0 = chosen by epilogueChunksPerThread: until measured on the Xeon
std::atomic<int> gEpilogueChunks{envChunks("TSLORA_GEMM_EPILOGUE_CHUNKS", kEpilogueChunksDefault, 0)};
std::atomic<size_t> gMinEpilogueChunkBytes{16 << 10};

// Chunks per thread of the blocks after the head when the GEMM has an epilogue. Each chunk ends in one epilogue call
// and starts its weights' stream cold (the decode GEMV prefetches from its second tile of rows on). A fused LoRA
// expand over a short range (a few KiB of Bᵀ at rank 16 on a 125M model's o / down projections) costs more per call
// than per byte, so a chunk is cut only where each one's epilogue still reads gMinEpilogueChunkBytes (16 KiB): 1 to
// 4 per thread (4: as without an epilogue, for large models and ranks, where the dynamic claim balances a late thread).
int epilogueChunksPerThread(const GemmEpilogue& epilogue, int restBlocks, int numThreads) {
  const int fixed = gEpilogueChunks.load(std::memory_order_relaxed);
  if (fixed > 0) return fixed;
  if (epilogue.bytesPerColumn == 0) return 4;
  const double bytesPerThread = static_cast<double>(restBlocks) * kColBlock * epilogue.bytesPerColumn / numThreads;
  const double minBytes = static_cast<double>(gMinEpilogueChunkBytes.load(std::memory_order_relaxed));
  return static_cast<int>(std::min(4.0, std::max(1.0, bytesPerThread / minBytes)));
}

// Spins until every block of the parts with their own output is done (they come first in block order and are
// claimed before any later block, by threads that finish them without waiting: no cycle).
void awaitOwnParts(const std::atomic<int>& left) {
  for (int spins = 0; left.load(std::memory_order_acquire) > 0; ++spins) {
    if (spins < 4096) spinPause();
    else std::this_thread::yield();
  }
}

// partRows[i]: the output row pointers of parts[i] (parts with their own output first).
void gemmPointers(ThreadPool& pool, const std::vector<const float*>& xRows,
                  const std::vector<const std::vector<float*>*>& partRows, const std::vector<GemmPart>& parts,
                  const GemmEpilogue* epilogue = nullptr) {
  int M = static_cast<int>(xRows.size());
  if (M == 0) return;
  const int64_t wallStart = gProfiling.load(std::memory_order_relaxed) ? nowNs() : 0;
  // Global column index over the concatenated parts, split into blocks of kColBlock.
  std::vector<int> blockStart{0};
  int ownBlocks = 0;  // blocks of parts with their own output (a fused LoRA shrink)
  for (const auto& p : parts) {
    const int blocks = (p.w.rows + kColBlock - 1) / kColBlock;
    if (p.out) ownBlocks += blocks;
    blockStart.push_back(blockStart.back() + blocks);
  }
  std::atomic<int> ownBlocksLeft{ownBlocks};
  int totalBlocks = blockStart.back();
  // A few chunks per thread, claimed dynamically: a thread that runs late on a shared machine takes fewer.
  // With an epilogue, the blocks of parts with their own output (a LoRA shrink) come first as one chunk per thread:
  // the threads finish them together, so an epilogue seldom waits, and each streams its share in one run (the
  // decode GEMV prefetches from its second tile of rows on: every chunk starts cold). The rest (or, without an
  // epilogue, everything) goes in a few chunks per thread.
  const int headBlocks = epilogue ? ownBlocks : 0;
  const int headChunks = std::min(headBlocks, pool.numThreads());
  const int restBlocks = totalBlocks - headBlocks;
  const int chunksPerThread = epilogue ? epilogueChunksPerThread(*epilogue, restBlocks, pool.numThreads())
                                       : gPlainChunks.load(std::memory_order_relaxed);
  const int restChunks = std::min(restBlocks, pool.numThreads() * chunksPerThread);
  const int numChunks = headChunks + restChunks;
  const CpuKernels& kernels = cpuKernels();
  const bool tiles = useTileGemm(kernels, M, parts);
  const SplitActs acts = tiles ? splitActivations(pool, kernels, xRows, parts[0].w.cols) : SplitActs{};
  auto runBlocks = [&](int b0, int b1) {
    for (size_t pi = 0; pi < parts.size(); ++pi) {
      int lo = std::max(b0, blockStart[pi]), hi = std::min(b1, blockStart[pi + 1]);
      if (lo >= hi) continue;
      const GemmPart& part = parts[pi];
      int n0 = (lo - blockStart[pi]) * kColBlock;
      int n1 = std::min(part.w.rows, (hi - blockStart[pi]) * kColBlock);
      const bool profiling = gProfiling.load(std::memory_order_relaxed);
      int64_t t0 = profiling ? nowNs() : 0;
      if (epilogue && !part.out && epilogue->before) epilogue->before(part.outOffset + n0, part.outOffset + n1);
      if (profiling) {
        const int64_t t1 = nowNs();
        addProfile(kEpilogueNs, t1 - t0);
        t0 = t1;
      }
      if (tiles && part.w.type == WType::BF16) {
        kernels.tileGemm(acts, xRows.data(), partRows[pi]->data(), M, part.w.data, part.w.cols, n0, n1, part.outOffset);
      } else {
        kernels.gemmRange(xRows.data(), partRows[pi]->data(), M, part.w.data, part.w.type, part.w.cols, n0, n1,
                          part.outOffset, kernels.prefetchBytes, kernels.packMinRows);
      }
      if (profiling) {
        const int64_t t1 = nowNs();
        addProfile(part.out ? kOwnNs : kBaseNs, t1 - t0);
        addProfile(part.out ? kOwnBytes : kBaseBytes, static_cast<int64_t>(n1 - n0) * part.w.cols * part.w.bytesPerElement());
        t0 = t1;
      }
      if (part.out) {
        ownBlocksLeft.fetch_sub(hi - lo, std::memory_order_release);
      } else if (epilogue) {
        awaitOwnParts(ownBlocksLeft);
        const int64_t t1 = profiling ? nowNs() : 0;
        epilogue->after(part.outOffset + n0, part.outOffset + n1);
        if (profiling) {
          addProfile(kAwaitNs, t1 - t0);
          addProfile(kEpilogueNs, nowNs() - t1);
        }
      }
    }
  };
  auto share = [](int blocks, int k, int chunks) { return static_cast<int>(static_cast<int64_t>(blocks) * k / chunks); };
  if (numChunks <= 1) {
    runBlocks(0, totalBlocks);
  } else {
    pool.run(numChunks, [&](int c) {
      if (c < headChunks) return runBlocks(share(headBlocks, c, headChunks), share(headBlocks, c + 1, headChunks));
      const int k = c - headChunks;
      runBlocks(headBlocks + share(restBlocks, k, restChunks), headBlocks + share(restBlocks, k + 1, restChunks));
    });
  }
  if (wallStart) addProfile(kWallNs, nowNs() - wallStart);
}

}  // namespace

void gemm(ThreadPool& pool, const float* x, int M, int ldx, const std::vector<GemmPart>& partsIn, float* y, int ldy,
          const GemmEpilogue* epilogue) {
  std::vector<GemmPart> parts;  // parts with their own output first (see awaitOwnParts)
  parts.reserve(partsIn.size());
  for (const GemmPart& p : partsIn)
    if (p.out) parts.push_back(p);
  for (const GemmPart& p : partsIn)
    if (!p.out) parts.push_back(p);
  std::vector<const float*> xRows(M);
  std::vector<float*> yRows(M);
  for (int m = 0; m < M; ++m) {
    xRows[m] = x + static_cast<size_t>(m) * ldx;
    yRows[m] = y + static_cast<size_t>(m) * ldy;
  }
  std::vector<std::vector<float*>> ownRows;  // parts with their own output
  ownRows.reserve(parts.size());
  std::vector<const std::vector<float*>*> partRows;
  for (const GemmPart& p : parts) {
    if (!p.out) {
      partRows.push_back(&yRows);
      continue;
    }
    ownRows.emplace_back(M);
    for (int m = 0; m < M; ++m) ownRows.back()[m] = p.out + static_cast<size_t>(m) * p.ldOut;
    partRows.push_back(&ownRows.back());
  }
  gemmPointers(pool, xRows, partRows, parts, epilogue);
}

void gemmRows(ThreadPool& pool, const float* x, const int32_t* rowIndex, int numRows, int ldx, const WeightView& w,
              float* y, int ldy) {
  std::vector<const float*> xRows(numRows);
  std::vector<float*> yRows(numRows);
  for (int i = 0; i < numRows; ++i) {
    xRows[i] = x + static_cast<size_t>(rowIndex[i]) * ldx;
    yRows[i] = y + static_cast<size_t>(i) * ldy;
  }
  gemmPointers(pool, xRows, {&yRows}, {GemmPart{w, 0}});
}

int setGemmEpilogueChunks(int chunksPerThread, size_t minChunkBytes) {
  if (minChunkBytes > 0) gMinEpilogueChunkBytes.store(minChunkBytes, std::memory_order_relaxed);
  return gEpilogueChunks.exchange(chunksPerThread <= 0 ? 0 : clampChunks(chunksPerThread, 1), std::memory_order_relaxed);
}

void setGemmChunks(int chunksPerThread) { gPlainChunks.store(clampChunks(chunksPerThread, 1), std::memory_order_relaxed); }

void setGemmProfiling(bool on) { gProfiling.store(on, std::memory_order_relaxed); }

GemmProfile takeGemmProfile() {
  int64_t v[kNumProfileFields];
  for (int f = 0; f < kNumProfileFields; ++f) v[f] = gProfile[f].exchange(0, std::memory_order_relaxed);
  GemmProfile p;
  p.baseNs = static_cast<double>(v[kBaseNs]);
  p.baseBytes = static_cast<double>(v[kBaseBytes]);
  p.ownNs = static_cast<double>(v[kOwnNs]);
  p.ownBytes = static_cast<double>(v[kOwnBytes]);
  p.awaitNs = static_cast<double>(v[kAwaitNs]);
  p.epilogueNs = static_cast<double>(v[kEpilogueNs]);
  p.wallNs = static_cast<double>(v[kWallNs]);
  return p;
}

void loadRow(const WeightView& w, int row, float* out) {
  const size_t esz = w.bytesPerElement();
  const void* src = static_cast<const char*>(w.data) + static_cast<size_t>(row) * w.cols * esz;
  switch (w.type) {
    case WType::BF16:
      for (int i = 0; i < w.cols; ++i) out[i] = loadScalar<WType::BF16>(src, i);
      break;
    case WType::F16:
      for (int i = 0; i < w.cols; ++i) out[i] = loadScalar<WType::F16>(src, i);
      break;
    default:
      std::memcpy(out, src, static_cast<size_t>(w.cols) * 4);
  }
}

}  // namespace tslora::cpu
