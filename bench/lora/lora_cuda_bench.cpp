// H200 microbenchmark of the CUDA LoRA kernels with Llama-3.1-8B shapes (kernel-anchor.md; two decode cases with the
// Llama-3.2-1B shapes of the engine's decode benchmark): per-kernel µs and the
// per-layer sum for qkv + gate_up + down (o_proj reported apart), achieved GB/s against the bytes floor, for the
// "triton" and "csgmv" metadata ("fused" strategies: the one-launch small-step kernel, whose module rows carry its time
// as shrinkUs with expandUs 0). Weights rotate over 8 disjoint adapter sets (64 slots), so L2 (60 MB) cannot hold
// them between iterations. Usage: lora_cuda_bench [out.json]
#include <algorithm>
#include <functional>
#include <cstdio>
#include <cstring>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include "bench_fill.h"
#include "cuda_check.h"
#include "lora_step_tables.h"
#include "lora_device_pool.h"
#include "lora_kernels.cuh"
#include "lora_launch.cuh"
#include "lora_small_variant.h"
#include "test_support.h"

namespace cl = tslora::cuda::lora;
using tslora::lora::test::buildSegments;
using tslora::lora::test::Segments;

namespace {

constexpr int kSets = 8, kAdapters = 8, kSlots = kSets * kAdapters;
// Bytes-floor bandwidth: TSLORA_BANDWIDTH_BYTES_PER_S, measured on this GPU in the same run (bench/cuda/bandwidth.cu;
// scripts/device/gpu-suite.sh passes it); else the H200 copy rate of kernel-anchor.md, 4.3 TB/s, named as such.
const double kCopyBandwidth = [] {
  const char* v = std::getenv("TSLORA_BANDWIDTH_BYTES_PER_S");
  const double measured = v ? std::atof(v) : 0.0;
  return measured > 0 ? measured : 4.3e12;
}();

struct ModuleSpec {
  const char* name;
  int in;
  std::vector<int> widths;
};
struct CaseSpec {
  const char* name;
  int requests, tokensEach, rank, adapters;  // adapters: distinct adapters per set (request i uses (5i) mod adapters)
  bool llama1B = false;  // Llama-3.2-1B shapes (the engine's decode benchmark) instead of Llama-3.1-8B
};
struct Strategy {
  const char* name;
  bool csgmv;
  int cap;
  bool small;       // the small-step kernels (lora_small_step.cu); skipped where they do not apply
  bool engineGrid;  // the tiled kernels on the grid a captured engine decode graph uses: T segments x T rows
  bool prefetchY;   // the tiled expand with loraSetExpandPrefetchY (prefill only)
  bool fused = false;  // the one-launch small-step kernel (lora_small_fused.cu): its time is reported as shrinkUs, expandUs 0
  int wideShrink = -1;  // prefill: the wide tiled shrink (loraSetShrinkWide) forced off (0) / on (1); -1 = the default
  int wideExpand = -1;  // prefill: the wide tiled expand (loraSetExpandWide), likewise
  // engineGrid with 16-row tiles instead of T rows per segment: what DeviceLoraPool runs in a csgmv decode graph
  // above 16 rows with TSLORA_CUDA_LORA_GRAPH_TILED=1 (v10)
  bool graphTiled16 = false;
  bool smallV10 = false;  // the small-step kernels' v10 layout (lora_small_variant.h); the others run the v9 one
  unsigned smallV11 = 0;     // v11 switches of lora_small_variant.h: kNarrow | kLongK | kEarly
  int smallSplitCap = 0;     // > 0: the small-step split count capped (DeviceLoraPool's TSLORA_CUDA_LORA_SMALL_MAX_SPLITS)
  // prefill: the wide expand's store form (loraExpandStore: y = delta, y not read), what the engine's store-first
  // prefill (TSLORA_CUDA_LORA_STORE_FIRST=1) runs before the base GEMM adds x·Wᵀ with beta = 1 (that GEMM's extra read of
  // y is not in these figures: bench/cuda/side-expand-ab.ts --prefill measures the whole step)
  bool store = false;
  // prefill: the wide shrink's block tile (loraSetShrinkWideTile: 1 m128k32, 2 m128k64, 3 m64k64, 4 m64k64f), with
  // wideShrink = 1; -1 = the process's tile (m64k64 since session 23 unless TSLORA_CUDA_LORA_WIDE_SHRINK_TILE names another)
  int wideTile = -1;
  bool wideCluster = false;  // with wideTile: the cluster split-K (loraSetShrinkWideCluster; session 22)
  // csgmv prefill: consecutive chunks of one slot merged into one segment, as DeviceLoraPool::setStep does in eager steps
  // above 128 rows (TSLORA_CUDA_LORA_CSGMV_COALESCE, on by default since session 23): the engine's csgmv prefill kernels
  bool coalesce = false;
  // prefill, with store: the store-form expand's lean layout (loraSetExpandStoreLean; session 24) on (1) / off (0);
  // -1 = the process's default (off unless TSLORA_CUDA_LORA_STORE_LEAN=1)
  int storeLean = -1;
};
constexpr unsigned kNarrow = 1, kLongK = 2, kEarly = 4;

// The segments of a coalesced csgmv step: DeviceLoraPool::setStep's own table builder (lora_step_tables.h
// buildStepTables with StepTableLimits::coalesce), so the bench runs the tables the pool does; the chunk size becomes the
// longest adapter segment, as the pool's maxSegmentRows does (max(chunkSize, longest)). Same rows, slots and permutation.
void coalesceSegments(Segments& seg) {
  const int G = static_cast<int>(seg.weightIndices.size()), T = static_cast<int>(seg.rowSlots.size());
  cl::StepTableLimits limits;
  limits.numSlots = kSlots;
  limits.maxSegments = limits.segmentBudget = G;
  limits.maxChunkRows = T + 1;  // merge only, never split
  limits.coalesce = true;
  std::vector<int32_t> indptr(G + 1), weights(G), segRanks(G), perm(T), ranks(kSlots, 0);
  std::vector<char> rowSeen;
  const cl::StepTableShape shape =
      cl::buildStepTables(seg.step(true), limits, ranks.data(), indptr.data(), weights.data(), segRanks.data(), perm.data(), rowSeen);
  seg.segIndptr.assign(indptr.begin(), indptr.begin() + shape.segments + 1);
  seg.weightIndices.assign(weights.begin(), weights.begin() + shape.segments);
  seg.chunkSize = std::max(seg.chunkSize, shape.longestAdapterRows);
}

struct ModuleState {
  ModuleSpec spec;
  DeviceBuffer<uint16_t> a, b, x, y;
  DeviceBuffer<unsigned char> workspace;
  cl::DeviceModule view;
  int kSplits = 1;
  cl::FusedPlan plan;  // fused strategies
};

struct StepSet {  // one adapter set's metadata (static sizes: the largest over sets)
  DeviceBuffer<int32_t> indptr, weights, perm, segRanks;
  cl::DeviceStep step;
};

float timeMs(cudaStream_t stream, int iterations, const std::function<void(int)>& body) {
  cudaEvent_t start, stop;
  CUDA_CHECK(cudaEventCreate(&start));
  CUDA_CHECK(cudaEventCreate(&stop));
  for (int i = 0; i < 3; ++i) body(i);  // warm-up
  CUDA_CHECK(cudaEventRecord(start, stream));
  for (int i = 0; i < iterations; ++i) body(i);
  CUDA_CHECK(cudaEventRecord(stop, stream));
  CUDA_CHECK(cudaEventSynchronize(stop));
  float ms = 0;
  CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
  CUDA_CHECK(cudaEventDestroy(start));
  CUDA_CHECK(cudaEventDestroy(stop));
  return ms / iterations;
}

}  // namespace

