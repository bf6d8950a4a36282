// Model creation: maps the safetensors files, checks every tensor against the spec and the file size
// (model-checks.h, the checks the CUDA model runs too).
#include "model.h"

#include <cmath>

#include "model-checks.h"
#include "tp/tp-model.h"
#include "tslora/errors.h"

#ifdef TSLORA_HAVE_LORA
#include "../lora/slot_image.h"
#endif

namespace tslora::cpu {

CpuModel::CpuModel(const ModelInit& init) : dims_(init.dims) {
  const ModelDims& d = dims_;
  checkModelInit(init, /*maxHeadDim=*/1024);
  for (const auto& path : init.files) files_.push_back(std::make_unique<MappedFile>(path));

  invFreq_ = ropeInverseFrequencies(init.rope);
  embed_ = resolveMatrix(init.embedTokens, d.vocab, d.hidden);
  lmHead_ = resolveMatrix(init.lmHead, d.vocab, d.hidden);
  finalNorm_ = resolveVector(init.finalNorm, d.hidden);
  layers_.resize(d.numLayers);
  for (int l = 0; l < d.numLayers; ++l) {
    const LayerTensorSpecs& s = init.layers[l];
    LayerWeights& w = layers_[l];
    w.inputNorm = resolveVector(s.inputNorm, d.hidden);
    w.postAttentionNorm = resolveVector(s.postAttentionNorm, d.hidden);
    w.q = resolveMatrix(s.qProj, d.qOut(), d.hidden);
    w.k = resolveMatrix(s.kProj, d.kvOut(), d.hidden);
    w.v = resolveMatrix(s.vProj, d.kvOut(), d.hidden);
    w.o = resolveMatrix(s.oProj, d.hidden, d.qOut());
    w.gate = resolveMatrix(s.gateProj, d.intermediate, d.hidden);
    w.up = resolveMatrix(s.upProj, d.intermediate, d.hidden);
    w.down = resolveMatrix(s.downProj, d.hidden, d.intermediate);
    if (d.qkvBias) {
      w.qBias = resolveVector(s.qBias, d.qOut());
      w.kBias = resolveVector(s.kBias, d.kvOut());
      w.vBias = resolveVector(s.vBias, d.kvOut());
    }
    if (d.qkNorm) {
      w.qNorm = resolveVector(s.qNorm, d.headDim);
      w.kNorm = resolveVector(s.kNorm, d.headDim);
    }
  }
  if (init.lmHead.file == init.embedTokens.file && init.lmHead.offsetBytes == init.embedTokens.offsetBytes) {
    weightBytes_ -= lmHead_.sizeBytes();  // tied: the same bytes
  }

  kvNumBlocks_ = init.kvNumBlocks;
  kvBlockSize_ = init.kvBlockSize;
  loraSlots_ = init.loraSlots;
  if (init.loraSlots > 0) {
#ifdef TSLORA_HAVE_LORA
    TSLORA_CHECK(init.loraMaxRank > 0, "loraMaxRank must be positive when loraSlots > 0");
    lora::PoolConfig& pc = loraConfig_;
    pc.numSlots = init.loraSlots;
    pc.maxRank = init.loraMaxRank;
    // bf16 storage halves the pool's memory and reads (fp32 accumulation in the kernels) but rounds fp32 adapters
    // (~1e-2 relative logit error on the PEFT fixtures), so it is opt-in.
    // int8 (opt-in too) quarters them, quantizing every adapter (lora.h: PoolDType::I8).
    pc.weightDtype = init.loraPoolI8 ? lora::PoolDType::I8 : init.loraPoolBf16 ? lora::PoolDType::BF16 : lora::PoolDType::F32;
    pc.numLayers = d.numLayers;
    for (int m = 0; m < lora::kNumModules; ++m) pc.targets[m] = init.loraTargets[m];
    auto set = [&](lora::Module m, int in, std::vector<int> offsets) {
      lora::ModuleShape& sh = pc.shapes[static_cast<int>(m)];
      sh.in = in;
      sh.numSlices = static_cast<int>(offsets.size()) - 1;
      for (size_t i = 0; i < offsets.size(); ++i) sh.sliceOffsets[i] = offsets[i];
    };
    set(lora::Module::QKV, d.hidden, {0, d.qOut(), d.qOut() + d.kvOut(), d.qOut() + 2 * d.kvOut()});
    set(lora::Module::O, d.qOut(), {0, d.hidden});
    set(lora::Module::GateUp, d.hidden, {0, d.intermediate, 2 * d.intermediate});
    set(lora::Module::Down, d.intermediate, {0, d.hidden});
    set(lora::Module::Embed, d.vocab, {0, d.hidden});
    set(lora::Module::LmHead, d.hidden, {0, d.vocab});
#else
    throw NativeError("native_unsupported",
                      "this build of tslora_cpu has no LoRA kernels (native/src/lora/*.cpp were missing at build "
                      "time); rebuild with `npm run build:native`");
#endif
  }

  const WType kvDtype = init.kvCacheBf16 ? WType::BF16 : WType::F32;
  tpSize_ = init.tpSize;
  TSLORA_CHECK(tpSize_ >= 1 && tpSize_ <= 64, "tpSize must be in [1, 64], got ", tpSize_);
  if (tpSize_ > 1) {
    tp::FullModel full{dims_, layers_, embed_, lmHead_, finalNorm_, invFreq_
#ifdef TSLORA_HAVE_LORA
                       , loraConfig()
#endif
    };
    tp_ = std::make_unique<tp::TpModel>(full, tpSize_, init.kvNumBlocks, init.kvBlockSize, kvDtype, init.numThreads);
    return;
  }
  kv_ = std::make_unique<KvCache>(d.numLayers, init.kvNumBlocks, init.kvBlockSize, d.numKvHeads, d.headDim, kvDtype);
  threads_ = std::make_unique<ThreadPool>(init.numThreads);
#ifdef TSLORA_HAVE_LORA
  if (init.loraSlots > 0) lora_ = std::make_unique<lora::LoraPool>(loraConfig_);
#endif
}

CpuModel::~CpuModel() = default;

size_t CpuModel::loraPoolBytes() const {
  if (tp_) return tp_->loraPoolBytes();
#ifdef TSLORA_HAVE_LORA
  return lora_ ? lora_->sizeBytes() : 0;
#else
  return 0;
#endif
}

size_t CpuModel::kvCacheBytes() const { return tp_ ? tp_->kvCacheBytes() : kv_->sizeBytes(); }

void CpuModel::copyKvBlocks(const int32_t* src, const int32_t* dst, int count) {
  if (tp_) tp_->copyKvBlocks(src, dst, count);
  else kv_->copyBlocks(src, dst, count);
}

#ifdef TSLORA_HAVE_LORA
std::unique_ptr<lora::HostAdapter> CpuModel::buildHostImage(const lora::AdapterInput& input) const {
  TSLORA_CHECK(loraSlots_ > 0, "the model was created with loraSlots = 0: LoRA is disabled");
  const std::unique_ptr<lora::HostAdapter> fp32 = lora::buildHostAdapter(input, loraConfig_);
  if (tp_) return tp_->buildHostImage(*fp32);
  return lora::buildSlotImage(*fp32, lora_->config());
}

void CpuModel::writeLoraSlot(int slot, const lora::HostAdapter& adapter) {
  if (tp_) tp_->writeLoraSlot(slot, adapter);
  else lora_->writeSlot(slot, adapter);
}

void CpuModel::clearLoraSlot(int slot) {
  if (tp_) tp_->clearLoraSlot(slot);
  else lora_->clearSlot(slot);
}
#endif

WeightView CpuModel::resolveMatrix(const TensorSpec& s, int64_t rows, int64_t cols) {
  WeightView w;
  w.data = checkedMatrixData(s, files_, rows, cols);
  w.type = s.type;
  w.rows = static_cast<int>(rows);
  w.cols = static_cast<int>(cols);
  weightBytes_ += s.sizeBytes;
  return w;
}

std::vector<float> CpuModel::resolveVector(const TensorSpec& s, int64_t n) {
  std::vector<float> out = readVectorF32(s, files_, n);
  weightBytes_ += s.sizeBytes;
  return out;
}

}  // namespace tslora::cpu
