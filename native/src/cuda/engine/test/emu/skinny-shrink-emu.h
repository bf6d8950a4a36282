// What the shrink inside the skinny GEMM's launch (engine/skinny-shrink.cuh) needs from the host emulator beyond
// cuda-emu.h: the small-step LoRA helpers' warp votes (lora-expand-emu.h), mma.m16n8k16 (decode-gemm-emu.h's
// emu::mma16816; mma16816.cuh rewritten by test/emu/mma-emu.mjs), the counters' atomics (one OS thread: plain
// read-modify-writes) and the spin on the shrink blocks (emu::spinYield: the grid runs together, cuda-emu.h
// gridTogether). Force-included after cuda-emu.h into skinny-gemm.cu rewritten by skinny-shrink-emu.mjs.
#pragma once
#include "lora-expand-emu.h"
#include "decode-gemm-emu.h"

inline unsigned atomicAdd(unsigned* p, unsigned v) {
  const unsigned old = *p;
  *p += v;
  return old;
}
inline unsigned atomicExch(unsigned* p, unsigned v) {
  const unsigned old = *p;
  *p = v;
  return old;
}
#undef __noinline__
#define __noinline__
#define EMU_SPIN_YIELD() emu::spinYield()
#define EMU_SKINNY_SHRINK 1
