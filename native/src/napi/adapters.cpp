#include "adapters.h"

#include <memory>
#include <string>
#include <vector>

#include "../cpu/mapped-file.h"
#include "handles.h"
#include "js-read.h"
#include "model-options.h"

namespace tslora::napi {

#ifdef TSLORA_HAVE_LORA
namespace {

struct PairSpec {
  int layer = -1, module = 0, rank = 0;
  float scaling = 1.0f;
  cpu::TensorSpec a, b;
};

int moduleIndex(const std::string& name) {
  static const char* kNames[9] = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                  "up_proj", "down_proj", "embed_tokens", "lm_head"};
  for (int i = 0; i < 9; ++i)
    if (name == kNames[i]) return i;
  throw NativeError("native_invalid_argument", "adapter tensor module must be a PEFT module name, got " + name);
}

lora::TensorInput tensorInput(const cpu::TensorSpec& t, const std::vector<std::unique_ptr<cpu::MappedFile>>& files) {
  if (t.file < 0 || t.file >= static_cast<int>(files.size())) {
    throw NativeError("native_invalid_argument", detail::concat(t.name, " names file index ", t.file));
  }
  const cpu::MappedFile& f = *files[t.file];
  if (t.shape.size() != 2) throw NativeError("native_invalid_argument", t.name + " must be a 2-D tensor");
  uint64_t elem = t.type == cpu::WType::F32 ? 4 : 2;
  if (t.sizeBytes != static_cast<uint64_t>(t.shape[0] * t.shape[1]) * elem) {
    throw NativeError("corrupt_file", detail::concat("corrupt adapter file: ", t.name, " has ", t.sizeBytes,
                                                     " bytes, its shape needs ", t.shape[0] * t.shape[1] * elem));
  }
  if (t.offsetBytes > f.sizeBytes() || t.sizeBytes > f.sizeBytes() - t.offsetBytes) {
    throw NativeError("corrupt_file", detail::concat("corrupt adapter file: ", t.name, " lies beyond the end of ",
                                                     f.path(), " (truncated)"));
  }
  lora::TensorInput in;
  in.data = f.data() + t.offsetBytes;
  in.dtype = t.type == cpu::WType::F32 ? lora::DType::F32 : t.type == cpu::WType::F16 ? lora::DType::F16 : lora::DType::BF16;
  in.rows = t.shape[0];
  in.cols = t.shape[1];
  return in;
}

// Runs fn on a libuv worker; resolves with makeResult(env) or rejects with an Error carrying `code`.
class PromiseWorker : public Napi::AsyncWorker {
 public:
  PromiseWorker(Napi::Env env, std::function<void()> work, std::function<Napi::Value(Napi::Env)> result)
      : Napi::AsyncWorker(env, "tslora.adapter"), deferred_(Napi::Promise::Deferred::New(env)),
        work_(std::move(work)), result_(std::move(result)) {}
  Napi::Promise promise() { return deferred_.Promise(); }

 protected:
  void Execute() override {
    try {
      work_();
    } catch (const NativeError& e) {
      code_ = e.code();
      SetError(e.what());
    } catch (const std::invalid_argument& e) {
      std::string msg = e.what();
      code_ = msg.rfind("corrupt", 0) == 0 ? "corrupt_file" : msg.rfind("incompatible", 0) == 0 ? "incompatible"
                                                                                                  : "native_invalid_argument";
      SetError(msg);
    } catch (const std::exception& e) {
      code_ = "native_error";
      SetError(e.what());
    }
  }
  void OnOK() override { deferred_.Resolve(result_(Env())); }
  void OnError(const Napi::Error& e) override {
    deferred_.Reject(errorWithCode(Env(), code_, e.Message()).Value());
  }

 private:
  Napi::Promise::Deferred deferred_;
  std::function<void()> work_;
  std::function<Napi::Value(Napi::Env)> result_;
  std::string code_ = "native_error";
};

const lora::PoolConfig& requirePool(const cpu::CpuModel& model) {
  if (!model.loraConfig()) {
    throw NativeError("native_invalid_argument", "the model was created with loraSlots = 0: LoRA is disabled");
  }
  return *model.loraConfig();
}

}  // namespace

