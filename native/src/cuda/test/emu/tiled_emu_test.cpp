// The wide tiled shrink (lora_shrink_wide.cuh) on the CPU under small-step-emu.h + tiled-emu.h (one std::thread per
// CUDA thread, ldmatrix / mma.sync emulated from the PTX fragment layouts, cp.async as a zero-filling copy), against a
// double-precision X·Aᵀ: triton and csgmv (permuted) segment tables with base and graph-padding segments, segments
// longer than one 128-row tile, ranks below the pool rank (NaN weights beyond the rank must never be read), 1-3 column
// chunks and two column blocks (R = 128, c = 3), one split and several (uneven, the last-block sum), bf16 and fp16.
// U entries outside the rows and columns of non-base segments must keep the workspace's NaN poison.
// Built and run by test/native/cuda-compile.test.ts (sources rewritten by tiled-prepare.mjs). Exit 0 = all passed.
#include "tiled-emu.h"
#include <cstdio>
#include <random>
#include <string>
#include "lora_shrink_wide.cuh"
namespace cl = tslora::cuda::lora;

static bool gHalf = false;
static uint16_t toBits(float f) {
  uint16_t u;
  if (gHalf) { __half h = __float2half_rn(f); std::memcpy(&u, &h, 2); } else { __nv_bfloat16 b = __float2bfloat16_rn(f); std::memcpy(&u, &b, 2); }
  return u;
}
static float fromBits(uint16_t u) {
  if (gHalf) { __half h; std::memcpy(&h, &u, 2); return __half2float(h); }
  __nv_bfloat16 b; std::memcpy(&b, &u, 2); return __bfloat162float(b);
}

static int failures = 0, cases = 0;

