#include "handles.h"

#include "tslora/errors.h"

namespace tslora::napi_cuda {

namespace {
const napi_type_tag kModelTag = {0x5c0da11e7e4b4d01ull, 0x8e21f0c3a9d64b27ull};
const napi_type_tag kAdapterTag = {0x5c0da11e7e4b4d02ull, 0x1b7a93e4c0f25d68ull};

template <typename T>
T& unwrap(const Napi::Value& v, const napi_type_tag& tag, const char* what) {
  if (!v.IsExternal() || !v.As<Napi::External<T>>().CheckTypeTag(&tag)) {
    throw NativeError("native_invalid_argument", detail::concat("expected a CUDA ", what, " handle"));
  }
  return *v.As<Napi::External<T>>().Data();
}
}  // namespace

Napi::Value wrapModel(Napi::Env env, std::shared_ptr<cuda::CudaModel> model) {
  auto* holder = new ModelHolder{std::move(model)};
  auto ext = Napi::External<ModelHolder>::New(env, holder, [](Napi::Env, ModelHolder* h) { delete h; });
  ext.TypeTag(&kModelTag);
  return ext;
}

ModelHolder& modelHolder(const Napi::Value& v) { return unwrap<ModelHolder>(v, kModelTag, "model"); }

std::shared_ptr<cuda::CudaModel> requireModel(const Napi::Value& v) {
  ModelHolder& h = modelHolder(v);
  if (!h.model) throw NativeError("native_invalid_argument", "the model handle was already destroyed");
  return h.model;
}

void HostAdapterHolder::release() {
  if (!adapter) return;
  if (auto m = owner.lock()) m->hostAdapterBytes().fetch_sub(static_cast<int64_t>(sizeBytes));
  adapter.reset();
}

Napi::Value wrapHostAdapter(Napi::Env env, std::shared_ptr<const lora::HostAdapter> adapter,
                            std::shared_ptr<cuda::CudaModel> owner) {
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

}  // namespace tslora::napi_cuda
