// Opaque JS handles (napi Externals, type-tagged) for models and host adapters.
#pragma once
#include <napi.h>

#include <memory>

#include "../cpu/model.h"

namespace tslora::napi {

struct ModelHolder {
  std::shared_ptr<cpu::CpuModel> model;  // reset by destroyModel; async work keeps its own reference
};

#ifdef TSLORA_HAVE_LORA
struct HostAdapterHolder {
  std::shared_ptr<const lora::HostAdapter> adapter;  // reset by freeHostAdapter
  std::weak_ptr<cpu::CpuModel> owner;                // for the model's hostAdapterBytes
  size_t sizeBytes = 0;
  void release();
};
#endif

Napi::Value wrapModel(Napi::Env env, std::shared_ptr<cpu::CpuModel> model);
ModelHolder& modelHolder(const Napi::Value& v);
std::shared_ptr<cpu::CpuModel> requireModel(const Napi::Value& v);  // throws when destroyed
#ifdef TSLORA_HAVE_LORA
Napi::Value wrapHostAdapter(Napi::Env env, std::shared_ptr<const lora::HostAdapter> adapter,
                            std::shared_ptr<cpu::CpuModel> owner);
HostAdapterHolder& hostAdapterHolder(const Napi::Value& v);
#endif

}  // namespace tslora::napi
