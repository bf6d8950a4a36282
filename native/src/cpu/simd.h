// Fixed-width fp32 vectors for the build machine (AVX-512, AVX2+FMA, or one scalar lane), plus loads that
// widen bf16 / fp16 / f32 weights to fp32 on the fly. All arithmetic happens in fp32.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#endif

namespace tslora::cpu {

enum class WType : int { F32 = 0, F16 = 1, BF16 = 2 };

inline float bf16ToF32(uint16_t bits) {
  uint32_t wide = static_cast<uint32_t>(bits) << 16;
  float out;
  std::memcpy(&out, &wide, 4);
  return out;
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

#if defined(__AVX512F__)
constexpr int kLanes = 16;
using VecF = __m512;
inline VecF vzero() { return _mm512_setzero_ps(); }
inline VecF vload(const float* p) { return _mm512_loadu_ps(p); }
inline void vstore(float* p, VecF v) { _mm512_storeu_ps(p, v); }
inline VecF vfma(VecF a, VecF b, VecF c) { return _mm512_fmadd_ps(a, b, c); }
inline VecF vset1(float x) { return _mm512_set1_ps(x); }
inline VecF vmul(VecF a, VecF b) { return _mm512_mul_ps(a, b); }
inline VecF vadd(VecF a, VecF b) { return _mm512_add_ps(a, b); }
inline float vsum(VecF v) {  // (not _mm512_reduce_add_ps: GCC 12 warns about its internals)
  __m256 lo = _mm512_castps512_ps256(v);
  __m256 hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1));
  __m256 s8 = _mm256_add_ps(lo, hi);
  __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
  s4 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
  s4 = _mm_add_ss(s4, _mm_movehdup_ps(s4));
  return _mm_cvtss_f32(s4);
}
template <WType T>
inline VecF vloadW(const void* base, int64_t i) {
  if constexpr (T == WType::F32) {
    return _mm512_loadu_ps(static_cast<const float*>(base) + i);
  } else {
    __m256i raw = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(static_cast<const uint16_t*>(base) + i));
    if constexpr (T == WType::BF16) {
      return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(raw), 16));
    } else {
      return _mm512_cvtph_ps(raw);
    }
  }
}
#elif defined(__AVX2__) && defined(__FMA__)
constexpr int kLanes = 8;
using VecF = __m256;
inline VecF vzero() { return _mm256_setzero_ps(); }
inline VecF vload(const float* p) { return _mm256_loadu_ps(p); }
inline void vstore(float* p, VecF v) { _mm256_storeu_ps(p, v); }
inline VecF vfma(VecF a, VecF b, VecF c) { return _mm256_fmadd_ps(a, b, c); }
inline VecF vset1(float x) { return _mm256_set1_ps(x); }
inline VecF vmul(VecF a, VecF b) { return _mm256_mul_ps(a, b); }
inline VecF vadd(VecF a, VecF b) { return _mm256_add_ps(a, b); }
inline float vsum(VecF v) {
  __m128 lo = _mm256_castps256_ps128(v);
  __m128 hi = _mm256_extractf128_ps(v, 1);
  lo = _mm_add_ps(lo, hi);
  lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
  lo = _mm_add_ss(lo, _mm_movehdup_ps(lo));
  return _mm_cvtss_f32(lo);
}
template <WType T>
inline VecF vloadW(const void* base, int64_t i) {
  if constexpr (T == WType::F32) {
    return _mm256_loadu_ps(static_cast<const float*>(base) + i);
  } else {
    __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(base) + i));
    if constexpr (T == WType::BF16) {
      return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(raw), 16));
    } else {
      return _mm256_cvtph_ps(raw);
    }
  }
}
#else
constexpr int kLanes = 1;
using VecF = float;
inline VecF vzero() { return 0.0f; }
inline VecF vload(const float* p) { return *p; }
inline void vstore(float* p, VecF v) { *p = v; }
inline VecF vfma(VecF a, VecF b, VecF c) { return a * b + c; }
inline VecF vset1(float x) { return x; }
inline VecF vmul(VecF a, VecF b) { return a * b; }
inline VecF vadd(VecF a, VecF b) { return a + b; }
inline float vsum(VecF v) { return v; }
template <WType T>
inline VecF vloadW(const void* base, int64_t i) {
  return loadScalar<T>(base, i);
}
#endif

// Dot product of two fp32 vectors of length n.
inline float dotF32(const float* a, const float* b, int n) {
  VecF acc0 = vzero(), acc1 = vzero();
  int i = 0;
  for (; i + 2 * kLanes <= n; i += 2 * kLanes) {
    acc0 = vfma(vload(a + i), vload(b + i), acc0);
    acc1 = vfma(vload(a + i + kLanes), vload(b + i + kLanes), acc1);
  }
  for (; i + kLanes <= n; i += kLanes) acc0 = vfma(vload(a + i), vload(b + i), acc0);
  float s = vsum(vadd(acc0, acc1));
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

// y[0, n) += alpha * x[0, n)
inline void axpyF32(float* y, const float* x, float alpha, int n) {
  VecF va = vset1(alpha);
  int i = 0;
  for (; i + kLanes <= n; i += kLanes) vstore(y + i, vfma(va, vload(x + i), vload(y + i)));
  for (; i < n; ++i) y[i] += alpha * x[i];
}

}  // namespace tslora::cpu
