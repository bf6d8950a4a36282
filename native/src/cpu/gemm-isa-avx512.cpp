// The AVX-512 (F, BW, VL, DQ) copy of the GEMM kernels.
#include "simd.h"

#if defined(__x86_64__)
#undef TSLORA_VEC_ISA
#define TSLORA_VEC_ISA 3
#define TSLORA_ISA_NAMESPACE isa_avx512
#define TSLORA_ISA_TARGET "avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c,bmi,bmi2,lzcnt,popcnt"
#include "gemm-isa-target.inc"
#endif
