// Plain description of a model to create (filled from CreateModelOptions by the napi layer).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "ops.h"
#include "simd.h"

namespace tslora::cpu {

struct TensorSpec {
  bool present = false;
  int file = 0;
  uint64_t offsetBytes = 0;
  uint64_t sizeBytes = 0;
  WType type = WType::F32;
  std::vector<int64_t> shape;
  std::string name;  // for error messages, e.g. "layers[3].qProj"
};

struct LayerTensorSpecs {
  TensorSpec inputNorm, postAttentionNorm, qProj, kProj, vProj, oProj, gateProj, upProj, downProj;
  TensorSpec qBias, kBias, vBias, qNorm, kNorm;
};

struct ModelDims {
  int hidden = 0, intermediate = 0, numLayers = 0, numHeads = 0, numKvHeads = 0, headDim = 0, vocab = 0;
  float rmsNormEps = 1e-6f;
  bool qkvBias = false, qkNorm = false;
  int qOut() const { return numHeads * headDim; }
  int kvOut() const { return numKvHeads * headDim; }
  int qkvOut() const { return qOut() + 2 * kvOut(); }
};

struct ModelInit {
  ModelDims dims;
  RopeConfig rope;
  std::vector<std::string> files;
  TensorSpec embedTokens, finalNorm, lmHead;
  std::vector<LayerTensorSpecs> layers;
  int kvNumBlocks = 0, kvBlockSize = 0;
  int numThreads = 0;
  int tpSize = 1;  // tensor-parallel ranks (CPU: thread groups, native/src/cpu/tp)
  int loraSlots = 0, loraMaxRank = 0;
  bool loraPoolBf16 = false;  // CPU LoRA pool storage: bf16 instead of fp32
  bool loraPoolI8 = false;    // CPU LoRA pool storage: int8 codes with fp32 scales (lora.h: PoolDType::I8)
  bool kvCacheBf16 = false;   // KV cache storage: bf16 instead of fp32 (attention accumulates in fp32)
  bool loraTargets[6] = {};  // indexed by lora::Module
};

}  // namespace tslora::cpu
