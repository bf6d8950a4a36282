// DeviceLoraPool (the CUDA engine's LoRA pool) against the CPU LoraPool: every module including embed_tokens (the
// column gather + expand against the CPU pool's Module::Embed apply) and lm_head, both
// strategies, a stale slot (rank 64 then rank 8), q/v-only and fused adapters, an empty slot, padded step tables,
// then clearSlot; narrowed, static and decode-graph grids (the last two on the tiled and the small-step kernels; the
// small-step ones fused with TSLORA_CUDA_LORA_FUSED=1); odd layers through shrink() on a side stream + expand(), as
// the engine calls them.
// Two of the four slot writes go through the engine's host tier (buildDeviceHostAdapter, page-locked bf16/fp16).
// Exit 0 = passed, 1 = failed, 77 = no usable GPU.
#include <cmath>
#include <cstdio>

#include "device_pool.h"
#include "output_check.h"
#include "lora_device_pool.h"
#include "lora_host_image.h"
#include "test_thread_pool.h"

using namespace tslora::lora;
using namespace tslora::lora::test;
namespace cl = tslora::cuda::lora;

namespace {

tslora::ThreadPool& threads() {
  static tslora::ThreadPool pool(2);
  return pool;
}

// One module of one layer through both pools; "" on success.
std::string compare(const PoolConfig& c, const LoraPool& cpu, cl::DeviceLoraPool& gpu, Module m, int layer, const Segments& seg,
                    bool csgmv, cl::ActDType dtype, Rng& rng) {
  const ModuleShape& s = c.shapes[static_cast<int>(m)];
  const int T = static_cast<int>(seg.rowSlots.size()), xStride = s.in, yStride = s.outTotal() + 16, yOffset = 8;
  const bool embed = m == Module::Embed;
  std::vector<int32_t> tokenIds(T);  // embed: ids spread over the whole vocabulary, the last id included
  for (int p = 0; p < T; ++p) tokenIds[p] = p == 0 ? s.in - 1 : rng.integer(0, s.in - 1);
  std::vector<uint16_t> xBits(embed ? 0 : static_cast<size_t>(T) * xStride), yBits(static_cast<size_t>(T) * yStride);
  std::vector<float> x(xBits.size()), y(yBits.size());
  for (size_t i = 0; i < xBits.size(); ++i) { xBits[i] = toActBits(rng.uniform(), dtype); x[i] = fromActBits(xBits[i], dtype); }
  const float baseScale = baseScaleFor(embed, yBits.size(), [&](float* zeros) {
    cpu.apply(layer, m, nullptr, xStride, zeros, yStride, yOffset, seg.step(csgmv), threads(), tokenIds.data());
  });
  for (size_t i = 0; i < yBits.size(); ++i) { yBits[i] = toActBits(rng.uniform() * baseScale, dtype); y[i] = fromActBits(yBits[i], dtype); }
  const std::vector<float> y0 = y;
  cpu.apply(layer, m, embed ? nullptr : x.data(), xStride, y.data(), yStride, yOffset, seg.step(csgmv), threads(),
            embed ? tokenIds.data() : nullptr);
  DeviceBuffer<uint16_t> dX, dY;
  DeviceBuffer<int32_t> dIds;
  if (!embed) dX.upload(xBits);
  dY.upload(yBits);
  dIds.upload(tokenIds);
  if (!embed && layer % 2 == 1) {  // the engine's split (forward.cu): shrink on a side stream, expand after an event
    static cudaStream_t side = nullptr;
    static cudaEvent_t forked = nullptr, shrunk = nullptr;
    if (side == nullptr) {
      CUDA_CHECK(cudaStreamCreateWithFlags(&side, cudaStreamNonBlocking));
      CUDA_CHECK(cudaEventCreateWithFlags(&forked, cudaEventDisableTiming));
      CUDA_CHECK(cudaEventCreateWithFlags(&shrunk, cudaEventDisableTiming));
    }
    CUDA_CHECK(cudaEventRecord(forked, nullptr));
    CUDA_CHECK(cudaStreamWaitEvent(side, forked, 0));
    gpu.shrink(layer, m, dX.ptr, xStride, side);
    CUDA_CHECK(cudaEventRecord(shrunk, side));
    CUDA_CHECK(cudaStreamWaitEvent(nullptr, shrunk, 0));
    gpu.expand(layer, m, dY.ptr, yStride, yOffset, nullptr);
  } else {
    gpu.apply(layer, m, embed ? nullptr : dX.ptr, xStride, dY.ptr, yStride, yOffset, nullptr, embed ? dIds.ptr : nullptr);
  }
  CUDA_CHECK(cudaDeviceSynchronize());
  std::vector<uint16_t> out(yBits.size());
  CUDA_CHECK(cudaMemcpy(out.data(), dY.ptr, out.size() * 2, cudaMemcpyDeviceToHost));
  OutputCheck check(dtype);
  for (int row = 0; row < T; ++row)
    for (int col = 0; col < yStride; ++col) {
      const size_t i = static_cast<size_t>(row) * yStride + col;
      const int slot = seg.rowSlots[row];
      const bool lora = slot >= 0 && cpu.slotRank(slot) > 0 && col >= yOffset && col < yOffset + s.outTotal();
      if (!lora) {
        if (out[i] != yBits[i]) return "changed a base row or a column outside the module at row " + std::to_string(row);
        continue;
      }
      const float got = fromActBits(out[i], dtype);
      if (!std::isfinite(got)) return "non-finite output";
      check.add(got, y[i], y0[i]);
    }
  return check.verdict();
}

}  // namespace

