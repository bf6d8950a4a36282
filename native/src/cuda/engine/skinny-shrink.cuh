// The small-step LoRA shrink inside the skinny GEMM's own launch (SkinnyLora::tickets, skinny-gemm.cu), so that a
// LoRA projection of ≤ kSkinnyLoraMaxRows rows launches no LoRA kernel at all.
// The grid has `splits` extra blocks. Every block takes a ticket from an atomic counter when it starts; the lowest
// `splits` tickets compute one K split each of U's partials, the others are the GEMM's column blocks (ticket − splits).
// A block holding ticket t is resident, so every block with a lower ticket is resident or done: the GEMM blocks, which
// wait (acquire) for the shrink blocks' count (release) before their epilogue reads U, only ever wait on blocks that are
// already running, whatever order the hardware schedules the grid in (no deadlock). A GEMM block that finds the count
// complete when it takes its ticket (a later wave) reads U with its B columns, before its weight loop, and never
// polls at its end. Each GEMM block then counts itself out (a reduction: no round trip at its end); the last shrink
// block waits for all of them (they wait on nothing by then) and sets the three counters back to zero, so each launch
// and each graph replay starts from zero (nothing carried between steps).
// The shrink blocks compute exactly what lora_small_shrink.cu's block (split, group 0) writes: the same loadGroup rows,
// the same work items dealt to the same warps in the same order, the same mma.m16n8k16 operands, each warp's results
// added into its own fp32 accumulator in item order, the warps summed in warp order from 0.0f. Only the accumulator's
// shape differs ([warps][kRows][c·R] instead of [warps][16][c·R + 1]: at ≤ 2 rows, rows 2..15 are never written) and
// one 8-column tile's A rows are loaded at a time (the skinny kernel's register cap), neither of which changes a sum.
// Latency (the GEMM blocks that finish their weights first wait for the shrink, and a shrink block's loads queue behind
// the GEMM's weight stream): where the split's A rows fit kStageElems (every 8B module at r16, one adapter), the block
// copies them into shared memory before pdlWait (weights: written by no kernel), so after the wait only x comes from
// global memory; the last block loads every split's partials in one round before it sums them in the same order; the
// three counters sit on separate 128-byte lines (kSkinnyTicketWords) and the waiting GEMM blocks poll with a growing
// sleep. TSLORA_CUDA_SKINNY_SHRINK_STAGE=0 (SkinnyLora::stageA = false) keeps A in global memory and
// TSLORA_CUDA_SKINNY_SHRINK_EARLY_U=0 (earlyU = false) has every GEMM block read U after its weight loop (A/B switches).
#pragma once
#include <cstdint>

#include "../lora_small_mma.cuh"
#include "pdl.h"
#include "skinny-gemm.h"
#include "skinny-lora.cuh"

namespace tslora::cuda::skinny_shrink {

namespace small = lora::small;
constexpr int kRows = kSkinnyLoraMaxRows;
constexpr int kMaxCols = small::kMaxCols;  // c·R ≤ 3 · 64
enum Counter : int { kTicket = 0, kDone = 32, kLeft = 64 };  // words of SkinnyLora::tickets, one 128-byte line each
static_assert(kLeft + 1 <= kSkinnyTicketWords, "the counters must fit one launch site's words");
constexpr int kStageElems = 12288;  // 24 KB of staged A: 8B qkv at r16 (48 rows × 256 K), down (16 × 512)

// Shared memory of a shrink block (unused by the GEMM blocks, so it shares space with their LoRA epilogue's).
struct Smem {
  small::GroupRows g;
  float acc[small::kShrinkWarps][kRows][kMaxCols];  // also the last block's copy of every split's partials (the fold)
  __align__(16) uint16_t a[kStageElems];             // staged A rows of every run, [row][kPad], zeros from k1 on
  int last;                                          // this block published last
};

// The K range of split s: the small shrink's ceil(in / splits) rounded up to its 64-wide warp steps.
__host__ __device__ inline int kPerSplit(int in, int splits) {
  const int perSplit = (in + splits - 1) / splits;
  return (perSplit + small::kStepK - 1) / small::kStepK * small::kStepK;
}

__device__ __forceinline__ unsigned loadAcquire(const unsigned* p) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 700
  unsigned v;
  asm volatile("ld.acquire.gpu.global.u32 %0, [%1];\n" : "=r"(v) : "l"(p) : "memory");
  return v;
#else
  return *reinterpret_cast<const volatile unsigned*>(p);
#endif
}

