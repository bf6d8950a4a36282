// Host-tier adapters of tslora_cuda.node: the shared binding (../napi/backend-adapters.h) over CudaModel.
#pragma once
#include <napi.h>

namespace tslora::napi_cuda {

// Sets loadHostAdapter, freeHostAdapter, hostAdapterSizeBytes, copyAdapterToSlot(Async) and clearSlot.
void exportAdapterFunctions(Napi::Env env, Napi::Object exports);

}  // namespace tslora::napi_cuda
