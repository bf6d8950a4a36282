// Internal helpers shared by the LoRA pool, the host-adapter builder and the CPU kernels (not part of the contract).
#pragma once
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "lora.h"
#include "tslora/half-float.h"

namespace tslora::lora::detail {

// Embed and lm_head exist once; every other module once per decoder layer.
inline bool isPerLayer(Module m) { return m != Module::Embed && m != Module::LmHead; }
inline int layerCount(const PoolConfig& config, Module m) { return isPerLayer(m) ? config.numLayers : 1; }
inline const char* moduleName(Module m) {
  static const char* names[kNumModules] = {"qkv_proj", "o_proj", "gate_up_proj", "down_proj", "embed_tokens", "lm_head"};
  return names[static_cast<int>(m)];
}

// The CPU pool's B layout: Bᵀ (σ folded) cut into panels of kPanelCols output columns, panel p = [r][kPanelCols]:
// row k, module column n at (n / kPanelCols) * r * kPanelCols + k * kPanelCols + n % kPanelCols, the columns padded
// to whole panels with zeros. The expand of any run of columns reads one contiguous stretch (the prefetcher follows
// it), and a slot of rank r uses the prefix r * paddedOut of its region (a slot image is one memcpy).
constexpr int kPanelCols = 16;
inline int paddedOutColumns(const ModuleShape& s) { return (s.outTotal() + kPanelCols - 1) / kPanelCols * kPanelCols; }
inline size_t panelIndex(int k, int n, int r) {
  return static_cast<size_t>(n / kPanelCols) * r * kPanelCols + static_cast<size_t>(k) * kPanelCols + n % kPanelCols;
}
// Elements from one panel's start to the next, by storage type (the pointer only selects the overload). An int8 panel
// (PoolDType::I8) is its [r][16] codes followed by its 16 fp32 column scales (64 bytes), so the expand and its
// prefetch read codes and scales as one stream.
constexpr int kPanelScaleBytes = kPanelCols * static_cast<int>(sizeof(float));
inline size_t panelStride(int r, const float*) { return static_cast<size_t>(r) * kPanelCols; }
inline size_t panelStride(int r, const uint16_t*) { return static_cast<size_t>(r) * kPanelCols; }
inline size_t panelStride(int r, const int8_t*) { return static_cast<size_t>(r) * kPanelCols + kPanelScaleBytes; }
// Elements of a module's whole Bᵀ of rank r in storage type W (every panel, pad columns included).
template <typename W>
size_t panelsElems(const ModuleShape& s, int r) {
  return static_cast<size_t>(paddedOutColumns(s) / kPanelCols) * panelStride(r, static_cast<const W*>(nullptr));
}

// Validates the pool shapes once (constructor); throws std::invalid_argument.
void validatePoolConfig(const PoolConfig& config);
bool sameShapes(const PoolConfig& a, const PoolConfig& b);

// Host copy of one (layer, module): rank r of its adapter, scaling folded into B.
struct HostModule {
  bool present = false;
  std::vector<float> a;  // [c * r, in]   slice j at rows [j*r, (j+1)*r)
  std::vector<float> b;  // [outTotal, r]
};

class HostAdapterImpl final : public HostAdapter {
 public:
  HostAdapterImpl(int rank, const PoolConfig& config);
  int rank() const override { return rank_; }
  size_t sizeBytes() const override;
  const PoolConfig& config() const { return config_; }
  HostModule& module(Module m, int layer) { return modules_[static_cast<int>(m)][layer]; }
  const HostModule& module(Module m, int layer) const { return modules_[static_cast<int>(m)][layer]; }

 private:
  int rank_;
  PoolConfig config_;
  std::vector<HostModule> modules_[kNumModules];  // [module][layer]
};

inline float loadElement(const TensorInput& t, int64_t index) {
  switch (t.dtype) {
    case DType::F32: return static_cast<const float*>(t.data)[index];
    case DType::F16: return f16ToF32(static_cast<const uint16_t*>(t.data)[index]);  // tslora/half-float.h, exact
    case DType::BF16: return bf16ToF32(static_cast<const uint16_t*>(t.data)[index]);
  }
  throw std::invalid_argument("unknown tensor dtype");
}

}  // namespace tslora::lora::detail
