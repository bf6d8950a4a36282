// A LoRA kernel switch read from the environment once at start-up: unset gives the compiled-in default, "0" turns it
// off, any other value on (the A/B switches of lora_small_variant.h and the wide tiled kernels).
#pragma once
#include <cstdlib>
#include <cstring>

namespace tslora::cuda::lora {

inline bool envFlag(const char* name, bool unsetValue) {
  const char* env = std::getenv(name);
  return env == nullptr ? unsetValue : std::strcmp(env, "0") != 0;
}

}  // namespace tslora::cuda::lora
