// The int8 CPU LoRA pool (PoolDType::I8, lora.h) against two double-precision references built from the PEFT pairs:
//  - the adapter as the contract quantizes it (codes × scales, recomputed here from lora.h's rules): the kernels'
//    only error is fp32 accumulation (tight: 2e-5 of the largest delta, as the fp32 pool's test);
//  - the unquantized adapter: |error| of every output ≤ Σ_i |B_ni| · (sA_i / 2) · ||x||₁ + (sB_n / 2) · |û_i|, the
//    quantization step's bound (each dequantized weight is within half a step of its fp32 value; û = Â x), plus the
//    same fp32 slack.
// Usage: lora_int8_test [--list] [case ...]. Prints "ok <case>" or "FAIL <case>: why".
#include <cstdio>
#include <functional>
#include <map>
#include <stdexcept>

#include "cpu_expand.h"
#include "quantize_i8.h"
#include "slot_image.h"
#include "test_support.h"
#include "test_thread_pool.h"

using namespace tslora::lora;
using namespace tslora::lora::test;

namespace {

tslora::ThreadPool& threads() {
  static tslora::ThreadPool pool(2);
  return pool;
}
struct Failure : std::runtime_error {
  using std::runtime_error::runtime_error;
};
void expect(bool ok, const std::string& what) {
  if (!ok) throw Failure(what);
}

PoolConfig int8Config(int slots = 4, int maxRank = 64) {
  PoolConfig c = makeConfig(slots, maxRank, 2, 44, 36, 12, 52, 29);  // sizes off the vector widths and panels
  c.weightDtype = PoolDType::I8;
  return c;
}
const std::vector<int> kAllPeft = {kPeftQ, kPeftK, kPeftV, kPeftO, kPeftGate, kPeftUp, kPeftDown, kPeftEmbed, kPeftLmHead};
const Module kModules[] = {Module::QKV, Module::O, Module::GateUp, Module::Down, Module::Embed, Module::LmHead};

// The contract of lora.h, written out again: rows of `v` [rows, cols] quantized with their own absmax scale.
struct Quantized {
  std::vector<double> deq;    // code × scale
  std::vector<double> scale;  // per row
};
Quantized quantizeRows(const std::vector<float>& v, int64_t rows, int64_t cols) {
  Quantized q{std::vector<double>(v.size()), std::vector<double>(rows)};
  for (int64_t r = 0; r < rows; ++r) {
    float m = 0.0f;
    for (int64_t k = 0; k < cols; ++k) m = std::max(m, std::fabs(v[r * cols + k]));
    const float s = m / 127.0f;
    q.scale[r] = s;
    for (int64_t k = 0; k < cols; ++k) {
      const float code = s == 0.0f ? 0.0f : std::min(127.0f, std::max(-127.0f, std::nearbyint(v[r * cols + k] / s)));
      q.deq[r * cols + k] = double(code) * s;
    }
  }
  return q;
}

// ref: y with the dequantized adapter; exact: y with the fp32 adapter; bound: the quantization bound per element.
struct References {
  std::vector<double> ref, exact, bound;
};
References referencesFor(const PoolConfig& c, const std::vector<const TestAdapter*>& slotAdapters, Module module, int layer,
                         const std::vector<int>& rowSlots, const float* x, int xStride, const std::vector<float>& y0,
                         int yStride, const int32_t* tokenIds) {
  References out{std::vector<double>(y0.begin(), y0.end()), std::vector<double>(y0.begin(), y0.end()), std::vector<double>(y0.size(), 0.0)};
  const ModuleShape& s = c.shapes[static_cast<int>(module)];
  const bool embed = module == Module::Embed;
  for (size_t row = 0; row < rowSlots.size(); ++row) {
    const int slot = rowSlots[row];
    if (slot < 0 || slotAdapters[slot] == nullptr) continue;
    double xNorm1 = 0;
    if (!embed)
      for (int k = 0; k < s.in; ++k) xNorm1 += std::fabs(x[row * xStride + k]);
    else xNorm1 = 1.0;  // a one-hot row
    for (const TestPair& p : slotAdapters[slot]->pairs) {
      Module m; int slice;
      peftTarget(p.peftModule, m, slice);
      const int pl = p.layer < 0 ? 0 : p.layer;
      if (m != module || (pl != layer && m != Module::Embed && m != Module::LmHead)) continue;
      std::vector<float> folded(p.b.values.size());  // σ folded in fp32, as the pool does
      for (size_t i = 0; i < folded.size(); ++i) folded[i] = p.b.values[i] * p.scaling;
      const Quantized qa = quantizeRows(p.a.values, p.rank, s.in), qb = quantizeRows(folded, p.b.rows, p.rank);
      std::vector<double> u(p.rank), uq(p.rank);
      for (int i = 0; i < p.rank; ++i) {
        double acc = 0, accq = 0;
        for (int k = 0; k < s.in; ++k) {
          const double xk = embed ? (k == tokenIds[row] ? 1.0 : 0.0) : double(x[row * xStride + k]);
          acc += double(p.a.values[static_cast<size_t>(i) * s.in + k]) * xk;
          accq += qa.deq[static_cast<size_t>(i) * s.in + k] * xk;
        }
        u[i] = acc, uq[i] = accq;
      }
      const int first = slice < 0 ? 0 : s.sliceOffsets[slice];
      for (int64_t o = 0; o < p.b.rows; ++o) {
        double acc = 0, accq = 0, bound = 0;
        for (int i = 0; i < p.rank; ++i) {
          acc += double(folded[o * p.rank + i]) * u[i];
          accq += qb.deq[o * p.rank + i] * uq[i];
          // |q·s − v| ≤ s · (1/2 + 2^-17): half a step, plus the fp32 division's rounding before the rounding to a code.
          bound += std::fabs(folded[o * p.rank + i]) * qa.scale[i] * 0.50001 * xNorm1 + qb.scale[o] * 0.50001 * std::fabs(uq[i]);
        }
        const size_t at = row * yStride + first + o;
        out.exact[at] += acc, out.ref[at] += accq, out.bound[at] += bound;
      }
    }
  }
  return out;
}

struct Batch {
  std::vector<int> slots, counts;
};
const std::vector<std::pair<std::string, Batch>>& batches() {
  static const std::vector<std::pair<std::string, Batch>> list = {
      {"mixed prefill", {{0, 1, -1, 2, 0, 3}, {7, 33, 5, 1, 18, 2}}},
      {"decode-only", {{2, 0, 1, 2, 2, -1, 0, 3, 1, 2, 0, 0, 3, 1, 2, 0, 1}, std::vector<int>(17, 1)}},
      {"one adapter", {{3, 3, 3}, {20, 1, 45}}},
  };
  return list;
}

// One module of one batch through pool.apply; checks both references. Returns the largest |error| / bound seen.
double checkModule(const LoraPool& pool, const std::vector<const TestAdapter*>& slotAdapters, Module m, int layer,
                   const Segments& seg, bool csgmv, Rng& rng, const std::string& label) {
  const PoolConfig& c = pool.config();
  const ModuleShape& s = c.shapes[static_cast<int>(m)];
  const int T = static_cast<int>(seg.rowSlots.size()), yStride = s.outTotal();
  std::vector<float> x(static_cast<size_t>(T) * s.in), y(static_cast<size_t>(T) * yStride);
  std::vector<int32_t> ids(T);
  for (auto& v : x) v = rng.uniform();
  for (auto& v : y) v = rng.uniform();
  for (auto& v : ids) v = rng.integer(0, c.shapes[static_cast<int>(Module::Embed)].in - 1);
  const std::vector<float> y0 = y;
  const References r = referencesFor(c, slotAdapters, m, layer, seg.rowSlots, x.data(), s.in, y0, yStride, ids.data());
  pool.apply(layer, m, x.data(), s.in, y.data(), yStride, 0, seg.step(csgmv), threads(), ids.data());
  double maxDelta = 0;
  for (size_t i = 0; i < y.size(); ++i) maxDelta = std::max(maxDelta, std::fabs(r.ref[i] - y0[i]));
  const double slack = 2e-5 * std::max(1.0, maxDelta);
  double worst = 0;
  for (size_t i = 0; i < y.size(); ++i) {
    const double err = std::fabs(y[i] - r.ref[i]), errExact = std::fabs(y[i] - r.exact[i]);
    char buf[240];
    std::snprintf(buf, sizeof buf, "%s: %s layer %d element %zu: %.7g vs dequantized %.7g (max delta %.3g) / fp32 %.7g (bound %.3g)",
                  label.c_str(), moduleNameOf(m).c_str(), layer, i, double(y[i]), r.ref[i], maxDelta, r.exact[i], r.bound[i]);
    expect(err <= slack, buf);
    expect(errExact <= r.bound[i] + slack, buf);
    if (r.bound[i] > 0) worst = std::max(worst, errExact / r.bound[i]);
  }
  return worst;
}

void runAll(const LoraPool& pool, const std::vector<const TestAdapter*>& slotAdapters, Rng& rng, const std::string& label) {
  for (const auto& [name, batch] : batches())
    for (bool csgmv : {false, true}) {
      const Segments seg = buildSegments(batch.slots, batch.counts, csgmv, 16);
      for (Module m : kModules)
        for (int layer = 0; layer < ((m == Module::Embed || m == Module::LmHead) ? 1 : 2); ++layer)
          checkModule(pool, slotAdapters, m, layer, seg, csgmv, rng, label + (csgmv ? " csgmv " : " triton ") + name);
    }
}

// Ranks 1..64 in every dtype, fused pairs, missing modules, stale data (rank 64 then smaller in the same slot), slots
// written from slot images and from plain fp32 copies.
void caseReferences() {
  const PoolConfig c = int8Config();
  Rng rng(31);
  LoraPool pool(c);
  const TestAdapter big = makeAdapter(rng, c, 64, kAllPeft, DType::F32);
  const TestAdapter r16 = makeAdapter(rng, c, 16, kAllPeft, DType::F32);
  const TestAdapter r5 = makeAdapter(rng, c, 5, {kPeftQ, kPeftV, kPeftO, kPeftGate, kPeftEmbed}, DType::BF16);
  const TestAdapter fused = makeAdapter(rng, c, 8, {kPeftFusedQkv, kPeftFusedGateUp, kPeftDown, kPeftLmHead}, DType::F16);
  const TestAdapter r1 = makeAdapter(rng, c, 1, kAllPeft, DType::F32);
  pool.writeSlot(0, *buildHostAdapter(big.input(), c));
  pool.writeSlot(0, *buildSlotImage(*buildHostAdapter(r16.input(), c), c));  // stale rank-64 data beyond rank 16
  pool.writeSlot(1, *buildHostAdapter(big.input(), c));
  pool.writeSlot(2, *buildHostAdapter(big.input(), c));
  pool.writeSlot(2, *buildHostAdapter(r5.input(), c));
  pool.writeSlot(3, *buildSlotImage(*buildHostAdapter(fused.input(), c), c));
  runAll(pool, {&r16, &big, &r5, &fused}, rng, "int8");
  pool.writeSlot(1, *buildSlotImage(*buildHostAdapter(r1.input(), c), c));
  runAll(pool, {&r16, &r1, &r5, &fused}, rng, "int8 rank 1");
}

// The fused path's pieces: fusedShrink hands out the int8 codes and the A-row scales; u_raw = codes · x (the GEMM part's
// job, computed here); apply(shrunk = u_raw) and fusedExpand over any split of the columns give the same bits, within
// the tight bound of the dequantized reference.
void caseFused() {
  const PoolConfig c = int8Config();
  Rng rng(32);
  LoraPool pool(c);
  const TestAdapter ad = makeAdapter(rng, c, 13, kAllPeft, DType::F32);
  pool.writeSlot(2, *buildHostAdapter(ad.input(), c));
  for (const auto& [slots, counts] : std::vector<std::pair<std::vector<int>, std::vector<int>>>{{{2}, {1}}, {{2, -1, 2}, {3, 2, 4}}}) {
    const Segments seg = buildSegments(slots, counts, true, 16);
    for (Module m : {Module::QKV, Module::O, Module::GateUp, Module::Down, Module::LmHead}) {
      const ModuleShape& s = c.shapes[static_cast<int>(m)];
      LoraPool::ShrinkMatrix sm;
      expect(pool.fusedShrink(1, m, seg.step(true), sm), "fusedShrink takes a single-slot step");
      expect(sm.dtype == PoolDType::I8 && sm.aScale != nullptr && sm.rank == 13 && sm.rows == s.numSlices * 13, "int8 shrink matrix");
      const int T = static_cast<int>(seg.rowSlots.size());
      std::vector<float> x(static_cast<size_t>(T) * s.in), y(static_cast<size_t>(T) * s.outTotal()), u(static_cast<size_t>(T) * sm.uStride);
      for (auto& v : x) v = rng.uniform();
      for (auto& v : y) v = rng.uniform();
      const auto* codes = static_cast<const int8_t*>(sm.a);
      for (int t = 0; t < T; ++t)
        for (int i = 0; i < sm.rows; ++i) {
          float acc = 0;
          for (int k = 0; k < s.in; ++k) acc += float(codes[static_cast<size_t>(i) * s.in + k]) * x[t * s.in + k];
          u[t * sm.uStride + i] = acc;
        }
      std::vector<float> viaApply = y;
      pool.apply(1, m, nullptr, 0, viaApply.data(), s.outTotal(), 0, seg.step(true), threads(), nullptr, u.data());
      for (int split : {1, 7, 16, 33}) {
        std::vector<float> viaExpand = y;
        for (int c0 = 0; c0 < s.outTotal(); c0 += split) {
          pool.prefetchExpand(sm, c0, std::min(s.outTotal(), c0 + split));
          pool.fusedExpand(sm, u.data(), viaExpand.data(), s.outTotal(), c0, std::min(s.outTotal(), c0 + split));
        }
        expect(viaExpand == viaApply, "fusedExpand in ranges of " + std::to_string(split) + " equals apply(shrunk): " + moduleNameOf(m));
      }
      const References r = referencesFor(c, {nullptr, nullptr, &ad, nullptr}, m, 1, seg.rowSlots, x.data(), s.in, y, s.outTotal(), nullptr);
      double maxDelta = 0;
      for (size_t i = 0; i < y.size(); ++i) maxDelta = std::max(maxDelta, std::fabs(r.ref[i] - y[i]));
      for (size_t i = 0; i < y.size(); ++i)
        expect(std::fabs(viaApply[i] - r.ref[i]) <= 2e-5 * std::max(1.0, maxDelta), "fused int8 " + moduleNameOf(m) + " vs the dequantized reference");
    }
  }
}

// The AVX-512 expand and the generic one agree on int8 panels (bitwise where the build has FMA: -march=native here).
void caseExpandCopies() {
  if (!wideExpandAvailable()) return;
  const PoolConfig c = int8Config();
  Rng rng(33);
  LoraPool pool(c);
  const TestAdapter a = makeAdapter(rng, c, 64, kAllPeft, DType::F32), b = makeAdapter(rng, c, 7, kAllPeft, DType::F32);
  pool.writeSlot(0, *buildHostAdapter(a.input(), c));
  pool.writeSlot(3, *buildHostAdapter(b.input(), c));
  const bool before = wideExpandInUse();
  for (const auto& [name, batch] : batches()) {
    const Segments seg = buildSegments(batch.slots, batch.counts, true, 16);
    for (Module m : kModules) {
      std::vector<std::vector<float>> outs;
      for (bool wide : {false, true}) {
        useWideExpand(wide);
        Rng same(77);
        const ModuleShape& s = c.shapes[static_cast<int>(m)];
        const int T = static_cast<int>(seg.rowSlots.size());
        std::vector<float> x(static_cast<size_t>(T) * s.in), y(static_cast<size_t>(T) * s.outTotal());
        std::vector<int32_t> ids(T);
        for (auto& v : x) v = same.uniform();
        for (auto& v : y) v = same.uniform();
        for (auto& v : ids) v = same.integer(0, c.shapes[static_cast<int>(Module::Embed)].in - 1);
        pool.apply(0, m, x.data(), s.in, y.data(), s.outTotal(), 0, seg.step(true), threads(), ids.data());
        outs.push_back(y);
      }
      expect(outs[0] == outs[1], "generic and AVX-512 int8 expand differ: " + name + " " + moduleNameOf(m));
    }
  }
  useWideExpand(before);
}

// Storage: a quarter of the fp32 pool's codes plus one fp32 scale per A row and per (padded) output column; the codes
// of a row / column reach ±127 at its absmax and ties round to even; zero rows have scale 0; images of another dtype
// are refused.
void caseStorage() {
  const PoolConfig c = int8Config(3, 16);
  PoolConfig f32 = c;
  f32.weightDtype = PoolDType::F32;
  size_t scales = 0, elems = 0;
  for (const ModuleShape& s : c.shapes) {
    const int layers = &s == &c.shapes[static_cast<int>(Module::Embed)] || &s == &c.shapes[static_cast<int>(Module::LmHead)] ? 1 : c.numLayers;
    const size_t padded = (s.outTotal() + 15) / 16 * 16;
    elems += layers * (static_cast<size_t>(s.numSlices) * 16 * s.in + padded * 16);
    scales += layers * (static_cast<size_t>(s.numSlices) * 16 + padded);
  }
  expect(LoraPool(f32).sizeBytes() == 3 * elems * 4, "fp32 pool size");
  expect(LoraPool(c).sizeBytes() == 3 * (elems + scales * 4), "int8 pool size: codes + scales");
  using detail::quantizeI8;
  expect(quantizeI8(2.5f, 1.0f) == 2 && quantizeI8(3.5f, 1.0f) == 4 && quantizeI8(-2.5f, 1.0f) == -2, "ties to even");
  expect(quantizeI8(5.0f, 0.0f) == 0 && quantizeI8(200.0f, 1.0f) == 127 && quantizeI8(-200.0f, 1.0f) == -127, "zero scale, clamp");
  const float row[3] = {-0.3f, 1.27f, 0.0f};
  const float s = detail::absmaxScale(row, 3, 1);
  expect(s == 1.27f / 127.0f && quantizeI8(row[1], s) == 127 && quantizeI8(row[0], s) == -30, "absmax scale and codes");
  Rng rng(34);
  const TestAdapter ad = makeAdapter(rng, c, 4, {kPeftQ}, DType::F32);
  const auto image = buildSlotImage(*buildHostAdapter(ad.input(), f32), f32);
  LoraPool pool(c);
  try {
    pool.writeSlot(0, *image);
    throw Failure("an fp32 slot image was written into an int8 pool");
  } catch (const std::invalid_argument& e) {
    expect(std::string(e.what()).rfind("incompatible", 0) == 0, e.what());
  }
}

}  // namespace

int main(int argc, char** argv) {
  const std::map<std::string, std::function<void()>> cases = {
      {"references", caseReferences}, {"fused", caseFused}, {"expand-copies", caseExpandCopies}, {"storage", caseStorage}};
  std::vector<std::string> selected(argv + 1, argv + argc);
  if (selected.size() == 1 && selected[0] == "--list") {
    for (const auto& [name, fn] : cases) std::printf("%s\n", name.c_str());
    return 0;
  }
  if (selected.empty())
    for (const auto& [name, fn] : cases) selected.push_back(name);
  int failures = 0;
  for (const auto& name : selected) {
    auto it = cases.find(name);
    try {
      if (it == cases.end()) throw Failure("unknown case");
      it->second();
      std::printf("ok %s\n", name.c_str());
    } catch (const std::exception& e) {
      std::printf("FAIL %s: %s\n", name.c_str(), e.what());
      ++failures;
    }
  }
  return failures == 0 ? 0 : 1;
}
