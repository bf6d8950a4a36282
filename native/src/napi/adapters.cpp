// What the CPU backend supplies to the shared host-adapter binding: the host tier in the pool's format (converted once,
// on the worker) and the pool's slots (a slot load copies).
#include "adapters.h"

#include "handles.h"
#include "js-read.h"

#ifdef TSLORA_HAVE_LORA
#include "backend-adapters.h"
#endif

namespace tslora::napi {

#ifdef TSLORA_HAVE_LORA
namespace {
struct CpuAdapterBackend {
  using Model = cpu::CpuModel;
  using Handles = napi::Handles;
  static constexpr const char* kWorkerName = "tslora.adapter";
  static std::shared_ptr<const lora::HostAdapter> build(Model& model, const lora::AdapterInput& input) {
    return model.buildHostImage(input);  // the one conversion, in the pool's format
  }
  // The CPU pool is plain memory: the async copy is the same copy, on the worker.
  static void writeSlot(Model& model, int slot, const lora::HostAdapter& adapter, bool /*async*/) {
    model.writeLoraSlot(slot, adapter);
  }
  static void clearSlot(Model& model, int slot) { model.clearLoraSlot(slot); }
};
}  // namespace

void exportAdapterFunctions(Napi::Env env, Napi::Object exports) { AdapterBinding<CpuAdapterBackend>::exportTo(env, exports); }

#else  // no LoRA kernels in this build

void exportAdapterFunctions(Napi::Env env, Napi::Object exports) {
  auto noLora = [](const Napi::CallbackInfo& info) -> Napi::Value {
    throw errorWithCode(info.Env(), "native_unsupported",
                        "this build of tslora_cpu has no LoRA kernels; rebuild with `npm run build:native`");
  };
  for (const char* name : {"loadHostAdapter", "freeHostAdapter", "hostAdapterSizeBytes", "copyAdapterToSlot",
                           "copyAdapterToSlotAsync", "clearSlot"}) {
    exports.Set(name, Napi::Function::New(env, noLora));
  }
}

#endif

}  // namespace tslora::napi
