// tslora_cuda.node: the NativeBackend surface of src/binding/types.ts on NVIDIA GPUs. The binding layer is the CPU
// addon's, shared: the checked readers (native/src/napi/{js-read,model-options,step-convert}.cpp), the handles
// (backend-handles.h) and the host-adapter functions (backend-adapters.h, adapter-input.cpp), compiled into this
// addon with CUDA's model type, tags and slot copies.
// Loads without a GPU or driver (static CUDA runtime): deviceInfo then reports gpuCount 0 and the reason.
#include <napi.h>

#include "../napi/js-read.h"
#include "../napi/model-options.h"
#include "../napi/step-binding.h"
#include "../napi/step-convert.h"
#include "adapters.h"
#include "handles.h"

namespace tslora::napi_cuda {
namespace {

using napi::rethrowAsJs;

Napi::Value DeviceInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("device", "cuda");
  o.Set("numThreads", 0);
  o.Set("lora", true);
  int count = 0;
  const cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess || count == 0) {
    o.Set("gpuCount", 0);
    o.Set("name", "none");
    o.Set("totalMemoryBytes", 0);
    o.Set("freeMemoryBytes", 0);
    o.Set("reason", status != cudaSuccess
                        ? detail::concat("cudaGetDeviceCount failed: ", cudaGetErrorName(status), " (",
                                         cudaGetErrorString(status), ")")
                        : std::string("the driver reports no CUDA device"));
    return o;
  }
  cudaDeviceProp prop{};
  size_t freeBytes = 0, totalBytes = 0;
  int current = 0;
  cudaGetDevice(&current);
  if (cudaGetDeviceProperties(&prop, current) != cudaSuccess || cudaMemGetInfo(&freeBytes, &totalBytes) != cudaSuccess) {
    o.Set("gpuCount", 0);
    o.Set("name", "none");
    o.Set("totalMemoryBytes", 0);
    o.Set("freeMemoryBytes", 0);
    o.Set("reason", "the CUDA device could not be queried (cudaGetDeviceProperties / cudaMemGetInfo failed)");
    return o;
  }
  o.Set("gpuCount", count);
  o.Set("name", std::string(prop.name));
  o.Set("totalMemoryBytes", static_cast<double>(totalBytes));
  o.Set("freeMemoryBytes", static_cast<double>(freeBytes));
  o.Set("computeCapability", detail::concat(prop.major, ".", prop.minor));
  return o;
}

cuda::CudaOptions readCudaOptions(const Napi::Value& v) {
  Napi::Object o = napi::requireObject(v, "options");
  cuda::CudaOptions c;
  Napi::Value dev = o.Get("deviceIndex");
  if (!dev.IsUndefined() && !dev.IsNull()) c.deviceIndex = napi::requireInt(o, "deviceIndex", "options", 0, 1024);
  Napi::Value dt = o.Get("computeDtype");
  if (!dt.IsUndefined() && !dt.IsNull()) {
    const std::string s = napi::requireString(o, "computeDtype", "options");
    if (s == "bf16") c.act = static_cast<int>(cuda::Act::BF16);
    else if (s == "f16") c.act = static_cast<int>(cuda::Act::F16);
    else
      throw NativeError("native_invalid_argument",
                        "options.computeDtype must be 'bf16' or 'f16' on CUDA (got '" + s + "'; f32 runs on --device cpu)");
  }
  Napi::Value g = o.Get("cudaGraphMaxBatchSize");
  if (!g.IsUndefined() && !g.IsNull()) c.cudaGraphMaxBatchSize = napi::requireInt(o, "cudaGraphMaxBatchSize", "options", 0, 1 << 16);
  return c;
}

Napi::Value CreateModel(const Napi::CallbackInfo& info) {
  try {
    cpu::ModelInit init = napi::readModelOptions(info[0]);
    cuda::CudaOptions options = readCudaOptions(info[0]);
    return Handles::wrapModel(info.Env(), std::make_shared<cuda::CudaModel>(init, options));
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
    cpu::StepInputView step = napi::readStepInput(info[1], m->dims().vocab);
    cpu::StepOutputData out = m->forward(step);
    return napi::writeStepOutput(info.Env(), out);
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
                   "copyKvBlocks: block ids must be in [0, ", m->kvNumBlocks(), "), got ", src[i], " -> ", dst[i]);
    }
    m->copyKvBlocks(src.Data(), dst.Data(), n);
    return info.Env().Undefined();
  } catch (...) {
    rethrowAsJs(info.Env());
  }
}

}  // namespace

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("device", "cuda");
  exports.Set("deviceInfo", Napi::Function::New(env, DeviceInfo));
  exports.Set("createModel", Napi::Function::New(env, CreateModel));
  exports.Set("destroyModel", Napi::Function::New(env, DestroyModel));
  exports.Set("memoryReport", Napi::Function::New(env, MemoryReport));
  exports.Set("forward", Napi::Function::New(env, Forward));
  napi::StepBinding<Handles, cuda::CudaModel>::exportTo(env, exports);
  exportAdapterFunctions(env, exports);
  exports.Set("copyKvBlocks", Napi::Function::New(env, CopyKvBlocks));
  return exports;
}

}  // namespace tslora::napi_cuda

static Napi::Object InitTsloraCuda(Napi::Env env, Napi::Object exports) { return tslora::napi_cuda::Init(env, exports); }

NODE_API_MODULE(tslora_cuda, InitTsloraCuda)
