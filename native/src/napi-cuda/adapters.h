// Host-tier adapters for the CUDA addon: loadHostAdapter (the CPU conversion, buildHostAdapter, on a libuv worker),
// slot copies into the device pool (sync on the compute stream; async on a side stream from a worker thread).
#pragma once
#include <napi.h>

namespace tslora::napi_cuda {

Napi::Value LoadHostAdapter(const Napi::CallbackInfo& info);
Napi::Value FreeHostAdapter(const Napi::CallbackInfo& info);
Napi::Value HostAdapterSizeBytes(const Napi::CallbackInfo& info);
Napi::Value CopyAdapterToSlot(const Napi::CallbackInfo& info);
Napi::Value CopyAdapterToSlotAsync(const Napi::CallbackInfo& info);
Napi::Value ClearSlot(const Napi::CallbackInfo& info);

}  // namespace tslora::napi_cuda
