// tslora_cpu.node: the NativeBackend surface of src/binding/types.ts, plus `testing` (single ops for tests).
#include <napi.h>
#include <unistd.h>

#include <fstream>
#include <thread>

#include "../cpu/model.h"
#include "adapters.h"
#include "handles.h"
#include "js-read.h"
#include "model-options.h"
#include "step-convert.h"
#include "step-binding.h"
#include "testing-ops.h"

namespace tslora::napi {
namespace {

std::string cpuName() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) {
      auto pos = line.find(':');
      if (pos != std::string::npos) return line.substr(pos + 2);
    }
  }
  return "CPU";
}

Napi::Value DeviceInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  double page = static_cast<double>(sysconf(_SC_PAGESIZE));
  o.Set("device", "cpu");
  o.Set("gpuCount", 0);
  o.Set("name", cpuName());
  o.Set("totalMemoryBytes", page * static_cast<double>(sysconf(_SC_PHYS_PAGES)));
  o.Set("freeMemoryBytes", page * static_cast<double>(sysconf(_SC_AVPHYS_PAGES)));
  o.Set("numThreads", static_cast<double>(std::max(1u, std::thread::hardware_concurrency())));
#ifdef TSLORA_HAVE_LORA
  o.Set("lora", true);
#else
  o.Set("lora", false);
#endif
  return o;
}

Napi::Value CreateModel(const Napi::CallbackInfo& info) {
  try {
    cpu::ModelInit init = readModelOptions(info[0]);
    return Handles::wrapModel(info.Env(), std::make_shared<cpu::CpuModel>(init));
  } catch (...) {
    rethrowAsJs(info.Env());
  }
}

Napi::Value DestroyModel(const Napi::CallbackInfo& info) {
  try {
    Handles::modelHolder(info[0]).destroy();
    return info.Env().Undefined();
  } catch (...) {
    rethrowAsJs(info.Env());
  }
}

Napi::Value MemoryReport(const Napi::CallbackInfo& info) {
  try {
    auto m = Handles::requireModel(info[0]);
    Napi::Object o = Napi::Object::New(info.Env());
    o.Set("weightBytes", static_cast<double>(m->weightBytes()));
    o.Set("kvCacheBytes", static_cast<double>(m->kvCacheBytes()));
    o.Set("loraPoolBytes", static_cast<double>(m->loraPoolBytes()));
    o.Set("hostAdapterBytes", static_cast<double>(m->hostAdapterBytes().load()));
    return o;
  } catch (...) {
    rethrowAsJs(info.Env());
  }
}

Napi::Value Forward(const Napi::CallbackInfo& info) {
  try {
    auto m = Handles::requireIdleModel(info[0]);
    cpu::StepInputView step = readStepInput(info[1], m->dims().vocab);
    cpu::StepOutputData out = m->forward(step);
    return writeStepOutput(info.Env(), out);
  } catch (...) {
    rethrowAsJs(info.Env());
  }
}

Napi::Value CopyKvBlocks(const Napi::CallbackInfo& info) {
  try {
    auto m = Handles::requireIdleModel(info[0]);
    if (!info[1].IsTypedArray() || !info[2].IsTypedArray() ||
        info[1].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array ||
        info[2].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array) {
      throw NativeError("native_invalid_argument", "copyKvBlocks: srcBlocks and dstBlocks must be Int32Arrays");
    }
    auto src = info[1].As<Napi::Int32Array>();
    auto dst = info[2].As<Napi::Int32Array>();
    TSLORA_CHECK(src.ElementLength() == dst.ElementLength(), "copyKvBlocks: srcBlocks has ", src.ElementLength(),
                 " entries but dstBlocks has ", dst.ElementLength());
    const int n = static_cast<int>(src.ElementLength());
    for (int i = 0; i < n; ++i) {
      TSLORA_CHECK(src[i] >= 0 && src[i] < m->kvNumBlocks() && dst[i] >= 0 && dst[i] < m->kvNumBlocks(),
                   "copyKvBlocks: block ids must be in [0, ", m->kvNumBlocks(), "), got ", src[i], " -> ",
                   dst[i]);
    }
    m->copyKvBlocks(src.Data(), dst.Data(), n);
    return info.Env().Undefined();
  } catch (...) {
    rethrowAsJs(info.Env());
  }
}

}  // namespace

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("device", "cpu");
  exports.Set("deviceInfo", Napi::Function::New(env, DeviceInfo));
  exports.Set("createModel", Napi::Function::New(env, CreateModel));
  exports.Set("destroyModel", Napi::Function::New(env, DestroyModel));
  exports.Set("memoryReport", Napi::Function::New(env, MemoryReport));
  exports.Set("forward", Napi::Function::New(env, Forward));
  StepBinding<Handles, cpu::CpuModel>::exportTo(env, exports);
  exportAdapterFunctions(env, exports);
  exports.Set("copyKvBlocks", Napi::Function::New(env, CopyKvBlocks));
  exports.Set("testing", testingOps(env));
  return exports;
}

}  // namespace tslora::napi

static Napi::Object InitTsloraCpu(Napi::Env env, Napi::Object exports) { return tslora::napi::Init(env, exports); }

NODE_API_MODULE(tslora_cpu, InitTsloraCpu)
