// An integer tuning knob from the environment, for the CPU engine and the CPU LoRA pool: the variable's value read
// with atoi, or `fallback` where it is unset or empty. Clamps belong at the call sites (each knob has its own range).
// Include it outside any `#pragma GCC target` region (cpu/gemm-isa-target.inc): an inline function compiled under a
// wider target could be the copy the linker keeps for every caller.
#pragma once
#include <cstdlib>

namespace tslora {

inline int envInt(const char* name, int fallback) {
  const char* s = std::getenv(name);
  return s && *s ? std::atoi(s) : fallback;
}

}  // namespace tslora