int main(int argc, char** argv) {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::printf("skip: no CUDA device\n");
    return 77;
  }
  cudaDeviceProp prop{};
  CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
  std::printf("device: %s, %d SMs, L2 %d MB\n", prop.name, prop.multiProcessorCount, prop.l2CacheSize >> 20);
  cudaStream_t stream;
  CUDA_CHECK(cudaStreamCreate(&stream));
  const std::vector<ModuleSpec> moduleSpecs = {
      {"qkv", 4096, {4096, 1024, 1024}}, {"gate_up", 4096, {14336, 14336}}, {"down", 14336, {4096}}, {"o", 4096, {4096}}};
  const std::vector<ModuleSpec> moduleSpecs1B = {
      {"qkv", 2048, {2048, 512, 512}}, {"gate_up", 2048, {8192, 8192}}, {"down", 8192, {2048}}, {"o", 2048, {2048}}};
  const std::vector<CaseSpec> cases = {{"decode 64x1 r16", 64, 1, 16, 8},
                                       {"decode 8x1 r16", 8, 1, 16, 8},
                                       {"1B decode 64x1 1ad", 64, 1, 16, 1, true},
                                       {"1B decode 8x1 8ad", 8, 1, 16, 8, true},
                                       {"decode 64x1 r16 1ad", 64, 1, 16, 1},
                                       {"decode 1x1 r16", 1, 1, 16, 1},
                                       {"decode 256x1 r16", 256, 1, 16, 8},
                                       {"prefill 8x512 r64", 8, 512, 64, 8}};
  const std::vector<Strategy> strategies = {
      {"triton", false, 16, false, false, false},       {"csgmv C16", true, 16, false, false, false},
      {"csgmv C128", true, 128, false, false, false},   {"csgmv graph", true, 16, false, true, false},
      {"triton small", false, 16, true, false, false},  {"csgmv small", true, 16, true, false, false},
      {"triton pfY", false, 16, false, false, true},    {"csgmv C128 pfY", true, 128, false, false, true},
      {"triton fused", false, 16, true, false, false, true}, {"csgmv fused", true, 16, true, false, false, true},
      // prefill A/B of the wide kernels (lora_shrink_wide.cuh, lora_expand_wide.cuh) against v5, same run
      {"triton v5", false, 16, false, false, false, false, 0, 0}, {"triton wide shrink", false, 16, false, false, false, false, 1, 0},
      {"triton wide expand", false, 16, false, false, false, false, 0, 1}, {"triton wide", false, 16, false, false, false, false, 1, 1},
      {"csgmv C128 wide", true, 128, false, false, false, false, 1, 1},
      // decode A/B (v10 of smallexp): the tiled kernels on 16-row tiles in a csgmv graph grid, the small-step v10 layout
      {"csgmv graph C16", true, 16, false, true, false, false, -1, -1, true},
      {"csgmv small v10", true, 16, true, false, false, false, -1, -1, false, true},
      {"triton small v10", false, 16, true, false, false, false, -1, -1, false, true},
      // decode A/B (v11 of smallexp2): the small shrink with rank-sized mma chunks (fewer registers), long-K splits, the
      // expand launched at the shrink's start; each alone and together ("csgmv small v11": the default since session 15),
      // beside "csgmv small v10" (all three off: the default before)
      {"csgmv small v11n", true, 16, true, false, false, false, -1, -1, false, true, kNarrow},
      {"csgmv small v11k", true, 16, true, false, false, false, -1, -1, false, true, kLongK},
      {"csgmv small v11e", true, 16, true, false, false, false, -1, -1, false, true, kEarly},
      {"csgmv small v11nk", true, 16, true, false, false, false, -1, -1, false, true, kNarrow | kLongK},
      {"csgmv small v11", true, 16, true, false, false, false, -1, -1, false, true, kNarrow | kLongK | kEarly},
      {"csgmv small v10 s8", true, 16, true, false, false, false, -1, -1, false, true, 0, 8},
      // prefill A/B (session 21): the store-form wide expand beside "triton" / "csgmv C128" (the default kernels)
      {"triton store", false, 16, false, false, false, false, -1, 1, false, false, 0, 0, true},
      {"csgmv C128 store", true, 128, false, false, false, false, -1, 1, false, false, 0, 0, true},
      // prefill (session 23): the engine's csgmv prefill since coalescing is on by default (16-row chunks merged per
      // adapter run), in place and in the store form
      {"csgmv coalesced", true, 16, false, false, false, false, -1, -1, false, false, 0, 0, false, -1, false, true},
      {"csgmv coalesced store", true, 16, false, false, false, false, -1, 1, false, false, 0, 0, true, -1, false, true},
      // prefill A/B (session 24): the store form in its lean layout (B-only stages, 3 blocks per SM)
      {"triton store lean", false, 16, false, false, false, false, -1, 1, false, false, 0, 0, true, -1, false, false, 1},
      {"csgmv coalesced store lean", true, 16, false, false, false, false, -1, 1, false, false, 0, 0, true, -1, false, true, 1},
      // prefill A/B (session 25): the same with the m64k64f shrink (m64k64's bits, the fragments of a step loaded first)
      {"triton store lean m64k64f", false, 16, false, false, false, false, -1, 1, false, false, 0, 0, true, 4, false, false, 1},
      {"csgmv coalesced store lean m64k64f", true, 16, false, false, false, false, -1, 1, false, false, 0, 0, true, 4, false, true, 1},
      // prefill A/B (session 22): the wide shrink's two-dimensional block tiles with the default (wide) expand, beside
      // "triton" (v5 shrink) and "triton wide shrink" (w8, v5 expand)
      {"triton wide shrink m128k32", false, 16, false, false, false, false, 1, -1, false, false, 0, 0, false, 1},
      {"triton wide shrink m128k64", false, 16, false, false, false, false, 1, -1, false, false, 0, 0, false, 2},
      {"triton wide shrink m64k64", false, 16, false, false, false, false, 1, -1, false, false, 0, 0, false, 3},
      {"triton wide shrink m64k64f", false, 16, false, false, false, false, 1, -1, false, false, 0, 0, false, 4},
      {"triton wide shrink m128k32 cluster", false, 16, false, false, false, false, 1, -1, false, false, 0, 0, false, 1, true},
      {"triton wide shrink m128k64 cluster", false, 16, false, false, false, false, 1, -1, false, false, 0, 0, false, 2, true},
      {"triton wide shrink m64k64 cluster", false, 16, false, false, false, false, 1, -1, false, false, 0, 0, false, 3, true}};
  const bool wideDefault = cl::loraShrinkWideOn(), wideExpandDefault = cl::loraExpandWideOn();
  const int wideTileDefault = cl::loraShrinkWideTile();
  const bool wideClusterDefault = cl::loraShrinkWideClusterOn();
  const bool storeLeanDefault = cl::loraExpandStoreLeanOn();
  std::string json = "{\"device\":\"" + std::string(prop.name) + "\",\"results\":[";
  std::vector<std::string> table;

  // LORA_BENCH_CASES="name,name" runs only those cases; LORA_BENCH_NO_SWEEPS=1 leaves out the plan / split sweeps
  // (a device round's short run).
  const char* onlyCases = std::getenv("LORA_BENCH_CASES");
  // LORA_BENCH_STRATEGIES="name,name" runs only those strategies (a device round's short run).
  const char* onlyStrategies = std::getenv("LORA_BENCH_STRATEGIES");
  const bool sweeps = std::getenv("LORA_BENCH_NO_SWEEPS") == nullptr || std::string(std::getenv("LORA_BENCH_NO_SWEEPS")) != "1";
  for (const CaseSpec& cs : cases) {
    if (onlyCases != nullptr && ("," + std::string(onlyCases) + ",").find("," + std::string(cs.name) + ",") == std::string::npos) continue;
    const int T = cs.requests * cs.tokensEach, r = cs.rank, R = cs.rank;
    const std::vector<ModuleSpec>& specs = cs.llama1B ? moduleSpecs1B : moduleSpecs;
    std::vector<ModuleState> modules(specs.size());
    uint32_t seed = 1;
    for (size_t mi = 0; mi < specs.size(); ++mi) {
      ModuleState& ms = modules[mi];
      ms.spec = specs[mi];
      const int c = static_cast<int>(ms.spec.widths.size());
      int outTotal = 0;
      ms.view.numSlices = c;
      for (int j = 0; j < c; ++j) { ms.view.sliceOffsets[j] = outTotal; outTotal += ms.spec.widths[j]; }
      ms.view.sliceOffsets[c] = outTotal;
      ms.view.in = ms.spec.in;
      ms.view.maxRank = R;
      ms.a.resize(static_cast<size_t>(kSlots) * c * R * ms.spec.in);
      ms.b.resize(static_cast<size_t>(kSlots) * outTotal * R);
      ms.x.resize(static_cast<size_t>(T) * ms.spec.in);
      ms.y.resize(static_cast<size_t>(T) * outTotal);
      CUDA_CHECK(fillRandomBf16(ms.a.ptr, ms.a.count, seed++, 0.02f));
      CUDA_CHECK(fillRandomBf16(ms.b.ptr, ms.b.count, seed++, 0.02f));
      CUDA_CHECK(fillRandomBf16(ms.x.ptr, ms.x.count, seed++, 1.0f));
      CUDA_CHECK(fillRandomBf16(ms.y.ptr, ms.y.count, seed++, 1.0f));
      ms.view.a = ms.a.ptr;
      ms.view.b = ms.b.ptr;
    }
    DeviceBuffer<int32_t> ranks;
    ranks.upload(std::vector<int32_t>(kSlots, r));

    for (const Strategy& st : strategies) {
      if (cs.tokensEach == 1 && st.cap == 128) continue;  // decode: C is 16 whatever the cap (64 tokens < 256)
      if (st.coalesce && cs.requests * cs.tokensEach <= 128) continue;  // the pool coalesces eager steps above 128 rows only
      if (st.engineGrid && cs.tokensEach != 1) continue;   // decode graphs only
      if (st.small && T > cl::kSmallStepMaxTokens) continue;
      if (st.prefetchY && cs.tokensEach == 1) continue;  // a prefill experiment
      if ((st.wideShrink >= 0 || st.wideExpand >= 0) && cs.tokensEach == 1) continue;  // prefill A/B

      if (onlyStrategies != nullptr && ("," + std::string(onlyStrategies) + ",").find("," + std::string(st.name) + ",") == std::string::npos)
        continue;
      cl::loraSetExpandPrefetchY(st.prefetchY);
      cl::loraSetSmallV10(st.smallV10);
      cl::loraSetSmallNarrow((st.smallV11 & kNarrow) != 0);
      cl::loraSetSmallLongK((st.smallV11 & kLongK) != 0);
      cl::loraSetSmallEarlyTrigger((st.smallV11 & kEarly) != 0);
      cl::loraSetShrinkWide(st.wideShrink < 0 ? wideDefault : st.wideShrink == 1);
      cl::loraSetExpandWide(st.wideExpand < 0 ? wideExpandDefault : st.wideExpand == 1);
      cl::loraSetShrinkWideTile(st.wideTile < 0 ? wideTileDefault : st.wideTile);
      cl::loraSetShrinkWideCluster(st.wideTile < 0 ? wideClusterDefault : st.wideCluster);
      cl::loraSetExpandStoreLean(st.storeLean < 0 ? storeLeanDefault : st.storeLean == 1);
      std::vector<StepSet> sets(kSets);
      int maxSegments = 0, maxRows = 1;
      std::vector<Segments> segs;
      for (int k = 0; k < kSets; ++k) {
        std::vector<int> slots(cs.requests), counts(cs.requests, cs.tokensEach);
        for (int i = 0; i < cs.requests; ++i) slots[i] = k * kAdapters + (i * 5) % cs.adapters;  // interleaved adapters
        segs.push_back(buildSegments(slots, counts, st.csgmv, st.cap));
        if (st.coalesce) coalesceSegments(segs.back());
        maxSegments = std::max(maxSegments, static_cast<int>(segs.back().weightIndices.size()));
        maxRows = std::max(maxRows, segs.back().chunkSize);
      }
      if (st.engineGrid) {  // DeviceLoraPool::setGraphGrid(min(bs, max), bs, bs) of decode-graph.cu
        maxSegments = std::max(maxSegments, T);
        maxRows = st.graphTiled16 ? 16 : T;
      }
      for (int k = 0; k < kSets; ++k) {
        std::vector<int32_t> indptr = segs[k].segIndptr, weights = segs[k].weightIndices;
        while (static_cast<int>(weights.size()) < maxSegments) { indptr.push_back(indptr.back()); weights.push_back(0); }
        sets[k].indptr.upload(indptr);
        sets[k].weights.upload(weights);
        sets[k].segRanks.upload(std::vector<int32_t>(weights.size(), r));  // as DeviceLoraPool::setStep passes them
        if (!segs[k].permutation.empty()) sets[k].perm.upload(segs[k].permutation);
        cl::DeviceStep& step = sets[k].step;
        step.segIndptr = sets[k].indptr.ptr;
        step.weightIndices = sets[k].weights.ptr;
        step.permutation = segs[k].permutation.empty() ? nullptr : sets[k].perm.ptr;
        step.slotRanks = ranks.ptr;
        step.segmentRanks = sets[k].segRanks.ptr;
        step.maxSegments = maxSegments;
        step.maxSegmentRows = maxRows;
        step.numTokens = T;
      }
      for (ModuleState& ms : modules) {
        ms.kSplits = st.small         ? std::min(st.smallSplitCap > 0 ? st.smallSplitCap : 1 << 20,
                                                 cl::loraSmallStepSplits(ms.view, sets[0].step, prop.multiProcessorCount))
                     : st.graphTiled16 ? cl::loraShrinkSplits(ms.view, cl::graphTiledSplitStep(sets[0].step), prop.multiProcessorCount)
                                       : cl::loraShrinkSplits(ms.view, sets[0].step, prop.multiProcessorCount);
        if (ms.kSplits < 1) { std::printf("small-step path does not apply to %s\n", cs.name); return 1; }
        if (st.fused) {
          ms.plan = cl::loraFusedPlan(ms.view, sets[0].step, prop.multiProcessorCount);
          ms.kSplits = ms.plan.clusterSize;
        }
      }
      if (st.store && !cl::loraExpandStoreApplies(modules[0].view, sets[0].step, modules[0].y.ptr, modules[0].view.outTotal(), 0)) {
        std::printf("%-18s %-12s skipped: the store-form expand does not apply\n", cs.name, st.name);
        continue;
      }
      bool supported = true;  // the fused kernel's clusters: one probe launch per module
      for (ModuleState& ms : modules) {
        if (!st.fused) break;
        const cudaError_t status = cl::loraApplyFused(cl::ActDType::BF16, ms.view, sets[0].step, ms.plan, ms.x.ptr, ms.spec.in, ms.y.ptr,
                                                      ms.view.outTotal(), 0, stream);
        if (status == cudaErrorNotSupported) supported = false;
        else CUDA_CHECK(status);
      }
      if (!supported) {
        std::printf("%-18s %-12s skipped: this device cannot run the fused kernel's clusters\n", cs.name, st.name);
        continue;
      }
      for (ModuleState& ms : modules) {
        ms.workspace.resize(st.small ? cl::loraSmallStepWorkspaceBytes(ms.view, sets[0].step, ms.kSplits)
                                     : cl::loraShrinkWorkspaceBytes(ms.view, sets[0].step, ms.kSplits));
        CUDA_CHECK(cudaMemset(ms.workspace.ptr, 0, ms.workspace.count));
      }
      auto shrink = [&](ModuleState& ms, int i) {
        if (st.fused) {  // shrink and expand in one launch
          CUDA_CHECK(cl::loraApplyFused(cl::ActDType::BF16, ms.view, sets[i % kSets].step, ms.plan, ms.x.ptr, ms.spec.in, ms.y.ptr,
                                        ms.view.outTotal(), 0, stream));
          return;
        }
        if (st.small) {
          CUDA_CHECK(cl::loraShrinkSmall(cl::ActDType::BF16, ms.view, sets[i % kSets].step, ms.x.ptr, ms.spec.in, ms.workspace.ptr,
                                         ms.kSplits, stream));
          return;
        }
        CUDA_CHECK(cl::loraShrink(cl::ActDType::BF16, ms.view, sets[i % kSets].step, ms.x.ptr, ms.spec.in, ms.workspace.ptr, ms.kSplits, stream));
      };
      auto expand = [&](ModuleState& ms, int i) {
        if (st.fused) return;  // done by shrink(): its module rows carry the launch's time as shrinkUs, expandUs 0
        if (st.small) {
          CUDA_CHECK(cl::loraExpandSmall(cl::ActDType::BF16, ms.view, sets[i % kSets].step, ms.workspace.ptr, ms.kSplits, ms.y.ptr,
                                         ms.view.outTotal(), 0, stream));
          return;
        }
        if (st.store) {
          CUDA_CHECK(cl::loraExpandStore(cl::ActDType::BF16, ms.view, sets[i % kSets].step, cl::loraShrinkOutput(ms.workspace.ptr),
                                         ms.y.ptr, ms.view.outTotal(), 0, stream));
          return;
        }
        CUDA_CHECK(cl::loraExpand(cl::ActDType::BF16, ms.view, sets[i % kSets].step, cl::loraShrinkOutput(ms.workspace.ptr),
                                  ms.y.ptr, ms.view.outTotal(), 0, stream));
      };
      const int iterations = cs.tokensEach == 1 ? 400 : 40;
      double layerUs = 0, layerFloorBytes = 0;
      for (ModuleState& ms : modules) {
        const int c = ms.view.numSlices, out = ms.view.outTotal();
        const double shrinkBytes = 2.0 * T * ms.spec.in + 2.0 * cs.adapters * c * r * ms.spec.in + 2.0 * T * c * r;
        const double expandBytes = 2.0 * T * c * r + 2.0 * cs.adapters * out * r + (st.store ? 1.0 : 2.0) * 2.0 * T * out;  // y written (store) or read + written
        const double shrinkUs = 1e3 * timeMs(stream, iterations, [&](int i) { shrink(ms, i); });
        const double expandUs = st.fused ? 0.0 : 1e3 * timeMs(stream, iterations, [&](int i) { expand(ms, i); });
        // The small-step expand's store variant (the engine's side expand, session 18): the fp32 delta of every row
        // into a buffer of its own instead of y += (same partials, same grid).
        double deltaUs = 0.0;
        if (st.small && !st.fused) {
          DeviceBuffer<float> delta(static_cast<size_t>(T) * ms.view.outTotal());
          deltaUs = 1e3 * timeMs(stream, iterations, [&](int i) {
            CUDA_CHECK(cl::loraExpandSmallDelta(cl::ActDType::BF16, ms.view, sets[i % kSets].step, ms.workspace.ptr, ms.kSplits,
                                                delta.ptr, ms.view.outTotal(), stream));
          });
        }
        char line[300];
        if (st.fused)
          std::snprintf(line, sizeof line, "%-18s %-12s %-7s fused  %8.1f us %6.0f GB/s (floor %6.1f us, clusters of %2d x %d column parts)",
                        cs.name, st.name, ms.spec.name, shrinkUs, (shrinkBytes + expandBytes) / shrinkUs / 1e3,
                        (shrinkBytes + expandBytes) / kCopyBandwidth * 1e6, ms.plan.clusterSize, ms.plan.columnParts);
        else
          std::snprintf(line, sizeof line, "%-18s %-12s %-7s shrink %8.1f us %6.0f GB/s (floor %6.1f us, kSplits %2d) | expand %8.1f us %6.0f GB/s (floor %6.1f us)",
                        cs.name, st.name, ms.spec.name, shrinkUs, shrinkBytes / shrinkUs / 1e3, shrinkBytes / kCopyBandwidth * 1e6,
                        ms.kSplits, expandUs, expandBytes / expandUs / 1e3, expandBytes / kCopyBandwidth * 1e6);
        if (deltaUs > 0) {
          const size_t at = std::strlen(line);
          std::snprintf(line + at, sizeof line - at, " | delta store %6.1f us", deltaUs);
        }
        table.push_back(line);
        std::printf("%s\n", line);
        char entry[400];
        std::snprintf(entry, sizeof entry,
                      "%s{\"case\":\"%s\",\"strategy\":\"%s\",\"module\":\"%s\",\"shrinkUs\":%.2f,\"expandUs\":%.2f,"
                      "\"shrinkFloorUs\":%.2f,\"expandFloorUs\":%.2f,\"kSplits\":%d,\"expandDeltaUs\":%.2f}",
                      json.back() == '[' ? "" : ",", cs.name, st.name, ms.spec.name, shrinkUs, expandUs,
                      shrinkBytes / kCopyBandwidth * 1e6, expandBytes / kCopyBandwidth * 1e6, ms.kSplits, deltaUs);
        json += entry;
        if (std::string(ms.spec.name) != "o") { layerUs += shrinkUs + expandUs; layerFloorBytes += shrinkBytes + expandBytes; }
      }
      // Fused plan sweep: cluster size (= K splits) x column parts per module, to tune loraFusedPlan.
      if (st.fused && sweeps) {
        for (ModuleState& ms : modules) {
          const cl::FusedPlan autoPlan = ms.plan;
          std::string sweep = std::string(cs.name) + " " + st.name + " " + ms.spec.name + " plan sweep (cluster x parts: us):";
          for (int size : {4, 8, 16})
            for (int parts : {1, 2, 4, 8}) {
              ms.plan = cl::FusedPlan{size, parts};
              const cudaError_t probe = cl::loraApplyFused(cl::ActDType::BF16, ms.view, sets[0].step, ms.plan, ms.x.ptr, ms.spec.in, ms.y.ptr,
                                                           ms.view.outTotal(), 0, stream);
              if (probe == cudaErrorNotSupported) continue;
              CUDA_CHECK(probe);
              const double us = 1e3 * timeMs(stream, 200, [&](int i) { shrink(ms, i); });
              char cell[64];
              std::snprintf(cell, sizeof cell, " %dx%d:%.1f", size, parts, us);
              sweep += cell;
              char entry[240];
              std::snprintf(entry, sizeof entry, ",{\"case\":\"%s\",\"strategy\":\"%s\",\"module\":\"%s\",\"sweepCluster\":%d,\"sweepParts\":%d,\"fusedUs\":%.2f}",
                            cs.name, st.name, ms.spec.name, size, parts, us);
              json += entry;
            }
          ms.plan = autoPlan;
          sweep += " (auto " + std::to_string(autoPlan.clusterSize) + "x" + std::to_string(autoPlan.columnParts) + ")";
          table.push_back(sweep);
          std::printf("%s\n", sweep.c_str());
        }
      }
      // Small-step shrink and expand, each alone, per split count (LORA_BENCH_EXPAND_SWEEP=1, also with
      // LORA_BENCH_NO_SWEEPS): what the re-read of the split partials costs the expand, and what fewer splits cost the
      // shrink (which the engine runs on a side stream under the base GEMM).
      if (st.small && !st.fused && std::getenv("LORA_BENCH_EXPAND_SWEEP") != nullptr) {
        for (ModuleState& ms : modules) {
          const int autoSplits = ms.kSplits;
          std::string sweep = std::string(cs.name) + " " + st.name + " " + ms.spec.name + " split sweep (splits:shrink us/expand us):";
          for (int splits : {1, 2, 4, 8, 16, 32}) {
            const size_t bytes = cl::loraSmallStepWorkspaceBytes(ms.view, sets[0].step, splits);
            if (bytes > ms.workspace.count) {
              ms.workspace.resize(bytes);
              CUDA_CHECK(cudaMemset(ms.workspace.ptr, 0, ms.workspace.count));
            }
            ms.kSplits = splits;
            char cell[64];
            const double shrinkUs = 1e3 * timeMs(stream, 400, [&](int i) { shrink(ms, i); });
            std::snprintf(cell, sizeof cell, " %d:%.1f/%.1f", splits, shrinkUs, 1e3 * timeMs(stream, 400, [&](int i) { expand(ms, i); }));
            sweep += cell;
          }
          ms.kSplits = autoSplits;
          sweep += " (auto " + std::to_string(autoSplits) + ")";
          table.push_back(sweep);
          std::printf("%s\n", sweep.c_str());
        }
      }
      // Small-step split sweep: shrink + expand (PDL) of each module back to back, per split count, to tune
      // loraSmallStepSplits (the pair time, not a graph replay).
      if (st.small && !st.fused && sweeps) {
        for (ModuleState& ms : modules) {
          const int autoSplits = ms.kSplits;
          std::string sweep = std::string(cs.name) + " " + st.name + " " + ms.spec.name + " split sweep (pair us):";
          for (int splits : {4, 8, 16, 32, 64}) {
            const size_t bytes = cl::loraSmallStepWorkspaceBytes(ms.view, sets[0].step, splits);
            if (bytes > ms.workspace.count) ms.workspace.resize(bytes);
            ms.kSplits = splits;
            const double pairUs = 1e3 * timeMs(stream, 400, [&](int i) { shrink(ms, i); expand(ms, i); });
            char cell[64];
            std::snprintf(cell, sizeof cell, " %d:%.1f", splits, pairUs);
            sweep += cell;
            char entry[240];
            std::snprintf(entry, sizeof entry, ",{\"case\":\"%s\",\"strategy\":\"%s\",\"module\":\"%s\",\"sweepSplits\":%d,\"pairUs\":%.2f}",
                          cs.name, st.name, ms.spec.name, splits, pairUs);
            json += entry;
          }
          ms.kSplits = autoSplits;
          sweep += " (auto " + std::to_string(autoSplits) + ")";
          table.push_back(sweep);
          std::printf("%s\n", sweep.c_str());
        }
      }
      // Wide-shrink sweep (LORA_BENCH_WIDE_SWEEP=1): the shrink alone per block tile (loraSetShrinkWideTile), split-K
      // form (global partials, or the cluster split-K up to 8 splits) and split count, to pick the tile and tune
      // loraShrinkSplits for it (any split count is correct for every tile).
      if (st.wideShrink == 1 && st.wideExpand == 0 && st.wideTile < 0 && std::getenv("LORA_BENCH_WIDE_SWEEP") != nullptr) {
        for (ModuleState& ms : modules) {
          const int autoSplits = ms.kSplits;
          // Every tile the kernels have (the setter refuses the first that does not exist), each with both split-K forms.
          for (int variant = 0; cl::loraSetShrinkWideTile(variant / 2); ++variant) {
            const int tile = variant / 2;
            const bool cluster = variant % 2 == 1;
            cl::loraSetShrinkWideCluster(cluster);
            const int tileAuto = cl::loraShrinkSplits(ms.view, sets[0].step, prop.multiProcessorCount);
            std::string sweep = std::string(cs.name) + " " + st.name + " " + ms.spec.name + " tile " + cl::loraShrinkWideTileName(tile) +
                                (cluster ? " cluster" : "") + " split sweep (splits:shrink us):";
            for (int splits : {1, 2, 3, 4, 6, 8, 12}) {
              if (cluster && (splits < 2 || splits > 8)) continue;  // a cluster holds 2-8 splits
              const size_t bytes = cl::loraShrinkWorkspaceBytes(ms.view, sets[0].step, splits);
              if (bytes > ms.workspace.count) ms.workspace.resize(bytes);
              // The tickets sit after the partials, so they move with the split count: zero them for every count.
              CUDA_CHECK(cudaMemset(ms.workspace.ptr, 0, ms.workspace.count));
              ms.kSplits = splits;
              const double us = 1e3 * timeMs(stream, 40, [&](int i) { shrink(ms, i); });
              char cell[64];
              std::snprintf(cell, sizeof cell, " %d:%.1f", splits, us);
              sweep += cell;
              char entry[240];
              std::snprintf(entry, sizeof entry,
                            ",{\"case\":\"%s\",\"strategy\":\"%s\",\"module\":\"%s\",\"wideTile\":\"%s\",\"cluster\":%s,\"sweepSplits\":%d,\"shrinkUs\":%.2f}",
                            cs.name, st.name, ms.spec.name, cl::loraShrinkWideTileName(tile), cluster ? "true" : "false", splits, us);
              json += entry;
            }
            sweep += " (auto " + std::to_string(tileAuto) + ")";
            table.push_back(sweep);
            std::printf("%s\n", sweep.c_str());
          }
          cl::loraSetShrinkWideTile(wideTileDefault);
          cl::loraSetShrinkWideCluster(wideClusterDefault);
          ms.kSplits = autoSplits;
          CUDA_CHECK(cudaMemset(ms.workspace.ptr, 0, ms.workspace.count));  // the auto count's tickets, over old partials
        }
      }
      // Wide-expand wave sweep (LORA_BENCH_WIDE_SWEEP=1): the expand alone per (pipeline stages, blocks-per-SM target of
      // its strips). LORA_BENCH_STORE_SWEEP=1: the same for the store-form strategies (lean ones: 3 blocks fit per SM).
      if (((st.wideExpand == 1 && st.wideShrink == 0 && std::getenv("LORA_BENCH_WIDE_SWEEP") != nullptr) ||
           (st.store && std::getenv("LORA_BENCH_STORE_SWEEP") != nullptr))) {
        for (ModuleState& ms : modules) {
          std::string sweep = std::string(cs.name) + " " + st.name + " " + ms.spec.name + " wide expand sweep (stages/blocks per SM:expand us):";
          for (const auto [stages, perSm] : {std::pair{3, 1}, {3, 2}, {3, 3}, {3, 4}, {3, 6}, {3, 8}, {4, 2}, {4, 3}}) {
            cl::loraSetExpandWideStages(stages);
            cl::loraSetExpandWideBlocksPerSm(perSm);
            const double us = 1e3 * timeMs(stream, 40, [&](int i) { expand(ms, i); });
            char cell[64];
            std::snprintf(cell, sizeof cell, " %d/%d:%.1f", stages, perSm, us);
            sweep += cell;
          }
          cl::loraSetExpandWideBlocksPerSm(0);
          cl::loraSetExpandWideStages(3);
          table.push_back(sweep);
          std::printf("%s\n", sweep.c_str());
        }
      }
      // The three modules back to back as one CUDA graph per adapter set (what a captured decode step replays); every
      // LoRA kernel a programmatic dependent launch (PDL, the default) or all of them plain. perSet(k) captures what
      // one adapter set launches (default: the layer); µs per set.
      auto graphReplayUs = [&](bool programmatic, const std::function<void(int)>& perSet) {
        cudaGraph_t graph;
        cudaGraphExec_t exec;
        const bool before = cl::loraProgrammaticLaunch();
        cl::loraSetProgrammaticLaunch(programmatic && before);
        CUDA_CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeGlobal));
        for (int k = 0; k < kSets; ++k) perSet(k);
        CUDA_CHECK(cudaStreamEndCapture(stream, &graph));
        cl::loraSetProgrammaticLaunch(before);
        CUDA_CHECK(cudaGraphInstantiate(&exec, graph, 0));
        const double us = 1e3 * timeMs(stream, cs.tokensEach == 1 ? 50 : 5, [&](int) { CUDA_CHECK(cudaGraphLaunch(exec, stream)); }) / kSets;
        CUDA_CHECK(cudaGraphExecDestroy(exec));
        CUDA_CHECK(cudaGraphDestroy(graph));
        return us;
      };
      auto layer = [&](int k) {
        for (size_t mi = 0; mi < 3; ++mi) { shrink(modules[mi], k); expand(modules[mi], k); }
      };
      // Where a decode layer's graph time goes (v11): per module, the shrink alone, the expand alone and the pair, each
      // replayed as a PDL chain over the 8 adapter sets (a kernel's cost inside a chain, launch gaps included; the
      // per-kernel rows above are stream launches, whose CPU launch rate can bound them).
      if (cs.tokensEach == 1) {
        for (size_t mi = 0; mi < 3 && !st.fused; ++mi) {
          ModuleState& ms = modules[mi];
          const double sUs = graphReplayUs(true, [&](int k) { shrink(ms, k); });
          const double eUs = graphReplayUs(true, [&](int k) { expand(ms, k); });
          const double pUs = graphReplayUs(true, [&](int k) { shrink(ms, k); expand(ms, k); });
          char line[300];
          std::snprintf(line, sizeof line, "%-18s %-12s %-7s in a graph chain: shrink %6.1f us, expand %6.1f us, pair %6.1f us", cs.name,
                        st.name, ms.spec.name, sUs, eUs, pUs);
          table.push_back(line);
          std::printf("%s\n", line);
          char entry[300];
          std::snprintf(entry, sizeof entry, ",{\"case\":\"%s\",\"strategy\":\"%s\",\"module\":\"%s\",\"graphShrinkUs\":%.2f,\"graphExpandUs\":%.2f,\"graphPairUs\":%.2f}",
                        cs.name, st.name, ms.spec.name, sUs, eUs, pUs);
          json += entry;
        }
      }
      const double graphUs = graphReplayUs(true, layer);
      const double graphNoPdlUs = graphReplayUs(false, layer);
      const double floorUs = layerFloorBytes / kCopyBandwidth * 1e6;
      char line[400];
      char noPdl[64] = "";
      std::snprintf(noPdl, sizeof noPdl, " (without PDL %.1f us)", graphNoPdlUs);
      std::snprintf(line, sizeof line, "%-18s %-12s LAYER qkv+gate_up+down: sum of kernels %8.1f us, graph replay %8.1f us%s, floor %6.1f us, %5.0f GB/s (%.1f%% of %.2f TB/s)",
                    cs.name, st.name, layerUs, graphUs, noPdl, floorUs, layerFloorBytes / graphUs / 1e3,
                    100.0 * layerFloorBytes / graphUs / 1e3 / (kCopyBandwidth / 1e9), kCopyBandwidth / 1e12);
      table.push_back(line);
      std::printf("%s\n", line);
      char entry[400];
      std::snprintf(entry, sizeof entry, ",{\"case\":\"%s\",\"strategy\":\"%s\",\"module\":\"layer\",\"sumUs\":%.2f,\"graphUs\":%.2f,\"graphNoPdlUs\":%.2f,\"floorUs\":%.2f}",
                    cs.name, st.name, layerUs, graphUs, graphNoPdlUs, floorUs);
      json += entry;
    }
  }
  json += "]}\n";
  if (argc > 1) {
    FILE* f = std::fopen(argv[1], "w");
    if (f) { std::fputs(json.c_str(), f); std::fclose(f); }
  }
  std::printf("\n==== summary ====\n");
  for (const auto& l : table) std::printf("%s\n", l.c_str());
  return 0;
}
