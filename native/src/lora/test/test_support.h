// Shared by the CPU kernel test, the CUDA kernel test and the benchmarks: random PEFT-style adapters (kept as the
// exact float values the kernels see), a naive double-precision reference, and per-step segment metadata built the
// way src/engine/model/lora-segments.ts builds it (spec e.4, e.5).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "lora.h"
#include "tslora/half-float.h"

namespace tslora::lora::test {

struct Rng {
  std::mt19937 gen;
  explicit Rng(uint32_t seed) : gen(seed) {}
  float uniform(float lo = -1.0f, float hi = 1.0f) { return std::uniform_real_distribution<float>(lo, hi)(gen); }
  int integer(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(gen); }  // inclusive
};

// bf16 both ways and fp16 → fp32: tslora/half-float.h (bf16ToF32, f32ToBf16, f16ToF32). fp32 → fp16 rounds through the
// compiler's _Float16 (round to nearest even).
inline uint16_t floatToF16(float f) {
  _Float16 h = static_cast<_Float16>(f);
  uint16_t bits;
  std::memcpy(&bits, &h, 2);
  return bits;
}

// One tensor in a chosen dtype plus the float values it represents exactly.
struct TestTensor {
  DType dtype = DType::F32;
  int64_t rows = 0, cols = 0;
  std::vector<float> values;    // [rows, cols] exact values
  std::vector<float> f32;       // storage when F32
  std::vector<uint16_t> half;   // storage when F16 / BF16
  void fill(Rng& rng, DType type, int64_t r, int64_t c, float scale) {
    dtype = type; rows = r; cols = c;
    values.resize(r * c);
    for (auto& v : values) {
      const float f = rng.uniform() * scale;
      v = type == DType::BF16 ? bf16ToF32(f32ToBf16(f)) : type == DType::F16 ? f16ToF32(floatToF16(f)) : f;
    }
    if (type == DType::F32) f32 = values;
    else {
      half.resize(values.size());
      for (size_t i = 0; i < values.size(); ++i) half[i] = type == DType::BF16 ? f32ToBf16(values[i]) : floatToF16(values[i]);
    }
  }
  TensorInput input() const {
    TensorInput t;
    t.data = dtype == DType::F32 ? static_cast<const void*>(f32.data()) : static_cast<const void*>(half.data());
    t.dtype = dtype; t.rows = rows; t.cols = cols;
    return t;
  }
};

struct TestPair {
  int layer = 0, peftModule = 0, rank = 0;
  float scaling = 1.0f;
  TestTensor a, b;
};

struct TestAdapter {
  int rank = 0;
  std::vector<TestPair> pairs;
  AdapterInput input() const {
    AdapterInput in;
    in.rank = rank;
    for (const auto& p : pairs) {
      PairInput pi;
      pi.layer = p.layer; pi.peftModule = p.peftModule; pi.rank = p.rank; pi.scaling = p.scaling;
      pi.a = p.a.input(); pi.b = p.b.input();
      in.pairs.push_back(pi);
    }
    return in;
  }
};

inline std::string moduleNameOf(Module m) {
  static const char* names[] = {"qkv_proj", "o_proj", "gate_up_proj", "down_proj", "embed_tokens", "lm_head"};
  return names[static_cast<int>(m)];
}

inline PoolConfig makeConfig(int slots, int maxRank, int layers, int hidden, int qOut, int kvOut, int inter, int vocab) {
  PoolConfig c;
  c.numSlots = slots; c.maxRank = maxRank; c.numLayers = layers;
  for (bool& t : c.targets) t = true;
  auto set = [&](Module m, int in, std::vector<int> widths) {
    ModuleShape& s = c.shapes[static_cast<int>(m)];
    s.in = in; s.numSlices = static_cast<int>(widths.size());
    for (size_t j = 0; j < widths.size(); ++j) s.sliceOffsets[j + 1] = s.sliceOffsets[j] + widths[j];
  };
  set(Module::QKV, hidden, {qOut, kvOut, kvOut});
  set(Module::O, qOut, {hidden});
  set(Module::GateUp, hidden, {inter, inter});
  set(Module::Down, inter, {hidden});
  set(Module::Embed, vocab, {hidden});
  set(Module::LmHead, hidden, {vocab});
  return c;
}

// (module, slice or -1 = all) of a PEFT module index.
inline void peftTarget(int peft, Module& m, int& slice) {
  static const int mod[kNumPeftModules] = {0, 0, 0, 1, 2, 2, 3, 4, 5, 0, 2};
  static const int sl[kNumPeftModules] = {0, 1, 2, 0, 0, 1, 0, 0, 0, -1, -1};
  m = static_cast<Module>(mod[peft]);
  slice = sl[peft];
}

// Random adapter of rank `rank`: each listed PEFT module in each layer, per-module rank in [1, rank] (one module
// gets exactly `rank`), weights in `dtype`, scaling a power of two (folding into B stays exact in any dtype).
inline TestAdapter makeAdapter(Rng& rng, const PoolConfig& c, int rank, const std::vector<int>& peftModules, DType dtype,
                               bool varyModuleRanks = true) {
  TestAdapter ad;
  ad.rank = rank;
  bool fullRankUsed = false;
  for (int peft : peftModules) {
    Module m; int slice;
    peftTarget(peft, m, slice);
    const ModuleShape& s = c.shapes[static_cast<int>(m)];
    const int layers = (m == Module::Embed || m == Module::LmHead) ? 1 : c.numLayers;
    for (int layer = 0; layer < layers; ++layer) {
      TestPair p;
      p.layer = layers == 1 && (m == Module::Embed || m == Module::LmHead) ? -1 : layer;
      p.peftModule = peft;
      p.rank = (varyModuleRanks && fullRankUsed) ? rng.integer(1, rank) : rank;
      fullRankUsed = true;
      p.scaling = std::ldexp(1.0f, rng.integer(-2, 1));
      const int outRows = slice < 0 ? s.outTotal() : s.sliceOffsets[slice + 1] - s.sliceOffsets[slice];
      p.a.fill(rng, dtype, p.rank, s.in, 1.0f / std::sqrt(static_cast<float>(s.in)));
      p.b.fill(rng, dtype, outRows, p.rank, 1.0f);
      ad.pairs.push_back(std::move(p));
    }
  }
  return ad;
}

// y[row, yOffset + col] += delta for the rows of `rowSlots` (slot per physical row, -1 = base) in double precision,
// straight from the PEFT pairs (independent of the pool layout).
inline void referenceApply(const PoolConfig& c, const std::vector<const TestAdapter*>& slotAdapters, Module module, int layer,
                           const std::vector<int>& rowSlots, const float* x, int xStride, std::vector<double>& y, int yStride,
                           int yOffset, const int32_t* tokenIds = nullptr) {
  const ModuleShape& s = c.shapes[static_cast<int>(module)];
  for (size_t row = 0; row < rowSlots.size(); ++row) {
    const int slot = rowSlots[row];
    if (slot < 0 || slotAdapters[slot] == nullptr) continue;
    for (const TestPair& p : slotAdapters[slot]->pairs) {
      Module m; int slice;
      peftTarget(p.peftModule, m, slice);
      const int pl = p.layer < 0 ? 0 : p.layer;
      if (m != module || (pl != layer && (module != Module::Embed && module != Module::LmHead))) continue;
      std::vector<double> u(p.rank);
      for (int i = 0; i < p.rank; ++i) {
        double acc = 0;
        if (module == Module::Embed) acc = p.a.values[static_cast<size_t>(i) * s.in + tokenIds[row]];
        else for (int k = 0; k < s.in; ++k) acc += double(p.a.values[static_cast<size_t>(i) * s.in + k]) * x[row * xStride + k];
        u[i] = acc;
      }
      const int first = slice < 0 ? 0 : s.sliceOffsets[slice];
      for (int64_t o = 0; o < p.b.rows; ++o) {
        double acc = 0;
        for (int i = 0; i < p.rank; ++i) acc += double(p.b.values[o * p.rank + i]) * u[i];
        y[row * yStride + yOffset + first + o] += double(p.scaling) * acc;
      }
    }
  }
}

// Segment metadata for a batch of requests (slot per request, token count per request).
struct Segments {
  std::vector<int32_t> segIndptr, weightIndices, permutation;  // permutation empty = identity
  int chunkSize = 16;
  std::vector<int> rowSlots;  // slot per physical row
  StepLora step(bool csgmv) const {
    StepLora s;
    s.csgmv = csgmv;
    s.segIndptr = segIndptr.data();
    s.weightIndices = weightIndices.data();
    s.numSegments = static_cast<int>(weightIndices.size());
    s.permutation = permutation.empty() ? nullptr : permutation.data();
    s.numTokens = static_cast<int>(rowSlots.size());
    s.chunkSize = chunkSize;
    return s;
  }
};

inline int csgmvChunkSize(int numTokens, int maxChunk) {
  if (maxChunk == 16) return 16;
  const int c = numTokens >= 256 ? 128 : numTokens >= 64 ? 32 : 16;
  return std::min(c, maxChunk);
}

inline Segments buildSegments(const std::vector<int>& slots, const std::vector<int>& counts, bool csgmv, int maxChunk) {
  Segments seg;
  for (size_t i = 0; i < slots.size(); ++i) seg.rowSlots.insert(seg.rowSlots.end(), counts[i], slots[i]);
  const int total = static_cast<int>(seg.rowSlots.size());
  seg.segIndptr.push_back(0);
  if (!csgmv) {  // one segment per request (zero-length requests dropped)
    int maxLen = 1, pos = 0;
    for (size_t i = 0; i < slots.size(); ++i) {
      if (counts[i] == 0) continue;
      pos += counts[i];
      seg.segIndptr.push_back(pos);
      seg.weightIndices.push_back(slots[i]);
      maxLen = std::max(maxLen, counts[i]);
    }
    seg.chunkSize = maxLen;
    return seg;
  }
  seg.chunkSize = csgmvChunkSize(total, maxChunk);
  std::vector<int32_t> order(total);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return seg.rowSlots[a] < seg.rowSlots[b]; });
  for (int pos = 0; pos < total;) {
    const int slot = seg.rowSlots[order[pos]];
    int end = pos;
    while (end < total && seg.rowSlots[order[end]] == slot) ++end;
    const int step = slot < 0 ? end - pos : seg.chunkSize;  // base rows: one do-nothing segment
    for (int b = pos; b < end; b += step) {
      seg.segIndptr.push_back(std::min(end, b + step));
      seg.weightIndices.push_back(slot);
    }
    pos = end;
  }
  bool identity = true;
  for (int i = 0; i < total; ++i) identity = identity && order[i] == i;
  if (!identity) seg.permutation = order;
  return seg;
}

}  // namespace tslora::lora::test
