// The AMX copy's own kernels: the bf16 tile GEMM of amx-kernels.inc with the real tile instructions (AMX-TILE,
// AMX-BF16) and AVX-512 for the activation split. The rest of the "amx" kernel set is the AVX-512 copy (cpu-isa.cpp).
#include "cpu-isa.h"
#include "simd.h"
#include "tslora/env-int.h"  // envInt, for amx-kernels.inc

#if defined(__x86_64__)
namespace tslora::cpu::isa_avx512 {
void gemmRange(const float* const*, float* const*, int, const void*, WType, int, int, int, int, int, int, int);
}
#undef TSLORA_VEC_ISA
#define TSLORA_VEC_ISA 3
#define TSLORA_AMX_EMULATED 0
#define TSLORA_AMX_FP32_GEMM isa_avx512::gemmRange
#define TSLORA_ISA_NAMESPACE isa_amx
#define TSLORA_ISA_TARGET "amx-tile,amx-bf16,avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c,bmi,bmi2,lzcnt,popcnt"
#define TSLORA_ISA_BODY "amx-kernels.inc"
#include "gemm-isa-target.inc"
#endif
