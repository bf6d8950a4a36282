// Host-tier adapters: loadHostAdapter (a libuv worker maps, checks and converts), slot copies (sync and async).
#pragma once
#include <napi.h>

namespace tslora::napi {

Napi::Value LoadHostAdapter(const Napi::CallbackInfo& info);
Napi::Value FreeHostAdapter(const Napi::CallbackInfo& info);
Napi::Value HostAdapterSizeBytes(const Napi::CallbackInfo& info);
Napi::Value CopyAdapterToSlot(const Napi::CallbackInfo& info);
Napi::Value CopyAdapterToSlotAsync(const Napi::CallbackInfo& info);
Napi::Value ClearSlot(const Napi::CallbackInfo& info);

}  // namespace tslora::napi
