// DeviceHostAdapter and PinnedHostPool: see lora_host_image.h.
#include "lora_host_image.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>
#include <stdexcept>

#include "lora_internal.h"

namespace tslora::cuda::lora {

uint16_t actBitsOf(float v, ActDType dtype) {
  uint16_t bits;
  if (dtype == ActDType::BF16) {
    const __nv_bfloat16 h = __float2bfloat16_rn(v);
    std::memcpy(&bits, &h, 2);
  } else {
    const __half h = __float2half_rn(v);
    std::memcpy(&bits, &h, 2);
  }
  return bits;
}

// ---- PinnedHostPool -------------------------------------------------------------------------------------------

struct PinnedHostPool::State {
  std::mutex mutex;
  std::vector<Block> free;  // cached blocks, any order
  size_t cachedBytes = 0;
};

PinnedHostPool::PinnedHostPool() : state_(std::make_shared<State>()) {
  const char* mb = std::getenv("TSLORA_PINNED_CACHE_MB");
  cacheLimitBytes_ = (mb != nullptr ? static_cast<size_t>(std::max(0L, std::atol(mb))) : size_t{2048}) << 20;
}

PinnedHostPool& PinnedHostPool::instance() {
  // Never destroyed: adapters freed during process exit may still return blocks.
  static PinnedHostPool* pool = new PinnedHostPool();
  return *pool;
}

PinnedHostPool::Block PinnedHostPool::acquire(size_t bytes) {
  bytes = std::max<size_t>(bytes, 1);
  {
    std::lock_guard<std::mutex> lock(state_->mutex);
    auto& free = state_->free;
    auto best = free.end();
    for (auto it = free.begin(); it != free.end(); ++it)  // the free list holds a few blocks: a scan is fine
      if (it->capacityBytes >= bytes && it->capacityBytes <= bytes + bytes / 4 &&
          (best == free.end() || it->capacityBytes < best->capacityBytes))
        best = it;
    if (best != free.end()) {
      Block b = *best;
      free.erase(best);
      state_->cachedBytes -= b.capacityBytes;
      return b;
    }
  }
  Block b;
  b.capacityBytes = bytes;
  if (cudaHostAlloc(&b.data, bytes, cudaHostAllocPortable) == cudaSuccess) {
    b.pinned = true;
    return b;
  }
  cudaGetLastError();  // clear the sticky-free error of the failed allocation
  b.data = std::malloc(bytes);
  if (b.data == nullptr) throw std::bad_alloc();
  return b;
}

void PinnedHostPool::release(Block block) {
  if (block.data == nullptr) return;
  {
    std::lock_guard<std::mutex> lock(state_->mutex);
    if (block.pinned && state_->cachedBytes + block.capacityBytes <= cacheLimitBytes_) {
      state_->free.push_back(block);
      state_->cachedBytes += block.capacityBytes;
      return;
    }
  }
  if (block.pinned) cudaFreeHost(block.data);
  else std::free(block.data);
}

size_t PinnedHostPool::cachedBytes() const {
  std::lock_guard<std::mutex> lock(state_->mutex);
  return state_->cachedBytes;
}

// ---- DeviceHostAdapter ----------------------------------------------------------------------------------------

DeviceHostAdapter::DeviceHostAdapter(int rank, const host::PoolConfig& config, ActDType dtype)
    : rank_(rank), config_(config), dtype_(dtype) {
  for (int m = 0; m < host::kNumModules; ++m)
    regions_[m].resize(config.targets[m] ? host::detail::layerCount(config, static_cast<host::Module>(m)) : 0);
}

DeviceHostAdapter::~DeviceHostAdapter() { PinnedHostPool::instance().release(block_); }

void DeviceHostAdapter::fill(const host::HostAdapter& fp32) {
  const auto* src = dynamic_cast<const host::detail::HostAdapterImpl*>(&fp32);
  if (src == nullptr || src->rank() != rank_ || !host::detail::sameShapes(src->config(), config_))
    throw std::invalid_argument("DeviceHostAdapter::fill: the fp32 copy does not match this image");
  const int r = rank_, R = config_.maxRank;
  // Offsets first (one block for the whole adapter), then the conversion straight into the block.
  size_t offset = 0;
  for (int m = 0; m < host::kNumModules; ++m) {
    const host::ModuleShape& s = config_.shapes[m];
    const int layers = static_cast<int>(regions_[m].size());
    contiguous_[m] = layers > 0;
    for (int layer = 0; layer < layers; ++layer) {  // A regions of the module, then its B regions
      Region& region = regions_[m][layer];
      region = Region{};
      region.present = src->module(static_cast<host::Module>(m), layer).present;
      contiguous_[m] = contiguous_[m] && region.present;
      if (!region.present) continue;
      region.aOffsetBytes = offset;
      region.aBytes = static_cast<size_t>(s.numSlices) * r * s.in * 2;
      offset += region.aBytes;
    }
    for (Region& region : regions_[m]) {
      if (!region.present) continue;
      region.bOffsetBytes = offset;
      region.bBytes = static_cast<size_t>(s.outTotal()) * R * 2;
      offset += region.bBytes;
    }
  }
  PinnedHostPool::instance().release(block_);
  block_ = PinnedHostPool::instance().acquire(offset);
  usedBytes_ = offset;
  auto* base = static_cast<uint8_t*>(block_.data);
  for (int m = 0; m < host::kNumModules; ++m) {
    const host::ModuleShape& s = config_.shapes[m];
    for (int layer = 0; layer < static_cast<int>(regions_[m].size()); ++layer) {
      const Region& region = regions_[m][layer];
      if (!region.present) continue;
      const host::detail::HostModule& hm = src->module(static_cast<host::Module>(m), layer);
      auto* a = reinterpret_cast<uint16_t*>(base + region.aOffsetBytes);
      for (size_t i = 0; i < hm.a.size(); ++i) a[i] = actBitsOf(hm.a[i], dtype_);  // [c*r, in]
      auto* b = reinterpret_cast<uint16_t*>(base + region.bOffsetBytes);
      const int out = s.outTotal();
      for (int o = 0; o < out; ++o) {  // [outTotal, r] → [outTotal, R], zero padding
        uint16_t* row = b + static_cast<size_t>(o) * R;
        for (int k = 0; k < r; ++k) row[k] = actBitsOf(hm.b[static_cast<size_t>(o) * r + k], dtype_);
        std::fill(row + r, row + R, uint16_t{0});
      }
    }
  }
}

std::unique_ptr<host::HostAdapter> buildDeviceHostAdapter(const host::AdapterInput& input, const host::PoolConfig& config,
                                                          ActDType dtype) {
  std::unique_ptr<host::HostAdapter> fp32 = host::buildHostAdapter(input, config);  // validation + σ folded in fp32
  auto image = std::make_unique<DeviceHostAdapter>(fp32->rank(), config, dtype);
  image->fill(*fp32);
  return image;
}

}  // namespace tslora::cuda::lora
