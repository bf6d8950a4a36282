// Small fp32 dot-product helpers for the CPU LoRA kernels. GCC vector extensions keep them vectorised at any -O
// level without -ffast-math (8 independent lanes instead of one serial float reduction).
#pragma once
#include <cstring>

// The helpers are inline-only, so the AVX-vector ABI note (-Wpsabi) does not apply.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"

namespace tslora::lora::detail {

typedef float Vec8 __attribute__((vector_size(32)));

inline Vec8 loadVec8(const float* p) {
  Vec8 v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline float sumVec8(const Vec8& v) { return ((v[0] + v[1]) + (v[2] + v[3])) + ((v[4] + v[5]) + (v[6] + v[7])); }

inline float dot(const float* a, const float* b, int n) {
  Vec8 acc0 = {}, acc1 = {};
  int k = 0;
  for (; k + 16 <= n; k += 16) {
    acc0 += loadVec8(a + k) * loadVec8(b + k);
    acc1 += loadVec8(a + k + 8) * loadVec8(b + k + 8);
  }
  for (; k + 8 <= n; k += 8) acc0 += loadVec8(a + k) * loadVec8(b + k);
  float sum = sumVec8(acc0 + acc1);
  for (; k < n; ++k) sum += a[k] * b[k];
  return sum;
}

// out[i] = dot(a, x[i], n) for four rows at once: a is loaded once for the four rows (the tile-reuse idea).
inline void dot4(const float* a, const float* const x[4], int n, float out[4]) {
  Vec8 acc[4] = {};
  int k = 0;
  for (; k + 8 <= n; k += 8) {
    const Vec8 av = loadVec8(a + k);
    for (int i = 0; i < 4; ++i) acc[i] += av * loadVec8(x[i] + k);
  }
  for (int i = 0; i < 4; ++i) {
    float sum = sumVec8(acc[i]);
    for (int kk = k; kk < n; ++kk) sum += a[kk] * x[i][kk];
    out[i] = sum;
  }
}

// out[i][j] = dot(a[i], x[j], n) for NA weight rows × NX input rows: each load feeds several FMAs (register
// blocking), so the loop is bound by FMAs rather than by loads.
template <int NA, int NX>
inline void dotBlock(const float* const* a, const float* const* x, int n, float (*out)[NX]) {
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
      for (int kk = k; kk < n; ++kk) sum += a[i][kk] * x[j][kk];
      out[i][j] = sum;
    }
}

}  // namespace tslora::lora::detail

#pragma GCC diagnostic pop
