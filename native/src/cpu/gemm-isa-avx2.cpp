// The AVX2 + FMA (+ F16C) copy of the GEMM kernels (x86-64-v3 class machines).
#include "simd.h"

#if defined(__x86_64__)
#undef TSLORA_VEC_ISA
#define TSLORA_VEC_ISA 2
#define TSLORA_ISA_NAMESPACE isa_avx2
#define TSLORA_ISA_TARGET "avx2,fma,f16c,bmi,bmi2,lzcnt,popcnt"
#include "gemm-isa-target.inc"
#endif
