// What the wide tiled shrink needs beyond small-step-emu.h (tiled-prepare.mjs rewrites it to call these): cp.async as a
// zero-filling 16-byte copy, ldmatrix.x4 as a warp exchange of the lanes' row addresses (through the warp's mma
// exchange buffer, between two warp barriers, like the emulated mma); the split-K ticket atomics and fences come from
// small-step-emu.h.
#pragma once
#include "small-step-emu.h"
namespace emu {
inline void copyAsync16(void* dst, const void* src, bool valid) {
  if (valid) std::memcpy(dst, src, 16);
  else std::memset(dst, 0, 16);
}
inline void ldmatrixX4(const void* rowAddress, uint32_t& r0, uint32_t& r1, uint32_t& r2, uint32_t& r3) {
  const int tid = tIdx.x, warp = tid / 32, lane = tid % 32;
  WarpX& x = blk->warpX[warp];
  std::memcpy(&x.a[lane][0], &rowAddress, sizeof rowAddress);
  blk->warpBarriers[warp]->arrive_and_wait();
  uint32_t r[4];
  for (int i = 0; i < 4; ++i) {
    const unsigned char* row;
    std::memcpy(&row, &x.a[8 * i + lane / 4][0], sizeof row);
    std::memcpy(&r[i], row + 4 * (lane % 4), 4);
  }
  blk->warpBarriers[warp]->arrive_and_wait();
  r0 = r[0]; r1 = r[1]; r2 = r[2]; r3 = r[3];
}
}  // namespace emu
#define __syncwarp() emu::blk->warpBarriers[emu::tIdx.x / 32]->arrive_and_wait()
