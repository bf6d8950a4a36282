// CreateModelOptions (src/binding/types.ts) → cpu::ModelInit, with every field checked.
#pragma once
#include <napi.h>

#include "../cpu/model-init.h"

namespace tslora::napi {

cpu::ModelInit readModelOptions(const Napi::Value& options);
// A TensorRef object → TensorSpec (shape and dtype only; file bounds are checked when mapped).
cpu::TensorSpec readTensorRef(const Napi::Value& v, const std::string& name);

}  // namespace tslora::napi
