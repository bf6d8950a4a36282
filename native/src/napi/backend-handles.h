// One handle layer for both addons: opaque JS handles (napi Externals, type-tagged) for a backend's models and host
// adapters. Each addon instantiates it with its own model type and tags (native/src/napi/handles.h for the CPU,
// native/src/napi-cuda/handles.h for CUDA), so a handle of one addon passed to the other is rejected.
#pragma once
#include <napi.h>

#include <cstdint>
#include <memory>

#include "step-queue.h"
#include "tslora/errors.h"

namespace tslora::napi {

// Model: the backend's model class (hostAdapterBytes()); Adapter: its host adapter type (sizeBytes()), only used by
// the adapter functions (a build without LoRA never instantiates them). Tags: { static const napi_type_tag model,
// adapter; static constexpr const char* kind; } with kind "" (CPU) or "CUDA " for the messages.
template <typename Model, typename Adapter, typename Tags>
struct BackendHandles {
  struct ModelHolder {
    std::shared_ptr<Model> model;  // reset by destroyModel; async work keeps its own reference
    // The step thread (forwardLaunch / forwardWait), created by the first launch; reset (joined) before the model.
    std::unique_ptr<StepQueue<Model>> steps;
    void drainSteps() {
      if (steps) steps->drain();
    }
    void destroy() {
      steps.reset();
      model.reset();
    }
  };

  template <typename T>
  static T& unwrap(const Napi::Value& v, const napi_type_tag& tag, const char* what) {
    if (!v.IsExternal() || !v.As<Napi::External<T>>().CheckTypeTag(&tag)) {
      throw NativeError("native_invalid_argument", detail::concat("expected a ", Tags::kind, what, " handle"));
    }
    return *v.As<Napi::External<T>>().Data();
  }

  static Napi::Value wrapModel(Napi::Env env, std::shared_ptr<Model> model) {
    auto* holder = new ModelHolder{std::move(model), nullptr};
    auto ext = Napi::External<ModelHolder>::New(env, holder, [](Napi::Env, ModelHolder* h) { delete h; });
    ext.TypeTag(&Tags::model);
    return ext;
  }

  static ModelHolder& modelHolder(const Napi::Value& v) { return unwrap<ModelHolder>(v, Tags::model, "model"); }

  // Throws when the model was destroyed.
  static std::shared_ptr<Model> requireModel(const Napi::Value& v) {
    ModelHolder& h = modelHolder(v);
    if (!h.model) throw NativeError("native_invalid_argument", "the model handle was already destroyed");
    return h.model;
  }

  // The same, after every launched step finished computing: for calls that write the model's memory (slot writes,
  // KV block copies) or run a synchronous forward, which must not overlap a step on the step thread.
  static std::shared_ptr<Model> requireIdleModel(const Napi::Value& v) {
    std::shared_ptr<Model> model = requireModel(v);
    modelHolder(v).drainSteps();
    return model;
  }

  struct HostAdapterHolder {
    std::shared_ptr<const Adapter> adapter;  // reset by freeHostAdapter
    std::weak_ptr<Model> owner;              // for the model's hostAdapterBytes
    size_t sizeBytes = 0;
    void release() {
      if (!adapter) return;
      if (auto m = owner.lock()) m->hostAdapterBytes().fetch_sub(static_cast<int64_t>(sizeBytes));
      adapter.reset();
    }
  };

  static Napi::Value wrapHostAdapter(Napi::Env env, std::shared_ptr<const Adapter> adapter, std::shared_ptr<Model> owner) {
    auto* holder = new HostAdapterHolder();
    holder->sizeBytes = adapter->sizeBytes();
    holder->adapter = std::move(adapter);
    holder->owner = owner;
    owner->hostAdapterBytes().fetch_add(static_cast<int64_t>(holder->sizeBytes));
    auto ext = Napi::External<HostAdapterHolder>::New(env, holder, [](Napi::Env, HostAdapterHolder* h) {
      h->release();
      delete h;
    });
    ext.TypeTag(&Tags::adapter);
    return ext;
  }

  static HostAdapterHolder& hostAdapterHolder(const Napi::Value& v) {
    return unwrap<HostAdapterHolder>(v, Tags::adapter, "host adapter");
  }
};

}  // namespace tslora::napi
