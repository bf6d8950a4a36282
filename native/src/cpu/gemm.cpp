#include "gemm.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <thread>

#include "cpu-isa.h"
#include "gemm-chunks.h"
#include "tslora/env-int.h"
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
// Ranges cut at multiples of kColBlock keep each column on one path of the packed GEMM (gemm-packed.inc): the
// widest copy's kLanes (AVX-512: 16) must divide it.
static_assert(kColBlock % 16 == 0, "GEMM ranges must hold whole kLanes-column groups of every kernel copy");
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
// Prefetch flags (simd.h) of the base projections' weights and of parts with their own output (a fused shrink).
// Far L2 on: measured on the Xeon (session 17, two device rounds, bench/native/RESULTS.md): base decode steps
// 7.8-13.2 % faster in-process (4 profiles), 8.9 against 9.9 ms in decode.ts processes; base weights read at 97-104 %
// of the copy bandwidth against 83-102 %. Stop-at-end on the shrink: its A read 10-15 % faster there (7.5-11.1
// against 6.7-10.1 GB/s per thread).
constexpr int kBasePrefetchDefault = kPrefetchFar;
constexpr int kOwnPrefetchDefault = kPrefetchFar | kPrefetchStopAtEnd;
std::atomic<int> gBasePrefetchFlags{envInt("TSLORA_GEMM_BASE_PREFETCH", kBasePrefetchDefault)};
std::atomic<int> gOwnPrefetchFlags{envInt("TSLORA_GEMM_OWN_PREFETCH", kOwnPrefetchDefault)};
// Nanoseconds and bytes per GemmProfile field, in its order.
enum ProfileField { kBaseNs, kBaseBytes, kOwnNs, kOwnBytes, kAwaitNs, kEpilogueNs, kWallNs, kNumProfileFields };
std::atomic<int64_t> gProfile[kNumProfileFields];

int64_t nowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
void addProfile(ProfileField f, int64_t v) { gProfile[f].fetch_add(v, std::memory_order_relaxed); }

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
  // epilogue, everything) goes in a few chunks per thread (gemm-chunks.h).
  const ChunkPlan plan = planChunks(epilogue ? ownBlocks : 0, totalBlocks - (epilogue ? ownBlocks : 0), pool.numThreads(), epilogue, kColBlock);
  const CpuKernels& kernels = cpuKernels();
  const int basePrefetch = gBasePrefetchFlags.load(std::memory_order_relaxed);
  const int ownPrefetch = gOwnPrefetchFlags.load(std::memory_order_relaxed);
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
                          part.outOffset, kernels.prefetchBytes, part.out ? ownPrefetch : basePrefetch,
                          kernels.packMinRows);
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
  if (gemmOwnedRanges(epilogue != nullptr) && pool.numThreads() > 1) {
    // The head's chunks first (each thread takes them until none is left, so no thread waits in an epilogue for a
    // head chunk nobody has claimed), then a run of the rest, the threads taking the runs in the order they finish
    // the head. With one rest chunk per thread after a head the plan's chunks are the runs (evenOutHead sized them
    // for that order: the first thread done gets the larger); else equal runs.
    const int headBlocks = plan.starts[plan.headChunks];
    std::vector<int> ownerStarts;
    if (plan.headChunks > 0 && plan.numChunks() - plan.headChunks == pool.numThreads()) {
      for (int c = plan.headChunks; c <= plan.numChunks(); ++c) ownerStarts.push_back(plan.starts[c] - headBlocks);
    }
    OwnedRanges ranges = ownerStarts.empty() ? OwnedRanges(totalBlocks - headBlocks, pool.numThreads(), plan.restPerThread)
                                             : OwnedRanges(ownerStarts, 1);
    std::atomic<int> nextHead{0}, nextOwner{0};
    pool.run(ranges.numOwners(), [&](int) {
      for (int h; (h = nextHead.fetch_add(1, std::memory_order_relaxed)) < plan.headChunks;)
        runBlocks(plan.starts[h], plan.starts[h + 1]);
      ranges.work(nextOwner.fetch_add(1, std::memory_order_relaxed), [&](int b0, int b1) { runBlocks(headBlocks + b0, headBlocks + b1); });
    });
  } else if (plan.numChunks() <= 1) {
    runBlocks(0, totalBlocks);
  } else {
    pool.run(plan.numChunks(), [&](int c) { runBlocks(plan.starts[c], plan.starts[c + 1]); });
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

int setGemmPrefetchFlags(int baseFlags, int ownFlags) {
  const int base = gBasePrefetchFlags.exchange(baseFlags, std::memory_order_relaxed);
  return base | gOwnPrefetchFlags.exchange(ownFlags, std::memory_order_relaxed) << 8;
}

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
    case WType::I8:
      for (int i = 0; i < w.cols; ++i) out[i] = loadScalar<WType::I8>(src, i);
      break;
    default:
      std::memcpy(out, src, static_cast<size_t>(w.cols) * 4);
  }
}

}  // namespace tslora::cpu