// How far kDone goes: one count per shrink block, and one more for the fold into foldedU.
__host__ __device__ inline unsigned doneTarget(const SkinnyLora& l) { return static_cast<unsigned>(l.splits) + (l.foldedU != nullptr); }

// This block's ticket (every thread gets it; `slot`: a shared int), and in `doneSlot` whether the shrink blocks were
// already done then (read in the same round trip as the ticket).
__device__ __forceinline__ int takeTicket(const SkinnyLora& l, int& slot, int& doneSlot) {
  if (threadIdx.x == 0) {
    const unsigned ticket = atomicAdd(&l.tickets[kTicket], 1u);
    doneSlot = l.earlyU && loadAcquire(&l.tickets[kDone]) >= doneTarget(l);
    slot = static_cast<int>(ticket);
  }
  __syncthreads();
  return slot;
}

// A shrink block's writes are done: every thread fences its own stores, then one increment by thread 0. Returns (to
// every thread) whether this was the last of `splits` shrink blocks.
__device__ __forceinline__ bool publish(unsigned* tickets, int splits, int& slot) {
  __threadfence();
  __syncthreads();
  if (threadIdx.x == 0) slot = atomicAdd(&tickets[kDone], 1u) == static_cast<unsigned>(splits) - 1u;
  __syncthreads();
  return slot != 0;
}

// Thread 0 of a block waits until *counter ≥ target (acquire), sleeping 128 ns, then twice as long each time up to
// 2 µs: hundreds of waiting blocks must not flood the counter's L2 slice.
__device__ __forceinline__ void spinUntilAtLeast(const unsigned* counter, unsigned target) {
  unsigned sleepNs = 128;
  while (loadAcquire(counter) < target) {
#if defined(EMU_SPIN_YIELD)  // the host emulator (engine/test/emu/skinny-shrink-emu.h): let the other blocks run
    EMU_SPIN_YIELD();
    (void)sleepNs;
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 700
    __nanosleep(sleepNs);
    sleepNs = sleepNs < 2048u ? 2 * sleepNs : sleepNs;
#endif
  }
}

// A GEMM block, before reading U: waits until the shrink blocks (which hold lower tickets: resident) are done.
__device__ __forceinline__ void waitForShrink(const SkinnyLora& l) {
  if (threadIdx.x == 0) spinUntilAtLeast(&l.tickets[kDone], doneTarget(l));
  __syncthreads();
}

// A GEMM block, once it touches the counters no more: counts itself out without waiting for the result.
__device__ __forceinline__ void leave(unsigned* tickets) {
  if (threadIdx.x != 0) return;
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 700
  asm volatile("red.release.gpu.global.add.u32 [%0], 1;\n" ::"l"(&tickets[kLeft]) : "memory");
#else
  atomicAdd(&tickets[kLeft], 1u);
#endif
}

// The last shrink block, after its last count: waits until every GEMM block has counted itself out (each has read
// kDone for the last time; none waits on anything by then), then sets the three counters back to zero.
__device__ __forceinline__ void resetWhenGemmBlocksLeft(unsigned* tickets, int splits) {
  if (threadIdx.x != 0) return;
  spinUntilAtLeast(&tickets[kLeft], gridDim.x - static_cast<unsigned>(splits));
  atomicExch(&tickets[kTicket], 0u);
  atomicExch(&tickets[kDone], 0u);
  atomicExch(&tickets[kLeft], 0u);
}

// A rows [0, c·r) of every run of s.g, K range [k0, k1), into s.a ([row][kPad], runs one after another, zeros from k1
// to kPad = the split's warp steps × 64) when they fit; returns kPad, or 0 (nothing staged: accumulate reads global
// memory). Every thread calls it; the caller synchronises before s.a is read.
__device__ inline int stageSplitA(Smem& s, const uint16_t* __restrict__ a, int in, size_t aSlotStride, int numSlices, int k0, int k1) {
  const small::GroupRows& g = s.g;
  const int kPad = k1 > k0 ? (k1 - k0 + small::kStepK - 1) / small::kStepK * small::kStepK : 0;
  int rows = 0;
  for (int run = 0; run < g.numRuns; ++run) rows += numSlices * g.runRank[run];
  if (kPad == 0 || rows * kPad > kStageElems) return 0;
  const int vecsPerRow = kPad / 8;
#pragma unroll 4
  for (int e = threadIdx.x; e < rows * vecsPerRow; e += blockDim.x) {
    const int r = e / vecsPerRow, k = k0 + e % vecsPerRow * 8;
    int run = 0, first = 0;  // the run holding staged row r, and its first row
    while (r >= first + numSlices * g.runRank[run]) first += numSlices * g.runRank[run++];
    uint4 v = make_uint4(0u, 0u, 0u, 0u);
    if (k < k1) v = __ldg(reinterpret_cast<const uint4*>(a + static_cast<size_t>(g.runSlot[run]) * aSlotStride + static_cast<size_t>(r - first) * in + k));
    *reinterpret_cast<uint4*>(&s.a[r * kPad + (k - k0)]) = v;
  }
  return kPad;
}

