// Fixed-width fp32 vectors for the build machine (AVX-512, AVX2+FMA, or one scalar lane), plus loads that
// widen bf16 / fp16 / f32 weights to fp32 on the fly. All arithmetic happens in fp32.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

#include "tslora/half-float.h"  // bf16ToF32, f32ToBf16, f16ToF32 (scalar)

namespace tslora::cpu {

// I8: signed 8-bit integers widened exactly to fp32 (no scale: a user of an int8 matrix applies its own scales to the
// outputs; the CPU LoRA pool's int8 A, whose shrink rides along the base GEMM as raw dot products).
enum class WType : int { F32 = 0, F16 = 1, BF16 = 2, I8 = 3 };
constexpr int wtypeBytes(WType t) { return t == WType::F32 ? 4 : t == WType::I8 ? 1 : 2; }

// How a decode GEMV prefetches its weights beyond its one tile of rows ahead into L1 (bits of cpu-isa.h GemmRangeFn's
// prefetchFlags; gemm.h setGemmPrefetchFlags). Neither changes any result.
// kPrefetchFar = each line also requested into L2 (prefetcht1) twice the distance ahead: an L1 prefetch holds one of
// the core's few L1 miss buffers until its line arrives, which caps one core's rate from DRAM on a stream that the
// L2 hardware prefetcher has not picked up.
constexpr int kPrefetchFar = 1;
// kPrefetchStopAtEnd = no prefetch past the range's last weight row (a fused LoRA shrink's short run of A rows).
constexpr int kPrefetchStopAtEnd = 2;

template <WType T>
inline float loadScalar(const void* base, int64_t i) {
  if constexpr (T == WType::F32) {
    float v;
    std::memcpy(&v, static_cast<const char*>(base) + i * 4, 4);
    return v;
  } else if constexpr (T == WType::I8) {
    return static_cast<float>(static_cast<const int8_t*>(base)[i]);
  } else {
    uint16_t bits;
    std::memcpy(&bits, static_cast<const char*>(base) + i * 2, 2);
    return T == WType::BF16 ? bf16ToF32(bits) : f16ToF32(bits);
  }
}

#ifndef TSLORA_VEC_ISA
#if defined(__AVX512F__) && defined(__AVX512BW__)
#define TSLORA_VEC_ISA 3
#elif defined(__AVX2__) && defined(__FMA__)
#define TSLORA_VEC_ISA 2
#elif defined(__SSE4_1__)
#define TSLORA_VEC_ISA 1
#else
#define TSLORA_VEC_ISA 0
#endif
#endif

#include "simd-vec.inc"

}  // namespace tslora::cpu
