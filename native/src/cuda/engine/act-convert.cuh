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

}  // namespace tslora::cuda
