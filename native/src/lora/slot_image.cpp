// buildSlotImage: the fp32 host copy → the pool's storage format, once per host-tier entry (see slot_image.h).
#include "slot_image.h"

#include "quantize_i8.h"

namespace tslora::lora {
namespace detail {

SlotImage::SlotImage(const HostAdapterImpl& fp32, const PoolConfig& poolConfig) : rank_(fp32.rank()), config_(poolConfig) {
  if (!sameShapes(fp32.config(), poolConfig))
    throw std::invalid_argument("incompatible: adapter was built for a different pool shape");
  const PoolDType dtype = poolConfig.weightDtype;
  for (int m = 0; m < kNumModules; ++m) {
    if (!poolConfig.targets[m]) continue;
    const Module module = static_cast<Module>(m);
    const ModuleShape& s = poolConfig.shapes[m];
    const size_t aElems = static_cast<size_t>(s.numSlices) * rank_ * s.in, btElems = static_cast<size_t>(rank_) * paddedOutColumns(s);
    parts_[m].resize(layerCount(poolConfig, module));
    for (int layer = 0; layer < static_cast<int>(parts_[m].size()); ++layer) {
      const HostModule& hm = fp32.module(module, layer);
      Part& p = parts_[m][layer];
      p.present = hm.present;
      if (!hm.present) continue;  // the slot load zeroes it
      if (dtype == PoolDType::I8) {
        const size_t bt8Elems = panelsElems<int8_t>(s, rank_), scales = static_cast<size_t>(s.numSlices) * rank_;
        p.a8.resize(aElems);
        p.bt8.resize(bt8Elems);
        p.aScale.resize(scales);
        convertModuleI8(p.a8.data(), p.aScale.data(), p.bt8.data(), hm, s, rank_);
        sizeBytes_ += aElems + bt8Elems + scales * sizeof(float);
      } else if (dtype == PoolDType::BF16) {
        p.a16.resize(aElems);
        p.bt16.resize(btElems);
        convertModule(p.a16.data(), p.bt16.data(), hm, s, rank_);
        sizeBytes_ += (aElems + btElems) * sizeof(uint16_t);
      } else {
        p.a.resize(aElems);
        p.bt.resize(btElems);
        convertModule(p.a.data(), p.bt.data(), hm, s, rank_);
        sizeBytes_ += (aElems + btElems) * sizeof(float);
      }
    }
  }
  slotConversionCount.fetch_add(1);
}

}  // namespace detail

std::unique_ptr<HostAdapter> buildSlotImage(const HostAdapter& fp32, const PoolConfig& poolConfig) {
  const auto* host = dynamic_cast<const detail::HostAdapterImpl*>(&fp32);
  if (host == nullptr) throw std::invalid_argument("buildSlotImage: adapter was not built by buildHostAdapter");
  return std::make_unique<detail::SlotImage>(*host, poolConfig);
}

uint64_t slotConversions() { return detail::slotConversionCount.load(); }

}  // namespace tslora::lora
