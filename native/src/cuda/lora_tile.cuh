// Device helpers shared by the LoRA shrink and expand kernels: dtype traits, cp.async copies and pipeline prologue,
// row selection.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cstdint>

#include "engine/pdl.h"

namespace tslora::cuda::lora::detail {

template <typename T> struct Convert;
template <> struct Convert<__nv_bfloat16> {
  static __device__ __forceinline__ float toFloat(__nv_bfloat16 v) { return __bfloat162float(v); }
  static __device__ __forceinline__ __nv_bfloat16 fromFloat(float v) { return __float2bfloat16_rn(v); }
};
template <> struct Convert<__half> {
  static __device__ __forceinline__ float toFloat(__half v) { return __half2float(v); }
  static __device__ __forceinline__ __half fromFloat(float v) { return __float2half_rn(v); }
};

// 16-byte global → shared copy that bypasses registers; bytes = 0 writes zeros (out-of-range rows / columns).
__device__ __forceinline__ void copyAsync16(void* sharedDst, const void* globalSrc, bool valid) {
  const unsigned dst = static_cast<unsigned>(__cvta_generic_to_shared(sharedDst));
  const int bytes = valid ? 16 : 0;
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(globalSrc), "r"(bytes));
}
__device__ __forceinline__ void copyAsyncCommit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int Pending>
__device__ __forceinline__ void copyAsyncWait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(Pending)); }

// The prologue of a cp.async pipeline of Stages buffers over numSteps steps (step s in buffer s), in a programmatic
// dependent launch: the weight halves of steps 0 .. Stages-2 (loadWeights(step): weights may be read before pdlWait)
// join cp.async group 0, so every step's weights have landed by the time its activations have; then pdlWait, then
// the activation halves (loadActivations(step)), one commit group per step (empty past numSteps).
template <int Stages, typename LoadWeights, typename LoadActivations>
__device__ __forceinline__ void pipelinePrologue(int numSteps, LoadWeights&& loadWeights, LoadActivations&& loadActivations) {
#pragma unroll
  for (int st = 0; st < Stages - 1; ++st)
    if (st < numSteps) loadWeights(st);
  pdlWait();
#pragma unroll
  for (int st = 0; st < Stages - 1; ++st) {
    if (st < numSteps) loadActivations(st);
    copyAsyncCommit();
  }
}

// The block's rows: positions [begin, end) of segment g's row tile, their slot and rank; false = nothing to do.
struct RowTile {
  int begin, end, slot, rank;
};
__device__ __forceinline__ bool rowTileOf(const int32_t* segIndptr, const int32_t* weightIndices, const int32_t* slotRanks,
                                          int tileIndex, int tilesPerSegment, int tileRows, RowTile& t) {
  const int g = tileIndex / tilesPerSegment, sub = tileIndex % tilesPerSegment;
  const int segBegin = segIndptr[g], segEnd = segIndptr[g + 1];
  t.begin = segBegin + sub * tileRows;
  t.end = min(segEnd, t.begin + tileRows);
  if (t.begin >= t.end) return false;
  t.slot = weightIndices[g];
  if (t.slot < 0) return false;
  t.rank = slotRanks[t.slot];
  return t.rank > 0;
}
__device__ __forceinline__ int physicalRow(const int32_t* permutation, int position) {
  return permutation ? permutation[position] : position;
}

}  // namespace tslora::cuda::lora::detail
