// Handles of tslora_cpu.node: the shared handle layer (backend-handles.h) for CpuModel, with the CPU addon's tags.
#pragma once
#include "../cpu/model.h"
#include "backend-handles.h"

namespace tslora::lora {
class HostAdapter;
}

namespace tslora::napi {

struct CpuHandleTags {
  static const napi_type_tag model;
  static const napi_type_tag adapter;
  static constexpr const char* kind = "";
};

using Handles = BackendHandles<cpu::CpuModel, lora::HostAdapter, CpuHandleTags>;

}  // namespace tslora::napi
