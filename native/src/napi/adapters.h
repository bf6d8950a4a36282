// Host-tier adapters of tslora_cpu.node: the shared binding (backend-adapters.h) over CpuModel.
#pragma once
#include <napi.h>

namespace tslora::napi {

// Sets loadHostAdapter, freeHostAdapter, hostAdapterSizeBytes, copyAdapterToSlot(Async) and clearSlot.
void exportAdapterFunctions(Napi::Env env, Napi::Object exports);

}  // namespace tslora::napi
