#include "model-options.h"

#include <initializer_list>
#include <limits>
#include <string>

#include "js-read.h"

namespace tslora::napi {

namespace {
constexpr int64_t kMaxInt = std::numeric_limits<int32_t>::max();

cpu::WType readDType(const Napi::Object& obj, const std::string& ctx) {
  std::string d = requireString(obj, "dtype", ctx);
  if (d == "f32") return cpu::WType::F32;
  if (d == "f16") return cpu::WType::F16;
  if (d == "bf16") return cpu::WType::BF16;
  throw NativeError("native_invalid_argument", detail::concat(ctx, ".dtype must be f32, f16 or bf16, got ", d));
}

cpu::TensorSpec optionalTensor(const Napi::Object& obj, const char* key, const std::string& ctx) {
  Napi::Value v = obj.Get(key);
  if (v.IsUndefined() || v.IsNull()) return {};
  return readTensorRef(v, ctx + "." + key);
}

// options[key]: absent / null → 'f32', else one of `allowed` (storage of the CPU LoRA pool or KV cache), e.g. the LoRA
// pool's 'f32' | 'bf16' | 'int8' (lora.h: PoolDType::I8) or the KV cache's 'f32' | 'bf16'.
std::string optionalStorageDtype(const Napi::Object& o, const char* key, std::initializer_list<const char*> allowed) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) return "f32";
  const std::string dtype = requireString(o, key, "options");
  std::string choices;  // "'f32' or 'bf16'", "'f32', 'bf16' or 'int8'"
  size_t i = 0;
  for (const char* a : allowed) {
    if (dtype == a) return dtype;
    choices += (i == 0 ? "" : i + 1 == allowed.size() ? " or " : ", ") + std::string("'") + a + "'";
    ++i;
  }
  throw NativeError("native_invalid_argument", detail::concat("options.", key, " must be ", choices, ", got '", dtype, "'"));
}
}  // namespace

cpu::TensorSpec readTensorRef(const Napi::Value& v, const std::string& name) {
  Napi::Object o = requireObject(v, name);
  cpu::TensorSpec t;
  t.present = true;
  t.name = name;
  t.file = requireInt(o, "file", name, 0, kMaxInt);
  double off = requireNumber(o, "offsetBytes", name), size = requireNumber(o, "sizeBytes", name);
  if (off < 0 || size < 0 || off > 9.0e15 || size > 9.0e15) {
    throw NativeError("native_invalid_argument", name + ".offsetBytes / sizeBytes must be non-negative integers");
  }
  t.offsetBytes = static_cast<uint64_t>(off);
  t.sizeBytes = static_cast<uint64_t>(size);
  t.type = readDType(o, name);
  Napi::Value shape = o.Get("shape");
  if (!shape.IsArray()) throw NativeError("native_invalid_argument", name + ".shape must be an array");
  auto arr = shape.As<Napi::Array>();
  for (uint32_t i = 0; i < arr.Length(); ++i) {
    Napi::Value d = arr.Get(i);
    if (!d.IsNumber() || d.As<Napi::Number>().DoubleValue() < 0) {
      throw NativeError("native_invalid_argument", name + ".shape must hold non-negative integers");
    }
    t.shape.push_back(d.As<Napi::Number>().Int64Value());
  }
  return t;
}