// load16 of a staged row (kk = k − k0; zeros past k1 are in the stage) or zeros for a null row.
__device__ __forceinline__ void loadStaged16(const uint16_t* row, int kk, uint32_t (&v)[8]) {
  const uint4 zero = make_uint4(0u, 0u, 0u, 0u);
  const uint4 lo = row != nullptr ? *reinterpret_cast<const uint4*>(row + kk) : zero;
  const uint4 hi = row != nullptr ? *reinterpret_cast<const uint4*>(row + kk + 8) : zero;
  v[0] = lo.x, v[1] = lo.y, v[2] = lo.z, v[3] = lo.w;
  v[4] = hi.x, v[5] = hi.y, v[6] = hi.z, v[7] = hi.w;
}

// shrinkSplitInto (lora_small_mma.cuh) for a group whose rows 8..15 hold no adapter, one 8-column tile at a time; A
// from s.a where kPad > 0 (stageSplitA), else from global memory (the same values either way).
template <typename T>
__device__ __forceinline__ void accumulate(Smem& s, const uint16_t* __restrict__ a, int in, size_t aSlotStride, int numSlices,
                                           const uint16_t* __restrict__ x, int xStride, int k0, int k1, int kPad) {
  const small::GroupRows& g = s.g;
  const int steps = k1 > k0 ? (k1 - k0 + small::kStepK - 1) / small::kStepK : 0;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, gr = lane / 4, t = lane % 4;
  const int slotA = g.slot[gr];  // rows gr + 8 ≥ numTokens: no adapter, their x operands are zeros (load16 of null)
  const uint16_t* xRowA = x + static_cast<size_t>(g.phys[gr]) * xStride;
  int item = 0, firstRow = 0;
  for (int run = 0; run < g.numRuns; ++run) {
    const int w = g.runSlot[run], nEff = numSlices * g.runRank[run];
    const uint16_t* aSlot = a + static_cast<size_t>(w) * aSlotStride;
    const uint16_t* staged = s.a + static_cast<size_t>(firstRow) * kPad;
    firstRow += nEff;
    for (int c0 = 0; c0 < nEff; c0 += small::kChunkCols)
      for (int st = 0; st < steps; ++st, ++item) {
        if (item % small::kShrinkWarps != warp) continue;  // warp-uniform
        const int k = k0 + st * small::kStepK + t * 16;
        uint32_t xa[8];
        small::load16<true>(slotA == w ? xRowA : nullptr, k, k1, xa);
#pragma unroll 1
        for (int nt = 0; nt < small::kChunkTiles && c0 + nt * 8 < nEff; ++nt) {  // warp-uniform
          const int n = c0 + nt * 8 + gr;
          uint32_t bw[8];
          if (kPad > 0) loadStaged16(n < nEff ? staged + static_cast<size_t>(n) * kPad : nullptr, k - k0, bw);
          else small::load16<true>(n < nEff ? aSlot + static_cast<size_t>(n) * in : nullptr, k, k1, bw);
          float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
#pragma unroll
          for (int q = 0; q < 4; ++q) mma16816<T>(acc, xa[2 * q], 0u, xa[2 * q + 1], 0u, bw[2 * q], bw[2 * q + 1]);
          const int col = c0 + nt * 8 + 2 * t;  // C fragment: row gr, columns col, col + 1 (rows gr + 8: no adapter)
          if (slotA == w && gr < kRows) {
            if (col < nEff) s.acc[warp][gr][col] += acc[0];
            if (col + 1 < nEff) s.acc[warp][gr][col + 1] += acc[1];
          }
        }
      }
  }
}

