// bf16 / fp16 activation ↔ fp32 conversions shared by the engine's kernels (round to nearest even on the way back).
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>

namespace tslora::cuda {

__device__ __forceinline__ float toF(__nv_bfloat16 v) { return __bfloat162float(v); }
__device__ __forceinline__ float toF(__half v) { return __half2float(v); }
__device__ __forceinline__ float toF(float v) { return v; }  // an fp32 LoRA delta (deltaLoad4 below)
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

// LoRA delta values 4v .. 4v + 3 of row p as fp32: D = float (the side expand's default, one 16-byte load, the same
// code as indexing p as float4) or D = the activation dtype (TSLORA_CUDA_LORA_DELTA_ACT=1, one 8-byte load; then
// act_round(y + delta) rounds delta twice, as PEFT's lora_B output in bf16 / fp16 is). p: 16-byte (float) / 8-byte (Act)
// aligned.
template <typename D>
__device__ __forceinline__ float4 deltaLoad4(const D* p, int v);
template <>
__device__ __forceinline__ float4 deltaLoad4<float>(const float* p, int v) { return reinterpret_cast<const float4*>(p)[v]; }
template <>
__device__ __forceinline__ float4 deltaLoad4<__nv_bfloat16>(const __nv_bfloat16* p, int v) {
  const uint2 b = reinterpret_cast<const uint2*>(p)[v];
  return make_float4(__uint_as_float(b.x << 16), __uint_as_float(b.x & 0xffff0000u), __uint_as_float(b.y << 16),
                     __uint_as_float(b.y & 0xffff0000u));
}
template <>
__device__ __forceinline__ float4 deltaLoad4<__half>(const __half* p, int v) {
  const uint2 b = reinterpret_cast<const uint2*>(p)[v];
  const auto h = [](uint32_t bits) { return __half2float(__ushort_as_half(static_cast<unsigned short>(bits))); };
  return make_float4(h(b.x & 0xffffu), h(b.x >> 16), h(b.y & 0xffffu), h(b.y >> 16));
}

}  // namespace tslora::cuda
