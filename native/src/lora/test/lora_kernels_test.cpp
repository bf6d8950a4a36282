// CPU LoRA pool + kernel tests against a naive double-precision reference built straight from the PEFT pairs.
// Usage: lora_kernels_test [--list] [case ...]   (no case = all). Prints "ok <case>" or "FAIL <case>: why".
#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <stdexcept>

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

// Small Llama-like shapes with sizes that are not multiples of 8 (vector tails get exercised).
PoolConfig smallConfig(int slots = 4, int maxRank = 64) { return makeConfig(slots, maxRank, 2, 44, 36, 12, 52, 29); }

const std::vector<int> kAllPeft = {kPeftQ, kPeftK, kPeftV, kPeftO, kPeftGate, kPeftUp, kPeftDown, kPeftEmbed, kPeftLmHead};
const Module kModules[] = {Module::QKV, Module::O, Module::GateUp, Module::Down, Module::Embed, Module::LmHead};

// Runs every module and layer of a batch through the pool and the reference; returns max relative error.
void checkBatch(const LoraPool& pool, const std::vector<const TestAdapter*>& slotAdapters, const Segments& seg, bool csgmv,
                Rng& rng, const std::string& label, int extraStride = 0, double tolerance = 2e-5) {
  const PoolConfig& c = pool.config();
  const int T = static_cast<int>(seg.rowSlots.size());
  for (Module m : kModules) {
    const ModuleShape& s = c.shapes[static_cast<int>(m)];
    const int layers = (m == Module::Embed || m == Module::LmHead) ? 1 : c.numLayers;
    for (int layer = 0; layer < layers; ++layer) {
      const int xStride = s.in + extraStride, yOffset = extraStride, yStride = s.outTotal() + 2 * extraStride;
      std::vector<float> x(static_cast<size_t>(T) * xStride), y(static_cast<size_t>(T) * yStride);
      std::vector<int32_t> ids(T);
      for (auto& v : x) v = rng.uniform();
      for (auto& v : y) v = rng.uniform();
      for (auto& v : ids) v = rng.integer(0, c.shapes[static_cast<int>(Module::Embed)].in - 1);
      std::vector<double> ref(y.begin(), y.end());
      referenceApply(c, slotAdapters, m, layer, seg.rowSlots, x.data(), xStride, ref, yStride, yOffset, ids.data());
      const std::vector<float> y0 = y;
      pool.apply(layer, m, x.data(), xStride, y.data(), yStride, yOffset, seg.step(csgmv), threads(), ids.data());
      double maxErr = 0, maxDelta = 0;
      for (int row = 0; row < T; ++row) {
        const int slot = seg.rowSlots[row];
        for (int col = 0; col < yStride; ++col) {
          const size_t i = static_cast<size_t>(row) * yStride + col;
          const bool lora = slot >= 0 && slotAdapters[slot] != nullptr && col >= yOffset && col < yOffset + s.outTotal();
          if (!lora) {
            expect(y[i] == y0[i], label + ": " + moduleNameOf(m) + " changed a base row or a column outside the module");
            continue;
          }
          maxErr = std::max(maxErr, std::abs(double(y[i]) - ref[i]));
          maxDelta = std::max(maxDelta, std::abs(ref[i] - double(y0[i])));
        }
      }
      char buf[200];
      std::snprintf(buf, sizeof buf, "%s: %s layer %d max error %.3g vs max delta %.3g", label.c_str(),
                    moduleNameOf(m).c_str(), layer, maxErr, maxDelta);
      expect(maxErr <= tolerance * std::max(1.0, maxDelta), buf);
    }
  }
}

struct Batch {
  std::vector<int> slots, counts;
};
const std::vector<std::pair<std::string, Batch>>& batches() {
  static const std::vector<std::pair<std::string, Batch>> list = {
      {"mixed prefill", {{0, 1, -1, 2, 0, 3}, {7, 33, 5, 1, 18, 2}}},
      {"skewed + zero-length", {{1, 0, 2, 3, -1, 1}, {300, 0, 1, 2, 9, 0}}},
      {"decode-only", {{2, 0, 1, 2, 2, -1, 0, 3, 1, 2, 0, 0, 3, 1, 2, 0, 1}, std::vector<int>(17, 1)}},
      {"all base", {{-1, -1}, {4, 3}}},
      {"one adapter", {{3, 3, 3}, {20, 1, 45}}},
  };
  return list;
}