cpu::ModelInit readModelOptions(const Napi::Value& options) {
  Napi::Object o = requireObject(options, "options");
  Napi::Object spec = requireObject(o.Get("spec"), "options.spec");
  Napi::Object weights = requireObject(o.Get("weights"), "options.weights");
  cpu::ModelInit init;
  cpu::ModelDims& d = init.dims;
  const std::string sc = "spec";
  d.hidden = requireInt(spec, "hiddenSize", sc, 1, kMaxInt);
  d.intermediate = requireInt(spec, "intermediateSize", sc, 1, kMaxInt);
  d.numLayers = requireInt(spec, "numLayers", sc, 1, 100000);
  d.numHeads = requireInt(spec, "numHeads", sc, 1, 100000);
  d.numKvHeads = requireInt(spec, "numKvHeads", sc, 1, 100000);
  d.headDim = requireInt(spec, "headDim", sc, 2, 1024);
  d.vocab = requireInt(spec, "vocabSize", sc, 1, kMaxInt);
  d.rmsNormEps = static_cast<float>(requireNumber(spec, "rmsNormEps", sc));
  d.qkvBias = readBool(spec, "qkvBias", false);
  d.qkNorm = readBool(spec, "qkNorm", false);

  init.rope.headDim = d.headDim;
  init.rope.theta = static_cast<float>(requireNumber(spec, "ropeTheta", sc));
  Napi::Value rs = spec.Get("ropeScaling");
  if (rs.IsObject()) {
    Napi::Object r = rs.As<Napi::Object>();
    std::string type = requireString(r, "type", "spec.ropeScaling");
    if (type == "none") {
      init.rope.scalingType = 0;
    } else if (type == "linear" || type == "llama3") {
      init.rope.scalingType = type == "linear" ? 1 : 2;
      init.rope.factor = static_cast<float>(requireNumber(r, "factor", "spec.ropeScaling"));
      if (type == "llama3") {
        init.rope.lowFreqFactor = static_cast<float>(requireNumber(r, "lowFreqFactor", "spec.ropeScaling"));
        init.rope.highFreqFactor = static_cast<float>(requireNumber(r, "highFreqFactor", "spec.ropeScaling"));
        init.rope.originalMaxPositionEmbeddings =
            requireInt(r, "originalMaxPositionEmbeddings", "spec.ropeScaling", 1, kMaxInt);
      }
    } else {
      throw NativeError("native_invalid_argument", "spec.ropeScaling.type must be none, linear or llama3");
    }
  }

  Napi::Value files = weights.Get("files");
  if (!files.IsArray()) throw NativeError("native_invalid_argument", "weights.files must be an array of paths");
  auto fa = files.As<Napi::Array>();
  for (uint32_t i = 0; i < fa.Length(); ++i) {
    Napi::Value f = fa.Get(i);
    if (!f.IsString()) throw NativeError("native_invalid_argument", "weights.files must hold strings");
    init.files.push_back(f.As<Napi::String>().Utf8Value());
  }
  init.embedTokens = readTensorRef(weights.Get("embedTokens"), "weights.embedTokens");
  init.finalNorm = readTensorRef(weights.Get("finalNorm"), "weights.finalNorm");
  init.lmHead = readTensorRef(weights.Get("lmHead"), "weights.lmHead");
  Napi::Value layers = weights.Get("layers");
  if (!layers.IsArray()) throw NativeError("native_invalid_argument", "weights.layers must be an array");
  auto la = layers.As<Napi::Array>();
  for (uint32_t i = 0; i < la.Length(); ++i) {
    std::string ctx = detail::concat("weights.layers[", i, "]");
    Napi::Object l = requireObject(la.Get(i), ctx);
    cpu::LayerTensorSpecs s;
    s.inputNorm = readTensorRef(l.Get("inputNorm"), ctx + ".inputNorm");
    s.postAttentionNorm = readTensorRef(l.Get("postAttentionNorm"), ctx + ".postAttentionNorm");
    s.qProj = readTensorRef(l.Get("qProj"), ctx + ".qProj");
    s.kProj = readTensorRef(l.Get("kProj"), ctx + ".kProj");
    s.vProj = readTensorRef(l.Get("vProj"), ctx + ".vProj");
    s.oProj = readTensorRef(l.Get("oProj"), ctx + ".oProj");
    s.gateProj = readTensorRef(l.Get("gateProj"), ctx + ".gateProj");
    s.upProj = readTensorRef(l.Get("upProj"), ctx + ".upProj");
    s.downProj = readTensorRef(l.Get("downProj"), ctx + ".downProj");
    s.qBias = optionalTensor(l, "qBias", ctx);
    s.kBias = optionalTensor(l, "kBias", ctx);
    s.vBias = optionalTensor(l, "vBias", ctx);
    s.qNorm = optionalTensor(l, "qNorm", ctx);
    s.kNorm = optionalTensor(l, "kNorm", ctx);
    init.layers.push_back(std::move(s));
  }

  init.kvNumBlocks = requireInt(o, "kvNumBlocks", "options", 1, kMaxInt);
  init.kvBlockSize = requireInt(o, "kvBlockSize", "options", 1, 65536);
  init.loraSlots = requireInt(o, "loraSlots", "options", 0, 4096);
  init.loraMaxRank = init.loraSlots > 0 ? requireInt(o, "loraMaxRank", "options", 1, 4096) : 0;
  init.numThreads = requireInt(o, "numThreads", "options", 0, 1024);
  const std::string loraPoolDtype = optionalStorageDtype(o, "loraPoolDtype", {"f32", "bf16", "int8"});
  init.loraPoolBf16 = loraPoolDtype == "bf16";
  init.loraPoolI8 = loraPoolDtype == "int8";
  init.kvCacheBf16 = optionalStorageDtype(o, "kvCacheDtype", {"f32", "bf16"}) == "bf16";
  Napi::Value tp = o.Get("tpSize");
  init.tpSize = tp.IsUndefined() || tp.IsNull() ? 1 : requireInt(o, "tpSize", "options", 1, 64);
  Napi::Value targets = o.Get("loraTargetModules");
  if (targets.IsArray()) {
    auto ta = targets.As<Napi::Array>();
    static const char* kNames[6] = {"qkv_proj", "o_proj", "gate_up_proj", "down_proj", "embed_tokens", "lm_head"};
    for (uint32_t i = 0; i < ta.Length(); ++i) {
      std::string name = ta.Get(i).ToString().Utf8Value();
      bool found = false;
      for (int m = 0; m < 6; ++m) {
        if (name == kNames[m]) init.loraTargets[m] = found = true;
      }
      if (!found) {
        throw NativeError("native_invalid_argument",
                          "options.loraTargetModules: unknown module " + name +
                              " (allowed: qkv_proj, o_proj, gate_up_proj, down_proj, embed_tokens, lm_head)");
      }
    }
  } else if (init.loraSlots > 0) {
    throw NativeError("native_invalid_argument", "options.loraTargetModules must be an array");
  }
  return init;
}

}  // namespace tslora::napi
