// The AVX2 + FMA (+ F16C) copy of the GEMM kernels (x86-64-v3 class machines). Everything below the pragma is
// compiled for that target; the shared headers above it keep the build's baseline target.
#include "simd.h"

#if defined(__x86_64__)
#undef TSLORA_VEC_ISA
#define TSLORA_VEC_ISA 2
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c,bmi,bmi2,lzcnt,popcnt"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c,bmi,bmi2,lzcnt,popcnt")
#endif
namespace tslora::cpu::isa_avx2 {
#include "gemm-kernels.inc"
}  // namespace tslora::cpu::isa_avx2
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
#endif
