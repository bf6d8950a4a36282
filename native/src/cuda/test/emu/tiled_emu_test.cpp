// The wide tiled shrink and expand (lora_shrink_wide.cuh, lora_expand_wide.cuh) on the CPU under small-step-emu.h + tiled-emu.h (one std::thread per
// CUDA thread, ldmatrix / mma.sync emulated from the PTX fragment layouts, cp.async as a zero-filling copy), against a
// double-precision X·Aᵀ: triton and csgmv (permuted) segment tables with base and graph-padding segments, segments
// longer than one 128-row tile, ranks below the pool rank (NaN weights beyond the rank must never be read), 1-3 column
// chunks and two column blocks (R = 128, c = 3), one split and several (uneven, the last-block sum), bf16 and fp16.
// U entries outside the rows and columns of non-base segments must keep the workspace's NaN poison. Every block tile of
// the shrink (WideTile), each with global partials and with the cluster split-K (null partials / tickets: a use would
// crash); the 32-K tiles bit for bit against w8 (and the 64-K ones where the split boundaries coincide), m64k64f bit for
// bit against m64k64 (always), the cluster runs bit for bit against the same tile's global partials (up to 8 splits;
// 12 take 8 in a cluster).
// The expand: Y += round(U)·Bᵀ over 3 and 2 slices, ranks that are not multiples of 8 (the straddling B chunk), NaN in U
// and B beyond the rank and in base rows' U, strips of several sub-tiles that cross slice boundaries, padded y rows;
// base rows and columns outside the module must stay bit-identical. The store mode (launchExpandWide(..., store)):
// Y = round(U·Bᵀ) in the module's columns without reading y (y's old values must not leak into it), +0 in base and
// rank-0 rows' module columns, columns outside the module bit-identical.
// Built and run by test/native/cuda-compile.test.ts (sources rewritten by tiled-prepare.mjs). Exit 0 = all passed.
#include "tiled-emu.h"
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include "lora_expand_wide.cuh"
#include "lora_shrink_wide.cuh"
#include "../../engine/test/half-bits.h"
namespace cl = tslora::cuda::lora;
using tslora::cuda::Act;
using tslora::cuda::test::fromBits;
using tslora::cuda::test::toBits;

// The activation dtype of the pass main() is running (bf16, then fp16).
static Act gAct = Act::BF16;
static const char* actLabel() { return gAct == Act::F16 ? " fp16" : " bf16"; }

static int failures = 0, cases = 0;
static bool gQuick = false;  // --quick: W8 and one other shrink tile per case (the full run takes all four)

struct Tables {
  std::vector<int> rowSlot;
  std::vector<int32_t> indptr{0}, weights, perm;
  int maxRows = 1;
};
// rowSlots per request (-1 = base) with `counts` rows each; csgmv = rows permuted by slot, chunks of `cap` rows; three
// graph-padding segments at the end (empty, slot 0).
static Tables makeTables(const std::vector<int>& slots, const std::vector<int>& counts, bool csgmv, int cap) {
  Tables tb;
  for (size_t i = 0; i < slots.size(); ++i) for (int j = 0; j < counts[i]; ++j) tb.rowSlot.push_back(slots[i]);
  const int T = static_cast<int>(tb.rowSlot.size());
  tb.perm.resize(T);
  for (int p = 0; p < T; ++p) tb.perm[p] = p;
  if (!csgmv) {
    for (size_t i = 0; i < slots.size(); ++i) {
      tb.indptr.push_back(tb.indptr.back() + counts[i]);
      tb.weights.push_back(slots[i]);
      tb.maxRows = std::max(tb.maxRows, counts[i]);
    }
  } else {
    std::stable_sort(tb.perm.begin(), tb.perm.end(), [&](int a, int b) { return tb.rowSlot[a] < tb.rowSlot[b]; });
    for (int pos = 0; pos < T;) {
      int s = tb.rowSlot[tb.perm[pos]], end = pos;
      while (end < T && tb.rowSlot[tb.perm[end]] == s) ++end;
      const int step = s < 0 ? end - pos : cap;
      for (int b = pos; b < end; b += step) { tb.indptr.push_back(std::min(end, b + step)); tb.weights.push_back(s); }
      pos = end;
    }
    tb.maxRows = cap;
  }
  for (int pad = 0; pad < 3; ++pad) { tb.indptr.push_back(tb.indptr.back()); tb.weights.push_back(0); }
  return tb;
}

