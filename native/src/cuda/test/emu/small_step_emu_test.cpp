// The small-step LoRA kernels (lora_small_shrink.cu, lora_small_expand.cu) run on the CPU under small-step-emu.h (one
// std::thread per CUDA thread, mma.sync emulated from the PTX fragment layout, cp.async as a zero-filling copy, PDL
// as a no-op), against a double-precision LoRA reference: triton and csgmv segment tables with graph padding, ranks
// 1..64 with NaN beyond the rank (from slotRanks or the optional per-segment ranks), odd strides and sizes (scalar paths), several split counts, 16 adapters in one
// 16-row group, batch 1, bf16 and fp16. Base rows and columns outside the module must stay bit-identical.
// Built by test/native/cuda-compile.test.ts (g++ -std=c++20 against sources rewritten by prepare.mjs).
// Usage: [SMALL_EMU_ONLY=substring] small_step_emu_test [--quick]; exit 0 = all passed.
#include "small-step-emu.h"
#include <cstring>
#include <cstdio>
#include <random>
#include <string>
#include "lora_kernels.cuh"
#include "lora_small_variant.h"
#include "../../engine/test/half-bits.h"
namespace cl = tslora::cuda::lora;
using tslora::cuda::Act;
using tslora::cuda::test::fromBits;
using tslora::cuda::test::toBits;
// The activation dtype of the pass main() is running (bf16, then fp16).
static Act gAct = Act::BF16;
static cl::ActDType dtype() { return gAct == Act::F16 ? cl::ActDType::F16 : cl::ActDType::BF16; }
int failures = 0, cases = 0;
void runCase(const char* name, int in, std::vector<int> widths, int R, std::vector<int> ranks, std::vector<int> rowSlots,
             bool csgmv, int xPad, int yPad, int splitsOverride, int numSms, bool forcedFusedPlan = false) {
  const char* only = std::getenv("SMALL_EMU_ONLY");  // a substring of the case names to run (a planted-bug run's subset)
  if (only != nullptr && std::string(name).find(only) == std::string::npos) return;
  std::mt19937 rng(123 + in + R);
  std::uniform_real_distribution<float> U(-1, 1);
  const int c = widths.size(), S = ranks.size(), T = rowSlots.size();
  int offs[4] = {0, 0, 0, 0};
  for (int j = 0; j < c; ++j) offs[j + 1] = offs[j] + widths[j];
  const int outTotal = offs[c];
  const uint16_t nanBits = gAct == Act::F16 ? 0x7e00 : 0x7fc0;
  std::vector<uint16_t> A((size_t)S * c * R * in, nanBits), B((size_t)S * outTotal * R, nanBits);
  for (int s = 0; s < S; ++s) {
    for (int n = 0; n < c * ranks[s]; ++n) for (int k = 0; k < in; ++k) A[((size_t)s * c * R + n) * in + k] = toBits(U(rng) * 0.1f, gAct);
    for (int o = 0; o < outTotal; ++o) for (int k = 0; k < ranks[s]; ++k) B[((size_t)s * outTotal + o) * R + k] = toBits(U(rng) * 0.1f, gAct);
  }
  const int xStride = in + xPad, yStride = outTotal + 2 * yPad, yOffset = yPad;
  std::vector<uint16_t> X((size_t)T * xStride), Y((size_t)T * yStride);
  for (auto& v : X) v = toBits(U(rng), gAct);
  for (auto& v : Y) v = toBits(U(rng), gAct);
  // segments
  std::vector<int32_t> indptr{0}, weights, perm(T);
  for (int p = 0; p < T; ++p) perm[p] = p;
  if (!csgmv) { for (int p = 0; p < T; ++p) { indptr.push_back(p + 1); weights.push_back(rowSlots[p]); } }
  else {
    std::stable_sort(perm.begin(), perm.end(), [&](int a, int b) { return rowSlots[a] < rowSlots[b]; });
    for (int pos = 0; pos < T;) { int s = rowSlots[perm[pos]], end = pos; while (end < T && rowSlots[perm[end]] == s) ++end;
      int step = s < 0 ? end - pos : 16; for (int b = pos; b < end; b += step) { indptr.push_back(std::min(end, b + step)); weights.push_back(s); } pos = end; }
  }
  for (int pad = 0; pad < 3; ++pad) { indptr.push_back(indptr.back()); weights.push_back(0); }
  std::vector<int32_t> ranks32(ranks.begin(), ranks.end()), segRanks;
  for (int32_t w : weights) segRanks.push_back(w >= 0 ? ranks32[w] : 0);
  cl::DeviceModule m; m.a = A.data(); m.b = B.data(); m.in = in; m.numSlices = c; for (int j = 0; j <= c; ++j) m.sliceOffsets[j] = offs[j]; m.maxRank = R;
  cl::DeviceStep st; st.segIndptr = indptr.data(); st.weightIndices = weights.data(); st.permutation = csgmv ? perm.data() : nullptr;
  st.slotRanks = ranks32.data(); st.maxSegments = weights.size(); st.maxSegmentRows = 16; st.numTokens = T;
  if (csgmv) st.segmentRanks = segRanks.data();  // csgmv cases take the ranks from the tables, triton from slotRanks
  int splits = cl::loraSmallStepSplits(m, st, numSms);
  if (splitsOverride) splits = splitsOverride;
  std::vector<float> ws(cl::loraSmallStepWorkspaceBytes(m, st, splits) / 4, NAN);
  std::vector<uint16_t> Yg = Y;
  if (cl::loraShrinkSmall(dtype(), m, st, X.data(), xStride, ws.data(), splits, nullptr) != cudaSuccess) { printf("shrink err\n"); }
  if (cl::loraExpandSmall(dtype(), m, st, ws.data(), splits, Yg.data(), yStride, yOffset, nullptr, true) != cudaSuccess) { printf("expand err\n"); }
  // The other layout of lora_small_variant.h (v10: the permutation in flight with the tables, 16-byte y, swizzled B
  // tile): the same sums per element, so the same bits.
  std::vector<uint16_t> Yv = Y;
  std::vector<float> wsV(ws.size(), NAN);
  cl::loraSetSmallV10(!cl::loraSmallV10());
  if (cl::loraShrinkSmall(dtype(), m, st, X.data(), xStride, wsV.data(), splits, nullptr) != cudaSuccess) { printf("shrink err\n"); }
  if (cl::loraExpandSmall(dtype(), m, st, wsV.data(), splits, Yv.data(), yStride, yOffset, nullptr, true) != cudaSuccess) { printf("expand err\n"); }
  cl::loraSetSmallV10(!cl::loraSmallV10());
  // v11's narrow shrink (rank-sized mma chunks: fewer registers, the same items on the same warps) against the default's
  // other setting: the same bits.
  std::vector<uint16_t> Yn = Y;
  std::vector<float> wsN(ws.size(), NAN);
  cl::loraSetSmallNarrow(!cl::loraSmallNarrow());
  if (cl::loraShrinkSmall(dtype(), m, st, X.data(), xStride, wsN.data(), splits, nullptr) != cudaSuccess) { printf("shrink err\n"); }
  cl::loraSetSmallNarrow(!cl::loraSmallNarrow());
  if (cl::loraExpandSmall(dtype(), m, st, wsN.data(), splits, Yn.data(), yStride, yOffset, nullptr, true) != cudaSuccess) { printf("expand err\n"); }
  int narrowDiffers = 0;
  for (size_t e = 0; e < Y.size(); ++e) narrowDiffers += Yn[e] != Yg[e];
  if (narrowDiffers) printf("  the pair with the narrow shrink %s differs in %d values\n", cl::loraSmallNarrow() ? "off" : "on", narrowDiffers);
  int variantDiffers = 0;
  for (size_t e = 0; e < Y.size(); ++e) variantDiffers += Yv[e] != Yg[e];
  if (variantDiffers) printf("  the pair's other layout (v10 %s) differs in %d values\n", cl::loraSmallV10() ? "off" : "on", variantDiffers);
  auto check = [&](const char* name, const char* path, const std::vector<uint16_t>& Yg, int extraBad, int splits) {
  double err = 0, ref = 0; int bad = extraBad;
  for (int p = 0; p < T; ++p) {
    const int w = rowSlots[p]; const int r = w >= 0 ? ranks[w] : 0;
    std::vector<double> u(c * r);
    for (int n = 0; n < c * r; ++n) { double s = 0; for (int k = 0; k < in; ++k) s += (double)fromBits(X[(size_t)p * xStride + k], gAct) * fromBits(A[((size_t)w * c * R + n) * in + k], gAct); u[n] = s; }
    for (int col = 0; col < yStride; ++col) {
      const size_t i = (size_t)p * yStride + col;
      const bool lora = r > 0 && col >= yOffset && col < yOffset + outTotal;
      if (!lora) { if (Yg[i] != Y[i]) ++bad; continue; }
      const int o = col - yOffset; int j = 0; while (o >= offs[j + 1]) ++j;
      double d = 0; for (int k = 0; k < r; ++k) d += u[j * r + k] * fromBits(B[((size_t)w * outTotal + o) * R + k], gAct);
      const double want = fromBits(Y[i], gAct) + d, got = fromBits(Yg[i], gAct);
      if (!std::isfinite(got)) ++bad;
      err += (got - want) * (got - want); ref += d * d + 1e-30;
    }
  }
  ++cases;
  const double rel = std::sqrt(err / ref);
  if (bad || rel > 0.03) { ++failures; printf("FAIL %s %s: bad %d rel %.4g splits %d\n", name, path, bad, rel, splits); }
  else printf("ok %s %s: rel %.4g splits %d\n", name, path, rel, splits);
  };
  // The fused kernel (one launch, clusters): its own plan and, when asked, a forced one with clusters of 4 and 3 column parts.
  // With as many K splits as the pair, it must give the pair's bits exactly (same split ranges, sums in the same order).
  std::vector<std::vector<uint16_t>> fusedOut;
  std::vector<cl::FusedPlan> plans{cl::loraFusedPlan(m, st, numSms)};
  if (forcedFusedPlan) plans.push_back(cl::FusedPlan{4, 3});
  for (const cl::FusedPlan& plan : plans) {
    fusedOut.push_back(Y);
    if (cl::loraApplyFused(dtype(), m, st, plan, X.data(), xStride, fusedOut.back().data(), yStride,
                           yOffset, nullptr) != cudaSuccess) { printf("fused err\n"); }
  }
  std::vector<int> identical(plans.size(), 0);  // values that differ from the pair where the split ranges are the same
  for (size_t i = 0; i < plans.size(); ++i) {
    if (plans[i].clusterSize != splits) continue;
    for (size_t e = 0; e < Y.size(); ++e) identical[i] += fusedOut[i][e] != Yg[e];
    if (identical[i]) printf("  fused (cluster %d, %d parts) differs from the pair with %d splits in %d values\n", plans[i].clusterSize,
                             plans[i].columnParts, splits, identical[i]);
  }
  check(name, "pair", Yg, 0, splits);
  // The store variant (loraExpandSmallDelta, the engine's side expand) over the pair's partials, both layouts, a padded
  // and a tight fp32 stride (scalar and 16-byte stores): act_round(y + delta) must be the pair's y bit for bit, base rows
  // must hold -0.0f, and nothing outside [T, outTotal) may be written (the NaN poison stays).
  for (int layout = 0; layout < 2; ++layout) {
    for (int dPad : {0, 3}) {
      if (layout == 1) cl::loraSetSmallV10(!cl::loraSmallV10());
      const int ds = outTotal + dPad;
      std::vector<float> D((size_t)(T + 1) * ds, NAN);
      const cudaError_t st2 = cl::loraExpandSmallDelta(dtype(), m, st, ws.data(), splits, D.data(), ds, nullptr, true);
      const bool v10 = cl::loraSmallV10();
      // The Act store (TSLORA_CUDA_LORA_DELTA_ACT): each value the fp32 store's rounded to Act (-0 for base rows), the
      // row padding untouched (poison 0xffff); the v9 layout refuses it.
      std::vector<uint16_t> DA((size_t)(T + 1) * ds, 0xffff);
      const cudaError_t stAct = cl::loraExpandSmallDelta(dtype(), m, st, ws.data(), splits, DA.data(), ds, nullptr, true, true);
      if (layout == 1) cl::loraSetSmallV10(!cl::loraSmallV10());
      int badAct = 0;
      if (!v10) badAct += stAct != cudaErrorNotSupported;
      else if (stAct != cudaSuccess) ++badAct;
      else {
        for (int p = 0; p < T; ++p)
          for (int col = 0; col < ds; ++col) {
            const uint16_t a = DA[(size_t)p * ds + col];
            if (col >= outTotal) badAct += a != 0xffff;
            else badAct += a != toBits(D[(size_t)p * ds + col], gAct);
          }
        for (int col = 0; col < ds; ++col) badAct += DA[(size_t)T * ds + col] != 0xffff;
      }
      // The capped grid (TSLORA_CUDA_LORA_SIDE_EXPAND_MAX_BLOCKS): blocks striding over the column blocks store the
      // same bits as the full grid, fp32 and Act (v10; the v9 layout ignores the cap and launches the full grid).
      for (int maxBlocks : {1, 3}) {
        std::vector<float> DC((size_t)(T + 1) * ds, NAN);
        std::vector<uint16_t> DAC((size_t)(T + 1) * ds, 0xffff);
        if (layout == 1) cl::loraSetSmallV10(!cl::loraSmallV10());
        const cudaError_t c1 = cl::loraExpandSmallDelta(dtype(), m, st, ws.data(), splits, DC.data(), ds, nullptr, true, false, maxBlocks);
        const cudaError_t c2 = cl::loraExpandSmallDelta(dtype(), m, st, ws.data(), splits, DAC.data(), ds, nullptr, true, true, maxBlocks);
        if (layout == 1) cl::loraSetSmallV10(!cl::loraSmallV10());
        int badCap = c1 == cudaSuccess ? 0 : 1;
        for (size_t e = 0; e < DC.size(); ++e) badCap += std::memcmp(&DC[e], &D[e], sizeof(float)) != 0;
        if (v10) {
          badCap += c2 != cudaSuccess;
          for (size_t e = 0; e < DAC.size(); ++e) badCap += DAC[e] != DA[e];
        }
        ++cases;
        if (badCap) { ++failures; printf("FAIL %s capped delta store (%s, stride +%d, %d blocks): %d values\n", name, v10 ? "v10" : "v9", dPad, maxBlocks, badCap); }
        else printf("ok %s capped delta store (%s, stride +%d, %d blocks): the full grid's bits\n", name, v10 ? "v10" : "v9", dPad, maxBlocks);
      }
      ++cases;
      if (badAct) { ++failures; printf("FAIL %s Act delta store (%s, stride +%d): %d values\n", name, v10 ? "v10" : "v9", dPad, badAct); }
      else printf("ok %s Act delta store (%s, stride +%d): %s\n", name, v10 ? "v10" : "v9", dPad,
                  v10 ? "act_round(fp32 delta)" : "refused (v9)");
      int bad = st2 == cudaSuccess ? 0 : 1;
      for (int p = 0; p < T; ++p)
        for (int col = 0; col < ds; ++col) {
          const float d = D[(size_t)p * ds + col];
          if (col >= outTotal) { bad += !std::isnan(d); continue; }
          const size_t i = (size_t)p * yStride + yOffset + col;
          const bool lora = rowSlots[p] >= 0 && ranks[rowSlots[p]] > 0;
          if (!lora && !(d == 0.0f && std::signbit(d))) ++bad;
          if (toBits(fromBits(Y[i], gAct) + d, gAct) != Yg[i]) ++bad;
        }
      for (int col = 0; col < ds; ++col) bad += !std::isnan(D[(size_t)T * ds + col]);
      ++cases;
      if (bad) { ++failures; printf("FAIL %s delta store (%s, stride +%d): %d values\n", name, v10 ? "v10" : "v9", dPad, bad); }
      else printf("ok %s delta store (%s, stride +%d): round(y + delta) == pair\n", name, v10 ? "v10" : "v9", dPad);
    }
  }
  check(name, cl::loraSmallV10() ? "pair v9 layout" : "pair v10 layout", Yv, variantDiffers, splits);
  check(name, cl::loraSmallNarrow() ? "pair 8-tile shrink" : "pair narrow shrink", Yn, narrowDiffers, splits);
  for (size_t i = 0; i < plans.size(); ++i) check(name, i == 0 ? "fused" : "fused 4x3", fusedOut[i], identical[i], plans[i].clusterSize);
}
int main(int argc, char** argv) {
  const bool quick = argc > 1 && std::string(argv[1]) == "--quick";
  std::vector<int> slots37 = {0, 1, -1, 2, 3, 0, 5, 4, 1, 0, 2, -1, 3, 5, 5, 1, 0, 2, 4, 3, 1, 0, 6, 2, 1, 4, 0, 3, 2, 5, 1, 0, 3, 4, 2, 6, 1};
  std::vector<int> ranksA = {1, 3, 8, 16, 64, 40, 0};
  for (bool half : {false, true}) {
    gAct = half ? Act::F16 : Act::BF16;
    for (bool cs : {false, true}) {
      std::string tag = std::string(half ? " fp16" : " bf16") + (cs ? " csgmv" : " triton");
      runCase(("qkv R64" + tag).c_str(), 384, {384, 128, 128}, 64, ranksA, slots37, cs, 8, 8, 0, 132, !quick);
      runCase(("down R64 odd" + tag).c_str(), 300, {200}, 64, ranksA, slots37, cs, 3, 5, 0, 132);
      runCase(("qkv R20 odd 3 splits" + tag).c_str(), 200, {200, 40, 40}, 20, {1, 5, 20, 0, 20, 3, 0}, slots37, cs, 3, 5, 3, 132);
      runCase(("qkv R16 4 splits, long K" + tag).c_str(), 2048, {256, 64, 64}, 16, {16, 8, 16, 0, 12, 16, 3}, slots37, cs, 0, 0, 4, 132, true);
      // v11's narrow shrink at its 2- and 4-tile widths (c*R = 16 and 32; qkv R16 above takes 6)
      runCase(("down R16 2 tiles" + tag).c_str(), 512, {64}, 16, {16, 8, 16, 0, 12, 16, 3}, slots37, cs, 0, 0, 0, 132);
      runCase(("gate_up R16 4 tiles" + tag).c_str(), 256, {64, 64}, 16, {16, 8, 16, 0, 12, 16, 3}, slots37, cs, 0, 0, 0, 132);
      // A whole position group of base rows (the delta store's early-exit blocks write -0.0f) beside adapter rows.
      std::vector<int> baseGroup(20, -1);
      for (int i : {3, 6}) baseGroup[i] = i % 2;  // triton: group 1 all base; csgmv: group 0 (base rows sort first)
      runCase(("down R16 base group" + tag).c_str(), 128, {72}, 16, {16, 8}, baseGroup, cs, 0, 0, 0, 132);
      if (quick) continue;
      std::vector<int> shared(64, 2);
      runCase(("gate_up R16 shared" + tag).c_str(), 512, {1024, 1024}, 16, {16, 16, 16, 0}, shared, cs, 0, 0, 0, 132);
      runCase(("batch1" + tag).c_str(), 256, {256, 64, 64}, 16, {16, 8}, {1}, cs, 0, 0, 0, 132);
      std::vector<int> distinct(128), ranks64(64, 16);
      for (int i = 0; i < 128; ++i) distinct[i] = (i * 37) % 64;  // 64 adapters, every group 16 runs
      runCase(("T128 64 adapters long K" + tag).c_str(), 1024, {256}, 16, ranks64, distinct, cs, 0, 0, 0, 132);
      std::vector<int> rows256(256);
      for (int i = 0; i < 256; ++i) rows256[i] = (i * 5) % 8;  // the kernel limit: 16 position groups
      runCase(("T256 8 adapters" + tag).c_str(), 256, {512, 128}, 16, std::vector<int>(8, 16), rows256, cs, 0, 0, 0, 132);
    }
  }
  printf("%d/%d failed\n", failures, cases);
  return failures != 0;
}
