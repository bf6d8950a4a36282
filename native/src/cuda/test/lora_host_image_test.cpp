// The CUDA engine's host tier (lora_host_image.h) against the PEFT pairs it was built from: for every (layer, module)
// the image must hold exactly the bits a device slot holds after a load (A rank-packed [c*r, in], B rank-padded
// [outTotal, R] with σ folded, zero where the adapter has no weights), absent modules must take no bytes, the size
// must add up, and the page-locked block pool must hand a released block to the next adapter of the same size.
// Runs without a GPU (then the blocks are heap memory and "pinned" is reported as no); exit 0 = passed, 1 = failed.
#include <algorithm>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>

#include "lora_host_image.h"
#include "test_support.h"

using namespace tslora::lora;
using namespace tslora::lora::test;
namespace cl = tslora::cuda::lora;

namespace {

int failures = 0, checks = 0;
void expect(bool ok, const std::string& what) {
  ++checks;
  if (!ok) {
    ++failures;
    std::printf("FAIL %s\n", what.c_str());
  }
}

// Expected A and B bits of one (layer, module) of a slot holding `ad`, straight from its PEFT pairs.
void expectedModule(const PoolConfig& c, const TestAdapter& ad, Module m, int layer, cl::ActDType dtype, bool& present,
                    std::vector<uint16_t>& a, std::vector<uint16_t>& b) {
  const ModuleShape& s = c.shapes[static_cast<int>(m)];
  const int r = ad.rank, R = c.maxRank, cs = s.numSlices;
  a.assign(static_cast<size_t>(cs) * r * s.in, cl::actBitsOf(0.0f, dtype));
  b.assign(static_cast<size_t>(s.outTotal()) * R, cl::actBitsOf(0.0f, dtype));
  present = false;
  for (const TestPair& p : ad.pairs) {
    Module pm; int slice;
    peftTarget(p.peftModule, pm, slice);
    const int pl = p.layer < 0 ? 0 : p.layer;
    if (pm != m || pl != layer) continue;
    present = true;
    const int first = slice < 0 ? 0 : slice, last = slice < 0 ? cs - 1 : slice;
    for (int j = first; j <= last; ++j)
      for (int i = 0; i < p.rank; ++i)
        for (int k = 0; k < s.in; ++k)
          a[static_cast<size_t>(j * r + i) * s.in + k] = cl::actBitsOf(p.a.values[static_cast<size_t>(i) * s.in + k], dtype);
    const int rowBase = s.sliceOffsets[first];
    for (int64_t o = 0; o < p.b.rows; ++o)
      for (int i = 0; i < p.rank; ++i)
        b[static_cast<size_t>(rowBase + o) * R + i] = cl::actBitsOf(p.b.values[o * p.rank + i] * p.scaling, dtype);
  }
}

void checkImage(const PoolConfig& c, const TestAdapter& ad, cl::ActDType dtype, const std::string& name) {
  const auto built = cl::buildDeviceHostAdapter(ad.input(), c, dtype);
  const auto* image = dynamic_cast<const cl::DeviceHostAdapter*>(built.get());
  expect(image != nullptr, name + ": buildDeviceHostAdapter returns a DeviceHostAdapter");
  if (image == nullptr) return;
  expect(image->rank() == ad.rank, name + ": rank");
  size_t bytes = 0;
  for (Module m : {Module::QKV, Module::O, Module::GateUp, Module::Down, Module::Embed, Module::LmHead}) {
    const int layers = m == Module::Embed || m == Module::LmHead ? 1 : c.numLayers;
    for (int layer = 0; layer < layers; ++layer) {
      const std::string where = name + " " + moduleNameOf(m) + " layer " + std::to_string(layer);
      bool present = false;
      std::vector<uint16_t> a, b;
      expectedModule(c, ad, m, layer, dtype, present, a, b);
      const cl::DeviceHostAdapter::Region& region = image->region(m, layer);
      expect(region.present == present, where + ": present");
      if (!present || !region.present) continue;
      expect(region.aBytes == a.size() * 2 && region.bBytes == b.size() * 2, where + ": region sizes");
      const auto* ia = reinterpret_cast<const uint16_t*>(image->bytes() + region.aOffsetBytes);
      const auto* ib = reinterpret_cast<const uint16_t*>(image->bytes() + region.bOffsetBytes);
      expect(std::equal(a.begin(), a.end(), ia), where + ": A bits (rank-packed, act dtype)");
      expect(std::equal(b.begin(), b.end(), ib), where + ": B bits (rank-padded to R, σ folded, act dtype)");
      bytes += region.aBytes + region.bBytes;
    }
  }
  expect(image->sizeBytes() == bytes, name + ": sizeBytes is the sum of the regions");
  // A module present in every layer has its A regions back to back, then its B regions (one 2-D copy each per load).
  for (Module m : {Module::QKV, Module::O, Module::GateUp, Module::Down, Module::Embed, Module::LmHead}) {
    const int layers = m == Module::Embed || m == Module::LmHead ? 1 : c.numLayers;
    bool all = true;
    for (int layer = 0; layer < layers; ++layer) all = all && image->region(m, layer).present;
    expect(image->moduleContiguous(m) == all, name + " " + moduleNameOf(m) + ": moduleContiguous iff present in every layer");
    if (!all) continue;
    for (int layer = 1; layer < layers; ++layer) {
      const auto &prev = image->region(m, layer - 1), &cur = image->region(m, layer);
      expect(cur.aOffsetBytes == prev.aOffsetBytes + prev.aBytes && cur.bOffsetBytes == prev.bOffsetBytes + prev.bBytes,
             name + " " + moduleNameOf(m) + ": layer regions back to back");
    }
  }
}

}  // namespace