// rowSlots per request (-1 = base) with `counts` rows each; csgmv = rows permuted by slot, chunks of `cap` rows.
static void runCase(const char* name, int in, int c, int R, std::vector<int> ranks, std::vector<int> slots, std::vector<int> counts,
                    bool csgmv, int cap, int splits, int xPad) {
  std::mt19937 rng(7 + in + R + splits);
  std::uniform_real_distribution<float> U(-1, 1);
  const int S = static_cast<int>(ranks.size());
  const uint16_t nanBits = gAct == Act::F16 ? 0x7e00 : 0x7fc0;
  std::vector<uint16_t> A(static_cast<size_t>(S) * c * R * in, nanBits);
  for (int s = 0; s < S; ++s)
    for (int n = 0; n < c * ranks[s]; ++n)
      for (int k = 0; k < in; ++k) A[(static_cast<size_t>(s) * c * R + n) * in + k] = toBits(U(rng) * 0.1f, gAct);
  Tables tb = makeTables(slots, counts, csgmv, cap);
  const std::vector<int>& rowSlot = tb.rowSlot;
  std::vector<int32_t>& indptr = tb.indptr;
  std::vector<int32_t>& weights = tb.weights;
  std::vector<int32_t>& perm = tb.perm;
  const int maxRows = tb.maxRows;
  const int T = static_cast<int>(rowSlot.size()), xStride = in + xPad;
  std::vector<uint16_t> X(static_cast<size_t>(T) * xStride);
  for (auto& v : X) v = toBits(U(rng), gAct);
  std::vector<int32_t> ranks32(ranks.begin(), ranks.end());
  cl::DeviceModule m;
  m.a = A.data(); m.in = in; m.numSlices = c; m.maxRank = R;
  cl::DeviceStep st;
  st.segIndptr = indptr.data(); st.weightIndices = weights.data(); st.permutation = csgmv ? perm.data() : nullptr;
  st.slotRanks = ranks32.data(); st.maxSegments = static_cast<int>(weights.size()); st.maxSegmentRows = maxRows; st.numTokens = T;
  const int uStride = c * R;
  const float nan = std::nanf("");
  // Every block tile of the wide shrink (WideTile) on the same inputs: each against the double reference, and the
  // 32-K tiles (and the 64-K ones where the split boundaries fall on the same K) bit for bit against W8.
  std::vector<float> w8;
  static int shrinkCases = 0;
  const int quickTile = 1 + shrinkCases++ % (cl::wide::kWideTiles - 1);
  std::vector<float> global;  // this tile's U with global partials (the cluster run must give the same bits)
  auto launch = [&](cl::wide::WideTile tile, bool cluster, std::vector<float>& u, std::vector<float>& partials, std::vector<int>& counters) {
    // With clusters, partials and tickets must stay untouched: null pointers would crash on any use.
    float* partialsArg = cluster ? nullptr : partials.data();
    int* countersArg = cluster ? nullptr : counters.data();
    return gAct == Act::F16
        ? cl::wide::shrinkWide<__half>(m, st, X.data(), xStride, u.data(), partialsArg, countersArg, splits, nullptr, tile, cluster)
        : cl::wide::shrinkWide<__nv_bfloat16>(m, st, X.data(), xStride, u.data(), partialsArg, countersArg, splits, nullptr, tile, cluster);
  };
  for (int run = 0; run < 2 * cl::wide::kWideTiles; ++run) {
    const int ti = run / 2;
    const bool cluster = run % 2 == 1;  // the cluster split-K (clusterSumSplits) after the same tile's global partials
    const auto tile = static_cast<cl::wide::WideTile>(ti);
    if (gQuick && ti > 0 && ti != quickTile) continue;  // quick mode: W8 and one other tile per case, in turn
    if (cluster && (splits < 2 || (gQuick && ti == 0))) continue;  // one split: no split-K to take
    std::vector<float> u(static_cast<size_t>(T) * uStride, nan), partials(static_cast<size_t>(splits) * T * uStride, nan);
    std::vector<int> counters(4096, 0);
    const cudaError_t status = launch(tile, cluster, u, partials, counters);
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
          const double term = static_cast<double>(fromBits(X[static_cast<size_t>(p) * xStride + k], gAct)) *
                              fromBits(A[(static_cast<size_t>(s) * c * R + n) * in + k], gAct);
          ref += term;
          mag += std::fabs(term);
        }
        if (!(std::fabs(got - ref) <= 1e-5 * mag + 1e-6)) {
          if (!bad++) first = "row " + std::to_string(p) + " col " + std::to_string(n) + ": got " + std::to_string(got) + " want " + std::to_string(ref);
        }
      }
    }
    for (int v : counters) if (v != 0 && !bad) { ++bad; first = "a split-K ticket was not reset"; }
    // Same split boundaries (kPerSplit rounded to the stage's K) as W8: the same sums in the same order, so the same bits.
    auto kPerSplit = [&](int bk) { return ((in + splits - 1) / splits + bk - 1) / bk * bk; };
    const int bk = tile == cl::wide::WideTile::W8 || tile == cl::wide::WideTile::M128K32 ? 32 : 64;
    if (cluster) {
      // Up to 8 splits in a cluster: the same sums in the same order as the global partials of the same split count.
      if (!bad && splits <= cl::wide::kMaxClusterSplits && !global.empty() &&
          std::memcmp(u.data(), global.data(), u.size() * sizeof(float)) != 0) {
        bad = 1;
        first = "not bit-identical to the same tile with global partials";
      }
    } else {
      global = u;
      if (ti == 0) w8 = u;
      else if (!bad && kPerSplit(bk) == kPerSplit(32) && std::memcmp(u.data(), w8.data(), u.size() * sizeof(float)) != 0) {
        bad = 1;
        first = "not bit-identical to w8 with the same split boundaries";
      }
    }
    // M64K64F is M64K64 with the fragments of a step loaded first: the same MMAs on every stored accumulator in the same
    // order, so the same bits (checked in every mode: M64K64 runs once more here, uncounted).
    if (!bad && tile == cl::wide::WideTile::M64K64F) {
      std::vector<float> ref(u.size(), nan), refPartials(partials.size(), nan);
      std::vector<int> refCounters(counters.size(), 0);
      if (launch(cl::wide::WideTile::M64K64, cluster, ref, refPartials, refCounters) != cudaSuccess ||
          std::memcmp(u.data(), ref.data(), u.size() * sizeof(float)) != 0) {
        bad = 1;
        first = "not bit-identical to m64k64";
      }
    }
    ++cases;
    const std::string label = std::string(cl::wide::wideTileName(tile)) + (cluster ? " cluster" : "");
    if (bad) { ++failures; std::printf("FAIL %s [%s]%s: %s (%d bad)\n", name, label.c_str(), actLabel(), first.c_str(), bad); }
    else std::printf("ok   %s [%s]%s\n", name, label.c_str(), actLabel());
  }
}

