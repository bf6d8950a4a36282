// A/B switch of the small-step kernels' v10 layout (bench/lora/README.md v10): the group tables read in one global
// round trip (loadGroup: the permutation load in flight with the segment tables) and the expand's y read and written
// 16 bytes at a time (each lane owns 8 consecutive columns; the B tile's columns are stored swizzled so the shared
// loads stay conflict-free) over a grid without idle blocks beside narrow slices. Same arithmetic per output element
// either way: bit-identical results.
// TSLORA_CUDA_LORA_SMALL_V10=1 / =0 (read once; unset: kSmallV10DefaultOn) or loraSetSmallV10 (the benchmark's A/B).
#pragma once
#include <cstdlib>
#include <cstring>

namespace tslora::cuda::lora {

// On since session 14's device call (one H100 80GB HBM3, 00:38 UTC; bench/lora/results/h100-s14-lead-call): graph
// replay per layer at decode 64 x 1 r16, 8 adapters 48.2 -> 40.4 µs, 1 x 1 22.2 -> 18.8 µs (same process); the GPU
// checked it together with the shrink's reduction (lora_cuda_test small-step paths 1440 / 1440, device pool 1360 / 1360),
// which leaves out one branch of this layout: the expand's own split-partial sum (the same sumSplits code as the v9
// layout's, checked in the default run, and bit-identical to it under the host emulator). bench/lora/README.md v10.
constexpr bool kSmallV10DefaultOn = true;

inline bool& smallV10Flag() {
  static bool on = [] {
    const char* env = std::getenv("TSLORA_CUDA_LORA_SMALL_V10");
    return env == nullptr ? kSmallV10DefaultOn : std::strcmp(env, "0") != 0;
  }();
  return on;
}
// Process-wide; set it before launches (or captures), not concurrently with them.
inline void loraSetSmallV10(bool on) { smallV10Flag() = on; }
inline bool loraSmallV10() { return smallV10Flag(); }

// Off: measured slower in the graph replay of the same call (64 x 1: 46.1 against 40.4 µs; the shrink's reduction tail
// costs 3-5 µs per module, the expand saves 1.4-2.4), though the engine hides the shrink on a side stream (not measured).
// TSLORA_CUDA_LORA_SMALL_REDUCE=1 (read once; off unless set) or loraSetSmallReduce, and only where the step has
// split-K tickets (DeviceStep::counters, zero between launches; DeviceLoraPool always passes them): the last split
// block of each position group sums the group's partials in split order and writes U rounded to the activation
// dtype after them in the workspace, and the expand reads that U once instead of summing every split itself (the same
// sums: bit-identical). The partials stay (the skinny GEMM epilogue reads them).
inline bool& smallReduceFlag() {
  static bool on = [] {
    const char* env = std::getenv("TSLORA_CUDA_LORA_SMALL_REDUCE");
    return env != nullptr && std::strcmp(env, "0") != 0;
  }();
  return on;
}
inline void loraSetSmallReduce(bool on) { smallReduceFlag() = on; }
inline bool loraSmallReduce() { return smallReduceFlag(); }

}  // namespace tslora::cuda::lora
