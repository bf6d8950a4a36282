// Test/bench-side device copy of a LoRA pool in the lora.h layout, built straight from PEFT-style test adapters:
// A [S, c*R, in], B [S, outTotal, R] in bf16/fp16. Everything outside a slot's [0, r) region (and every empty slot)
// is filled with NaN, so a kernel that reads beyond a slot's rank, or works on a base segment, poisons its output.
#pragma once
#include <vector>

#include "cuda_check.h"
#include "lora_kernels.cuh"
#include "test_support.h"

namespace tslora::lora::test {

inline uint16_t toActBits(float v, cuda::lora::ActDType d) { return d == cuda::lora::ActDType::BF16 ? f32ToBf16(v) : floatToF16(v); }
inline float fromActBits(uint16_t b, cuda::lora::ActDType d) { return d == cuda::lora::ActDType::BF16 ? bf16ToF32(b) : f16ToF32(b); }
inline uint16_t nanBits(cuda::lora::ActDType d) { return d == cuda::lora::ActDType::BF16 ? 0x7fc0 : 0x7e00; }

struct DeviceModulePool {
  DeviceBuffer<uint16_t> a, b;
  cuda::lora::DeviceModule view;
};

// Host image of one module's pool, then uploaded. slotAdapters[s] = nullptr leaves slot s empty (rank 0).
inline void buildDeviceModule(const PoolConfig& c, Module m, int layer, const std::vector<const TestAdapter*>& slotAdapters,
                              cuda::lora::ActDType dtype, DeviceModulePool& out) {
  const ModuleShape& s = c.shapes[static_cast<int>(m)];
  const int S = c.numSlots, R = c.maxRank, cs = s.numSlices;
  const size_t aSlot = static_cast<size_t>(cs) * R * s.in, bSlot = static_cast<size_t>(s.outTotal()) * R;
  std::vector<uint16_t> a(aSlot * S, nanBits(dtype)), b(bSlot * S, nanBits(dtype));
  for (int slot = 0; slot < S; ++slot) {
    const TestAdapter* ad = slotAdapters[slot];
    if (ad == nullptr) continue;
    const int r = ad->rank;
    std::fill(a.begin() + aSlot * slot, a.begin() + aSlot * slot + static_cast<size_t>(cs) * r * s.in, toActBits(0, dtype));
    for (int o = 0; o < s.outTotal(); ++o)
      std::fill(b.begin() + bSlot * slot + static_cast<size_t>(o) * R, b.begin() + bSlot * slot + static_cast<size_t>(o) * R + r,
                toActBits(0, dtype));
    for (const TestPair& p : ad->pairs) {
      Module pm; int slice;
      peftTarget(p.peftModule, pm, slice);
      if (pm != m || p.layer != layer) continue;
      const int first = slice < 0 ? 0 : slice, last = slice < 0 ? cs - 1 : slice;
      for (int j = first; j <= last; ++j)
        for (int i = 0; i < p.rank; ++i)
          for (int k = 0; k < s.in; ++k)
            a[aSlot * slot + static_cast<size_t>(j * r + i) * s.in + k] = toActBits(p.a.values[static_cast<size_t>(i) * s.in + k], dtype);
      const int rowBase = s.sliceOffsets[first];
      for (int64_t o = 0; o < p.b.rows; ++o)
        for (int i = 0; i < p.rank; ++i)
          b[bSlot * slot + static_cast<size_t>(rowBase + o) * R + i] = toActBits(p.b.values[o * p.rank + i] * p.scaling, dtype);
    }
  }
  out.a.upload(a);
  out.b.upload(b);
  out.view.a = out.a.ptr;
  out.view.b = out.b.ptr;
  out.view.in = s.in;
  out.view.numSlices = cs;
  for (int j = 0; j <= cs; ++j) out.view.sliceOffsets[j] = s.sliceOffsets[j];
  out.view.maxRank = R;
}

}  // namespace tslora::lora::test