static void runExpandCase(const char* name, std::vector<int> widths, int R, std::vector<int> ranks, std::vector<int> slots,
                          std::vector<int> counts, bool csgmv, int cap, int numSms, int yPad, bool fourStages = false,
                          bool store = false, bool lean = false) {
  ++cases;
  std::mt19937 rng(11 + R + numSms);
  std::uniform_real_distribution<float> U(-1, 1);
  const int c = static_cast<int>(widths.size()), S = static_cast<int>(ranks.size());
  int offs[4] = {0, 0, 0, 0};
  for (int j = 0; j < c; ++j) offs[j + 1] = offs[j] + widths[j];
  const int outTotal = offs[c];
  const uint16_t nanBits = gAct == Act::F16 ? 0x7e00 : 0x7fc0;
  std::vector<uint16_t> B(static_cast<size_t>(S) * outTotal * R, nanBits);
  for (int s = 0; s < S; ++s)
    for (int o = 0; o < outTotal; ++o) for (int k = 0; k < ranks[s]; ++k) B[(static_cast<size_t>(s) * outTotal + o) * R + k] = toBits(U(rng) * 0.1f, gAct);
  Tables tb = makeTables(slots, counts, csgmv, cap);
  const int T = static_cast<int>(tb.rowSlot.size()), uStride = c * R;
  std::vector<float> u(static_cast<size_t>(T) * uStride, std::nanf(""));
  for (int p = 0; p < T; ++p)
    if (tb.rowSlot[p] >= 0)
      for (int n = 0; n < c * ranks[tb.rowSlot[p]]; ++n) u[static_cast<size_t>(p) * uStride + n] = U(rng) * 4.0f;
  const int yStride = outTotal + 2 * yPad, yOffset = yPad;
  std::vector<uint16_t> Y(static_cast<size_t>(T) * yStride);
  for (auto& v : Y) v = toBits(U(rng), gAct);
  const std::vector<uint16_t> Y0 = Y;
  std::vector<int32_t> ranks32(ranks.begin(), ranks.end());
  cl::DeviceModule m;
  m.b = B.data(); m.numSlices = c; m.maxRank = R;
  for (int j = 0; j <= c; ++j) m.sliceOffsets[j] = offs[j];
  cl::DeviceStep st;
  st.segIndptr = tb.indptr.data(); st.weightIndices = tb.weights.data(); st.permutation = csgmv ? tb.perm.data() : nullptr;
  st.slotRanks = ranks32.data(); st.maxSegments = static_cast<int>(tb.weights.size()); st.maxSegmentRows = tb.maxRows; st.numTokens = T;
  int bad = 0;
  std::string first;
  if (!cl::wide::expandWideApplies(m, Y.data(), yStride, yOffset)) { bad = 1; first = "expandWideApplies refused the case"; }
  auto launch = [&](auto one) {
    using T = decltype(one);
    // lean: the strips of its own build (blocksPerSm 0: 3 per SM)
    return fourStages ? cl::wide::launchExpandWide<T, 4>(m, st, u.data(), Y.data(), yStride, yOffset, numSms, nullptr, lean ? 0 : 2, store, lean)
                      : cl::wide::launchExpandWide<T, 3>(m, st, u.data(), Y.data(), yStride, yOffset, numSms, nullptr, lean ? 0 : 2, store, lean);
  };
  const cudaError_t status = bad ? cudaSuccess : gAct == Act::F16 ? launch(__half{}) : launch(__nv_bfloat16{});
  if (status != cudaSuccess && !bad) { bad = 1; first = "launch failed"; }
  for (int p = 0; p < T && !bad; ++p) {
    const int s = tb.rowSlot[p];
    const int r = s >= 0 ? ranks[s] : 0;
    for (int col = 0; col < yStride; ++col) {
      const size_t i = static_cast<size_t>(p) * yStride + col;
      const int o = col - yOffset;
      if (o < 0 || o >= outTotal || (r == 0 && !store)) {
        if (Y[i] != Y0[i] && !bad++) first = "changed a base row or a column outside the module at row " + std::to_string(p);
        continue;
      }
      if (r == 0) {  // store mode: zeros, so the base GEMM's beta = 1 adds onto nothing
        if (Y[i] != 0 && !bad++) first = "base / rank-0 row " + std::to_string(p) + " col " + std::to_string(col) + " is not +0";
        continue;
      }
      const int j = o >= offs[2] && c > 2 ? 2 : o >= offs[1] && c > 1 ? 1 : 0;
      double delta = 0, mag = 0;
      for (int k = 0; k < r; ++k) {
        const double term = static_cast<double>(fromBits(toBits(u[static_cast<size_t>(p) * uStride + j * r + k], gAct), gAct)) *
                            fromBits(B[(static_cast<size_t>(s) * outTotal + o) * R + k], gAct);
        delta += term;
        mag += std::fabs(term);
      }
      const double ref = (store ? 0.0 : fromBits(Y0[i], gAct)) + delta, got = fromBits(Y[i], gAct);
      const double tol = (gAct == Act::F16 ? 1.0 / 1024 : 1.0 / 128) * std::fabs(ref) + 1e-5 * mag + 1e-6;
      if (!(std::fabs(got - ref) <= tol) && !bad++)
        first = "row " + std::to_string(p) + " col " + std::to_string(col) + ": got " + std::to_string(got) + " want " + std::to_string(ref);
    }
  }
  const char* mode = lean ? "expand store lean" : store ? "expand store" : "expand";
  if (bad) { ++failures; std::printf("FAIL %s %s%s: %s\n", mode, name, actLabel(), first.c_str()); }
  else std::printf("ok   %s %s%s\n", mode, name, actLabel());
}

