// The AVX-512 copy of the CPU LoRA expand (cpu_expand.h): one zmm per 16-column panel row (bf16 widened by a
// zero-extend and a shift, int8 by a sign-extend and a conversion, both exact), explicit FMAs in the order of
// cpu_expand.inc. Compiled under its own target attribute whatever the build's -march; chosen at run time
// (cpu_expand.cpp).
#if defined(__x86_64__)
#include <immintrin.h>

#include "cpu_dot.h"
#include "cpu_expand.h"

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx2,fma")
// GCC's own AVX-512 headers self-initialise their "undefined" vectors, which -Wall reports once inlined here.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace tslora::lora::detail::expand_avx512 {
using Lanes16 = __m512;
inline Lanes16 zeroLanes() { return _mm512_setzero_ps(); }
inline Lanes16 loadLanes(const float* p) { return _mm512_loadu_ps(p); }
inline Lanes16 loadLanes(const uint16_t* p) {
  const __m256i bits = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(bits), 16));
}
inline Lanes16 mulAddLanes(Lanes16 acc, float u, Lanes16 b) { return _mm512_fmadd_ps(_mm512_set1_ps(u), b, acc); }
inline Lanes16 loadLanes(const int8_t* p) {
  return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
}
inline void addSumTo(float* y, Lanes16 a, Lanes16 b) { _mm512_storeu_ps(y, _mm512_add_ps(_mm512_loadu_ps(y), _mm512_add_ps(a, b))); }
inline void addScaledSumTo(float* y, Lanes16 a, Lanes16 b, const float* scales) {
  _mm512_storeu_ps(y, _mm512_fmadd_ps(_mm512_add_ps(a, b), _mm512_loadu_ps(scales), _mm512_loadu_ps(y)));
}
inline float mulAddScalar(float acc, float a, float b) {
  return _mm_cvtss_f32(_mm_fmadd_ss(_mm_set_ss(a), _mm_set_ss(b), _mm_set_ss(acc)));
}
#include "cpu_expand.inc"
}  // namespace tslora::lora::detail::expand_avx512

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
#endif
