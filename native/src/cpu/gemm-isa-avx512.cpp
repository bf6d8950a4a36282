// The AVX-512 (F, BW, VL, DQ) copy of the GEMM kernels. Everything below the pragma is compiled for that target;
// the shared headers above it keep the build's baseline target.
#include "simd.h"

#if defined(__x86_64__)
#undef TSLORA_VEC_ISA
#define TSLORA_VEC_ISA 3
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c,bmi,bmi2,lzcnt,popcnt"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c,bmi,bmi2,lzcnt,popcnt")
#endif
namespace tslora::cpu::isa_avx512 {
#include "gemm-kernels.inc"
}  // namespace tslora::cpu::isa_avx512
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
#endif
