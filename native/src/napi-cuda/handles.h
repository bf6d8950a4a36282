// Handles of tslora_cuda.node: the shared handle layer (../napi/backend-handles.h) for CudaModel, with tags that
// differ from the CPU addon's, so a CPU handle passed to the CUDA addon is rejected.
#pragma once
#include "../cuda/engine/cuda-model.h"
#include "../napi/backend-handles.h"

namespace tslora::napi_cuda {

struct CudaHandleTags {
  static const napi_type_tag model;
  static const napi_type_tag adapter;
  static constexpr const char* kind = "CUDA ";
};

using Handles = napi::BackendHandles<cuda::CudaModel, lora::HostAdapter, CudaHandleTags>;

}  // namespace tslora::napi_cuda
