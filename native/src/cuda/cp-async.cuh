// cp.async 16-byte global → shared copies for the engine's pipelined kernels (the mma.sync prefill attention): issued
// without tying up registers, grouped by commit, waited for by group count. The host emulator rewrites this file
// (test/emu/ptx-headers-emu.mjs) into copies that land only at the wait, so a read before its wait shows up there.
#pragma once
#include <cstdint>

namespace tslora::cuda {

// bytes 16, or 0 (valid = false): zeros, the source not read.
__device__ __forceinline__ void cpAsync16(void* sharedDst, const void* globalSrc, bool valid) {
  const unsigned dst = static_cast<unsigned>(__cvta_generic_to_shared(sharedDst));
  const int bytes = valid ? 16 : 0;
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(globalSrc), "r"(bytes));
}
__device__ __forceinline__ void cpAsyncCommit() { asm volatile("cp.async.commit_group;\n" ::); }
// Until at most Pending of this thread's committed groups are still in flight.
template <int Pending>
__device__ __forceinline__ void cpAsyncWait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(Pending)); }

}  // namespace tslora::cuda
