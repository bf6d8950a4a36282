// Small fp32 dot-product helpers for the CPU LoRA kernels. GCC vector extensions keep them vectorised at any -O
// level without -ffast-math (8 independent lanes instead of one serial float reduction). Weights come as fp32, as
// bf16 bits (uint16_t) or as int8 codes, widened to fp32 on load (exact: bf16 bits shifted left by 16; int8 converted).
#pragma once
#include <cstdint>
#include <cstring>
#if defined(__FMA__) || defined(__SSE4_1__)
#include <immintrin.h>
#endif

// The helpers are inline-only, so the AVX-vector ABI note (-Wpsabi) does not apply.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"

namespace tslora::lora::detail {

typedef float Vec8 __attribute__((vector_size(32)));
typedef uint16_t U16x8 __attribute__((vector_size(16)));
typedef uint32_t U32x8 __attribute__((vector_size(32)));

inline Vec8 loadVec8(const float* p) {
  Vec8 v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline Vec8 loadVec8(const uint16_t* p) {
  U16x8 h;
  std::memcpy(&h, p, sizeof h);
  const U32x8 w = __builtin_convertvector(h, U32x8) << 16;
  Vec8 v;
  std::memcpy(&v, &w, sizeof v);
  return v;
}
// int8 codes (PoolDType::I8) widened exactly. GCC 12 scalarises __builtin_convertvector from 8-bit lanes (eight
// scalar conversions: the 8-lane int8 expand ran at a quarter of the AVX-512 one's rate), so the x86 builds sign-extend
// and convert with the instructions their target has.
inline Vec8 loadVec8(const int8_t* p) {
  Vec8 v;
#if defined(__AVX2__)
  const __m256 f = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
  std::memcpy(&v, &f, sizeof v);
#elif defined(__SSE4_1__)
  int32_t lo, hi;
  std::memcpy(&lo, p, 4);
  std::memcpy(&hi, p + 4, 4);
  const __m128 f[2] = {_mm_cvtepi32_ps(_mm_cvtepi8_epi32(_mm_cvtsi32_si128(lo))), _mm_cvtepi32_ps(_mm_cvtepi8_epi32(_mm_cvtsi32_si128(hi)))};
  std::memcpy(&v, f, sizeof v);
#else
  for (int l = 0; l < 8; ++l) v[l] = static_cast<float>(p[l]);
#endif
  return v;
}
inline float toFloat(float v) { return v; }
inline float toFloat(int8_t q) { return static_cast<float>(q); }
inline float toFloat(uint16_t bits) {
  const uint32_t w = static_cast<uint32_t>(bits) << 16;
  float f;
  std::memcpy(&f, &w, sizeof f);
  return f;
}
// acc + a·b with the rounding made explicit rather than left to GCC's default -ffp-contract=fast (which fuses
// `acc += a * b` wherever the target has FMA and the optimiser sees the pair): one fused multiply-add where the
// build's target has FMA (x86 __FMA__, and every other target's fmaf), a rounded product then a rounded sum on x86
// targets without FMA (x86-64-v2 prebuilds), where nothing can be contracted. Every copy of a kernel that has FMA
// (cpu_expand.h: the AVX-512 one) rounds the same way, so they agree bitwise with this one on FMA builds.
inline Vec8 mulAdd(Vec8 acc, Vec8 a, Vec8 b) {
#if defined(__FMA__)
  return _mm256_fmadd_ps(a, b, acc);
#elif defined(__x86_64__)
  return acc + a * b;
#else
  Vec8 out;
  for (int l = 0; l < 8; ++l) out[l] = __builtin_fmaf(a[l], b[l], acc[l]);
  return out;
#endif
}
inline float mulAdd(float acc, float a, float b) {
#if defined(__FMA__) || !defined(__x86_64__)
  return __builtin_fmaf(a, b, acc);
#else
  return acc + a * b;
#endif
}
inline Vec8 broadcast8(float v) { return Vec8{v, v, v, v, v, v, v, v}; }

inline float sumVec8(const Vec8& v) { return ((v[0] + v[1]) + (v[2] + v[3])) + ((v[4] + v[5]) + (v[6] + v[7])); }

// out[i][j] = dot(a[i], x[j], n) for NA weight rows × NX input rows: each load feeds several FMAs (register
// blocking), so the loop is bound by FMAs rather than by loads.
template <int NA, int NX, typename W>
inline void dotBlock(const W* const* a, const float* const* x, int n, float (*out)[NX]) {
  Vec8 acc[NA][NX] = {};
  int k = 0;
  for (; k + 8 <= n; k += 8) {
    Vec8 xv[NX];
#pragma GCC unroll 4
    for (int j = 0; j < NX; ++j) xv[j] = loadVec8(x[j] + k);
#pragma GCC unroll 4
    for (int i = 0; i < NA; ++i) {
      const Vec8 av = loadVec8(a[i] + k);
#pragma GCC unroll 4
      for (int j = 0; j < NX; ++j) acc[i][j] = mulAdd(acc[i][j], av, xv[j]);
    }
  }
  for (int i = 0; i < NA; ++i)
    for (int j = 0; j < NX; ++j) {
      float sum = sumVec8(acc[i][j]);
      for (int kk = k; kk < n; ++kk) sum = mulAdd(sum, toFloat(a[i][kk]), x[j][kk]);
      out[i][j] = sum;
    }
}

}  // namespace tslora::lora::detail

#pragma GCC diagnostic pop
