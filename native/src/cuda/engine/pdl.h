// Programmatic dependent launch (PDL, sm_90+) for the engine's kernels. A kernel launched through pdlLaunch may start
// while the kernel before it on the stream is still running (once every block of that one has called
// pdlLaunchDependents() or exited), so the launch and ramp-up of kernel n + 1 hide under the tail of kernel n; in a
// CUDA graph, stream capture turns the launch attribute into a programmatic edge.
//
// The contract every kernel launched through pdlLaunch keeps:
//  1. pdlWait() before reading anything an earlier kernel of the step wrote (activations, residual stream, step
//     tables, KV cache). Before it, only data no kernel of the step writes may be read (weights, norm weights, RoPE
//     tables; and buffers written only by stream copies, never by a kernel, such as the LoRA segment tables: a copy
//     is never a programmatic primary, so it has completed before any later kernel on the stream starts), and
//     nothing may be written (a still-running predecessor may read it).
//  2. pdlWait() on EVERY path of EVERY block before the block exits (early-return blocks too): griddepcontrol.wait
//     waits only for the immediately preceding grid, so "kernel n complete ⇒ every earlier kernel complete" holds
//     only when no kernel can complete before its own wait returned. A kernel that reads a buffer written two
//     kernels earlier relies on that.
//  3. pdlLaunchDependents() anywhere (typically at the start): it only lets the next kernel's blocks be scheduled;
//     their own pdlWait() still waits for this grid's completion and memory flush.
// Operations launched plainly (cuBLAS GEMMs, memsets, copies, event waits) need nothing: a PDL kernel after one of
// them is still correct, since it pdlWaits before reading what they wrote.
// TSLORA_CUDA_PDL=0 turns PDL off, =1 on (unset: kPdlDefaultOn; read once per process); GPUs before sm_90 always
// launch plainly. Plain launches make the waits and triggers no-ops.
// Under the host emulators (engine/test/emu/cuda-emu.h, test/emu/small-step-emu.h) a launch is emu::launch and the PTX
// is left out.
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

// Launch attributes beside PDL's (pdlLaunchEx): a thread-block cluster along x, and whether the launch may be a
// programmatic dependent at all (false: plain stream order even with PDL on, e.g. for an A/B switch).
struct LaunchExtras {
  unsigned clusterX = 0;      // > 0: clusters of clusterX x 1 x 1 blocks (gridDim.x a multiple of it; sm_90+)
  bool programmatic = true;   // false: a plain launch
};

// kernel<<<grid, block, smemBytes, stream>>>(args...) with `extras`, as a programmatic dependent of the previous kernel
// on the stream (plain when pdlEnabled() is false, extras.programmatic is false, or the driver refuses the attribute).
// Returns the launch status; a failed launch's error is not left behind for the next cudaGetLastError.
// Host emulators: emu::launch, or emu::launchCluster where the emulator defines EMU_CLUSTERS (the cluster's blocks
// run together); the PTX of pdlWait / pdlLaunchDependents is left out.
template <typename... KernelArgs, typename... Args>
cudaError_t pdlLaunchEx(const LaunchExtras& extras, void (*kernel)(KernelArgs...), dim3 grid, dim3 block, size_t smemBytes,
                        cudaStream_t stream, Args&&... args) {
#ifdef EMU_DYNAMIC_SMEM  // host emulator: a plain emulated launch
  if (extras.clusterX > 1) {
#ifdef EMU_CLUSTERS
    emu::launchCluster(kernel, grid, block, smemBytes, extras.clusterX, [=]() { kernel(args...); });
    return cudaSuccess;
#else
    return cudaErrorNotSupported;  // this emulator runs blocks one at a time
#endif
  }
  emu::launch(grid, block, smemBytes, stream, [=]() { kernel(args...); });
  return cudaSuccess;
#else
  cudaLaunchAttribute attribute[2];
  int numAttrs = 0;
  if (extras.clusterX > 0) {
    attribute[numAttrs].id = cudaLaunchAttributeClusterDimension;
    attribute[numAttrs].val.clusterDim.x = extras.clusterX;
    attribute[numAttrs].val.clusterDim.y = 1;
    attribute[numAttrs].val.clusterDim.z = 1;
    ++numAttrs;
  }
  const int plainAttrs = numAttrs;
  if (extras.programmatic && pdlEnabled()) {
    attribute[numAttrs].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attribute[numAttrs].val.programmaticStreamSerializationAllowed = 1;
    ++numAttrs;
  }
  cudaLaunchConfig_t config = {};
  config.gridDim = grid;
  config.blockDim = block;
  config.dynamicSmemBytes = smemBytes;
  config.stream = stream;
  config.attrs = attribute;
  config.numAttrs = numAttrs;
  cudaError_t status = cudaLaunchKernelEx(&config, kernel, std::forward<Args>(args)...);
  if (status != cudaSuccess && numAttrs > plainAttrs) {  // PDL refused (an old driver): a plain launch is as correct
    cudaGetLastError();
    config.numAttrs = plainAttrs;
    status = cudaLaunchKernelEx(&config, kernel, std::forward<Args>(args)...);
  }
  if (status != cudaSuccess) cudaGetLastError();
  return status;
#endif
}

// pdlLaunchEx without extra attributes: kernel<<<grid, block, smemBytes, stream>>>(args...) as a programmatic dependent.
template <typename... KernelArgs, typename... Args>
cudaError_t pdlLaunch(void (*kernel)(KernelArgs...), dim3 grid, dim3 block, size_t smemBytes, cudaStream_t stream,
                      Args&&... args) {
  return pdlLaunchEx(LaunchExtras{}, kernel, grid, block, smemBytes, stream, std::forward<Args>(args)...);
}

}  // namespace tslora::cuda
