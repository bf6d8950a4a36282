// Fixed-width fp32 vectors for the build machine (AVX-512, AVX2+FMA, or one scalar lane), plus loads that
// widen bf16 / fp16 / f32 weights to fp32 on the fly. All arithmetic happens in fp32.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace tslora::cpu {

enum class WType : int { F32 = 0, F16 = 1, BF16 = 2 };

// How a decode GEMV prefetches its weights (bits of cpu-isa.h GemmRangeFn's prefetchFlags; gemm.h setGemmPrefetchFlags):
// kPrefetchNta = with the non-temporal hint (prefetchnta: into L1, not left in L2 / L3, so a stream of base weights
// need not push a LoRA adapter out of the last-level cache); kPrefetchWarmStart = the range's first tile of rows is
// requested in one burst before its loads (a short range starts cold otherwise). Neither changes any result.
constexpr int kPrefetchNta = 1;
constexpr int kPrefetchWarmStart = 2;
// kPrefetchFar = each line also requested into L2 (prefetcht1) twice the distance ahead: an L1 prefetch holds one of
// the core's few L1 miss buffers until its line arrives, which caps one core's rate from DRAM on a short stream
// that the L2 hardware prefetcher has not picked up.
constexpr int kPrefetchFar = 4;

inline float bf16ToF32(uint16_t bits) {
  uint32_t wide = static_cast<uint32_t>(bits) << 16;
  float out;
  std::memcpy(&out, &wide, 4);
  return out;
}

// fp32 → bf16 bits, round to nearest even; NaN stays a (quiet) NaN.
inline uint16_t f32ToBf16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>(bits >> 16 | 0x40u);
  return static_cast<uint16_t>((bits + 0x7fffu + (bits >> 16 & 1u)) >> 16);
}

inline float f16ToF32(uint16_t h) {
  uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: renormalise
      int e = -1;
      do {
        ++e;
        mant <<= 1;
      } while ((mant & 0x400u) == 0);
      bits = sign | static_cast<uint32_t>(127 - 15 - e) << 23 | (mant & 0x3ffu) << 13;
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | mant << 13;
  } else {
    bits = sign | (exp + 127 - 15) << 23 | mant << 13;
  }
  float out;
  std::memcpy(&out, &bits, 4);
  return out;
}

template <WType T>
inline float loadScalar(const void* base, int64_t i) {
  if constexpr (T == WType::F32) {
    float v;
    std::memcpy(&v, static_cast<const char*>(base) + i * 4, 4);
    return v;
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
