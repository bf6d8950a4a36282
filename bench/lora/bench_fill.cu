// Device-side random fill for the LoRA benchmarks (hash-based, no cuRAND), so hundreds of MB of weights need no
// host generation or transfer.
#include <cuda_bf16.h>
#include <cstdint>

#include "bench_fill.h"

namespace {
__global__ void fillKernel(__nv_bfloat16* out, size_t n, uint32_t seed, float scale) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n; i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    uint32_t h = static_cast<uint32_t>(i) * 2654435761u ^ seed ^ static_cast<uint32_t>(i >> 32) * 40503u;
    h ^= h >> 15; h *= 2246822519u; h ^= h >> 13; h *= 3266489917u; h ^= h >> 16;
    out[i] = __float2bfloat16((static_cast<float>(h & 0xffffff) / 8388608.0f - 1.0f) * scale);
  }
}
}  // namespace

cudaError_t fillRandomBf16(void* out, size_t n, uint32_t seed, float scale) {
  fillKernel<<<1024, 256>>>(static_cast<__nv_bfloat16*>(out), n, seed, scale);
  return cudaGetLastError();
}
