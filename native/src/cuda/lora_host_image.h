// The CUDA engine's host tier (issue #11): an adapter converted ONCE, when it enters the host tier, to the compute
// dtype and laid out exactly as a DeviceLoraPool slot holds it, in page-locked memory. A slot load is then one
// cudaMemcpyAsync per (layer, module) and matrix, no host arithmetic (DeviceLoraPool::writeSlot).
//
// Order: per module, the A regions of its layers back to back, then their B regions. Each present (layer, module),
// matching lora_device_pool.h:
//   A: [c * r, in]   act dtype, rank-packed (slice j at rows [j*r, (j+1)*r)) = the first c*r rows of the slot's A
//   B: [outTotal, R] act dtype, rank-padded to the pool's R (columns [r, R) zero) = the slot's whole B, so that it
//      is one contiguous copy instead of a 2-D copy of r-element rows (a DMA engine moves 32-byte rows slowly)
// Modules the adapter lacks take no bytes; the load zeroes their rank-r regions on the device.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "lora.h"
#include "lora_kernels.cuh"

namespace tslora::cuda::lora {

namespace host = tslora::lora;

// Page-locked host blocks, recycled: cudaHostAlloc / cudaFreeHost cost milliseconds for adapter-sized blocks and
// cudaFreeHost may synchronise the device, so a freed block goes to a bounded free list and the next adapter of a
// similar size reuses it (host-tier churn with --max-loaded-loras allocates nothing in the steady state).
// Where page-locked memory cannot be had (no GPU, the pinned limit reached), blocks are ordinary heap memory: the
// copies stay correct, only slower. Thread-safe (adapters are built on libuv worker threads).
class PinnedHostPool {
 public:
  struct Block {
    void* data = nullptr;
    size_t capacityBytes = 0;
    bool pinned = false;
  };
  static PinnedHostPool& instance();
  // A block of at least `bytes` (a cached one no more than 25 % larger, else a fresh allocation).
  Block acquire(size_t bytes);
  void release(Block block);
  // Bytes in the free list (not in use by any adapter).
  size_t cachedBytes() const;
  // Most bytes the free list keeps (env TSLORA_PINNED_CACHE_MB, default 2048).
  size_t cacheLimitBytes() const { return cacheLimitBytes_; }

 private:
  PinnedHostPool();
  struct State;
  std::shared_ptr<State> state_;
  size_t cacheLimitBytes_;
};

class DeviceHostAdapter final : public host::HostAdapter {
 public:
  struct Region {
    bool present = false;
    size_t aOffsetBytes = 0, aBytes = 0;  // A [c*r, in]
    size_t bOffsetBytes = 0, bBytes = 0;  // B [outTotal, R]
  };
  DeviceHostAdapter(int rank, const host::PoolConfig& config, ActDType dtype);
  ~DeviceHostAdapter() override;
  DeviceHostAdapter(const DeviceHostAdapter&) = delete;
  DeviceHostAdapter& operator=(const DeviceHostAdapter&) = delete;

  int rank() const override { return rank_; }
  size_t sizeBytes() const override { return usedBytes_; }
  const host::PoolConfig& config() const { return config_; }
  ActDType dtype() const { return dtype_; }
  bool pinned() const { return block_.pinned; }
  const Region& region(host::Module m, int layer) const { return regions_[static_cast<int>(m)][layer]; }
  const uint8_t* bytes() const { return static_cast<const uint8_t*>(block_.data); }
  // Every layer of `m` is present, with the A regions of successive layers back to back, and the B regions too
  // (the layout fill() writes): a load copies each matrix of the module in one 2-D copy.
  bool moduleContiguous(host::Module m) const { return contiguous_[static_cast<int>(m)]; }

  // Fills the image from the validated fp32 host copy (host::buildHostAdapter): the one conversion.
  void fill(const host::HostAdapter& fp32);

 private:
  int rank_;
  host::PoolConfig config_;
  ActDType dtype_;
  size_t usedBytes_ = 0;
  PinnedHostPool::Block block_;
  std::vector<Region> regions_[host::kNumModules];  // [module][layer]
  bool contiguous_[host::kNumModules] = {};
};

// Validates and converts a PEFT adapter (host::buildHostAdapter's checks and messages) into the device's format.
// Runs on a worker thread; the fp32 intermediate is freed before returning.
std::unique_ptr<host::HostAdapter> buildDeviceHostAdapter(const host::AdapterInput& input, const host::PoolConfig& config,
                                                          ActDType dtype);

// fp32 → the act dtype's bits, round to nearest even (the kernels' own conversion).
uint16_t actBitsOf(float v, ActDType dtype);

}  // namespace tslora::cuda::lora
