#pragma once
#include <cuda_runtime.h>
#include <cstddef>
#include <cstdint>
// Fills n bf16 values with uniform random numbers in [-scale, scale).
cudaError_t fillRandomBf16(void* out, size_t n, uint32_t seed, float scale);
