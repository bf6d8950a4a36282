// What the CUDA backend supplies to the shared host-adapter binding (../napi/backend-adapters.h). The host tier
// holds each adapter in the device's format (buildDeviceHostAdapter: the checks of buildHostAdapter, then one
// conversion to the compute dtype into page-locked memory), built on a libuv worker: the step loop never waits on
// disk or conversion. Slot copies go to the device pool: sync on the compute stream; async on the side stream from a
// worker thread, which waits for the copies there (never on the step loop).
#include "adapters.h"

#include "../napi/backend-adapters.h"
#include "handles.h"
#include "lora_host_image.h"

namespace tslora::napi_cuda {

namespace {
struct CudaAdapterBackend {
  using Model = cuda::CudaModel;
  using Handles = napi_cuda::Handles;
  static constexpr const char* kWorkerName = "tslora.cuda.adapter";
  static std::shared_ptr<const lora::HostAdapter> build(Model& model, const lora::AdapterInput& input) {
    cudaSetDevice(model.deviceIndex());  // the page-locked block belongs with the model's device context
    const cuda::lora::ActDType dtype = model.act() == cuda::Act::F16 ? cuda::lora::ActDType::F16 : cuda::lora::ActDType::BF16;
    return cuda::lora::buildDeviceHostAdapter(input, *model.loraConfig(), dtype);
  }
  static void writeSlot(Model& model, int slot, const lora::HostAdapter& adapter, bool async) {
    model.writeSlot(slot, adapter, async);
  }
  static void clearSlot(Model& model, int slot) { model.clearSlot(slot); }
};
}  // namespace

void exportAdapterFunctions(Napi::Env env, Napi::Object exports) {
  napi::AdapterBinding<CudaAdapterBackend>::exportTo(env, exports);
}

}  // namespace tslora::napi_cuda
