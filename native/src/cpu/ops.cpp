#include "ops.h"

#include <cmath>

#include "simd.h"

namespace tslora::cpu {

std::vector<float> ropeInverseFrequencies(const RopeConfig& c) {
  const int half = c.headDim / 2;
  std::vector<float> inv(half);
  for (int i = 0; i < half; ++i) {
    float exponent = static_cast<float>(2 * i) / static_cast<float>(c.headDim);
    inv[i] = 1.0f / std::pow(c.theta, exponent);
  }
  if (c.scalingType == 1) {
    for (auto& f : inv) f /= c.factor;
  } else if (c.scalingType == 2) {
    const float oldLen = static_cast<float>(c.originalMaxPositionEmbeddings);
    const float lowFreqWavelen = oldLen / c.lowFreqFactor;
    const float highFreqWavelen = oldLen / c.highFreqFactor;
    for (auto& f : inv) {
      float wavelen = 2.0f * static_cast<float>(M_PI) / f;
      float scaled = wavelen > lowFreqWavelen ? f / c.factor : f;
      float smooth = (oldLen / wavelen - c.lowFreqFactor) / (c.highFreqFactor - c.lowFreqFactor);
      float smoothed = (1.0f - smooth) * scaled / c.factor + smooth * scaled;
      bool medium = !(wavelen < highFreqWavelen) && !(wavelen > lowFreqWavelen);
      f = medium ? smoothed : scaled;
    }
  }
  return inv;
}

void rmsNorm(const float* x, const float* w, float* out, int n, float eps) {
  double sumSq = 0.0;
  for (int i = 0; i < n; ++i) sumSq += static_cast<double>(x[i]) * x[i];
  float inv = 1.0f / std::sqrt(static_cast<float>(sumSq / n) + eps);
  for (int i = 0; i < n; ++i) out[i] = w[i] * (x[i] * inv);
}

void applyRope(float* heads, int numHeads, int headDim, int position, const float* invFreq) {
  const int half = headDim / 2;
  float cosv[512], sinv[512];
  for (int i = 0; i < half; ++i) {
    float angle = invFreq[i] * static_cast<float>(position);  // fp32 product, like transformers
    cosv[i] = static_cast<float>(std::cos(static_cast<double>(angle)));
    sinv[i] = static_cast<float>(std::sin(static_cast<double>(angle)));
  }
  for (int h = 0; h < numHeads; ++h) {
    float* x = heads + static_cast<size_t>(h) * headDim;
    for (int i = 0; i < half; ++i) {
      float x1 = x[i], x2 = x[i + half];
      x[i] = x1 * cosv[i] - x2 * sinv[i];
      x[i + half] = x2 * cosv[i] + x1 * sinv[i];
    }
  }
}

}  // namespace tslora::cpu
