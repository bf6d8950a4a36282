// The AMX tile GEMM of amx-kernels.inc over amx-tiles.inc's C++ model of the tiles, with the baseline fp32 kernels
// around it: the "amx-emulated" kernel set, which runs the AMX path's layouts and loops on any CPU. Tests select it
// explicitly (it is never chosen by default and is not listed as available: it is slow); the real copy is
// gemm-isa-amx.cpp.
#include "cpu-isa.h"
#include "simd.h"
#include "tslora/env-int.h"  // envInt, for amx-kernels.inc

namespace tslora::cpu::isa_baseline {
void gemmRange(const float* const*, float* const*, int, const void*, WType, int, int, int, int, int, int, int);
}

#define TSLORA_AMX_EMULATED 1
#define TSLORA_AMX_FP32_GEMM isa_baseline::gemmRange
namespace tslora::cpu::isa_amx_emulated {
#include "amx-kernels.inc"
}  // namespace tslora::cpu::isa_amx_emulated
