// One host-adapter binding for both addons: loadHostAdapter (a libuv worker maps the files, checks and converts),
// freeHostAdapter, hostAdapterSizeBytes and the slot copies (sync and async) and clearSlot. The argument reading,
// the checks and the promise plumbing are shared (adapter-input.cpp); a backend supplies only what differs:
//   struct Backend {
//     using Model = ...;                                     // CpuModel, CudaModel
//     using Handles = BackendHandles<Model, lora::HostAdapter, Tags>;
//     static constexpr const char* kWorkerName;            // async resource name
//     static std::shared_ptr<const lora::HostAdapter> build(Model&, const lora::AdapterInput&);  // on the worker
//     static void writeSlot(Model&, int slot, const lora::HostAdapter&, bool async);  // async: on a worker thread
//     static void clearSlot(Model&, int slot);
//   };
#pragma once
#include <napi.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "../cpu/mapped-file.h"
#include "../cpu/model-init.h"
#include "js-read.h"
#include "../lora/lora.h"

namespace tslora::napi {

// One PEFT pair as read from JS on the main thread (file bounds are checked when the files are mapped).
struct AdapterPairSpec {
  int layer = -1, module = 0, rank = 0;
  float scaling = 1.0f;
  cpu::TensorSpec a, b;
};

struct AdapterSpec {
  int rank = 0;
  std::vector<std::string> files;
  std::vector<AdapterPairSpec> pairs;
};

// adapter = {rank, files: string[], tensors: [{layer, module, rank, scaling, a, b}]} → AdapterSpec (throws).
AdapterSpec readAdapterSpec(const Napi::Value& adapter);

// Maps spec.files into `mapped` and checks every tensor against its file; the input points into those mappings.
lora::AdapterInput mapAdapterInput(const AdapterSpec& spec, std::vector<std::unique_ptr<cpu::MappedFile>>& mapped);

// Runs `work` on a libuv worker; the promise resolves with result(env) or rejects with an Error carrying the code
// of what `work` threw (NativeError's code; corrupt_file / incompatible / native_invalid_argument; native_error).
Napi::Promise queuePromiseWork(Napi::Env env, const char* name, std::function<void()> work,
                               std::function<Napi::Value(Napi::Env)> result);

// The model's LoRA pool configuration; throws when the model has no LoRA slots.
template <typename Model>
const auto& requireLoraPool(const Model& model) {
  if (!model.loraConfig()) {
    throw NativeError("native_invalid_argument", "the model was created with loraSlots = 0: LoRA is disabled");
  }
  return *model.loraConfig();
}

template <typename Backend>
struct AdapterBinding {
  using Handles = typename Backend::Handles;

  static Napi::Value load(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    try {
      auto model = Handles::requireModel(info[0]);
      requireLoraPool(*model);
      auto spec = std::make_shared<AdapterSpec>(readAdapterSpec(info[1]));
      auto result = std::make_shared<std::shared_ptr<const lora::HostAdapter>>();
      auto work = [model, spec, result] {
        std::vector<std::unique_ptr<cpu::MappedFile>> mapped;
        *result = Backend::build(*model, mapAdapterInput(*spec, mapped));
      };
      return queuePromiseWork(env, Backend::kWorkerName, work, [model, result](Napi::Env e) {
        return Handles::wrapHostAdapter(e, *result, model);
      });
    } catch (...) {
      rethrowAsJs(env);
    }
  }

  static Napi::Value free(const Napi::CallbackInfo& info) {
    try {
      Handles::hostAdapterHolder(info[0]).release();
      return info.Env().Undefined();
    } catch (...) {
      rethrowAsJs(info.Env());
    }
  }

  static Napi::Value sizeBytes(const Napi::CallbackInfo& info) {
    try {
      auto& h = Handles::hostAdapterHolder(info[0]);
      return Napi::Number::New(info.Env(), h.adapter ? static_cast<double>(h.sizeBytes) : 0.0);
    } catch (...) {
      rethrowAsJs(info.Env());
    }
  }

  struct SlotCopy {
    std::shared_ptr<typename Backend::Model> model;
    int slot;
    std::shared_ptr<const lora::HostAdapter> adapter;
  };

  static SlotCopy readSlotCopy(const Napi::CallbackInfo& info) {
    SlotCopy c;
    c.model = Handles::requireModel(info[0]);
    c.slot = requireIntArg(info[1], "slot", 0, requireLoraPool(*c.model).numSlots - 1);
    auto& h = Handles::hostAdapterHolder(info[2]);
    if (!h.adapter) throw NativeError("native_invalid_argument", "the host adapter handle was already freed");
    if (h.owner.lock() != c.model) {
      throw NativeError("native_invalid_argument", "the host adapter was created for a different model");
    }
    c.adapter = h.adapter;
    return c;
  }

  static Napi::Value copyToSlot(const Napi::CallbackInfo& info) {
    try {
      SlotCopy c = readSlotCopy(info);
      Handles::modelHolder(info[0]).drainSteps();  // the slot may be read by a launched step
      Backend::writeSlot(*c.model, c.slot, *c.adapter, false);
      return info.Env().Undefined();
    } catch (...) {
      rethrowAsJs(info.Env());
    }
  }

  // The copy runs on a libuv worker; the promise settles once it has landed, so the slot is readable by the first
  // forward() after that (the CUDA pool copies on its side stream and waits for the copy on that worker).
  static Napi::Value copyToSlotAsync(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    try {
      SlotCopy c = readSlotCopy(info);
      return queuePromiseWork(
          env, Backend::kWorkerName, [c] { Backend::writeSlot(*c.model, c.slot, *c.adapter, true); },
          [](Napi::Env e) { return e.Undefined(); });
    } catch (...) {
      rethrowAsJs(env);
    }
  }

  static Napi::Value clearSlot(const Napi::CallbackInfo& info) {
    try {
      auto model = Handles::requireIdleModel(info[0]);
      int slot = requireIntArg(info[1], "slot", 0, requireLoraPool(*model).numSlots - 1);
      Backend::clearSlot(*model, slot);
      return info.Env().Undefined();
    } catch (...) {
      rethrowAsJs(info.Env());
    }
  }

  static void exportTo(Napi::Env env, Napi::Object exports) {
    exports.Set("loadHostAdapter", Napi::Function::New(env, load));
    exports.Set("freeHostAdapter", Napi::Function::New(env, free));
    exports.Set("hostAdapterSizeBytes", Napi::Function::New(env, sizeBytes));
    exports.Set("copyAdapterToSlot", Napi::Function::New(env, copyToSlot));
    exports.Set("copyAdapterToSlotAsync", Napi::Function::New(env, copyToSlotAsync));
    exports.Set("clearSlot", Napi::Function::New(env, clearSlot));
  }
};

}  // namespace tslora::napi
