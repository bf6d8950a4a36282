// bf16 / fp16 activation ↔ fp32 conversions shared by the engine's kernels (round to nearest even on the way back).
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>

namespace tslora::cuda {

__device__ __forceinline__ float toF(__nv_bfloat16 v) { return __bfloat162float(v); }
__device__ __forceinline__ float toF(__half v) { return __half2float(v); }
template <typename T>
__device__ __forceinline__ T fromF(float v);
template <>
__device__ __forceinline__ __nv_bfloat16 fromF<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }
template <>
__device__ __forceinline__ __half fromF<__half>(float v) { return __float2half_rn(v); }

// A projection output y (Act) with a LoRA delta stored beside it in fp32 (the side expand, lora_kernels.cuh
// loraExpandSmallDelta): act_round(y + delta), the value the in-place expand would have stored into y, back in fp32.
// Base rows hold delta = -0.0f, for which this is y exactly.
template <typename T>
__device__ __forceinline__ float withDelta(float y, float delta) {
  return toF(fromF<T>(y + delta));
}

}  // namespace tslora::cuda
