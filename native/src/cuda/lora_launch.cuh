// Every LoRA kernel (tiled, small-step, fused, embed) launches through loraLaunch: a programmatic dependent launch
// (engine/pdl.h), so the chain base projection → shrink → expand → next engine kernel stays unbroken and each launch's
// ramp-up hides under the tail of the kernel before. The kernels keep pdl.h's contract: pdlWait before reading x, the
// shrink's U / partials or y and before writing anything, on every path of every block; before it only weights (A / B
// slots) and the step tables (segIndptr, weightIndices, segmentRanks, permutation, slotRanks) are read: those are
// written only by stream copies (DeviceLoraPool::setStep, writeSlot), never by a kernel, and a copy is never a
// programmatic primary, so it has completed before any later kernel starts.
// TSLORA_CUDA_LORA_PDL=1 / =0 (read once; unset: kLoraPdlDefaultOn) or loraSetProgrammaticLaunch turns it on / off
// (A/B); TSLORA_CUDA_PDL=0 turns PDL off everywhere.
#pragma once
#include <cstdlib>
#include <cstring>

#include "engine/pdl.h"

namespace tslora::cuda::lora {

// On since device round 1 of session 13 (one H100 80GB HBM3): every LoRA kernel driver case, the device pool, cuda-pdl
// and graphs / PEFT parity passed with it; per-layer LoRA kernels at decode 64 x 1 r16 8 adapters 47.3 -> 39.0 µs
// (graph replay, csgmv C16), 8B decode LoRA cost at batch 1 / 8 / 64 lower or equal (bench/lora/README.md v9).
constexpr bool kLoraPdlDefaultOn = true;

inline bool& programmaticLaunchFlag() {
  static bool on = [] {
    const char* env = std::getenv("TSLORA_CUDA_LORA_PDL");
    return env == nullptr ? kLoraPdlDefaultOn : std::strcmp(env, "0") != 0;
  }();
  return on;
}
// Process-wide; set it before launches (or captures), not concurrently with them.
inline void loraSetProgrammaticLaunch(bool on) { programmaticLaunchFlag() = on; }
inline bool loraProgrammaticLaunch() { return programmaticLaunchFlag(); }

template <typename... KernelArgs, typename... Args>
cudaError_t loraLaunch(LaunchExtras extras, void (*kernel)(KernelArgs...), dim3 grid, dim3 block, size_t smemBytes, cudaStream_t stream,
                       Args&&... args) {
  extras.programmatic = extras.programmatic && loraProgrammaticLaunch();
  return pdlLaunchEx(extras, kernel, grid, block, smemBytes, stream, std::forward<Args>(args)...);
}
template <typename... KernelArgs, typename... Args>
cudaError_t loraLaunch(void (*kernel)(KernelArgs...), dim3 grid, dim3 block, size_t smemBytes, cudaStream_t stream, Args&&... args) {
  return loraLaunch(LaunchExtras{}, kernel, grid, block, smemBytes, stream, std::forward<Args>(args)...);
}

}  // namespace tslora::cuda::lora
