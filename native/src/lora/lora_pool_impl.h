// LoraPool::Impl, shared by the pool's storage code and the CPU kernels.
#pragma once
#include "lora_internal.h"

namespace tslora::lora {

struct LoraPool::Impl {
  struct Buffer {
    size_t aSlotElems = 0;      // c * R * in
    size_t bSlotElems = 0;      // outTotal * R
    std::vector<float> a;       // [S, c*R, in]      PoolDType::F32
    std::vector<float> b;       // [S, R, outTotal]  Bᵀ: output columns contiguous for the CPU expand
    std::vector<uint16_t> a16;  // the same, as bf16 bits, for PoolDType::BF16
    std::vector<uint16_t> b16;
  };
  PoolConfig config;
  std::vector<Buffer> buffers[kNumModules];   // [module][layer]
  std::vector<uint8_t> present[kNumModules];  // [module][layer * S + slot]: the slot's adapter has this module
  std::vector<int> ranks;                     // [S], 0 = base / empty

  void checkSlot(int slot) const {
    if (slot < 0 || slot >= config.numSlots)
      throw std::invalid_argument("LoRA slot " + std::to_string(slot) + " out of range [0, " +
                                  std::to_string(config.numSlots) + ")");
  }
};

}  // namespace tslora::lora