void runBatches(const LoraPool& pool, const std::vector<const TestAdapter*>& slotAdapters, Rng& rng, const std::string& label,
                double tolerance = 2e-5) {
  for (const auto& [name, batch] : batches()) {
    checkBatch(pool, slotAdapters, buildSegments(batch.slots, batch.counts, false, 16), false, rng, label + " triton " + name,
               0, tolerance);
    for (int chunk : {16, 32, 64, 128})
      checkBatch(pool, slotAdapters, buildSegments(batch.slots, batch.counts, true, chunk), true, rng,
                 label + " csgmv C<=" + std::to_string(chunk) + " " + name, 0, tolerance);
  }
}

void caseRanks() {
  const PoolConfig c = smallConfig();
  const std::vector<int> ranks = {1, 3, 5, 8, 16, 32, 64};
  Rng rng(11);
  LoraPool pool(c);
  std::vector<TestAdapter> adapters;
  for (int r : ranks) adapters.push_back(makeAdapter(rng, c, r, kAllPeft, DType::F32));
  // Rotate ranks through the slots so every slot sees larger and smaller ranks (stale data beyond r).
  for (size_t start = 0; start < ranks.size(); start += 2) {
    std::vector<const TestAdapter*> slotAdapters(c.numSlots, nullptr);
    for (int slot = 0; slot < c.numSlots; ++slot) {
      const TestAdapter& ad = adapters[(start + slot) % adapters.size()];
      pool.writeSlot(slot, *buildHostAdapter(ad.input(), c));
      slotAdapters[slot] = &ad;
      expect(pool.slotRank(slot) == ad.rank, "slotRank after writeSlot");
    }
    runBatches(pool, slotAdapters, rng, "ranks from " + std::to_string(ranks[start]));
  }
}

void caseMissingPieces() {
  const PoolConfig c = smallConfig();
  Rng rng(12);
  LoraPool pool(c);
  const TestAdapter qv = makeAdapter(rng, c, 8, {kPeftQ, kPeftV, kPeftGate}, DType::BF16);  // no k, no up
  const TestAdapter oOnly = makeAdapter(rng, c, 16, {kPeftO}, DType::F16);
  const TestAdapter full = makeAdapter(rng, c, 32, kAllPeft, DType::F32);
  pool.writeSlot(0, *buildHostAdapter(full.input(), c));  // stale rank-32 data under the next two
  pool.writeSlot(0, *buildHostAdapter(qv.input(), c));
  pool.writeSlot(1, *buildHostAdapter(full.input(), c));
  pool.writeSlot(1, *buildHostAdapter(oOnly.input(), c));
  pool.writeSlot(2, *buildHostAdapter(full.input(), c));
  runBatches(pool, {&qv, &oOnly, &full, nullptr}, rng, "missing pieces");
}

void caseFused() {
  const PoolConfig c = smallConfig();
  Rng rng(13);
  LoraPool pool(c);
  const TestAdapter fused = makeAdapter(rng, c, 16, {kPeftFusedQkv, kPeftFusedGateUp, kPeftDown}, DType::BF16);
  const TestAdapter split = makeAdapter(rng, c, 5, {kPeftQ, kPeftK, kPeftV, kPeftUp}, DType::F16);
  pool.writeSlot(1, *buildHostAdapter(fused.input(), c));
  pool.writeSlot(3, *buildHostAdapter(split.input(), c));
  runBatches(pool, {nullptr, &fused, nullptr, &split}, rng, "fused qkv/gate_up");
}

void caseStrides() {
  const PoolConfig c = smallConfig();
  Rng rng(14);
  LoraPool pool(c);
  const TestAdapter a = makeAdapter(rng, c, 8, kAllPeft, DType::F32), b = makeAdapter(rng, c, 3, kAllPeft, DType::BF16);
  pool.writeSlot(0, *buildHostAdapter(a.input(), c));
  pool.writeSlot(2, *buildHostAdapter(b.input(), c));
  const Batch& batch = batches()[0].second;
  checkBatch(pool, {&a, nullptr, &b, nullptr}, buildSegments(batch.slots, batch.counts, true, 32), true, rng, "strides", 7);
  checkBatch(pool, {&a, nullptr, &b, nullptr}, buildSegments(batch.slots, batch.counts, false, 16), false, rng, "strides", 5);
}

// Runs one module over a batch and returns y (for bitwise comparisons).
std::vector<float> runOnce(const LoraPool& pool, Module m, int layer, const Segments& seg, bool csgmv, uint32_t seed) {
  const ModuleShape& s = pool.config().shapes[static_cast<int>(m)];
  Rng rng(seed);
  const int T = static_cast<int>(seg.rowSlots.size());
  std::vector<float> x(static_cast<size_t>(T) * s.in), y(static_cast<size_t>(T) * s.outTotal());
  std::vector<int32_t> ids(T);
  for (auto& v : x) v = rng.uniform();
  for (auto& v : y) v = rng.uniform();
  for (auto& v : ids) v = rng.integer(0, pool.config().shapes[static_cast<int>(Module::Embed)].in - 1);
  pool.apply(layer, m, x.data(), s.in, y.data(), s.outTotal(), 0, seg.step(csgmv), threads(), ids.data());
  return y;
}

