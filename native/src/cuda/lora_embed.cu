// embed_tokens LoRA gather (spec e.9): out = Emb[id] + σ·A[:, id]ᵀ·Bᵀ. The "shrink" of an embedding LoRA is a column
// gather, U[p, k] = A[w, k, id_p] for k < r (A: [S, R, vocab], c = 1), written to the same fp32 U the expand reads,
// so the expand (Y += U·Bᵀ, fp32 accumulation, rounded once) is shared with every other module. Rank-aware: only
// rows [0, r) of a slot's A are read; base segments (slot -1 or rank 0) and padding segments return at once.
// A programmatic dependent launch (lora_launch.cuh) that waits at its start (the token ids may come from a kernel).
#include "lora_kernels.cuh"
#include "lora_launch.cuh"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

namespace tslora::cuda::lora {
namespace {

constexpr int kThreads = 256;

template <typename T> __device__ __forceinline__ float toFloat(T v);
template <> __device__ __forceinline__ float toFloat(__nv_bfloat16 v) { return __bfloat162float(v); }
template <> __device__ __forceinline__ float toFloat(__half v) { return __half2float(v); }

// One block per segment (grid = maxSegments, static under graphs); its threads walk (row, k) pairs of the segment.
template <typename T>
__global__ void __launch_bounds__(kThreads) embedGatherKernel(
    const T* __restrict__ a, size_t aSlotStride, int vocab, const int32_t* __restrict__ segIndptr,
    const int32_t* __restrict__ weightIndices, const int32_t* __restrict__ permutation,
    const int32_t* __restrict__ slotRanks, const int32_t* __restrict__ tokenIds, float* __restrict__ u, int uStride) {
  pdlLaunchDependents();
  pdlWait();
  const int g = blockIdx.x;
  const int slot = weightIndices[g];
  if (slot < 0) return;
  const int r = slotRanks[slot];
  if (r <= 0) return;
  const int begin = segIndptr[g], end = segIndptr[g + 1];
  const T* aSlot = a + aSlotStride * slot;
  const int work = (end - begin) * r;
  for (int i = threadIdx.x; i < work; i += kThreads) {
    const int pos = begin + i / r, k = i % r;
    const int p = permutation ? permutation[pos] : pos;
    const int id = tokenIds[p];
    // Ids are checked by the caller (the step validation); an out-of-range one contributes nothing here.
    const float value = (id >= 0 && id < vocab) ? toFloat(aSlot[static_cast<size_t>(k) * vocab + id]) : 0.0f;
    u[static_cast<size_t>(p) * uStride + k] = value;
  }
}

}  // namespace

cudaError_t loraEmbedGather(ActDType dtype, const DeviceModule& module, const DeviceStep& step, const int32_t* tokenIds,
                            float* u, cudaStream_t stream) {
  if (module.numSlices != 1 || step.maxSegments < 1) return cudaErrorInvalidValue;
  const int R = module.maxRank, vocab = module.in, uStride = R;
  const size_t aSlotStride = static_cast<size_t>(R) * vocab;
  const dim3 grid(static_cast<unsigned>(step.maxSegments));
  if (dtype == ActDType::BF16)
    return loraLaunch(embedGatherKernel<__nv_bfloat16>, grid, dim3(kThreads), 0, stream, static_cast<const __nv_bfloat16*>(module.a),
                      aSlotStride, vocab, step.segIndptr, step.weightIndices, step.permutation, step.slotRanks, tokenIds, u, uStride);
  return loraLaunch(embedGatherKernel<__half>, grid, dim3(kThreads), 0, stream, static_cast<const __half*>(module.a), aSlotStride,
                    vocab, step.segIndptr, step.weightIndices, step.permutation, step.slotRanks, tokenIds, u, uStride);
}

}  // namespace tslora::cuda::lora
