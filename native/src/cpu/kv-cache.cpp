#include "kv-cache.h"

#include <sys/mman.h>

#include <cstring>

#include "tslora/errors.h"

namespace tslora::cpu {

KvCache::KvCache(int numLayers, int numBlocks, int blockSize, int numKvHeads, int headDim, WType dtype)
    : numLayers_(numLayers), numBlocks_(numBlocks), blockSize_(blockSize), dtype_(dtype) {
  if (dtype != WType::F32 && dtype != WType::BF16)
    throw NativeError("native_invalid_argument", "KV cache dtype must be f32 or bf16");
  rowElems_ = static_cast<size_t>(numKvHeads) * headDim;
  layerElems_ = static_cast<size_t>(numBlocks) * blockSize * rowElems_;
  totalElems_ = static_cast<size_t>(numLayers) * 2 * layerElems_;
  // An anonymous private mapping reserves address space only (MAP_NORESERVE: no swap accounting either); a page
  // becomes resident when a block is first written, so an unused cache costs no memory.
  mappedBytes_ = totalElems_ == 0 ? 4096 : totalElems_ * elementBytes();
  void* p = mmap(nullptr, mappedBytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) {
    throw NativeError("native_out_of_memory",
                      detail::concat("cannot reserve the KV cache (", mappedBytes_, " bytes for ", numBlocks,
                                     " blocks of ", blockSize, " positions); lower the KV cache size"));
  }
  data_ = static_cast<char*>(p);
}

KvCache::~KvCache() { munmap(data_, mappedBytes_); }

void KvCache::store(void* entry, const float* values, int n) const {
  if (dtype_ == WType::F32) {
    std::memcpy(entry, values, static_cast<size_t>(n) * sizeof(float));
    return;
  }
  uint16_t* out = static_cast<uint16_t*>(entry);
  for (int i = 0; i < n; ++i) out[i] = f32ToBf16(values[i]);
}

void KvCache::copyBlocks(const int32_t* src, const int32_t* dst, int count) {
  const size_t blockBytes = static_cast<size_t>(blockSize_) * rowElems_ * elementBytes();
  for (int layer = 0; layer < numLayers_; ++layer) {
    for (int kv = 0; kv < 2; ++kv) {
      for (int i = 0; i < count; ++i) {
        if (src[i] == dst[i]) continue;
        std::memcpy(slot(layer, kv, dst[i], 0), slot(layer, kv, src[i], 0), blockBytes);
      }
    }
  }
}

}  // namespace tslora::cpu
