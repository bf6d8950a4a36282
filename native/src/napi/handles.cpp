#include "handles.h"

#include "tslora/errors.h"

namespace tslora::napi {

namespace {
const napi_type_tag kModelTag = {0x7a1c0de5b0e14c21ull, 0x9d3f6a8e2c4b5170ull};
const napi_type_tag kAdapterTag = {0x3e8b51f09c2d4a66ull, 0xa47c2e91d05b3f18ull};

template <typename T>
T& unwrap(const Napi::Value& v, const napi_type_tag& tag, const char* what) {
  if (!v.IsExternal() || !v.As<Napi::External<T>>().CheckTypeTag(&tag)) {
    throw NativeError("native_invalid_argument", detail::concat("expected a ", what, " handle"));
  }
  return *v.As<Napi::External<T>>().Data();
}
}  // namespace

Napi::Value wrapModel(Napi::Env env, std::shared_ptr<cpu::CpuModel> model) {
  auto* holder = new ModelHolder{std::move(model)};
  auto ext = Napi::External<ModelHolder>::New(env, holder, [](Napi::Env, ModelHolder* h) { delete h; });
  ext.TypeTag(&kModelTag);
  return ext;
}

ModelHolder& modelHolder(const Napi::Value& v) { return unwrap<ModelHolder>(v, kModelTag, "model"); }

std::shared_ptr<cpu::CpuModel> requireModel(const Napi::Value& v) {
  ModelHolder& h = modelHolder(v);
  if (!h.model) throw NativeError("native_invalid_argument", "the model handle was already destroyed");
  return h.model;
}

#ifdef TSLORA_HAVE_LORA
void HostAdapterHolder::release() {
  if (!adapter) return;
  if (auto m = owner.lock()) m->hostAdapterBytes().fetch_sub(static_cast<int64_t>(sizeBytes));
  adapter.reset();
}

Napi::Value wrapHostAdapter(Napi::Env env, std::shared_ptr<const lora::HostAdapter> adapter,
                            std::shared_ptr<cpu::CpuModel> owner) {
  auto* holder = new HostAdapterHolder();
  holder->sizeBytes = adapter->sizeBytes();
  holder->adapter = std::move(adapter);
  holder->owner = owner;
  owner->hostAdapterBytes().fetch_add(static_cast<int64_t>(holder->sizeBytes));
  auto ext = Napi::External<HostAdapterHolder>::New(env, holder, [](Napi::Env, HostAdapterHolder* h) {
    h->release();
    delete h;
  });
  ext.TypeTag(&kAdapterTag);
  return ext;
}

HostAdapterHolder& hostAdapterHolder(const Napi::Value& v) {
  return unwrap<HostAdapterHolder>(v, kAdapterTag, "host adapter");
}
#endif

}  // namespace tslora::napi
