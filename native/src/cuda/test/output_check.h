// How the CUDA LoRA drivers judge a kernel's output Y = round_act(Y0 + delta) against the fp32 CPU twin
// Yref = Y0 + delta_cpu. Two things make a plain "error relative to the delta" unfair for small deltas:
//   * the final rounding of Y to bf16/fp16 is unavoidable and scales with |Y|, not with the delta;
//   * an embed_tokens delta is one gathered column of A times B (no dot product over the hidden size), so it is
//     small next to a base row of U(0, 0.25).
// So (1) the bound is tolerance * ||delta|| plus twice the rounding error of Yref itself (a correct kernel may land
// one rounding step to either side), and (2) embed cases draw the base row on the delta's own scale
// (baseScaleFor), so the rounding floor cannot hide a wrong column or a missing scaling.
#pragma once
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "device_pool.h"

namespace tslora::lora::test {

class OutputCheck {
 public:
  explicit OutputCheck(cuda::lora::ActDType dtype) : dtype_(dtype) {}

  // got: the kernel's rounded output; ref: the CPU twin's fp32 Y0 + delta; base: Y0.
  void add(float got, float ref, float base) {
    const double roundedRef = fromActBits(toActBits(ref, dtype_), dtype_);
    errSq_ += (double(got) - ref) * (double(got) - ref);
    deltaSq_ += (double(ref) - base) * (double(ref) - base);
    roundSq_ += (roundedRef - ref) * (roundedRef - ref);
  }

  // "" when within bounds, else the measured numbers.
  std::string verdict(const char* extra = "") const {
    const double tolerance = dtype_ == cuda::lora::ActDType::BF16 ? 1.5e-2 : 3e-3;
    const double err = std::sqrt(errSq_), delta = std::sqrt(deltaSq_), roundingFloor = std::sqrt(roundSq_);
    const double bound = tolerance * delta + 2 * roundingFloor;
    if (err <= bound) return "";
    char buf[240];
    std::snprintf(buf, sizeof buf, "error %.3g > bound %.3g (%.1g x delta %.3g + 2 x rounding floor %.3g)%s", err, bound,
                  tolerance, delta, roundingFloor, extra);
    return buf;
  }

 private:
  cuda::lora::ActDType dtype_;
  double errSq_ = 0, deltaSq_ = 0, roundSq_ = 0;
};

// The base-row scale for a case: 0.25 for projections; for embed, 4x the RMS of the delta the CPU twin adds to a
// zero row (measured with `applyToZeros`, which must run cpu.apply on a zeroed [T, yStride] buffer).
template <typename ApplyToZeros>
float baseScaleFor(bool embed, size_t numValues, ApplyToZeros applyToZeros) {
  if (!embed) return 0.25f;
  std::vector<float> zeros(numValues, 0.0f);
  applyToZeros(zeros.data());
  double sq = 0;
  size_t nonZero = 0;
  for (float v : zeros)
    if (v != 0) { sq += double(v) * v; ++nonZero; }
  return nonZero ? static_cast<float>(4 * std::sqrt(sq / nonZero)) : 0.25f;
}

}  // namespace tslora::lora::test
