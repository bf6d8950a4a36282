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
#include "row-kernels.inc"
}  // namespace tslora::cpu::isa_baseline

// The one-lane copy of the row kernels (the scalar twin of vexp): what the baseline is on CPUs without vectors,
// compiled everywhere so the tests can hold the vector copies against it.
#undef TSLORA_VEC_ISA
#define TSLORA_VEC_ISA 0
namespace tslora::cpu::isa_scalar {
#include "simd-vec.inc"
#include "row-kernels.inc"
}  // namespace tslora::cpu::isa_scalar