int main() {
  const std::vector<int> all = {kPeftQ, kPeftK, kPeftV, kPeftO, kPeftGate, kPeftUp, kPeftDown, kPeftEmbed, kPeftLmHead};
  for (cl::ActDType dtype : {cl::ActDType::BF16, cl::ActDType::F16}) {
    const std::string dt = dtype == cl::ActDType::BF16 ? "bf16" : "fp16";
    const PoolConfig c = makeConfig(2, 32, 3, 64, 64, 32, 96, 80);
    Rng rng(11 + static_cast<int>(dtype));
    checkImage(c, makeAdapter(rng, c, 32, all, DType::F32), dtype, dt + " r32 (= R) all modules, f32 file");
    checkImage(c, makeAdapter(rng, c, 8, all, DType::BF16), dtype, dt + " r8 < R all modules, bf16 file");
    checkImage(c, makeAdapter(rng, c, 5, {kPeftQ, kPeftV, kPeftDown}, DType::F16), dtype, dt + " r5 q/v/down only, f16 file");
    checkImage(c, makeAdapter(rng, c, 3, {kPeftFusedQkv, kPeftFusedGateUp, kPeftLmHead}, DType::BF16), dtype, dt + " r3 fused qkv/gate_up");
    TestAdapter oneLayer = makeAdapter(rng, c, 4, {kPeftQ, kPeftO}, DType::F32);  // layer 1 only (a layer pattern)
    std::vector<TestPair> kept;
    for (TestPair& p : oneLayer.pairs)
      if (p.layer == 1) kept.push_back(std::move(p));
    oneLayer.pairs = std::move(kept);
    checkImage(c, oneLayer, dtype, dt + " r4 q/o in layer 1 only");
  }
  // Invalid adapters keep buildHostAdapter's messages (the server maps them to error categories).
  {
    const PoolConfig c = makeConfig(2, 8, 2, 64, 64, 32, 96, 80);
    Rng rng(3);
    TestAdapter tooBig = makeAdapter(rng, c, 16, {kPeftQ}, DType::F32);
    std::string message;
    try {
      cl::buildDeviceHostAdapter(tooBig.input(), c, cl::ActDType::BF16);
    } catch (const std::invalid_argument& e) {
      message = e.what();
    }
    expect(message.rfind("incompatible", 0) == 0, "rank above R is rejected as incompatible (got '" + message + "')");
  }
  // Block reuse: a released page-locked block goes to the next adapter of the same size (heap blocks are not cached).
  cl::PinnedHostPool& pool = cl::PinnedHostPool::instance();
  cl::PinnedHostPool::Block first = pool.acquire(1 << 20);
  void* address = first.data;
  const bool pinned = first.pinned;
  pool.release(first);
  cl::PinnedHostPool::Block second = pool.acquire((1 << 20) - 4096);
  if (pinned) expect(second.data == address && second.capacityBytes == (1 << 20), "a released pinned block is reused");
  expect(second.capacityBytes >= (1 << 20) - 4096, "acquire returns at least the bytes asked for");
  pool.release(second);
  std::printf("page-locked blocks: %s\n", pinned ? "yes" : "no (no usable GPU: heap memory)");
  std::printf("%s: %d checks, %d failed\n", failures == 0 ? "ok" : "FAILED", checks, failures);
  return failures == 0 ? 0 : 1;
}
