// The CPU pool's host tier in the pool's own format: an adapter converted once (when it enters the host tier) to the
// pool's storage dtype and slot layout, so a slot load is two memcpy per (layer, module) and no arithmetic.
//   per (layer, module): A [c*r, in] (slice j at rows [j*r, (j+1)*r)) and Bᵀ in panels of rank r (lora_internal.h:
//   panelIndex), both exactly the prefix a slot of rank r holds, as fp32 or bf16 bits per PoolConfig::weightDtype, or
//   int8 codes with their scales (quantize_i8.h: the A-row scales apart, the column scales inside the panels).
#pragma once
#include <atomic>
#include <cstdint>
#include <cstring>
#include <vector>

#include "lora_internal.h"

namespace tslora::lora {

namespace detail {

inline float storeAs(float v, float*) { return v; }
inline uint16_t storeAs(float v, uint16_t*) { return f32ToBf16(v); }  // round to nearest even (tslora/half-float.h)

// One (layer, module) in the slot layout of rank r: A rows [0, c*r) and the Bᵀ panels of rank r (r * paddedOut
// elements, pad columns zero); zeros where absent. This is the one fp32 → storage conversion (B into panels,
// rounding to bf16); counted by slotConversions().
template <typename W>
void convertModule(W* a, W* bt, const HostModule& hm, const ModuleShape& s, int r) {
  const size_t aElems = static_cast<size_t>(s.numSlices) * r * s.in;
  for (size_t i = 0; i < aElems; ++i) a[i] = hm.present ? storeAs(hm.a[i], a) : W{};
  const int out = s.outTotal(), padded = paddedOutColumns(s);
  for (int n = 0; n < padded; ++n)  // the fp32 host copy is B [outTotal, r]
    for (int k = 0; k < r; ++k)
      bt[panelIndex(k, n, r)] = hm.present && n < out ? storeAs(hm.b[static_cast<size_t>(n) * r + k], bt) : W{};
}

// Header-only (inline variable), so LoraPool links without slot_image.cpp (the device scripts list sources by hand).
inline std::atomic<uint64_t> slotConversionCount{0};

// An adapter in one pool's format (the pool's config: the whole model's, or one tensor-parallel rank's).
class SlotImage final : public HostAdapter {
 public:
  struct Part {
    bool present = false;
    std::vector<float> a, bt;          // PoolDType::F32
    std::vector<uint16_t> a16, bt16;  // PoolDType::BF16
    std::vector<int8_t> a8, bt8;      // PoolDType::I8: codes; bt8's panels carry their column scales
    std::vector<float> aScale;        // PoolDType::I8: [c*r] A-row scales
  };
  SlotImage(const HostAdapterImpl& fp32, const PoolConfig& poolConfig);
  int rank() const override { return rank_; }
  size_t sizeBytes() const override { return sizeBytes_; }
  const PoolConfig& config() const { return config_; }
  const Part& part(Module m, int layer) const { return parts_[static_cast<int>(m)][layer]; }

 private:
  int rank_;
  PoolConfig config_;
  size_t sizeBytes_ = 0;
  std::vector<Part> parts_[kNumModules];  // [module][layer], targeted modules only
};

}  // namespace detail

// Converts a validated fp32 host copy (buildHostAdapter, same shapes as poolConfig) into poolConfig's format once.
// Throws std::invalid_argument when the shapes differ.
std::unique_ptr<HostAdapter> buildSlotImage(const HostAdapter& fp32, const PoolConfig& poolConfig);

// How many (adapter, pool) conversions to the storage format ran in this process: one per buildSlotImage, and one
// per LoraPool::writeSlot of a plain fp32 copy (tests; the server loads slot images). Testing hook.
uint64_t slotConversions();

}  // namespace tslora::lora
