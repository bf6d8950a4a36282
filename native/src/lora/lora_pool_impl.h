// LoraPool::Impl, shared by the pool's storage code and the CPU kernels.
#pragma once
#include <cstdlib>
#include <new>

#include "lora_internal.h"

namespace tslora::lora {

// A zero-filled array from calloc: large ones are fresh zero pages the OS maps in only when written, so a pool sized
// for many slots costs resident memory only for the slots adapters were actually written to.
template <typename T>
class PoolArray {
 public:
  PoolArray() = default;
  explicit PoolArray(size_t n) : data_(static_cast<T*>(std::calloc(n == 0 ? 1 : n, sizeof(T)))), size_(n) {
    if (!data_) throw std::bad_alloc();
  }
  PoolArray(PoolArray&& o) noexcept : data_(o.data_), size_(o.size_) { o.data_ = nullptr, o.size_ = 0; }
  PoolArray& operator=(PoolArray&& o) noexcept {
    std::swap(data_, o.data_);
    std::swap(size_, o.size_);
    return *this;
  }
  PoolArray(const PoolArray&) = delete;
  PoolArray& operator=(const PoolArray&) = delete;
  ~PoolArray() { std::free(data_); }
  T* data() { return data_; }
  const T* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  T* data_ = nullptr;
  size_t size_ = 0;
};

struct LoraPool::Impl {
  struct Buffer {
    size_t aSlotElems = 0;      // c * R * in
    size_t bSlotElems = 0;      // paddedOut * R (I8: paddedOut / 16 panels of R * 16 codes + 16 scales, in bytes)
    size_t aScaleSlotElems = 0; // c * R (I8)
    PoolArray<float> a;       // [S, c*R, in]      PoolDType::F32
    PoolArray<float> b;       // [S, paddedOut * R]  Bᵀ panels of the slot's rank (lora_internal.h: panelIndex)
    PoolArray<uint16_t> a16;  // the same, as bf16 bits, for PoolDType::BF16
    PoolArray<uint16_t> b16;
    PoolArray<int8_t> a8;     // PoolDType::I8: [S, c*R, in] codes
    PoolArray<int8_t> b8;     // [S, bSlotElems] Bᵀ panels with their column scales (lora_internal.h: panelStride)
    PoolArray<float> aScale;  // [S, c*R] one scale per A row (quantize_i8.h)
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