Napi::Value LoadHostAdapter(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  try {
    auto model = requireModel(info[0]);
    requirePool(*model);
    Napi::Object spec = requireObject(info[1], "adapter");
    int rank = requireInt(spec, "rank", "adapter", 1, 1 << 20);
    std::vector<std::string> files;
    Napi::Value fv = spec.Get("files");
    if (!fv.IsArray()) throw NativeError("native_invalid_argument", "adapter.files must be an array");
    for (uint32_t i = 0; i < fv.As<Napi::Array>().Length(); ++i) {
      files.push_back(fv.As<Napi::Array>().Get(i).ToString().Utf8Value());
    }
    Napi::Value tv = spec.Get("tensors");
    if (!tv.IsArray()) throw NativeError("native_invalid_argument", "adapter.tensors must be an array");
    auto ta = tv.As<Napi::Array>();
    auto pairs = std::make_shared<std::vector<PairSpec>>();
    for (uint32_t i = 0; i < ta.Length(); ++i) {
      std::string ctx = detail::concat("adapter.tensors[", i, "]");
      Napi::Object t = requireObject(ta.Get(i), ctx);
      PairSpec p;
      p.layer = requireInt(t, "layer", ctx, -1, 1 << 20);
      p.module = moduleIndex(requireString(t, "module", ctx));
      p.rank = requireInt(t, "rank", ctx, 1, 1 << 20);
      p.scaling = static_cast<float>(requireNumber(t, "scaling", ctx));
      p.a = readTensorRef(t.Get("a"), ctx + ".a");
      p.b = readTensorRef(t.Get("b"), ctx + ".b");
      pairs->push_back(std::move(p));
    }
    auto result = std::make_shared<std::shared_ptr<const lora::HostAdapter>>();
    auto work = [model, files, pairs, rank, result] {
      std::vector<std::unique_ptr<cpu::MappedFile>> mapped;
      for (const auto& f : files) mapped.push_back(std::make_unique<cpu::MappedFile>(f));
      lora::AdapterInput input;
      input.rank = rank;
      for (const auto& p : *pairs) {
        lora::PairInput pi;
        pi.layer = p.layer;
        pi.peftModule = p.module;
        pi.rank = p.rank;
        pi.scaling = p.scaling;
        pi.a = tensorInput(p.a, mapped);
        pi.b = tensorInput(p.b, mapped);
        input.pairs.push_back(pi);
      }
      *result = lora::buildHostAdapter(input, *model->loraConfig());
    };
    auto* worker = new PromiseWorker(env, work, [model, result](Napi::Env e) {
      return wrapHostAdapter(e, *result, model);
    });
    Napi::Promise promise = worker->promise();
    worker->Queue();
    return promise;
  } catch (...) {
    rethrowAsJs(env);
  }
}

Napi::Value FreeHostAdapter(const Napi::CallbackInfo& info) {
  try {
    hostAdapterHolder(info[0]).release();
    return info.Env().Undefined();
  } catch (...) {
    rethrowAsJs(info.Env());
  }
}

Napi::Value HostAdapterSizeBytes(const Napi::CallbackInfo& info) {
  try {
    HostAdapterHolder& h = hostAdapterHolder(info[0]);
    return Napi::Number::New(info.Env(), h.adapter ? static_cast<double>(h.sizeBytes) : 0.0);
  } catch (...) {
    rethrowAsJs(info.Env());
  }
}

namespace {
struct SlotCopy {
  std::shared_ptr<cpu::CpuModel> model;
  int slot;
  std::shared_ptr<const lora::HostAdapter> adapter;
};

SlotCopy readSlotCopy(const Napi::CallbackInfo& info) {
  SlotCopy c;
  c.model = requireModel(info[0]);
  c.slot = requireIntArg(info[1], "slot", 0, requirePool(*c.model).numSlots - 1);
  HostAdapterHolder& h = hostAdapterHolder(info[2]);
  if (!h.adapter) throw NativeError("native_invalid_argument", "the host adapter handle was already freed");
  if (h.owner.lock() != c.model) {
    throw NativeError("native_invalid_argument", "the host adapter was created for a different model");
  }
  c.adapter = h.adapter;
  return c;
}
}  // namespace

Napi::Value CopyAdapterToSlot(const Napi::CallbackInfo& info) {
  try {
    SlotCopy c = readSlotCopy(info);
    c.model->writeLoraSlot(c.slot, *c.adapter);
    return info.Env().Undefined();
  } catch (...) {
    rethrowAsJs(info.Env());
  }
}

Napi::Value CopyAdapterToSlotAsync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  try {
    SlotCopy c = readSlotCopy(info);
    auto* worker = new PromiseWorker(
        env, [c] { c.model->writeLoraSlot(c.slot, *c.adapter); }, [](Napi::Env e) { return e.Undefined(); });
    Napi::Promise promise = worker->promise();
    worker->Queue();
    return promise;
  } catch (...) {
    rethrowAsJs(env);
  }
}

Napi::Value ClearSlot(const Napi::CallbackInfo& info) {
  try {
    auto model = requireModel(info[0]);
    int slot = requireIntArg(info[1], "slot", 0, requirePool(*model).numSlots - 1);
    model->clearLoraSlot(slot);
    return info.Env().Undefined();
  } catch (...) {
    rethrowAsJs(info.Env());
  }
}

#else  // no LoRA kernels in this build

namespace {
[[noreturn]] void noLora(Napi::Env env) {
  throw errorWithCode(env, "native_unsupported",
                      "this build of tslora_cpu has no LoRA kernels; rebuild with `npm run build:native`");
}
}  // namespace
Napi::Value LoadHostAdapter(const Napi::CallbackInfo& info) { noLora(info.Env()); }
Napi::Value FreeHostAdapter(const Napi::CallbackInfo& info) { noLora(info.Env()); }
Napi::Value HostAdapterSizeBytes(const Napi::CallbackInfo& info) { noLora(info.Env()); }
Napi::Value CopyAdapterToSlot(const Napi::CallbackInfo& info) { noLora(info.Env()); }
Napi::Value CopyAdapterToSlotAsync(const Napi::CallbackInfo& info) { noLora(info.Env()); }
Napi::Value ClearSlot(const Napi::CallbackInfo& info) { noLora(info.Env()); }

#endif

}  // namespace tslora::napi
