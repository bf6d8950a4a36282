// Paged KV cache: for every layer, K and V each [numBlocks][blockSize][numKvHeads][headDim], stored as fp32 or as
// bf16 (half the bytes; attention widens to fp32 and accumulates in fp32). The array is reserved, not touched: the
// OS commits a page when a block is first written, so resident memory follows the KV actually used.
#pragma once
#include <cstddef>
#include <cstdint>

#include "simd.h"

namespace tslora::cpu {

class KvCache {
 public:
  // dtype: WType::F32 or WType::BF16.
  KvCache(int numLayers, int numBlocks, int blockSize, int numKvHeads, int headDim, WType dtype);
  ~KvCache();
  KvCache(const KvCache&) = delete;
  KvCache& operator=(const KvCache&) = delete;

  int numBlocks() const { return numBlocks_; }
  int blockSize() const { return blockSize_; }
  WType dtype() const { return dtype_; }
  size_t elementBytes() const { return dtype_ == WType::F32 ? 4 : 2; }
  size_t sizeBytes() const { return totalElems_ * elementBytes(); }
  // Start of the [numKvHeads][headDim] entry of (block, offset) in a layer (float* or bf16 bits, by dtype()).
  void* key(int layer, int block, int offset) const { return slot(layer, 0, block, offset); }
  void* value(int layer, int block, int offset) const { return slot(layer, 1, block, offset); }
  // Stores n fp32 values at an entry (rounded to bf16 when the cache is bf16).
  void store(void* entry, const float* values, int n) const;
  // Copies whole blocks in every layer (copy-on-write of a shared prefix block). Ids checked by the caller.
  void copyBlocks(const int32_t* src, const int32_t* dst, int count);

 private:
  void* slot(int layer, int kv, int block, int offset) const {
    size_t base = (static_cast<size_t>(layer) * 2 + kv) * layerElems_;
    return data_ + (base + (static_cast<size_t>(block) * blockSize_ + offset) * rowElems_) * elementBytes();
  }
  int numLayers_, numBlocks_, blockSize_;
  WType dtype_;
  size_t rowElems_, layerElems_, totalElems_;
  char* data_ = nullptr;  // mmap'ed anonymous memory: pages committed on first write
  size_t mappedBytes_ = 0;
};

}  // namespace tslora::cpu
