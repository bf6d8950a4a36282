// Single CPU ops exposed for the op-level tests (test/native/forward-*.test.ts); not part of NativeBackend.
#pragma once
#include <napi.h>

namespace tslora::napi {

Napi::Object testingOps(Napi::Env env);

}  // namespace tslora::napi