// bf16 pool storage: bf16 adapter values with power-of-two scalings are stored exactly (fp32-level error); fp32
// adapters are rounded once to bf16 (relative error ~2^-9 per weight).
void caseBf16Storage() {
  PoolConfig c = smallConfig();
  c.weightDtype = PoolDType::BF16;
  Rng rng(18);
  LoraPool pool(c);
  const TestAdapter big = makeAdapter(rng, c, 64, kAllPeft, DType::F32);
  const TestAdapter exact1 = makeAdapter(rng, c, 16, kAllPeft, DType::BF16), exact2 = makeAdapter(rng, c, 5, kAllPeft, DType::BF16);
  pool.writeSlot(0, *buildHostAdapter(big.input(), c));  // stale rank-64 data under the rank-16 adapter
  pool.writeSlot(0, *buildHostAdapter(exact1.input(), c));
  pool.writeSlot(2, *buildHostAdapter(exact2.input(), c));
  runBatches(pool, {&exact1, nullptr, &exact2, nullptr}, rng, "bf16 storage, exact");
  const TestAdapter rounded = makeAdapter(rng, c, 32, kAllPeft, DType::F32);
  pool.writeSlot(1, *buildHostAdapter(rounded.input(), c));
  runBatches(pool, {&exact1, &rounded, &exact2, nullptr}, rng, "bf16 storage, rounded", 1e-2);
  expect(pool.sizeBytes() * 2 == LoraPool(smallConfig()).sizeBytes(), "bf16 pool is half the size of an fp32 pool");
}

void caseStaleSlot() {
  for (PoolDType dtype : {PoolDType::F32, PoolDType::BF16}) {
  PoolConfig c = smallConfig(2, 64);
  c.weightDtype = dtype;
  Rng rng(15);
  const TestAdapter big = makeAdapter(rng, c, 64, kAllPeft, DType::F32, false);
  const TestAdapter small = makeAdapter(rng, c, 8, {kPeftQ, kPeftV, kPeftO, kPeftGate, kPeftUp, kPeftEmbed}, DType::BF16);
  LoraPool reused(c), fresh(c);
  reused.writeSlot(0, *buildHostAdapter(big.input(), c));
  reused.writeSlot(0, *buildHostAdapter(small.input(), c));  // rank 64 → rank 8 in the same slot
  fresh.writeSlot(0, *buildHostAdapter(small.input(), c));
  for (const auto& [name, batch] : batches()) {
    std::vector<int> slots = batch.slots;
    for (int& s : slots) s = s < 0 ? -1 : (s % 2 == 0 ? 0 : 1);  // slot 1 stays empty (rank 0)
    for (bool csgmv : {false, true}) {
      const Segments seg = buildSegments(slots, batch.counts, csgmv, 64);
      for (Module m : kModules)
        for (int layer = 0; layer < c.numLayers; ++layer)
          expect(runOnce(reused, m, layer, seg, csgmv, 99) == runOnce(fresh, m, layer, seg, csgmv, 99),
                 "stale slot differs from a fresh slot: " + name + " " + moduleNameOf(m));
    }
  }
  }
}

void caseClearSlot() {
  const PoolConfig c = smallConfig(2, 16);
  Rng rng(16);
  const TestAdapter a = makeAdapter(rng, c, 16, kAllPeft, DType::F32);
  LoraPool pool(c), empty(c);
  pool.writeSlot(1, *buildHostAdapter(a.input(), c));
  pool.clearSlot(1);
  expect(pool.slotRank(1) == 0, "slotRank after clearSlot");
  const Segments seg = buildSegments({1, 0, 1}, {5, 2, 9}, true, 16);
  for (Module m : kModules)
    expect(runOnce(pool, m, 1, seg, true, 5) == runOnce(empty, m, 1, seg, true, 5), "cleared slot still changes output");
}

template <typename Fn>
void expectThrow(Fn fn, const std::string& prefix, const std::string& what) {
  try {
    fn();
  } catch (const std::invalid_argument& e) {
    expect(std::string(e.what()).rfind(prefix, 0) == 0, what + ": message '" + e.what() + "' does not start with '" + prefix + "'");
    return;
  }
  throw Failure(what + ": no std::invalid_argument thrown");
}

