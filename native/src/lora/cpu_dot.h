// Small fp32 dot-product helpers for the CPU LoRA kernels. GCC vector extensions keep them vectorised at any -O
// level without -ffast-math (8 independent lanes instead of one serial float reduction). Weights come as fp32 or
// as bf16 bits (uint16_t), widened to fp32 on load (bf16 → fp32 is exact: the bits shifted left by 16).
#pragma once
#include <cstdint>
#include <cstring>

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
inline float toFloat(float v) { return v; }
inline float toFloat(uint16_t bits) {
  const uint32_t w = static_cast<uint32_t>(bits) << 16;
  float f;
  std::memcpy(&f, &w, sizeof f);
  return f;
}
inline float sumVec8(const Vec8& v) { return ((v[0] + v[1]) + (v[2] + v[3])) + ((v[4] + v[5]) + (v[6] + v[7])); }

template <typename W>
inline float dot(const float* a, const W* b, int n) {
  Vec8 acc0 = {}, acc1 = {};
  int k = 0;
  for (; k + 16 <= n; k += 16) {
    acc0 += loadVec8(a + k) * loadVec8(b + k);
    acc1 += loadVec8(a + k + 8) * loadVec8(b + k + 8);
  }
  for (; k + 8 <= n; k += 8) acc0 += loadVec8(a + k) * loadVec8(b + k);
  float sum = sumVec8(acc0 + acc1);
  for (; k < n; ++k) sum += a[k] * toFloat(b[k]);
  return sum;
}

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
      for (int j = 0; j < NX; ++j) acc[i][j] += av * xv[j];
    }
  }
  for (int i = 0; i < NA; ++i)
    for (int j = 0; j < NX; ++j) {
      float sum = sumVec8(acc[i][j]);
      for (int kk = k; kk < n; ++kk) sum += toFloat(a[i][kk]) * x[j][kk];
      out[i][j] = sum;
    }
}

}  // namespace tslora::lora::detail

#pragma GCC diagnostic pop
