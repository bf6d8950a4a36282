// RoPE of one dim pair (i, i + D/2) at position pos, shared by every kernel that rotates q / k (launchQkvPost, the
// skinny GEMM's qkv epilogue, the fused rope + attention launch), so that they give the same bits: fp32 angle (like
// transformers), cos / sin in fp64, and each rotation written as explicit intrinsics. Written as `x1 * c - x2 * s`, the
// compiler chose where to fuse a multiply into an FMA per kernel: the 1B qkv+rope+bias fp16 cases of the (since
// deleted) skinny-LoRA kernel test came out 1 ulp apart on an H100 (session 17) because qkvPostKernel computed y2 as
// fma(x1, s, x2·c) and the skinny kernel as fma(x2, c, x1·s). __fmul_rn / __fmaf_rn are never contracted or reordered.
#pragma once

namespace tslora::cuda {

__device__ __forceinline__ void ropePair(const float* invFreq, int i, int pos, float& x1, float& x2) {
  const float angle = __fmul_rn(invFreq[i], static_cast<float>(pos));  // fp32 product, like transformers
  const float c = static_cast<float>(cos(static_cast<double>(angle)));
  const float s = static_cast<float>(sin(static_cast<double>(angle)));
  const float a = x1, b = x2;
  x1 = __fmaf_rn(a, c, -__fmul_rn(b, s));  // a·c − b·s
  x2 = __fmaf_rn(a, s, __fmul_rn(b, c));   // b·c + a·s
}

}  // namespace tslora::cuda
