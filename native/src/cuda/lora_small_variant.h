// A/B switch of the small-step kernels' v10 layout (bench/lora/README.md v10): the group tables read in one global
// round trip (loadGroup: the permutation load in flight with the segment tables) and the expand's y read and written
// 16 bytes at a time (each lane owns 8 consecutive columns; the B tile's columns are stored swizzled so the shared
// loads stay conflict-free) over a grid without idle blocks beside narrow slices. Same arithmetic per output element
// either way: bit-identical results.
// TSLORA_CUDA_LORA_SMALL_V10=1 / =0 (read once; unset: kSmallV10DefaultOn) or loraSetSmallV10 (the benchmark's A/B).
#pragma once
#include "lora_env_flag.h"

namespace tslora::cuda::lora {

// On since session 14's device call (one H100 80GB HBM3, 00:38 UTC; bench/lora/results/h100-s14-lead-call): graph
// replay per layer at decode 64 x 1 r16, 8 adapters 48.2 -> 40.4 µs, 1 x 1 22.2 -> 18.8 µs (same process); the GPU
// checked it together with a reduction of the splits in the shrink (lora_cuda_test small-step paths 1440 / 1440, device
// pool 1360 / 1360), which leaves out one branch of this layout: the expand's own split-partial sum (the same sumSplits
// code as the v9 layout's, checked in the default run, and bit-identical to it under the host emulator).
// bench/lora/README.md v10. That reduction (TSLORA_CUDA_LORA_SMALL_REDUCE=1: the last split block of a group summed U
// once for the expand) measured slower (64 x 1: 46.1 against 40.4 µs; 8B decode steps slower in every row in session
// 15) and was removed in session 16.
constexpr bool kSmallV10DefaultOn = true;

// The v10 switch and the v11 ones below: process-wide, read once from the environment ("0": off, any other value: on,
// unset: the default), settable (the benchmark's and the tests' A/B; set them before launches or captures, not
// concurrently with them).
//
// v11's narrow shrink, long-K splits and early expand launch: on since session 15's device round (one H100 80GB HBM3,
// 03:10-03:17 UTC, bench/lora/results/h100-s15-round1): graph replay per layer, same process, decode 64 x 1 r16
// 8 adapters 40.7 -> 39.5 µs, 1 x 1 19.0 -> 17.9 µs; lora_cuda_test small-step paths 1920 / 1920 and the device pool
// 1360 / 1360 with all three on; the narrow shrink's digest equal to the default's (bit-identical). A joined launch
// (a module's shrink and expand blocks in one grid, 59.1 µs per layer in the same round) was removed after it measured
// slower (bench/lora/README.md v11).
constexpr bool kSmallV11DefaultOn = true;
enum class SmallSwitch { V10, Narrow, LongK, Early };
inline bool& smallSwitch(SmallSwitch which) {
  static bool on[] = {envFlag("TSLORA_CUDA_LORA_SMALL_V10", kSmallV10DefaultOn),
                      envFlag("TSLORA_CUDA_LORA_SMALL_NARROW", kSmallV11DefaultOn),
                      envFlag("TSLORA_CUDA_LORA_SMALL_LONGK", kSmallV11DefaultOn),
                      envFlag("TSLORA_CUDA_LORA_SMALL_EARLY", kSmallV11DefaultOn)};
  return on[static_cast<int>(which)];
}
// Process-wide; set it before launches (or captures), not concurrently with them.
inline void loraSetSmallV10(bool on) { smallSwitch(SmallSwitch::V10) = on; }
inline bool loraSmallV10() { return smallSwitch(SmallSwitch::V10); }

// v11 A/B switches of the small-step pair (bench/lora/README.md v11), on by default (=0 turns each off):
// - TSLORA_CUDA_LORA_SMALL_NARROW (loraSetSmallNarrow): the shrink's warp step holds only as many mma N tiles as the
//   module's c*R columns need (2, 4 or 6 instead of 8 where c*R <= 16, 32, 48), so the kernel needs fewer registers
//   (150 at 8 tiles: one shrink block per SM, and then only one expand block beside it) and more blocks of the kernels
//   before and after it fit beside it. One chunk per run either way, so the same items on the same warps: bit-identical.
// - TSLORA_CUDA_LORA_SMALL_LONGK (loraSetSmallLongK): loraSmallStepSplits gives long-K modules enough splits for
//   <= 512 K per split (down_proj 14336: 28 instead of 16), so a warp walks <= 2 dependent load steps per run instead
//   of 4 (the expand re-reads more partials). A different split count: other sums, within tolerance.
// - TSLORA_CUDA_LORA_SMALL_EARLY (loraSetSmallEarlyTrigger): the shrink lets its dependent (the expand) launch at its
//   start for any number of position groups, not only for one (run 8 measured +3.4 µs at 64 rows with v7b's expand,
//   which loaded y before its wait; v9's expand reads only tables and B there).
inline void loraSetSmallNarrow(bool on) { smallSwitch(SmallSwitch::Narrow) = on; }
inline bool loraSmallNarrow() { return smallSwitch(SmallSwitch::Narrow); }
inline void loraSetSmallLongK(bool on) { smallSwitch(SmallSwitch::LongK) = on; }
inline bool loraSmallLongK() { return smallSwitch(SmallSwitch::LongK); }
inline void loraSetSmallEarlyTrigger(bool on) { smallSwitch(SmallSwitch::Early) = on; }
inline bool loraSmallEarlyTrigger() { return smallSwitch(SmallSwitch::Early); }

}  // namespace tslora::cuda::lora
