// The int8 pool's quantization (PoolDType::I8; lora.h states the contract): symmetric absmax, one fp32 scale per A row
// and per output column of B, round to nearest even. Run once per (adapter, pool) when the adapter enters the host
// tier (slot_image.h), or on a slot write of a plain fp32 copy (tests).
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

#include "lora_internal.h"

namespace tslora::lora::detail {

constexpr float kI8MaxCode = 127.0f;  // symmetric: -128 is never used, so -q is always a code too

// Scale of n values at v[0], v[stride], …: max |v| / 127 (0 for all zeros).
inline float absmaxScale(const float* v, size_t n, size_t stride) {
  float m = 0.0f;
  for (size_t i = 0; i < n; ++i) m = std::fmax(m, std::fabs(v[i * stride]));
  return m / kI8MaxCode;
}

// rne(v / scale) clamped to [-127, 127] (the division can land a hair above 127 for the absmax itself); 0 for scale 0.
inline int8_t quantizeI8(float v, float scale) {
  if (scale == 0.0f) return 0;
  const float q = std::nearbyint(v / scale);  // the default rounding mode: to nearest, ties to even
  return static_cast<int8_t>(std::fmin(kI8MaxCode, std::fmax(-kI8MaxCode, q)));
}

// One (layer, module) in the int8 slot layout of rank r: A codes [c*r, in] with aScale[c*r], and the Bᵀ panels of rank
// r, each [r][16] codes then 16 column scales (panelStride); zeros where absent (codes and scales), pad columns zero.
inline void convertModuleI8(int8_t* a, float* aScale, int8_t* bt, const HostModule& hm, const ModuleShape& s, int r) {
  const int rows = s.numSlices * r, in = s.in;
  for (int i = 0; i < rows; ++i) {
    const float* src = hm.present ? hm.a.data() + static_cast<size_t>(i) * in : nullptr;
    const float scale = src ? absmaxScale(src, in, 1) : 0.0f;
    aScale[i] = scale;
    for (int k = 0; k < in; ++k) a[static_cast<size_t>(i) * in + k] = src ? quantizeI8(src[k], scale) : 0;
  }
  const int out = s.outTotal(), padded = paddedOutColumns(s);
  const size_t stride = panelStride(r, bt);
  for (int n = 0; n < padded; ++n) {  // the fp32 host copy is B [outTotal, r]: column n of Bᵀ is B's row n
    int8_t* panel = bt + static_cast<size_t>(n / kPanelCols) * stride;
    const float* src = hm.present && n < out ? hm.b.data() + static_cast<size_t>(n) * r : nullptr;
    const float scale = src ? absmaxScale(src, r, 1) : 0.0f;
    std::memcpy(panel + static_cast<size_t>(r) * kPanelCols + (n % kPanelCols) * sizeof(float), &scale, sizeof scale);
    for (int k = 0; k < r; ++k) panel[static_cast<size_t>(k) * kPanelCols + n % kPanelCols] = src ? quantizeI8(src[k], scale) : 0;
  }
}

}  // namespace tslora::lora::detail
