// Opaque JS handles of tslora_cuda.node (napi Externals, type-tagged; tags differ from the CPU addon's, so a CPU
// handle passed to the CUDA addon is rejected).
#pragma once
#include <napi.h>

#include <memory>

#include "../cuda/engine/cuda-model.h"

namespace tslora::napi_cuda {

struct ModelHolder {
  std::shared_ptr<cuda::CudaModel> model;  // reset by destroyModel; async work keeps its own reference
};

struct HostAdapterHolder {
  std::shared_ptr<const lora::HostAdapter> adapter;  // reset by freeHostAdapter
  std::weak_ptr<cuda::CudaModel> owner;              // for the model's hostAdapterBytes
  size_t sizeBytes = 0;
  void release();
};

Napi::Value wrapModel(Napi::Env env, std::shared_ptr<cuda::CudaModel> model);
ModelHolder& modelHolder(const Napi::Value& v);
std::shared_ptr<cuda::CudaModel> requireModel(const Napi::Value& v);  // throws when destroyed
Napi::Value wrapHostAdapter(Napi::Env env, std::shared_ptr<const lora::HostAdapter> adapter,
                            std::shared_ptr<cuda::CudaModel> owner);
HostAdapterHolder& hostAdapterHolder(const Napi::Value& v);

}  // namespace tslora::napi_cuda
