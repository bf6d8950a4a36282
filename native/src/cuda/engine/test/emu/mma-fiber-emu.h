// mma.m16n8k16 and ldmatrix.x4 (plain and .trans) on the fibers of cuda-emu.h, for the engine kernels that use them
// (the decode GEMM, the mma.sync prefill attention): warp-collective steps built from the PTX fragment layouts. Every
// lane posts its registers (mma) or its row address (ldmatrix), the warp meets, each lane computes its own result, the
// warp meets again; cp.async copies land at their wait. mma-emu.mjs / ptx-headers-emu.mjs rewrite the kernels' inline
// PTX headers into calls of these.
// (Moved out of decode-gemm-emu.h in session 25; the mma is unchanged.)
#pragma once
#include "cuda-emu.h"

#include <cstring>
#include <vector>

namespace emu {

// The rank of the running block in its cluster (0 outside clusters): the blocks of a cluster run interleaved.
inline int& clusterRank() {
  static int rank = 0;
  return rank;
}
constexpr int kMaxClusterBlocks = 16;

struct MmaExchange {
  uint32_t a[32][4];
  uint32_t b[32][2];
};

template <typename T>
float halfToFloat(uint16_t bits) {
  T v;
  std::memcpy(static_cast<void*>(&v), &bits, 2);
  if constexpr (std::is_same_v<T, __nv_bfloat16>) return __bfloat162float(v);
  else return __half2float(v);
}

template <typename T>
void mma16816(float (&c)[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3, uint32_t b0, uint32_t b1) {
  static MmaExchange exchange[kMaxClusterBlocks][32];  // one per warp of each block of the running cluster
  const int tid = linearTid(), warp = tid / 32, lane = tid % 32;
  MmaExchange& x = exchange[clusterRank()][warp];
  x.a[lane][0] = a0; x.a[lane][1] = a1; x.a[lane][2] = a2; x.a[lane][3] = a3;
  x.b[lane][0] = b0; x.b[lane][1] = b1;
  syncwarp();
  // A [16 rows, 16 k]: a0 (g, 2t..), a1 (g+8, 2t..), a2 (g, 2t+8..), a3 (g+8, 2t+8..); B [16 k, 8 cols]: b0 (2t.., g),
  // b1 (2t+8.., g); two 16-bit values per register, the lower k in the low half.
  float A[16][16], B[16][8];
  for (int l = 0; l < 32; ++l) {
    const int g = l / 4, t = l % 4;
    const auto lo = [](uint32_t v) { return static_cast<uint16_t>(v & 0xffffu); };
    const auto hi = [](uint32_t v) { return static_cast<uint16_t>(v >> 16); };
    for (int r = 0; r < 4; ++r) {
      const int row = g + (r & 1) * 8, k = 2 * t + (r >> 1) * 8;
      A[row][k] = halfToFloat<T>(lo(x.a[l][r]));
      A[row][k + 1] = halfToFloat<T>(hi(x.a[l][r]));
    }
    B[2 * t][g] = halfToFloat<T>(lo(x.b[l][0]));
    B[2 * t + 1][g] = halfToFloat<T>(hi(x.b[l][0]));
    B[2 * t + 8][g] = halfToFloat<T>(lo(x.b[l][1]));
    B[2 * t + 9][g] = halfToFloat<T>(hi(x.b[l][1]));
  }
  const int g = lane / 4, t = lane % 4;
  const auto dot = [&](int m, int n) {
    float s = 0;
    for (int k = 0; k < 16; ++k) s += A[m][k] * B[k][n];
    return s;
  };
  c[0] += dot(g, 2 * t);
  c[1] += dot(g, 2 * t + 1);
  c[2] += dot(g + 8, 2 * t);
  c[3] += dot(g + 8, 2 * t + 1);
  syncwarp();
}

// ldmatrix.sync.aligned.m8n8.x4[.trans].shared.b16: lanes 8i .. 8i + 7 give the row addresses (16 bytes each) of 8 × 8
// matrix i; register i of lane (g = lane / 4, t = lane % 4) holds matrix i's elements (g, 2t) and (g, 2t + 1), low half
// first, or with .trans (2t, g) and (2t + 1, g).
inline void ldmatrixX4(const void* rowAddress, uint32_t& r0, uint32_t& r1, uint32_t& r2, uint32_t& r3, bool trans) {
  static const void* rows[kMaxClusterBlocks][32][32];  // per warp of each block of the running cluster
  const int tid = linearTid(), warp = tid / 32, lane = tid % 32;
  const void** mine = rows[clusterRank()][warp];
  mine[lane] = rowAddress;
  syncwarp();
  const int g = lane / 4, t = lane % 4;
  uint32_t r[4];
  for (int i = 0; i < 4; ++i) {
    uint16_t lo, hi;
    if (!trans) {
      const uint16_t* row = static_cast<const uint16_t*>(mine[8 * i + g]);
      lo = row[2 * t];
      hi = row[2 * t + 1];
    } else {
      lo = static_cast<const uint16_t*>(mine[8 * i + 2 * t])[g];
      hi = static_cast<const uint16_t*>(mine[8 * i + 2 * t + 1])[g];
    }
    r[i] = static_cast<uint32_t>(lo) | (static_cast<uint32_t>(hi) << 16);
  }
  syncwarp();
  r0 = r[0]; r1 = r[1]; r2 = r[2]; r3 = r[3];
}

// cp.async on the fibers: a thread's copies wait in its queue, grouped by commit, and land (16 bytes, or zeros) only when
// a wait leaves at most `pending` of its groups in flight, so a read of shared memory before its wait sees what was
// there before, as on a GPU where the copy is late.
struct CpAsyncCopy {
  void* dst;
  const void* src;
  bool valid;
  int group;
};
struct CpAsyncQueue {
  std::vector<CpAsyncCopy> copies;
  int committed = 0;  // groups committed so far
};
inline CpAsyncQueue& cpAsyncQueue() {
  static std::vector<CpAsyncQueue> queues;
  const int tid = linearTid();
  if (static_cast<int>(queues.size()) <= tid) queues.resize(tid + 1);
  return queues[tid];
}
inline void cpAsync16(void* dst, const void* src, bool valid) {
  CpAsyncQueue& q = cpAsyncQueue();
  q.copies.push_back({dst, src, valid, q.committed});
}
inline void cpAsyncCommit() { ++cpAsyncQueue().committed; }
inline void cpAsyncWait(int pending) {
  CpAsyncQueue& q = cpAsyncQueue();
  std::vector<CpAsyncCopy> later;
  for (const CpAsyncCopy& c : q.copies) {
    if (c.group < q.committed - pending) {
      if (c.valid) std::memcpy(c.dst, c.src, 16);
      else std::memset(c.dst, 0, 16);
    } else {
      later.push_back(c);
    }
  }
  q.copies.swap(later);
}

}  // namespace emu
