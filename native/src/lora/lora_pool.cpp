// LoraPool storage: S slots of fp32 A/B buffers per (layer, module), allocated once; slots never move (spec c.4).
#include <algorithm>
#include <cstring>

#include "lora_pool_impl.h"

namespace tslora::lora {
namespace detail {

void validatePoolConfig(const PoolConfig& config) {
  if (config.numSlots < 1) throw std::invalid_argument("LoRA pool needs at least one slot");
  if (config.maxRank < 1) throw std::invalid_argument("LoRA pool needs a maximum rank of at least 1");
  if (config.numLayers < 1) throw std::invalid_argument("LoRA pool needs at least one layer");
  if (config.weightDtype != PoolDType::F32 && config.weightDtype != PoolDType::BF16)
    throw std::invalid_argument("LoRA pool weight dtype must be F32 or BF16");
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

inline float storeAs(float v, float*) { return v; }
inline uint16_t storeAs(float v, uint16_t*) {  // fp32 → bf16, round to nearest even (values are finite)
  uint32_t w;
  std::memcpy(&w, &v, sizeof w);
  w += 0x7fffu + ((w >> 16) & 1u);
  return static_cast<uint16_t>(w >> 16);
}

// One (layer, module) of one slot: A rows [0, c*r) and Bᵀ rows [0, r); zeros where the adapter lacks the module.
template <typename W>
void writeModule(W* a, W* bt, const detail::HostModule& hm, const ModuleShape& s, int r) {
  const size_t aElems = static_cast<size_t>(s.numSlices) * r * s.in;  // A [c*R, in], rows [0, c*r)
  for (size_t i = 0; i < aElems; ++i) a[i] = hm.present ? storeAs(hm.a[i], a) : W{};
  const int out = s.outTotal();
  for (int k = 0; k < r; ++k) {  // Bᵀ [R, outTotal], rows [0, r); the host copy is B [outTotal, r]
    W* dst = bt + static_cast<size_t>(k) * out;
    for (int o = 0; o < out; ++o) dst[o] = hm.present ? storeAs(hm.b[static_cast<size_t>(o) * r + k], bt) : W{};
  }
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
      buf.bSlotElems = static_cast<size_t>(s.outTotal()) * config.maxRank;
      if (config.weightDtype == PoolDType::BF16) {
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
      bytes += (buf.a.size() + buf.b.size()) * sizeof(float) + (buf.a16.size() + buf.b16.size()) * sizeof(uint16_t);
  return bytes;
}

int LoraPool::slotRank(int slot) const {
  impl_->checkSlot(slot);
  return impl_->ranks[slot];
}

bool LoraPool::targets(Module m) const { return impl_->config.targets[static_cast<int>(m)]; }

void LoraPool::writeSlot(int slot, const HostAdapter& adapter) {
  impl_->checkSlot(slot);
  const auto* host = dynamic_cast<const detail::HostAdapterImpl*>(&adapter);
  if (host == nullptr) throw std::invalid_argument("writeSlot: adapter was not built by buildHostAdapter");
  const PoolConfig& config = impl_->config;
  if (!detail::sameShapes(host->config(), config))
    throw std::invalid_argument("incompatible: adapter was built for a different pool shape");
  const int r = host->rank();
  if (r > config.maxRank) throw std::invalid_argument("incompatible: adapter rank exceeds the pool's maximum rank");
  impl_->ranks[slot] = 0;  // the slot is unusable until fully written
  for (int m = 0; m < kNumModules; ++m) {
    if (!config.targets[m]) continue;
    for (int layer = 0; layer < static_cast<int>(impl_->buffers[m].size()); ++layer) {
      auto& buf = impl_->buffers[m][layer];
      const detail::HostModule& hm = host->module(static_cast<Module>(m), layer);
      if (config.weightDtype == PoolDType::BF16)
        writeModule(buf.a16.data() + buf.aSlotElems * slot, buf.b16.data() + buf.bSlotElems * slot, hm, config.shapes[m], r);
      else
        writeModule(buf.a.data() + buf.aSlotElems * slot, buf.b.data() + buf.bSlotElems * slot, hm, config.shapes[m], r);
      impl_->present[m][static_cast<size_t>(layer) * config.numSlots + slot] = hm.present ? 1 : 0;
    }
  }
  impl_->ranks[slot] = r;
}

void LoraPool::clearSlot(int slot) {
  impl_->checkSlot(slot);
  impl_->ranks[slot] = 0;
  for (int m = 0; m < kNumModules; ++m) {
    for (size_t layer = 0; layer < impl_->buffers[m].size(); ++layer) {
      auto& buf = impl_->buffers[m][layer];
      if (impl_->config.weightDtype == PoolDType::BF16) {
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
