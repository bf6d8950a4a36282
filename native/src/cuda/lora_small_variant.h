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

constexpr bool kSmallV10DefaultOn = false;

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

}  // namespace tslora::cuda::lora
