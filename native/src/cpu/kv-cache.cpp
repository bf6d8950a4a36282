#include "kv-cache.h"

#include <cstring>
#include <new>

#include "tslora/errors.h"

namespace tslora::cpu {

KvCache::KvCache(int numLayers, int numBlocks, int blockSize, int numKvHeads, int headDim)
    : numLayers_(numLayers), numBlocks_(numBlocks), blockSize_(blockSize) {
  rowFloats_ = static_cast<size_t>(numKvHeads) * headDim;
  layerFloats_ = static_cast<size_t>(numBlocks) * blockSize * rowFloats_;
  totalFloats_ = static_cast<size_t>(numLayers) * 2 * layerFloats_;
  data_.reset(new (std::nothrow) float[totalFloats_ == 0 ? 1 : totalFloats_]);
  if (!data_) {
    throw NativeError("native_out_of_memory",
                      detail::concat("cannot allocate the KV cache (", totalFloats_ * 4, " bytes for ", numBlocks,
                                     " blocks of ", blockSize, " positions); lower the KV cache size"));
  }
}

void KvCache::copyBlocks(const int32_t* src, const int32_t* dst, int count) {
  const size_t blockFloats = static_cast<size_t>(blockSize_) * rowFloats_;
  for (int layer = 0; layer < numLayers_; ++layer) {
    for (int kv = 0; kv < 2; ++kv) {
      for (int i = 0; i < count; ++i) {
        if (src[i] == dst[i]) continue;
        std::memcpy(slot(layer, kv, dst[i], 0), slot(layer, kv, src[i], 0), blockFloats * sizeof(float));
      }
    }
  }
}

}  // namespace tslora::cpu
