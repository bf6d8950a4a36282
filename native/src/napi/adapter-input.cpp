// The backend-neutral half of the host-adapter binding (backend-adapters.h): reading the adapter spec from JS,
// mapping its files with the bounds checks, and the promise worker. Compiled into both addons.
#ifdef TSLORA_HAVE_LORA
#include "backend-adapters.h"
#include "model-options.h"

namespace tslora::napi {

namespace {

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

class PromiseWorker : public Napi::AsyncWorker {
 public:
  PromiseWorker(Napi::Env env, const char* name, std::function<void()> work, std::function<Napi::Value(Napi::Env)> result)
      : Napi::AsyncWorker(env, name), deferred_(Napi::Promise::Deferred::New(env)), work_(std::move(work)),
        result_(std::move(result)) {}
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
  void OnError(const Napi::Error& e) override { deferred_.Reject(errorWithCode(Env(), code_, e.Message()).Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  std::function<void()> work_;
  std::function<Napi::Value(Napi::Env)> result_;
  std::string code_ = "native_error";
};

}  // namespace

AdapterSpec readAdapterSpec(const Napi::Value& adapter) {
  Napi::Object spec = requireObject(adapter, "adapter");
  AdapterSpec out;
  out.rank = requireInt(spec, "rank", "adapter", 1, 1 << 20);
  Napi::Value fv = spec.Get("files");
  if (!fv.IsArray()) throw NativeError("native_invalid_argument", "adapter.files must be an array");
  for (uint32_t i = 0; i < fv.As<Napi::Array>().Length(); ++i) {
    out.files.push_back(fv.As<Napi::Array>().Get(i).ToString().Utf8Value());
  }
  Napi::Value tv = spec.Get("tensors");
  if (!tv.IsArray()) throw NativeError("native_invalid_argument", "adapter.tensors must be an array");
  auto ta = tv.As<Napi::Array>();
  for (uint32_t i = 0; i < ta.Length(); ++i) {
    std::string ctx = detail::concat("adapter.tensors[", i, "]");
    Napi::Object t = requireObject(ta.Get(i), ctx);
    AdapterPairSpec p;
    p.layer = requireInt(t, "layer", ctx, -1, 1 << 20);
    p.module = moduleIndex(requireString(t, "module", ctx));
    p.rank = requireInt(t, "rank", ctx, 1, 1 << 20);
    p.scaling = static_cast<float>(requireNumber(t, "scaling", ctx));
    p.a = readTensorRef(t.Get("a"), ctx + ".a");
    p.b = readTensorRef(t.Get("b"), ctx + ".b");
    out.pairs.push_back(std::move(p));
  }
  return out;
}

lora::AdapterInput mapAdapterInput(const AdapterSpec& spec, std::vector<std::unique_ptr<cpu::MappedFile>>& mapped) {
  for (const auto& f : spec.files) mapped.push_back(std::make_unique<cpu::MappedFile>(f));
  lora::AdapterInput input;
  input.rank = spec.rank;
  for (const auto& p : spec.pairs) {
    lora::PairInput pi;
    pi.layer = p.layer;
    pi.peftModule = p.module;
    pi.rank = p.rank;
    pi.scaling = p.scaling;
    pi.a = tensorInput(p.a, mapped);
    pi.b = tensorInput(p.b, mapped);
    input.pairs.push_back(pi);
  }
  return input;
}

Napi::Promise queuePromiseWork(Napi::Env env, const char* name, std::function<void()> work,
                               std::function<Napi::Value(Napi::Env)> result) {
  auto* worker = new PromiseWorker(env, name, std::move(work), std::move(result));
  Napi::Promise promise = worker->promise();
  worker->Queue();
  return promise;
}

}  // namespace tslora::napi
#endif
