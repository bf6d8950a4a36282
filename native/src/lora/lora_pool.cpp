// LoraPool storage: S slots of fp32 / bf16 / int8 A/B buffers per (layer, module), allocated once; slots never move (spec c.4).
#include <algorithm>
#include <cstring>

#include "lora_pool_impl.h"
#include "quantize_i8.h"
#include "slot_image.h"

namespace tslora::lora {
namespace detail {

void validatePoolConfig(const PoolConfig& config) {
  if (config.numSlots < 1) throw std::invalid_argument("LoRA pool needs at least one slot");
  if (config.maxRank < 1) throw std::invalid_argument("LoRA pool needs a maximum rank of at least 1");
  if (config.numLayers < 1) throw std::invalid_argument("LoRA pool needs at least one layer");
  if (config.weightDtype != PoolDType::F32 && config.weightDtype != PoolDType::BF16 && config.weightDtype != PoolDType::I8)
    throw std::invalid_argument("LoRA pool weight dtype must be F32, BF16 or I8");
  static const int expectedSlices[kNumModules] = {3, 1, 2, 1, 1, 1};
  for (int m = 0; m < kNumModules; ++m) {
    if (!config.targets[m]) continue;
    const ModuleShape& s = config.shapes[m];
    const std::string name = moduleName(static_cast<Module>(m));
    if (s.in < 1) throw std::invalid_argument("LoRA pool shape of " + name + " has no input size");
    if (s.numSlices != expectedSlices[m])
      throw std::invalid_argument("LoRA pool shape of " + name + " must have " + std::to_string(expectedSlices[m]) + " slices");
    if (s.sliceOffsets[0] != 0) throw std::invalid_argument("LoRA pool shape of " + name + " must start at offset 0");
    for (int j = 0; j < s.numSlices; ++j)
      if (s.sliceOffsets[j + 1] <= s.sliceOffsets[j])
        throw std::invalid_argument("LoRA pool shape of " + name + " has an empty or decreasing slice");
  }
}

bool sameShapes(const PoolConfig& a, const PoolConfig& b) {
  if (a.numLayers != b.numLayers) return false;
  for (int m = 0; m < kNumModules; ++m) {
    if (a.targets[m] != b.targets[m]) return false;
    if (!a.targets[m]) continue;
    const ModuleShape &x = a.shapes[m], &y = b.shapes[m];
    if (x.in != y.in || x.numSlices != y.numSlices) return false;
    for (int j = 0; j <= x.numSlices; ++j)
      if (x.sliceOffsets[j] != y.sliceOffsets[j]) return false;
  }
  return true;
}

}  // namespace detail

namespace {

// A slot load from a slot image: the image is the prefix of the slot's A and Bᵀ buffers (slot_image.h); absent
// modules are zeroed for [0, r) (the layout contract). No arithmetic.
template <typename W>
void copyElems(W* dst, const std::vector<W>& image, bool present, size_t elems) {
  if (present) std::memcpy(dst, image.data(), elems * sizeof(W));
  else std::memset(dst, 0, elems * sizeof(W));
}
template <typename W>
void copyPart(W* a, W* bt, const std::vector<W>& imageA, const std::vector<W>& imageBt, bool present, const ModuleShape& s,
              int r) {
  copyElems(a, imageA, present, static_cast<size_t>(s.numSlices) * r * s.in);
  copyElems(bt, imageBt, present, detail::panelsElems<W>(s, r));
}

}  // namespace

LoraPool::LoraPool(const PoolConfig& config) : impl_(std::make_unique<Impl>()) {
  detail::validatePoolConfig(config);
  impl_->config = config;
  impl_->ranks.assign(config.numSlots, 0);
  for (int m = 0; m < kNumModules; ++m) {
    if (!config.targets[m]) continue;
    const ModuleShape& s = config.shapes[m];
    const int layers = detail::layerCount(config, static_cast<Module>(m));
    impl_->buffers[m].resize(layers);
    impl_->present[m].assign(static_cast<size_t>(layers) * config.numSlots, 0);
    for (auto& buf : impl_->buffers[m]) {
      buf.aSlotElems = static_cast<size_t>(s.numSlices) * config.maxRank * s.in;
      buf.bSlotElems = static_cast<size_t>(detail::paddedOutColumns(s)) * config.maxRank;
      if (config.weightDtype == PoolDType::I8) {
        buf.bSlotElems = detail::panelsElems<int8_t>(s, config.maxRank);
        buf.aScaleSlotElems = static_cast<size_t>(s.numSlices) * config.maxRank;
        buf.a8 = PoolArray<int8_t>(buf.aSlotElems * config.numSlots);
        buf.b8 = PoolArray<int8_t>(buf.bSlotElems * config.numSlots);
        buf.aScale = PoolArray<float>(buf.aScaleSlotElems * config.numSlots);
      } else if (config.weightDtype == PoolDType::BF16) {
        buf.a16 = PoolArray<uint16_t>(buf.aSlotElems * config.numSlots);
        buf.b16 = PoolArray<uint16_t>(buf.bSlotElems * config.numSlots);
      } else {
        buf.a = PoolArray<float>(buf.aSlotElems * config.numSlots);
        buf.b = PoolArray<float>(buf.bSlotElems * config.numSlots);
      }
    }
  }
}

LoraPool::~LoraPool() = default;

const PoolConfig& LoraPool::config() const { return impl_->config; }

size_t LoraPool::sizeBytes() const {
  size_t bytes = 0;
  for (const auto& layers : impl_->buffers)
    for (const auto& buf : layers)
      bytes += (buf.a.size() + buf.b.size() + buf.aScale.size()) * sizeof(float) +
               (buf.a16.size() + buf.b16.size()) * sizeof(uint16_t) + buf.a8.size() + buf.b8.size();
  return bytes;
}

int LoraPool::slotRank(int slot) const {
  impl_->checkSlot(slot);
  return impl_->ranks[slot];
}

bool LoraPool::targets(Module m) const { return impl_->config.targets[static_cast<int>(m)]; }

void LoraPool::writeSlot(int slot, const HostAdapter& adapter) {
  impl_->checkSlot(slot);
  const PoolConfig& config = impl_->config;
  const auto* image = dynamic_cast<const detail::SlotImage*>(&adapter);
  const auto* host = image ? nullptr : dynamic_cast<const detail::HostAdapterImpl*>(&adapter);
  if (image == nullptr && host == nullptr)
    throw std::invalid_argument("writeSlot: adapter was not built by buildHostAdapter or buildSlotImage");
  if (!detail::sameShapes(image ? image->config() : host->config(), config))
    throw std::invalid_argument("incompatible: adapter was built for a different pool shape");
  if (image && image->config().weightDtype != config.weightDtype)
    throw std::invalid_argument("incompatible: adapter image was built for a different pool dtype");
  const int r = adapter.rank();
  if (r > config.maxRank) throw std::invalid_argument("incompatible: adapter rank exceeds the pool's maximum rank");
  impl_->ranks[slot] = 0;  // the slot is unusable until fully written
  const PoolDType dtype = config.weightDtype;
  for (int m = 0; m < kNumModules; ++m) {
    if (!config.targets[m]) continue;
    const Module module = static_cast<Module>(m);
    const ModuleShape& shape = config.shapes[m];
    for (int layer = 0; layer < static_cast<int>(impl_->buffers[m].size()); ++layer) {
      auto& buf = impl_->buffers[m][layer];
      const detail::SlotImage::Part* p = image ? &image->part(module, layer) : nullptr;
      const detail::HostModule* hm = image ? nullptr : &host->module(module, layer);
      const bool present = p ? p->present : hm->present;
      if (dtype == PoolDType::I8) {
        int8_t* a = buf.a8.data() + buf.aSlotElems * slot;
        int8_t* bt = buf.b8.data() + buf.bSlotElems * slot;
        float* aScale = buf.aScale.data() + buf.aScaleSlotElems * slot;
        if (p) {
          copyPart(a, bt, p->a8, p->bt8, present, shape, r);
          copyElems(aScale, p->aScale, present, static_cast<size_t>(shape.numSlices) * r);
        } else {
          detail::convertModuleI8(a, aScale, bt, *hm, shape, r);  // a plain fp32 copy (tests): quantized on this load
        }
      } else if (dtype == PoolDType::BF16) {
        uint16_t* a = buf.a16.data() + buf.aSlotElems * slot;
        uint16_t* bt = buf.b16.data() + buf.bSlotElems * slot;
        if (p) copyPart(a, bt, p->a16, p->bt16, present, shape, r);
        else detail::convertModule(a, bt, *hm, shape, r);
      } else {
        float* a = buf.a.data() + buf.aSlotElems * slot;
        float* bt = buf.b.data() + buf.bSlotElems * slot;
        if (p) copyPart(a, bt, p->a, p->bt, present, shape, r);
        else detail::convertModule(a, bt, *hm, shape, r);  // a plain fp32 copy (tests, the CUDA tests' CPU reference)
      }
      impl_->present[m][static_cast<size_t>(layer) * config.numSlots + slot] = present ? 1 : 0;
    }
  }
  if (!image) detail::slotConversionCount.fetch_add(1);
  impl_->ranks[slot] = r;
}

void LoraPool::clearSlot(int slot) {
  impl_->checkSlot(slot);
  impl_->ranks[slot] = 0;
  for (int m = 0; m < kNumModules; ++m) {
    for (size_t layer = 0; layer < impl_->buffers[m].size(); ++layer) {
      auto& buf = impl_->buffers[m][layer];
      if (impl_->config.weightDtype == PoolDType::I8) {
        std::fill_n(buf.a8.data() + buf.aSlotElems * slot, buf.aSlotElems, int8_t{0});
        std::fill_n(buf.b8.data() + buf.bSlotElems * slot, buf.bSlotElems, int8_t{0});
        std::fill_n(buf.aScale.data() + buf.aScaleSlotElems * slot, buf.aScaleSlotElems, 0.0f);
      } else if (impl_->config.weightDtype == PoolDType::BF16) {
        std::fill_n(buf.a16.data() + buf.aSlotElems * slot, buf.aSlotElems, uint16_t{0});
        std::fill_n(buf.b16.data() + buf.bSlotElems * slot, buf.bSlotElems, uint16_t{0});
      } else {
        std::fill_n(buf.a.data() + buf.aSlotElems * slot, buf.aSlotElems, 0.0f);
        std::fill_n(buf.b.data() + buf.bSlotElems * slot, buf.bSlotElems, 0.0f);
      }
      impl_->present[m][layer * impl_->config.numSlots + slot] = 0;
    }
  }
}

}  // namespace tslora::lora