int main(int argc, char** argv) {
  const bool quick = argc > 1 && std::string(argv[1]) == "--quick";
  gQuick = quick;
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  for (bool half : {false, true}) {
    if (quick && half) continue;
    gAct = half ? Act::F16 : Act::BF16;
    runCase("triton qkv r64 2 tiles, 1 split", 256, 3, 64, {64, 8, 37}, {0, -1, 1, 2, 0}, {200, 7, 77, 130, 1}, false, 0, 1, 0);
    runCase("triton qkv r64, 3 uneven splits", 200, 3, 64, {64, 8, 37}, {0, -1, 1, 2}, {150, 7, 40, 33}, false, 0, 3, 8);
    runCase("csgmv C64 gate_up r16, 5 splits", 512, 2, 16, {16, 5, 9}, {0, 1, -1, 2, 0, 1}, {40, 70, 3, 9, 33, 1}, true, 64, 5, 0);
    runCase("csgmv C128 qkv R128 two column blocks", 128, 3, 128, {128, 100, 3}, {0, 1, 2}, {130, 20, 60}, true, 128, 2, 0);
    if (!quick) runCase("triton down r64 long K, 4 splits", 1024, 1, 64, {64, 20}, {0, 1, -1}, {129, 64, 5}, false, 0, 4, 0);
    if (!quick)  // more splits than a cluster holds: the cluster run takes 8 (other sums, within tolerance)
      runCase("triton gate_up r64, 12 splits", 1536, 2, 64, {64, 24}, {1, -1, 0}, {70, 9, 140}, false, 0, 12, 0);
    runExpandCase("triton qkv r64, one strip per tile (3 slices)", {256, 64, 64}, 64, {64, 8, 37}, {0, -1, 1, 2}, {150, 7, 40, 33}, false,
                  0, 1, 8);
    runExpandCase("csgmv C64 gate_up r16, strips of 3 sub-tiles", {192, 192}, 16, {16, 5, 13}, {0, 1, -1, 2, 0}, {40, 70, 3, 9, 33},
                  true, 64, 8, 0);
    runExpandCase("csgmv C64 gate_up r16 + rank 0, strips of 3 sub-tiles", {192, 192}, 16, {16, 5, 13, 0}, {0, 1, -1, 2, 3, 0},
                  {40, 70, 3, 9, 20, 33}, true, 64, 8, 8, false, true);
    // The lean store layout (one staging tile shared by the warps' rows): base and rank-0 rows, strips crossing slices
    runExpandCase("csgmv C64 gate_up r16 + rank 0, strips of its own", {192, 192}, 16, {16, 5, 13, 0}, {0, 1, -1, 2, 3, 0},
                  {40, 70, 3, 9, 20, 33}, true, 64, 8, 8, false, true, true);
    runExpandCase("triton qkv r64 + rank 0 (3 slices), one SM: long strips", {256, 64, 64}, 64, {64, 8, 37, 0}, {0, -1, 1, 3, 2},
                  {150, 7, 40, 140, 33}, false, 0, 1, 8, false, true, true);
    if (!quick) {
      runExpandCase("triton qkv r64 many strips", {128, 64, 64}, 64, {64, 3}, {1, 0}, {20, 140}, false, 0, 64, 0);
      runExpandCase("csgmv C128 qkv r64, 4 stages, one strip", {256, 64, 64}, 64, {64, 8, 37}, {0, 1, 2}, {150, 40, 33}, true, 128, 1, 8,
                    true);
      runExpandCase("triton qkv r64 + rank 0, one strip per tile (3 slices)", {256, 64, 64}, 64, {64, 8, 37, 0}, {0, -1, 1, 3, 2},
                    {150, 7, 40, 140, 33}, false, 0, 1, 8, false, true);
      runExpandCase("triton qkv r64 many strips, base rows", {128, 64, 64}, 64, {64, 3}, {1, -1, 0}, {20, 130, 140}, false, 0, 64, 0,
                    false, true);
      runExpandCase("csgmv C128 qkv r64, 4 stages, one strip", {256, 64, 64}, 64, {64, 8, 37}, {0, 1, -1, 2}, {150, 40, 9, 33}, true, 128,
                    1, 8, true, true);
      runExpandCase("csgmv C64 gate_up r16, 4 stages, strips of 3 sub-tiles", {192, 192}, 16, {16, 5, 13}, {0, 1, -1, 2, 0},
                    {40, 70, 3, 9, 33}, true, 64, 8, 0, true, true);
      runExpandCase("csgmv C128 qkv r64, 4 stages, lean", {256, 64, 64}, 64, {64, 8, 37}, {0, 1, -1, 2}, {150, 40, 9, 33}, true, 128,
                    1, 8, true, true, true);
      runExpandCase("triton qkv r64 many strips, base rows, lean", {128, 64, 64}, 64, {64, 3}, {1, -1, 0}, {20, 130, 140}, false, 0, 64,
                    0, false, true, true);
    }
  }
  std::printf("%d/%d failed\n", failures, cases);
  return failures ? 1 : 0;
}
