// What the small-step LoRA expand (lora_small_expand.cu, lora_small_step.cuh) needs from the host CUDA emulator
// beyond cuda-emu.h: warp votes (__match_any_sync, __ballot_sync over the whole warp, as loadGroup calls them), bit
// counts and the L2-only load. Included after cuda-emu.h when compiling the expand rewritten by lora-expand-emu.mjs,
// so that the skinny-LoRA twin (skinny-lora-test.cu built for the emulator) runs the real expand kernel.
#pragma once
#include "cuda-emu.h"

namespace emu {

// Every live lane of the warp publishes `value`; returns the lanes whose value equals this lane's (match) or is
// non-zero (ballot).
inline unsigned warpVote(int value, bool match) {
  Block* b = block();
  const int i = b->current, warpBase = i & ~31;
  std::memcpy(&b->warpSlots[static_cast<size_t>(i) * 8], &value, sizeof value);
  syncwarp();
  unsigned mask = 0;
  for (int l = 0; l < 32; ++l) {
    const int src = warpBase + l;
    if (src >= static_cast<int>(b->threads.size()) || b->threads[src].state == 3) continue;
    int other;
    std::memcpy(&other, &b->warpSlots[static_cast<size_t>(src) * 8], sizeof other);
    if (match ? other == value : other != 0) mask |= 1u << l;
  }
  syncwarp();
  return mask;
}

}  // namespace emu

#define __match_any_sync(mask, v) emu::warpVote((v), true)
#define __ballot_sync(mask, p) emu::warpVote((p) ? 1 : 0, false)
inline int __popc(unsigned v) { return __builtin_popcount(v); }
inline int __ffs(int v) { return __builtin_ffs(v); }
template <typename T>
inline T __ldcg(const T* p) { return *p; }
