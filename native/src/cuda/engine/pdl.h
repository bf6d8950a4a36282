// Programmatic dependent launch (PDL, sm_90+) for the engine's kernels. A kernel launched through pdlLaunch may start
// while the kernel before it on the stream is still running (once every block of that one has called
// pdlLaunchDependents() or exited), so the launch and ramp-up of kernel n + 1 hide under the tail of kernel n; in a
// CUDA graph, stream capture turns the launch attribute into a programmatic edge.
//
// The contract every kernel launched through pdlLaunch keeps:
//  1. pdlWait() before reading anything an earlier kernel of the step wrote (activations, residual stream, step
//     tables, KV cache). Before it, only data no kernel of the step writes may be read (weights, norm weights, RoPE
//     tables), and nothing may be written (a still-running predecessor may read it).
//  2. pdlWait() on EVERY path of EVERY block before the block exits (early-return blocks too): griddepcontrol.wait
//     waits only for the immediately preceding grid, so "kernel n complete ⇒ every earlier kernel complete" holds
//     only when no kernel can complete before its own wait returned. A kernel that reads a buffer written two
//     kernels earlier relies on that.
//  3. pdlLaunchDependents() anywhere (typically at the start): it only lets the next kernel's blocks be scheduled;
//     their own pdlWait() still waits for this grid's completion and memory flush.
// Kernels launched plainly (cuBLAS, LoRA, memsets, copies) keep full stream order on both sides.
// Off by default until a device run shows the whole engine correct and faster with it: TSLORA_CUDA_PDL=1 turns it on,
// =0 off (read once per process); GPUs before sm_90 always launch plainly. Plain launches make the waits and
// triggers no-ops.
// Under the host emulator (test/emu/cuda-emu.h) a launch is emu::launch and the PTX is left out.
#pragma once
#include <cuda_runtime.h>

#include <cstdlib>
#include <cstring>
#include <utility>

namespace tslora::cuda {

// On since the final H100 run of session 12 (56/56 GPU tests with PDL on; 8B batch-1 base step 5.81 -> 5.52 ms).
constexpr bool kPdlDefaultOn = true;  // TSLORA_CUDA_PDL unset

// Waits until the preceding grid on the stream has completed and its writes are visible (no-op without PDL).
__device__ __forceinline__ void pdlWait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900  // griddepcontrol exists from sm_90; older GPUs: plain stream order
  asm volatile("griddepcontrol.wait;\n" ::: "memory");
#endif
}

// Lets the next PDL-launched kernel on the stream be scheduled before this grid finishes (no-op without PDL).
__device__ __forceinline__ void pdlLaunchDependents() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
#endif
}

// TSLORA_CUDA_PDL=1 (or unset with kPdlDefaultOn), on an sm_90+ device (both read on the first call; a refused
// attribute inside a stream capture would invalidate the capture, so older GPUs never ask for it).
inline bool pdlEnabled() {
  static const bool enabled = [] {
    const char* env = std::getenv("TSLORA_CUDA_PDL");
    if (env != nullptr ? std::strcmp(env, "0") == 0 : !kPdlDefaultOn) return false;
    int device = 0, major = 0;
    if (cudaGetDevice(&device) != cudaSuccess ||
        cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) != cudaSuccess) {
      (void)cudaGetLastError();
      return false;
    }
    return major >= 9;
  }();
  return enabled;
}

// kernel<<<grid, block, smemBytes, stream>>>(args...) as a programmatic dependent of the previous kernel on the
// stream (plain when pdlEnabled() is false, or when the driver refuses the attribute). Returns the launch status;
// a failed launch's error is not left behind for the next cudaGetLastError.
template <typename... KernelArgs, typename... Args>
cudaError_t pdlLaunch(void (*kernel)(KernelArgs...), dim3 grid, dim3 block, size_t smemBytes, cudaStream_t stream,
                      Args&&... args) {
#ifdef EMU_DYNAMIC_SMEM  // host emulator: a plain emulated launch
  emu::launch(grid, block, smemBytes, stream, [=]() { kernel(args...); });
  return cudaSuccess;
#else
  cudaLaunchAttribute attribute[1];
  attribute[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attribute[0].val.programmaticStreamSerializationAllowed = 1;
  cudaLaunchConfig_t config = {};
  config.gridDim = grid;
  config.blockDim = block;
  config.dynamicSmemBytes = smemBytes;
  config.stream = stream;
  config.attrs = attribute;
  config.numAttrs = pdlEnabled() ? 1 : 0;
  cudaError_t status = cudaLaunchKernelEx(&config, kernel, std::forward<Args>(args)...);
  if (status != cudaSuccess && config.numAttrs > 0) {  // PDL refused (an old driver): a plain launch is as correct
    cudaGetLastError();
    config.numAttrs = 0;
    status = cudaLaunchKernelEx(&config, kernel, std::forward<Args>(args)...);
  }
  if (status != cudaSuccess) cudaGetLastError();
  return status;
#endif
}

}  // namespace tslora::cuda
