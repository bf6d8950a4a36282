// Row-wise operations of the decoder: RMSNorm, rotary embeddings (plain / linear / llama3, as transformers
// computes them), SwiGLU.
#pragma once
#include <vector>

namespace tslora::cpu {

struct RopeConfig {
  int headDim = 0;
  float theta = 10000.0f;
  int scalingType = 0;  // 0 none, 1 linear, 2 llama3
  float factor = 1.0f;
  float lowFreqFactor = 1.0f;
  float highFreqFactor = 4.0f;
  int originalMaxPositionEmbeddings = 8192;
};

// inv_freq[headDim / 2] exactly as transformers' _compute_default / linear / llama3 rope parameters (fp32).
std::vector<float> ropeInverseFrequencies(const RopeConfig& config);

// out[i] = w[i] * x[i] / sqrt(mean(x²) + eps); out may alias x.
void rmsNorm(const float* x, const float* w, float* out, int n, float eps);

// Rotates numHeads heads of headDim (rotate_half layout: pairs (i, i + headDim/2)) in place for one position.
void applyRope(float* heads, int numHeads, int headDim, int position, const float* invFreq);

// act[i] = silu(gate[i]) * up[i], by the runtime-chosen kernel copy (cpu-isa.h; vexp within 2 ulp of exp)
void swiglu(const float* gate, const float* up, float* act, int n);

}  // namespace tslora::cpu
