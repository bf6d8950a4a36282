// The baseline copy of the GEMM kernels: SSE4.1 vectors on x86-64 (x86-64-v2, no FMA), one scalar lane elsewhere.
// Always present, so the addon runs on any CPU it was built for.
#include "simd.h"

#undef TSLORA_VEC_ISA
#if defined(__x86_64__) && defined(__SSE4_1__)
#define TSLORA_VEC_ISA 1
#else
#define TSLORA_VEC_ISA 0
#endif

namespace tslora::cpu::isa_baseline {
#include "gemm-kernels.inc"
}  // namespace tslora::cpu::isa_baseline
