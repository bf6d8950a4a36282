// buildHostAdapter: PEFT pairs (memory-mapped F32/F16/BF16) → validated fp32 copy in the pool's layout (spec d.3, e.2).
#include <cmath>
#include <set>
#include <tuple>

#include "lora_internal.h"

namespace tslora::lora {
namespace detail {

HostAdapterImpl::HostAdapterImpl(int rank, const PoolConfig& config) : rank_(rank), config_(config) {
  for (int m = 0; m < kNumModules; ++m) modules_[m].resize(layerCount(config, static_cast<Module>(m)));
}

size_t HostAdapterImpl::sizeBytes() const {
  size_t bytes = 0;
  for (const auto& layers : modules_)
    for (const auto& hm : layers) bytes += (hm.a.size() + hm.b.size()) * sizeof(float);
  return bytes;
}

}  // namespace detail

namespace {

using detail::HostAdapterImpl;
using detail::HostModule;

struct Target {
  Module module;
  int slice;  // -1 = an already-fused pair covering every slice
  const char* peftName;
};

Target targetOf(int peftModule) {
  switch (peftModule) {
    case kPeftQ: return {Module::QKV, 0, "q_proj"};
    case kPeftK: return {Module::QKV, 1, "k_proj"};
    case kPeftV: return {Module::QKV, 2, "v_proj"};
    case kPeftO: return {Module::O, 0, "o_proj"};
    case kPeftGate: return {Module::GateUp, 0, "gate_proj"};
    case kPeftUp: return {Module::GateUp, 1, "up_proj"};
    case kPeftDown: return {Module::Down, 0, "down_proj"};
    case kPeftEmbed: return {Module::Embed, 0, "embed_tokens"};
    case kPeftLmHead: return {Module::LmHead, 0, "lm_head"};
    case kPeftFusedQkv: return {Module::QKV, -1, "qkv_proj"};
    case kPeftFusedGateUp: return {Module::GateUp, -1, "gate_up_proj"};
    default: throw std::invalid_argument("incompatible: unknown LoRA module index " + std::to_string(peftModule));
  }
}

std::string tensorName(const PairInput& pair, const Target& t, const char* which) {
  std::string prefix = detail::isPerLayer(t.module) ? "layers." + std::to_string(pair.layer) + "." : "";
  return prefix + t.peftName + "." + which;
}

std::string shapeText(int64_t rows, int64_t cols) {
  return "[" + std::to_string(rows) + ", " + std::to_string(cols) + "]";
}

void checkShape(const TensorInput& t, int64_t rows, int64_t cols, const std::string& name) {
  if (t.rows != rows || t.cols != cols)
    throw std::invalid_argument("incompatible: tensor " + name + " has shape " + shapeText(t.rows, t.cols) +
                                ", expected " + shapeText(rows, cols));
  if (t.data == nullptr) throw std::invalid_argument("corrupt adapter file: tensor " + name + " has no data");
}

float finiteOrThrow(float value, const std::string& name) {
  if (!std::isfinite(value))
    throw std::invalid_argument("corrupt adapter file: tensor " + name + " contains NaN or Inf");
  return value;
}

// Copies one pair into hm: A rows [j*r, j*r + rm) and B rows of slice j, columns [0, rm); the rest stays zero.
void copyPair(const PairInput& pair, const Target& t, const ModuleShape& shape, int r, HostModule& hm) {
  const int rm = pair.rank;
  const std::string aName = tensorName(pair, t, "lora_A"), bName = tensorName(pair, t, "lora_B");
  const int firstSlice = t.slice < 0 ? 0 : t.slice;
  const int lastSlice = t.slice < 0 ? shape.numSlices - 1 : t.slice;
  const int64_t bRows = shape.sliceOffsets[lastSlice + 1] - shape.sliceOffsets[firstSlice];
  checkShape(pair.a, rm, shape.in, aName);
  checkShape(pair.b, bRows, rm, bName);
  if (!std::isfinite(pair.scaling))
    throw std::invalid_argument("corrupt adapter file: scaling of " + bName + " is not finite");
  for (int j = firstSlice; j <= lastSlice; ++j) {
    for (int i = 0; i < rm; ++i) {
      float* dst = hm.a.data() + static_cast<size_t>(j * r + i) * shape.in;
      for (int64_t k = 0; k < shape.in; ++k) dst[k] = finiteOrThrow(detail::loadElement(pair.a, i * pair.a.cols + k), aName);
    }
  }
  const int rowBase = shape.sliceOffsets[firstSlice];
  for (int64_t o = 0; o < bRows; ++o) {
    float* dst = hm.b.data() + static_cast<size_t>(rowBase + o) * r;
    for (int i = 0; i < rm; ++i) {
      const float raw = finiteOrThrow(detail::loadElement(pair.b, o * pair.b.cols + i), bName);
      dst[i] = finiteOrThrow(raw * pair.scaling, bName);  // σ folded in fp32 (spec d.3)
    }
  }
}

}  // namespace

std::unique_ptr<HostAdapter> buildHostAdapter(const AdapterInput& input, const PoolConfig& config) {
  detail::validatePoolConfig(config);
  const int r = input.rank;
  if (r < 1) throw std::invalid_argument("incompatible: adapter rank " + std::to_string(r) + " must be at least 1");
  if (r > config.maxRank)
    throw std::invalid_argument("incompatible: adapter rank " + std::to_string(r) + " exceeds the pool's maximum rank " +
                                std::to_string(config.maxRank) + " (--max-lora-rank)");
  auto adapter = std::make_unique<HostAdapterImpl>(r, config);
  std::set<std::tuple<int, int, int>> seen;  // (module, layer, slice)
  for (const PairInput& pair : input.pairs) {
    const Target t = targetOf(pair.peftModule);
    const int m = static_cast<int>(t.module);
    if (!config.targets[m])
      throw std::invalid_argument(std::string("incompatible: the adapter has LoRA weights for ") + t.peftName +
                                  " but the pool does not target " + detail::moduleName(t.module));
    int layer = pair.layer;
    if (!detail::isPerLayer(t.module)) {
      if (layer != -1 && layer != 0)
        throw std::invalid_argument(std::string("incompatible: ") + t.peftName + " has layer index " + std::to_string(layer));
      layer = 0;
    } else if (layer < 0 || layer >= config.numLayers) {
      throw std::invalid_argument(std::string("incompatible: ") + t.peftName + " at layer " + std::to_string(layer) +
                                  " but the base model has " + std::to_string(config.numLayers) + " layers");
    }
    if (pair.rank < 1 || pair.rank > r)
      throw std::invalid_argument("incompatible: " + tensorName(pair, t, "lora_A") + " has rank " +
                                  std::to_string(pair.rank) + ", expected 1.." + std::to_string(r));
    const ModuleShape& shape = config.shapes[m];
    const int firstSlice = t.slice < 0 ? 0 : t.slice, lastSlice = t.slice < 0 ? shape.numSlices - 1 : t.slice;
    if (lastSlice >= shape.numSlices)
      throw std::invalid_argument(std::string("incompatible: ") + t.peftName + " does not fit the pool's " +
                                  detail::moduleName(t.module) + " layout");
    for (int j = firstSlice; j <= lastSlice; ++j)
      if (!seen.insert({m, layer, j}).second)
        throw std::invalid_argument("incompatible: duplicate LoRA weights for " + tensorName(pair, t, "lora_A"));
    HostModule& hm = adapter->module(t.module, layer);
    if (!hm.present) {  // zeros for missing slices (e.g. no k_proj) and padded ranks
      hm.present = true;
      hm.a.assign(static_cast<size_t>(shape.numSlices) * r * shape.in, 0.0f);
      hm.b.assign(static_cast<size_t>(shape.outTotal()) * r, 0.0f);
    }
    copyPair(pair, t, shape, r, hm);
  }
  return adapter;
}

}  // namespace tslora::lora