// rowSlots per request (-1 = base) with `counts` rows each; csgmv = rows permuted by slot, chunks of `cap` rows.
static void runCase(const char* name, int in, int c, int R, std::vector<int> ranks, std::vector<int> slots, std::vector<int> counts,
                    bool csgmv, int cap, int splits, int xPad) {
  ++cases;
  std::mt19937 rng(7 + in + R + splits);
  std::uniform_real_distribution<float> U(-1, 1);
  const int S = static_cast<int>(ranks.size());
  const uint16_t nanBits = gHalf ? 0x7e00 : 0x7fc0;
  std::vector<uint16_t> A(static_cast<size_t>(S) * c * R * in, nanBits);
  for (int s = 0; s < S; ++s)
    for (int n = 0; n < c * ranks[s]; ++n)
      for (int k = 0; k < in; ++k) A[(static_cast<size_t>(s) * c * R + n) * in + k] = toBits(U(rng) * 0.1f);
  std::vector<int> rowSlot;
  for (size_t i = 0; i < slots.size(); ++i) for (int j = 0; j < counts[i]; ++j) rowSlot.push_back(slots[i]);
  const int T = static_cast<int>(rowSlot.size()), xStride = in + xPad;
  std::vector<uint16_t> X(static_cast<size_t>(T) * xStride);
  for (auto& v : X) v = toBits(U(rng));
  std::vector<int32_t> indptr{0}, weights, perm(T);
  for (int p = 0; p < T; ++p) perm[p] = p;
  int maxRows = 1;
  if (!csgmv) {
    for (size_t i = 0; i < slots.size(); ++i) { indptr.push_back(indptr.back() + counts[i]); weights.push_back(slots[i]); maxRows = std::max(maxRows, counts[i]); }
  } else {
    std::stable_sort(perm.begin(), perm.end(), [&](int a, int b) { return rowSlot[a] < rowSlot[b]; });
    for (int pos = 0; pos < T;) {
      int s = rowSlot[perm[pos]], end = pos;
      while (end < T && rowSlot[perm[end]] == s) ++end;
      const int step = s < 0 ? end - pos : cap;
      for (int b = pos; b < end; b += step) { indptr.push_back(std::min(end, b + step)); weights.push_back(s); }
      pos = end;
    }
    maxRows = cap;
  }
  for (int pad = 0; pad < 3; ++pad) { indptr.push_back(indptr.back()); weights.push_back(0); }  // graph padding: empty
  std::vector<int32_t> ranks32(ranks.begin(), ranks.end());
  cl::DeviceModule m;
  m.a = A.data(); m.in = in; m.numSlices = c; m.maxRank = R;
  cl::DeviceStep st;
  st.segIndptr = indptr.data(); st.weightIndices = weights.data(); st.permutation = csgmv ? perm.data() : nullptr;
  st.slotRanks = ranks32.data(); st.maxSegments = static_cast<int>(weights.size()); st.maxSegmentRows = maxRows; st.numTokens = T;
  const int uStride = c * R;
  const float nan = std::nanf("");
  std::vector<float> u(static_cast<size_t>(T) * uStride, nan), partials(static_cast<size_t>(splits) * T * uStride, nan);
  std::vector<int> counters(4096, 0);
  cudaError_t status = gHalf ? cl::wide::shrinkWide<__half>(m, st, X.data(), xStride, u.data(), partials.data(), counters.data(), splits, nullptr)
                             : cl::wide::shrinkWide<__nv_bfloat16>(m, st, X.data(), xStride, u.data(), partials.data(), counters.data(), splits, nullptr);
  int bad = 0;
  std::string first;
  if (status != cudaSuccess) { bad = 1; first = "launch failed"; }
  for (int p = 0; p < T && !bad; ++p) {
    const int s = rowSlot[p];
    const int nEff = s >= 0 ? c * ranks[s] : 0;
    for (int n = 0; n < uStride; ++n) {
      const float got = u[static_cast<size_t>(p) * uStride + n];
      if (n >= nEff) {
        if (!std::isnan(got)) { ++bad; first = "wrote outside the slot's columns at row " + std::to_string(p) + " col " + std::to_string(n); }
        continue;
      }
      double ref = 0, mag = 0;
      for (int k = 0; k < in; ++k) {
        const double term = static_cast<double>(fromBits(X[static_cast<size_t>(p) * xStride + k])) *
                            fromBits(A[(static_cast<size_t>(s) * c * R + n) * in + k]);
        ref += term;
        mag += std::fabs(term);
      }
      if (!(std::fabs(got - ref) <= 1e-5 * mag + 1e-6)) {
        if (!bad++) first = "row " + std::to_string(p) + " col " + std::to_string(n) + ": got " + std::to_string(got) + " want " + std::to_string(ref);
      }
    }
  }
  for (int v : counters) if (v != 0 && !bad) { ++bad; first = "a split-K ticket was not reset"; }
  if (bad) { ++failures; std::printf("FAIL %s%s: %s (%d bad)\n", name, gHalf ? " fp16" : " bf16", first.c_str(), bad); }
  else std::printf("ok   %s%s\n", name, gHalf ? " fp16" : " bf16");
}

int main(int argc, char** argv) {
  const bool quick = argc > 1 && std::string(argv[1]) == "--quick";
  for (bool half : {false, true}) {
    if (quick && half) continue;
    gHalf = half;
    runCase("triton qkv r64 2 tiles, 1 split", 256, 3, 64, {64, 8, 37}, {0, -1, 1, 2, 0}, {200, 7, 77, 130, 1}, false, 0, 1, 0);
    runCase("triton qkv r64, 3 uneven splits", 200, 3, 64, {64, 8, 37}, {0, -1, 1, 2}, {150, 7, 40, 33}, false, 0, 3, 8);
    runCase("csgmv C64 gate_up r16, 5 splits", 512, 2, 16, {16, 5, 9}, {0, 1, -1, 2, 0, 1}, {40, 70, 3, 9, 33, 1}, true, 64, 5, 0);
    runCase("csgmv C128 qkv R128 two column blocks", 128, 3, 128, {128, 100, 3}, {0, 1, 2}, {130, 20, 60}, true, 128, 2, 0);
    if (!quick) runCase("triton down r64 long K, 4 splits", 1024, 1, 64, {64, 20}, {0, 1, -1}, {129, 64, 5}, false, 0, 4, 0);
  }
  std::printf("%d/%d failed\n", failures, cases);
  return failures ? 1 : 0;
}
