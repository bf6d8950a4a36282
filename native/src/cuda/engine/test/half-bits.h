// bf16 / fp16 bit patterns <-> float on the host, for the GPU test drivers' and the host emulator tests' random inputs
// and references.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <cstring>

#include "../kernels.h"

namespace tslora::cuda::test {

inline uint16_t toBits(float v, Act act) {
  uint16_t bits;
  if (act == Act::BF16) {
    const __nv_bfloat16 b = __float2bfloat16_rn(v);
    std::memcpy(&bits, &b, 2);
  } else {
    const __half h = __float2half_rn(v);
    std::memcpy(&bits, &h, 2);
  }
  return bits;
}

inline float fromBits(uint16_t bits, Act act) {
  if (act == Act::BF16) {
    __nv_bfloat16 b;
    std::memcpy(static_cast<void*>(&b), &bits, 2);
    return __bfloat162float(b);
  }
  __half h;
  std::memcpy(static_cast<void*>(&h), &bits, 2);
  return __half2float(h);
}

}  // namespace tslora::cuda::test