int main() {
  int devices = 0;
  const cudaError_t probe = cudaGetDeviceCount(&devices);
  if (probe != cudaSuccess || devices == 0) {
    std::printf("skip: no usable CUDA device (%s)\n", probe != cudaSuccess ? cudaGetErrorString(probe) : "0 devices");
    return 77;
  }
  int failures = 0, passes = 0;
  for (cl::ActDType dtype : {cl::ActDType::BF16, cl::ActDType::F16}) {
    PoolConfig c = makeConfig(4, 64, 2, 256, 256, 64, 512, 1000);
    Rng rng(7 + static_cast<int>(dtype));
    const DType type = dtype == cl::ActDType::BF16 ? DType::BF16 : DType::F16;
    const std::vector<int> all = {kPeftQ, kPeftK, kPeftV, kPeftO, kPeftGate, kPeftUp, kPeftDown, kPeftEmbed, kPeftLmHead};
    const TestAdapter big = makeAdapter(rng, c, 64, all, type);
    const TestAdapter small = makeAdapter(rng, c, 8, all, type);
    const TestAdapter qv = makeAdapter(rng, c, 16, {kPeftQ, kPeftV, kPeftDown}, type);
    const TestAdapter fused = makeAdapter(rng, c, 3, {kPeftFusedQkv, kPeftFusedGateUp, kPeftLmHead}, type);
    LoraPool cpu(c);
    cl::DeviceLoraPool gpu(c, dtype, 512, 64);
    const std::pair<int, const TestAdapter*> writes[] = {{0, &big}, {0, &small}, {1, &qv}, {2, &fused}};
    for (const auto& [slot, ad] : writes) {
      const auto hostAdapter = buildHostAdapter(ad->input(), c);
      cpu.writeSlot(slot, *hostAdapter);
      // The engine's host tier (lora_host_image.h) for the second and third write, the fp32 path for the others.
      const bool image = ad == &small || ad == &qv;
      if (image) gpu.writeSlot(slot, *cl::buildDeviceHostAdapter(ad->input(), c, dtype), nullptr);
      else gpu.writeSlot(slot, *hostAdapter, nullptr);
    }
    // 64 decode rows over slots 0-2 and base rows (csgmv: up to 22 rows per slot)
    const auto decodeSlots64 = [] {
      std::vector<int> slots(64);
      for (int i = 0; i < 64; ++i) slots[i] = i % 5 == 4 ? -1 : i % 3;
      return slots;
    };
    // A mixed prefill-like step, then decode-like steps (one token per request: the narrowed grid gets split-K),
    // then an all-base step.
    const std::vector<std::pair<std::vector<int>, std::vector<int>>> steps = {
        {{0, 1, -1, 2, 3, 0, 1, 2, 0, 1, 2, 2}, {1, 77, 5, 13, 4, 1, 1, 1, 200, 3, 0, 9}},
        {{0}, {1}},
        {{2, -1, 0, 1, 2, 0}, {1, 1, 1, 1, 1, 1}},
        {{0, 2, 1, 0, -1, 2, 2, 1, 0, 0, 1, 2, 0, -1, 1, 2, 0, 2, 1, 1, 0, 2, 0, 1, 2, 2, 0, 1, -1, 0, 2, 1, 0, 0, 2, 1, 1, 2, 0, 2, 1},
         std::vector<int>(41, 1)},  // 41 decode rows: 3 position groups, bucket 48
        {decodeSlots64(), std::vector<int>(64, 1)},  // 64 decode rows: csgmv chunks of 32, bucket 64 (split into 16-row
                                                     // segments where the graph grid takes the tiled kernels)
        {{-1, -1}, {3, 1}},
    };
    for (const auto& [slots, counts] : steps)
    for (int phase = 0; phase < 2; ++phase) {
      if (phase == 1) {
        cpu.clearSlot(1);
        gpu.clearSlot(1, nullptr);
        if (gpu.slotRank(1) != 0) { ++failures; std::printf("FAIL slotRank after clearSlot\n"); }
      }
      // Modes: narrowed grid, static grid (the pool maxima), and the grid decode-graph.cu captures (bucket bs >= T:
      // min(bs, 64) segments x bs rows x bs rows per segment; small steps then run the small-step kernels over bs
      // positions, the ones beyond T in no segment), each for triton and csgmv.
      int tokens = 0;
      for (int n : counts) tokens += n;
      const int bucket = tokens <= 1 ? 1 : tokens <= 2 ? 2 : tokens <= 4 ? 4 : (tokens + 7) / 8 * 8;
      for (int mode = 0; mode < 6; ++mode) {
        const bool csgmv = mode % 2 == 1, staticGrid = mode >= 2 && mode < 4, graphGrid = mode >= 4;
        if (graphGrid && bucket > 64) continue;
        const Segments seg = buildSegments(slots, counts, csgmv, 64);
        if (graphGrid) gpu.setGraphGrid(std::min(bucket, 64), bucket, bucket);
        else gpu.setStaticGrid(staticGrid);
        gpu.setStep(seg.step(csgmv), nullptr);
        for (Module m : {Module::QKV, Module::O, Module::GateUp, Module::Down, Module::Embed, Module::LmHead})
          for (int layer = 0; layer < (m == Module::LmHead || m == Module::Embed ? 1 : c.numLayers); ++layer) {
            std::string error;
            try {
              error = compare(c, cpu, gpu, m, layer, seg, csgmv, dtype, rng);
            } catch (const std::exception& e) {
              error = e.what();
            }
            if (error.empty()) ++passes;
            else {
              ++failures;
              std::printf("FAIL %s %s%s %s layer %d%s: %s\n", dtype == cl::ActDType::BF16 ? "bf16" : "fp16", csgmv ? "csgmv" : "triton",
                          staticGrid ? " (static grid)" : graphGrid ? " (decode-graph grid)" : "",
                          moduleNameOf(m).c_str(), layer, phase ? " after clearSlot" : "", error.c_str());
            }
          }
      }
    }
  }
  std::printf("%s: %d device-pool cases passed, %d failed\n", failures ? "FAIL" : "ok", passes, failures);
  return failures ? 1 : 0;
}