void caseErrors() {
  const PoolConfig c = smallConfig(2, 16);
  Rng rng(17);
  LoraPool pool(c);
  auto base = [&] { return makeAdapter(rng, c, 8, {kPeftQ, kPeftK, kPeftV, kPeftDown, kPeftEmbed}, DType::F32); };
  {
    TestAdapter ad = base();
    ad.pairs[1].b.f32[3] = std::nanf("");
    expectThrow([&] { buildHostAdapter(ad.input(), c); }, "corrupt adapter file", "NaN in lora_B");
    ad = base();
    ad.pairs[0].a.f32[0] = INFINITY;
    expectThrow([&] { buildHostAdapter(ad.input(), c); }, "corrupt adapter file", "Inf in lora_A");
  }
  {
    TestAdapter ad = makeAdapter(rng, c, 8, {kPeftQ}, DType::BF16);
    ad.pairs[0].a.half[2] = 0x7fc0;  // bf16 NaN
    expectThrow([&] { buildHostAdapter(ad.input(), c); }, "corrupt adapter file", "bf16 NaN");
    ad = makeAdapter(rng, c, 8, {kPeftV}, DType::F16);
    ad.pairs[0].b.half[0] = 0x7c00;  // f16 Inf
    expectThrow([&] { buildHostAdapter(ad.input(), c); }, "corrupt adapter file", "f16 Inf");
  }
  TestAdapter ad = base();
  ad.pairs[0].a.cols -= 1;
  expectThrow([&] { buildHostAdapter(ad.input(), c); }, "incompatible", "lora_A in-size mismatch");
  ad = base();
  ad.pairs[2].b.rows += 4;
  expectThrow([&] { buildHostAdapter(ad.input(), c); }, "incompatible", "k_proj out-size mismatch");
  ad = base();
  ad.pairs[0].rank = 9;
  expectThrow([&] { buildHostAdapter(ad.input(), c); }, "incompatible", "pair rank above adapter rank");
  ad = makeAdapter(rng, smallConfig(2, 64), 32, {kPeftQ}, DType::F32);
  expectThrow([&] { buildHostAdapter(ad.input(), c); }, "incompatible", "rank above pool max");
  ad = base();
  ad.pairs[0].layer = 7;
  expectThrow([&] { buildHostAdapter(ad.input(), c); }, "incompatible", "layer out of range");
  ad = base();
  ad.pairs.push_back(ad.pairs[0]);
  expectThrow([&] { buildHostAdapter(ad.input(), c); }, "incompatible", "duplicate pair");
  {
    PoolConfig noDown = c;
    noDown.targets[static_cast<int>(Module::Down)] = false;
    ad = base();
    expectThrow([&] { buildHostAdapter(ad.input(), noDown); }, "incompatible", "module outside the pool");
    LoraPool other(noDown);
    ad = makeAdapter(rng, c, 4, {kPeftQ}, DType::F32);
    expectThrow([&] { other.writeSlot(0, *buildHostAdapter(ad.input(), c)); }, "incompatible", "adapter for another pool");
  }
  expectThrow([&] { pool.writeSlot(2, *buildHostAdapter(base().input(), c)); }, "LoRA slot", "slot out of range");
  pool.writeSlot(0, *buildHostAdapter(base().input(), c));
  // Bad step metadata throws instead of reading out of bounds.
  Segments seg = buildSegments({0, 1}, {3, 2}, true, 16);
  std::vector<float> x(5 * 64), y(5 * 64);
  auto run = [&](const Segments& s) {
    pool.apply(0, Module::QKV, x.data(), 44, y.data(), 60, 0, s.step(true), threads());
  };
  Segments bad = seg;
  bad.segIndptr.back() = 9;
  expectThrow([&] { run(bad); }, "LoRA step", "segment past the tokens");
  bad = seg;
  bad.weightIndices[0] = 5;
  expectThrow([&] { run(bad); }, "LoRA step", "slot out of range");
  bad = buildSegments({1, 0}, {2, 3}, true, 16);
  bad.permutation[1] = bad.permutation[0];
  expectThrow([&] { run(bad); }, "LoRA step", "repeated permutation entry");
  std::vector<int32_t> ids = {0, 99, 2, 1, 0};
  expectThrow([&] { pool.apply(0, Module::Embed, nullptr, 0, y.data(), 44, 0, seg.step(true), threads(), ids.data()); },
              "LoRA apply", "token id outside the vocabulary");
  expectThrow([&] { pool.apply(0, Module::QKV, x.data(), 10, y.data(), 60, 0, seg.step(true), threads()); }, "LoRA apply",
              "input stride too small");
}

}  // namespace

int main(int argc, char** argv) {
  const std::map<std::string, std::function<void()>> cases = {
      {"ranks", caseRanks},           {"missing-pieces", caseMissingPieces}, {"fused", caseFused},
      {"strides", caseStrides},       {"stale-slot", caseStaleSlot},         {"clear-slot", caseClearSlot},
      {"errors", caseErrors},         {"bf16-storage", caseBf16Storage},
  };
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