// Split `split` of U = X·Aᵀ into l.partials (fp32 [splits, numTokens, c·R] by position), as loraShrinkSmall's block
// (split, 0) writes it. Calls pdlWait on every path (x was written by the kernel before).
template <typename T>
__device__ inline void shrinkSplit(Smem& s, const SkinnyLora& l, const uint16_t* x, int xStride, int split) {
  const lora::DeviceModule& m = l.module;
  const lora::DeviceStep& st = l.step;
  small::loadGroup(st.segIndptr, st.weightIndices, st.segmentRanks, st.permutation, st.slotRanks, st.maxSegments, st.numTokens, 0, s.g);
  if (s.g.numRuns == 0) {
    pdlWait();
    return;
  }
  const int c = m.numSlices, uStride = c * m.maxRank;
  for (int e = threadIdx.x; e < small::kShrinkWarps * kRows * kMaxCols; e += blockDim.x) (&s.acc[0][0][0])[e] = 0.0f;
  const int per = kPerSplit(m.in, l.splits), k0 = split * per, k1 = min(m.in, k0 + per);
  const auto* a = static_cast<const uint16_t*>(m.a);
  const size_t aSlotStride = static_cast<size_t>(c) * m.maxRank * m.in;
  const int kPad = l.stageA ? stageSplitA(s, a, m.in, aSlotStride, c, k0, k1) : 0;
  if (kPad == 0) small::prefetchSplitA(a, m.in, aSlotStride, c, s.g, k0, k1);
  pdlWait();  // x is the kernel-before's output
  __syncthreads();
  accumulate<T>(s, a, m.in, aSlotStride, c, x, xStride, k0, k1, kPad);
  __syncthreads();
  float* out = l.partials + static_cast<size_t>(split) * st.numTokens * uStride;
  for (int e = threadIdx.x; e < kRows * uStride; e += blockDim.x) {
    const int row = e / uStride, n = e % uStride;
    if (s.g.slot[row] < 0 || n >= c * s.g.rank[row]) continue;
    float sum = 0.0f;
#pragma unroll
    for (int wi = 0; wi < small::kShrinkWarps; ++wi) sum += s.acc[wi][row][n];
    out[static_cast<size_t>(row) * uStride + n] = sum;
  }
}

// A shrink block's whole life after its ticket: its split, the release, the exit count. Not inlined, so that its
// registers (mma operands) do not raise the pressure on the GEMM blocks' weight pipeline, which is capped at
// loraMinBlocks blocks per SM (skinny-gemm.cu).
// The last shrink block sums every split into foldedU with the expand's arithmetic (skinny_lora::splitSum) for the
// group's adapter rows (s.g from its own split), then counts once more.
template <typename T>
__device__ __noinline__ void shrinkBlock(Smem& s, const SkinnyLora& l, const uint16_t* x, int xStride, int split) {
  shrinkSplit<T>(s, l, x, xStride, split);
  const bool last = publish(l.tickets, l.splits, s.last);
  if (last && l.foldedU != nullptr) {
    __threadfence();  // the other blocks' partials, counted before our increment, are visible from here
    const int c = l.module.numSlices, uStride = c * l.module.maxRank;
    const size_t splitStride = static_cast<size_t>(l.step.numTokens) * uStride;
    const int perSplit = kRows * uStride;
    float* copy = &s.acc[0][0][0];  // free since this block's own sums went out
    const bool copied = l.splits * perSplit <= small::kShrinkWarps * kRows * kMaxCols;
    if (copied) {  // every partial the sums read, in one round of loads
      for (int e = threadIdx.x; e < l.splits * perSplit; e += blockDim.x) {
        const int row = e % perSplit / uStride, n = e % uStride;
        if (s.g.slot[row] >= 0 && n < c * s.g.rank[row])
          copy[e] = skinny_lora::loadPartial(l.partials + static_cast<size_t>(e / perSplit) * splitStride + e % perSplit);
      }
      __syncthreads();
    }
    for (int e = threadIdx.x; e < kRows * uStride; e += blockDim.x) {
      const int row = e / uStride, n = e % uStride;
      if (s.g.slot[row] < 0 || n >= c * s.g.rank[row]) continue;
      const size_t at = static_cast<size_t>(row) * uStride + n;
      l.foldedU[at] = copied ? skinny_lora::splitSum<T>(copy + e, perSplit, l.splits, false)
                             : skinny_lora::splitSum<T>(l.partials + at, splitStride, l.splits);
    }
    __threadfence();
    __syncthreads();
    if (threadIdx.x == 0) atomicAdd(&l.tickets[kDone], 1u);
  }
  if (last) resetWhenGemmBlocksLeft(l.tickets, l.splits);
}

}  // namespace tslora::cuda::skinny_shrink
