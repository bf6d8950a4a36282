// Paged fp32 KV cache: for every layer, K and V each [numBlocks][blockSize][numKvHeads][headDim].
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>

namespace tslora::cpu {

class KvCache {
 public:
  KvCache(int numLayers, int numBlocks, int blockSize, int numKvHeads, int headDim);

  int numBlocks() const { return numBlocks_; }
  int blockSize() const { return blockSize_; }
  size_t sizeBytes() const { return totalFloats_ * sizeof(float); }
  // Start of the [numKvHeads][headDim] entry of (block, offset) in a layer.
  float* key(int layer, int block, int offset) { return slot(layer, 0, block, offset); }
  float* value(int layer, int block, int offset) { return slot(layer, 1, block, offset); }
  // Copies whole blocks in every layer (copy-on-write of a shared prefix block). Ids checked by the caller.
  void copyBlocks(const int32_t* src, const int32_t* dst, int count);

 private:
  float* slot(int layer, int kv, int block, int offset) {
    size_t base = (static_cast<size_t>(layer) * 2 + kv) * layerFloats_;
    return data_.get() + base + (static_cast<size_t>(block) * blockSize_ + offset) * rowFloats_;
  }
  int numLayers_, numBlocks_, blockSize_;
  size_t rowFloats_, layerFloats_, totalFloats_;
  std::unique_ptr<float[]> data_;  // left uninitialised: pages are touched only when used
};

}  // namespace tslora::cpu
