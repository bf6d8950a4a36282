// Every CUDA LoRA kernel against its CPU twin (LoraPool::apply, fp32) on random inputs: several shapes (aligned
// vector paths and odd scalar paths, long K for split-K), ranks 1..128, both strategies, chunk sizes 16..128,
// odd token counts, decode-only / mixed / all-base batches, padded (graph-style) segment tables, bf16 and fp16;
// embed_tokens (loraEmbedGather + loraExpand) against the CPU pool's Module::Embed apply with random token ids.
// Exit 0 = all passed, 1 = a failure, 77 = no usable GPU (the test reports a skip).
#include <cmath>
#include <cstdlib>
#include <cstdio>
#include <cstring>
#include <memory>

#include "device_pool.h"
#include "lora_small_variant.h"
#include "output_check.h"
#include "test_thread_pool.h"

using namespace tslora::lora;
using namespace tslora::lora::test;
namespace cl = tslora::cuda::lora;

namespace {

struct Shape {
  const char* name;
  int hidden, qOut, kvOut, inter, maxRank, slots;
  std::vector<int> ranks;  // one adapter per slot; the last slot stays empty
  int xPad, yPad;          // extra row stride (odd values force the scalar paths)
};

struct BatchSpec {
  const char* name;
  std::vector<int> slots, counts;  // slot index into the shape's slots, -1 = base
};

tslora::ThreadPool& threads() {
  static tslora::ThreadPool pool(2);
  return pool;
}

// Which kernels run a case: the tiled shrink/expand (lora_shrink.cu, lora_expand.cu) or the small-step pair
// (lora_small_shrink.cu, lora_small_expand.cu) with the split count of loraSmallStepSplits (and the per-segment ranks
// of DeviceStep::segmentRanks, as the device pool passes them), with 1 split (and the expand as a plain launch instead
// of a programmatic dependent of the shrink), or with 3 (uneven K ranges, empty trailing splits on short K).
// TiledPrefetchY: the tiled kernels with the expand's y prefetch (loraSetExpandPrefetchY; 16-byte paths only).
// TiledWideShrink: the tiled kernels with the wide shrink forced on (loraSetShrinkWide; steps with maxSegmentRows > 32
// only, where its 16-byte conditions fail the v5 shrink runs) and the split count loraShrinkSplits picks for it;
// TiledWide: the wide shrink and the wide expand (loraSetExpandWide; where its conditions fail the v5 expand runs).
// TiledWideShrink{M128K32, M128K64, M64K64, M64K64F}: TiledWideShrink with that block tile of the wide shrink
// (loraSetShrinkWideTile; session 22) instead of w8, each with the split count loraShrinkSplits picks for it; the
// *Cluster paths with the cluster split-K (loraSetShrinkWideCluster) as well.
// The wide expand is on by default (and since session 23 the wide shrink with the m64k64 tile), so Tiled runs them on
// long row tiles too; TiledPrefetchY and TiledWideShrink keep the
// v5 expand everywhere (its coverage on long tiles).
// Fused: the one-launch small-step kernel (lora_small_fused.cu) with loraFusedPlan's plan; FusedForced: with clusters
// of 16 (the non-portable size) and 3 column parts.
// FNV-1a over output bits (the small-step pair's digest printed at the end).
uint64_t smallPairDigest = 14695981039346656037ull;
uint64_t fnv1a(uint64_t h, const std::vector<uint16_t>& bits) {
  for (uint16_t v : bits) {
    h = (h ^ (v & 0xff)) * 1099511628211ull;
    h = (h ^ (v >> 8)) * 1099511628211ull;
  }
  return h;
}

enum class Path {
  Tiled, TiledPrefetchY, TiledWideShrink, TiledWideShrinkM128K32, TiledWideShrinkM128K64, TiledWideShrinkM64K64, TiledWideShrinkM64K64F,
  TiledWideShrinkM128K32Cluster, TiledWideShrinkM128K64Cluster, TiledWideShrinkM64K64Cluster, TiledWideShrinkM64K64FCluster, TiledWide,
  SmallAuto, SmallOne, SmallThree, Fused, FusedForced
};
bool wideShrinkClusterOf(Path p) {
  return p == Path::TiledWideShrinkM128K32Cluster || p == Path::TiledWideShrinkM128K64Cluster || p == Path::TiledWideShrinkM64K64Cluster ||
         p == Path::TiledWideShrinkM64K64FCluster;
}
// The wide shrink's block tile a path runs (loraSetShrinkWideTile's numbering), -1 for paths without the wide shrink.
int wideShrinkTileOf(Path p) {
  return p == Path::TiledWideShrink || p == Path::TiledWide ? 0
         : p == Path::TiledWideShrinkM128K32 || p == Path::TiledWideShrinkM128K32Cluster ? 1
         : p == Path::TiledWideShrinkM128K64 || p == Path::TiledWideShrinkM128K64Cluster ? 2
         : p == Path::TiledWideShrinkM64K64 || p == Path::TiledWideShrinkM64K64Cluster ? 3
         : p == Path::TiledWideShrinkM64K64F || p == Path::TiledWideShrinkM64K64FCluster ? 4 : -1;
}
const char* pathName(Path p) {
  return p == Path::Tiled ? "tiled" : p == Path::TiledPrefetchY ? "tiled/prefetch y" : p == Path::TiledWideShrink ? "tiled/wide shrink"
         : p == Path::TiledWideShrinkM128K32 ? "tiled/wide shrink m128k32" : p == Path::TiledWideShrinkM128K64 ? "tiled/wide shrink m128k64"
         : p == Path::TiledWideShrinkM64K64 ? "tiled/wide shrink m64k64"
         : p == Path::TiledWideShrinkM64K64F ? "tiled/wide shrink m64k64f"
         : p == Path::TiledWideShrinkM128K32Cluster ? "tiled/wide shrink m128k32 cluster"
         : p == Path::TiledWideShrinkM128K64Cluster ? "tiled/wide shrink m128k64 cluster"
         : p == Path::TiledWideShrinkM64K64Cluster ? "tiled/wide shrink m64k64 cluster"
         : p == Path::TiledWideShrinkM64K64FCluster ? "tiled/wide shrink m64k64f cluster"
         : p == Path::TiledWide ? "tiled/wide"
         : p == Path::SmallAuto ? "small"
         : p == Path::SmallOne ? "small/1 split" : p == Path::SmallThree ? "small/3 splits" : p == Path::Fused ? "fused" : "fused/16x3";
}
const char* kNotApplicable = "n/a";

// Runs one module through CPU and GPU; returns an empty string on success, kNotApplicable when the path does not
// apply to the step (the small-step kernels need numTokens <= kSmallStepMaxTokens and R <= kSmallStepMaxRank).
std::string runCase(const PoolConfig& c, const LoraPool& cpu, Module m, const DeviceModulePool& dev, const int32_t* dRanks,
                    const Segments& seg, bool csgmv, cl::ActDType dtype, int xPad, int yPad, Rng& rng, int numSms, Path path) {
  const int wideTile = wideShrinkTileOf(path);
  const bool wide = wideTile >= 0, wideShrinkOnly = wide && path != Path::TiledWide;
  const bool small = path != Path::Tiled && path != Path::TiledPrefetchY && !wide;
  if (wide && seg.chunkSize <= 32) return kNotApplicable;  // short row tiles: the v5 kernels
  struct WideScope {  // process-wide switches: restored whatever happens; set before the split count is chosen
    WideScope(bool shrinkOn, bool expandOn, int tile, bool cluster)
        : shrink(cl::loraShrinkWideOn()), expand(cl::loraExpandWideOn()), tile(cl::loraShrinkWideTile()),
          cluster(cl::loraShrinkWideClusterOn()) {
      cl::loraSetShrinkWide(shrinkOn);
      cl::loraSetExpandWide(expandOn);
      if (tile >= 0) {
        cl::loraSetShrinkWideTile(tile);
        cl::loraSetShrinkWideCluster(cluster);
      }
    }
    ~WideScope() {
      cl::loraSetShrinkWide(shrink);
      cl::loraSetExpandWide(expand);
      cl::loraSetShrinkWideTile(tile);
      cl::loraSetShrinkWideCluster(cluster);
    }
    bool shrink, expand;
    int tile;
    bool cluster;
  } wideScope(wide || cl::loraShrinkWideOn(),
              path == Path::TiledWide || (!wideShrinkOnly && path != Path::TiledPrefetchY && cl::loraExpandWideOn()),
              wideTile, wideShrinkClusterOf(path));
  if (small) {  // applicability depends on the module and the token count only
    cl::DeviceStep probe;
    probe.maxSegments = 1;
    probe.numTokens = static_cast<int>(seg.rowSlots.size());
    if (m == Module::Embed || cl::loraSmallStepSplits(dev.view, probe, numSms) == 0) return kNotApplicable;
  }
  const ModuleShape& s = c.shapes[static_cast<int>(m)];
  const int T = static_cast<int>(seg.rowSlots.size());
  const int xStride = s.in + xPad, yStride = s.outTotal() + 2 * yPad, yOffset = yPad;
  const bool embed = m == Module::Embed;  // x unused; token ids (the vocabulary's last id included) pick A's columns
  std::vector<int32_t> tokenIds(T);
  for (int p = 0; p < T; ++p) tokenIds[p] = p == 0 ? s.in - 1 : rng.integer(0, s.in - 1);
  std::vector<uint16_t> xBits(embed ? 0 : static_cast<size_t>(T) * xStride), yBits(static_cast<size_t>(T) * yStride);
  std::vector<float> x(xBits.size()), y(yBits.size());
  for (size_t i = 0; i < xBits.size(); ++i) { xBits[i] = toActBits(rng.uniform(), dtype); x[i] = fromActBits(xBits[i], dtype); }
  const float baseScale = baseScaleFor(embed, yBits.size(), [&](float* zeros) {
    cpu.apply(0, m, nullptr, xStride, zeros, yStride, yOffset, seg.step(csgmv), threads(), tokenIds.data());
  });
  for (size_t i = 0; i < yBits.size(); ++i) { yBits[i] = toActBits(rng.uniform() * baseScale, dtype); y[i] = fromActBits(yBits[i], dtype); }
  const std::vector<float> y0 = y;
  cpu.apply(0, m, embed ? nullptr : x.data(), xStride, y.data(), yStride, yOffset, seg.step(csgmv), threads(),
            embed ? tokenIds.data() : nullptr);

  // Graph-style static tables: 3 padding segments repeat the last boundary and point at slot 0 (they must be empty).
  std::vector<int32_t> indptr = seg.segIndptr, weights = seg.weightIndices;
  for (int pad = 0; pad < 3; ++pad) { indptr.push_back(indptr.back()); weights.push_back(0); }
  DeviceBuffer<int32_t> dIndptr, dWeights, dPerm, dSegRanks;
  dIndptr.upload(indptr);
  dWeights.upload(weights);
  std::vector<int32_t> segRanks;  // what DeviceLoraPool::setStep snapshots; the small path with its own splits reads it
  for (int32_t w : weights) segRanks.push_back(w >= 0 ? cpu.slotRank(w) : 0);
  dSegRanks.upload(segRanks);
  if (!seg.permutation.empty()) dPerm.upload(seg.permutation);
  DeviceBuffer<uint16_t> dX, dY;
  DeviceBuffer<int32_t> dIds;
  if (!embed) dX.upload(xBits);
  dY.upload(yBits);
  dIds.upload(tokenIds);
  cl::DeviceStep step;
  step.segIndptr = dIndptr.ptr;
  step.weightIndices = dWeights.ptr;
  step.permutation = seg.permutation.empty() ? nullptr : dPerm.ptr;
  step.slotRanks = dRanks;
  step.maxSegments = static_cast<int>(weights.size());
  step.maxSegmentRows = seg.chunkSize;
  step.numTokens = T;
  if (path == Path::SmallAuto || path == Path::Fused) step.segmentRanks = dSegRanks.ptr;
  const bool fused = path == Path::Fused || path == Path::FusedForced;
  const cl::FusedPlan plan = path == Path::Fused ? cl::loraFusedPlan(dev.view, step, numSms) : cl::FusedPlan{16, 3};
  const int kSplits = embed ? 1
                     : !small ? cl::loraShrinkSplits(dev.view, step, numSms)
                     : path == Path::SmallAuto ? cl::loraSmallStepSplits(dev.view, step, numSms)
                     : path == Path::SmallOne ? 1 : 3;
  const size_t workspaceBytes = small ? cl::loraSmallStepWorkspaceBytes(dev.view, step, kSplits)
                                      : cl::loraShrinkWorkspaceBytes(dev.view, step, kSplits);
  const size_t counterBytes = small ? 0 : cl::loraShrinkCounterBytes(dev.view, step);
  DeviceBuffer<unsigned char> workspace(workspaceBytes);
  CUDA_CHECK(cudaMemset(workspace.ptr, 0xff, workspaceBytes - counterBytes));  // NaN poison: unwritten U is never read
  CUDA_CHECK(cudaMemset(workspace.ptr + workspaceBytes - counterBytes, 0, counterBytes));
  // Twice on the same workspace: the split-K tickets must reset themselves (graph replays reuse them).
  struct PrefetchScope {  // the switch is process-wide: restored whatever happens
    explicit PrefetchScope(bool on) : before(cl::loraExpandPrefetchY()) { cl::loraSetExpandPrefetchY(on); }
    ~PrefetchScope() { cl::loraSetExpandPrefetchY(before); }
    bool before;
  } prefetchScope(path == Path::TiledPrefetchY);
  for (int pass = 0; pass < 2; ++pass) {
    if (pass == 1) CUDA_CHECK(cudaMemcpy(dY.ptr, yBits.data(), yBits.size() * 2, cudaMemcpyHostToDevice));
    if (fused) {
      CUDA_CHECK(cl::loraApplyFused(dtype, dev.view, step, plan, dX.ptr, xStride, dY.ptr, yStride, yOffset, nullptr));
      continue;
    }
    if (small) {
      CUDA_CHECK(cl::loraShrinkSmall(dtype, dev.view, step, dX.ptr, xStride, workspace.ptr, kSplits, nullptr));
      // The one-split case also runs the expand as a plain launch (no programmatic overlap with the shrink).
      CUDA_CHECK(cl::loraExpandSmall(dtype, dev.view, step, workspace.ptr, kSplits, dY.ptr, yStride, yOffset, nullptr,
                                     path != Path::SmallOne));
      continue;
    }
    if (embed)
      CUDA_CHECK(cl::loraEmbedGather(dtype, dev.view, step, dIds.ptr, reinterpret_cast<float*>(workspace.ptr), nullptr));
    else
      CUDA_CHECK(cl::loraShrink(dtype, dev.view, step, dX.ptr, xStride, workspace.ptr, kSplits, nullptr));
    CUDA_CHECK(cl::loraExpand(dtype, dev.view, step, cl::loraShrinkOutput(workspace.ptr), dY.ptr, yStride, yOffset, nullptr));
  }
  CUDA_CHECK(cudaDeviceSynchronize());
  std::vector<uint16_t> out(yBits.size());
  CUDA_CHECK(cudaMemcpy(out.data(), dY.ptr, out.size() * 2, cudaMemcpyDeviceToHost));
  if (small && !fused) smallPairDigest = fnv1a(smallPairDigest, out);
  if (small && !fused && !embed) {
    // The side expand's store variant over the same partials (loraExpandSmallDelta): act_round(y + delta) must be the
    // pair's y bit for bit, base rows hold -0.0f, the stride's padding stays as poisoned.
    const int dStride = s.outTotal() + 4;
    DeviceBuffer<float> dDelta(static_cast<size_t>(T) * dStride);
    CUDA_CHECK(cudaMemset(dDelta.ptr, 0xff, dDelta.count * sizeof(float)));
    CUDA_CHECK(cl::loraExpandSmallDelta(dtype, dev.view, step, workspace.ptr, kSplits, dDelta.ptr, dStride, nullptr));
    std::vector<float> delta(dDelta.count);
    CUDA_CHECK(cudaMemcpy(delta.data(), dDelta.ptr, delta.size() * sizeof(float), cudaMemcpyDeviceToHost));
    for (int row = 0; row < T; ++row)
      for (int col = 0; col < dStride; ++col) {
        const float d = delta[static_cast<size_t>(row) * dStride + col];
        if (col >= s.outTotal()) {
          if (!std::isnan(d)) return "delta store wrote the stride padding at row " + std::to_string(row);
          continue;
        }
        const size_t i = static_cast<size_t>(row) * yStride + yOffset + col;
        const bool lora = seg.rowSlots[row] >= 0 && cpu.slotRank(seg.rowSlots[row]) > 0;
        if (!lora && !(d == 0.0f && std::signbit(d))) return "delta store: base row " + std::to_string(row) + " not -0";
        if (toActBits(fromActBits(yBits[i], dtype) + d, dtype) != out[i])
          return "delta store: act_round(y + delta) differs from the pair at row " + std::to_string(row) + " col " + std::to_string(col);
      }
    // The Act store (TSLORA_CUDA_LORA_DELTA_ACT; v10 layout only): each value the fp32 store's rounded to Act, 16-byte
    // rows (stride + 8) so the vector store runs, the padding untouched.
    if (cl::loraSmallV10()) {
      const int aStride = s.outTotal() + 8;
      DeviceBuffer<uint16_t> dAct(static_cast<size_t>(T) * aStride);
      CUDA_CHECK(cudaMemset(dAct.ptr, 0xff, dAct.count * sizeof(uint16_t)));
      CUDA_CHECK(cl::loraExpandSmallDelta(dtype, dev.view, step, workspace.ptr, kSplits, dAct.ptr, aStride, nullptr, true, true));
      std::vector<uint16_t> act(dAct.count);
      CUDA_CHECK(cudaMemcpy(act.data(), dAct.ptr, act.size() * sizeof(uint16_t), cudaMemcpyDeviceToHost));
      for (int row = 0; row < T; ++row)
        for (int col = 0; col < aStride; ++col) {
          const uint16_t a = act[static_cast<size_t>(row) * aStride + col];
          const uint16_t want = col >= s.outTotal() ? 0xffff : toActBits(delta[static_cast<size_t>(row) * dStride + col], dtype);
          if (a != want) return "Act delta store differs from act_round(fp32 store) at row " + std::to_string(row) + " col " + std::to_string(col);
        }
      // The capped grid (TSLORA_CUDA_LORA_SIDE_EXPAND_MAX_BLOCKS): two blocks striding over the column blocks store the
      // full grid's bits.
      DeviceBuffer<float> dCapped(dDelta.count);
      CUDA_CHECK(cudaMemset(dCapped.ptr, 0xff, dCapped.count * sizeof(float)));
      CUDA_CHECK(cl::loraExpandSmallDelta(dtype, dev.view, step, workspace.ptr, kSplits, dCapped.ptr, dStride, nullptr, true, false, 2));
      std::vector<float> capped(dCapped.count);
      CUDA_CHECK(cudaMemcpy(capped.data(), dCapped.ptr, capped.size() * sizeof(float), cudaMemcpyDeviceToHost));
      if (std::memcmp(capped.data(), delta.data(), capped.size() * sizeof(float)) != 0) return "capped delta store differs from the full grid's";
    }
  }

  int longestSegment = 0;  // the store form's tiles must reach every row (DeviceLoraPool::storeApplies checks the same)
  for (size_t g = 0; g + 1 < indptr.size(); ++g) longestSegment = std::max(longestSegment, indptr[g + 1] - indptr[g]);
  if (path == Path::TiledWide && !embed && cl::loraExpandStoreApplies(dev.view, step, dY.ptr, yStride, yOffset) &&
      longestSegment <= cl::loraExpandStoreRowsPerSegment(step)) {
    // The store form (loraExpandStore, the engine's store-first prefill) over the same U: the delta alone against the
    // CPU twin's (y - y0), exact +0 in base rows, the stride's padding columns untouched (poisoned).
    DeviceBuffer<uint16_t> dStore(yBits.size());
    CUDA_CHECK(cudaMemset(dStore.ptr, 0xff, dStore.count * sizeof(uint16_t)));
    CUDA_CHECK(cl::loraExpandStore(dtype, dev.view, step, cl::loraShrinkOutput(workspace.ptr), dStore.ptr, yStride, yOffset, nullptr));
    CUDA_CHECK(cudaDeviceSynchronize());
    std::vector<uint16_t> stored(dStore.count);
    CUDA_CHECK(cudaMemcpy(stored.data(), dStore.ptr, stored.size() * 2, cudaMemcpyDeviceToHost));
    OutputCheck storeCheck(dtype);
    for (int row = 0; row < T; ++row)
      for (int col = 0; col < yStride; ++col) {
        const size_t i = static_cast<size_t>(row) * yStride + col;
        const bool inModule = col >= yOffset && col < yOffset + s.outTotal();
        const bool lora = seg.rowSlots[row] >= 0 && cpu.slotRank(seg.rowSlots[row]) > 0;
        if (!inModule) {
          if (stored[i] != 0xffff) return "store expand wrote a column outside the module at row " + std::to_string(row);
        } else if (!lora) {
          if (stored[i] != 0) return "store expand: base row " + std::to_string(row) + " col " + std::to_string(col) + " is not +0";
        } else {
          storeCheck.add(fromActBits(stored[i], dtype), y[i] - y0[i], 0.0f);
        }
      }
    const std::string storeVerdict = storeCheck.verdict(" (store expand)");
    if (!storeVerdict.empty()) return storeVerdict;
  }

  OutputCheck check(dtype);
  for (int row = 0; row < T; ++row)
    for (int col = 0; col < yStride; ++col) {
      const size_t i = static_cast<size_t>(row) * yStride + col;
      const float got = fromActBits(out[i], dtype);
      const bool lora = seg.rowSlots[row] >= 0 && cpu.slotRank(seg.rowSlots[row]) > 0 && col >= yOffset && col < yOffset + s.outTotal();
      if (!lora) {
        if (out[i] != yBits[i]) return "changed a base row or a column outside the module at row " + std::to_string(row);
        continue;
      }
      if (!std::isfinite(got)) return "non-finite output at row " + std::to_string(row) + " col " + std::to_string(col);
      check.add(got, y[i], y0[i]);
    }
  return check.verdict((std::string(" (") + pathName(path) + ", kSplits " + std::to_string(fused ? plan.clusterSize : kSplits) + ")").c_str());
}

}  // namespace

int main(int argc, char** argv) {
  // --quick (for compute-sanitizer): the odd and the R64 shapes, bf16, three batches, triton and csgmv C16, the tiled
  // kernels and the small-step pair with its own split count.
  const bool quick = argc > 1 && std::string(argv[1]) == "--quick";
  // LORA_TEST_PATHS="tiled,tiled/wide shrink" runs only those paths (pathName; a device round's short run).
  const char* onlyPaths = std::getenv("LORA_TEST_PATHS");
  int devices = 0;
  const cudaError_t probe = cudaGetDeviceCount(&devices);
  if (probe != cudaSuccess || devices == 0) {
    std::printf("skip: no usable CUDA device (%s)\n", probe != cudaSuccess ? cudaGetErrorString(probe) : "0 devices");
    return 77;
  }
  int numSms = 0;
  CUDA_CHECK(cudaDeviceGetAttribute(&numSms, cudaDevAttrMultiProcessorCount, 0));
  const std::vector<Shape> shapes = {
      {"aligned R128", 256, 256, 64, 512, 128, 7, {1, 3, 8, 16, 64, 128}, 8, 8},
      {"odd R20", 200, 200, 40, 300, 20, 4, {1, 5, 20}, 3, 5},
      {"long-K R16", 512, 512, 128, 2816, 16, 4, {16, 4, 9}, 0, 0},
      {"aligned R64", 384, 384, 128, 1024, 64, 7, {1, 8, 16, 64, 40, 24}, 8, 8},  // small path: 1-3 column passes
      // down_proj K past 8192: the small-step pair's long-K split policy (TSLORA_CUDA_LORA_SMALL_LONGK) gives it more splits
      {"long-K R16 9216", 256, 256, 64, 9216, 16, 4, {16, 4, 9}, 0, 0},
  };
  const std::vector<BatchSpec> batches = {
      {"decode-only", {0, 1, -1, 2, 3, 0, 5, 4, 1, 0, 2, -1, 3, 5, 5, 1, 0, 2, 4, 3, 1, 0, 6, 2, 1, 4, 0, 3, 2, 5, 1, 0, 3, 4, 2, 6, 1},
       std::vector<int>(37, 1)},
      {"mixed odd prefill", {0, 2, -1, 1, 3, 0, 6}, {1, 77, 5, 13, 200, 0, 9}},
      {"all base", {-1, 6}, {5, 3}},
      {"one adapter", {1, 1}, {300, 33}},
      {"small-step T128", {0, 2, -1, 1, 3, 0, 6, 4, 5}, {1, 40, 5, 13, 50, 2, 9, 7, 1}},
      {"small-step edge T256", {0, 2, -1, 1, 3, 0, 6, 4, 5}, {1, 80, 5, 13, 100, 2, 9, 45, 1}},  // 256 rows: small path
      {"tiled edge T257", {0, 2, -1, 1, 3, 0, 6, 4, 5}, {1, 80, 5, 13, 100, 2, 9, 45, 2}},       // 257 rows: tiled only
      {"decode one shared adapter", {2}, {1}},  // filled below: 64 requests of one adapter
  };
  int failures = 0, passes = 0, tiledPasses = 0, smallPasses = 0, fusedPasses = 0;
  for (const Shape& shape : shapes) {
    if (quick && (&shape == &shapes[0] || &shape == &shapes[2])) continue;
    PoolConfig c = makeConfig(shape.slots, shape.maxRank, 1, shape.hidden, shape.qOut, shape.kvOut, shape.inter, 1003);
    c.targets[static_cast<int>(Module::LmHead)] = false;
    for (cl::ActDType dtype : {cl::ActDType::BF16, cl::ActDType::F16}) {
      if (quick && dtype != cl::ActDType::BF16) continue;
      Rng rng(42 + shape.maxRank + static_cast<int>(dtype));
      const DType adapterType = dtype == cl::ActDType::BF16 ? DType::BF16 : DType::F16;
      std::vector<TestAdapter> adapters;
      for (int r : shape.ranks)
        adapters.push_back(makeAdapter(rng, c, r, {kPeftQ, kPeftV, kPeftO, kPeftGate, kPeftUp, kPeftDown, kPeftEmbed}, adapterType));
      adapters.back().pairs.push_back(makeAdapter(rng, c, adapters.back().rank, {kPeftK}, adapterType, false).pairs[0]);
      std::vector<const TestAdapter*> slotAdapters(c.numSlots, nullptr);
      LoraPool cpu(c);
      std::vector<int32_t> ranks(c.numSlots, 0);
      for (size_t i = 0; i < adapters.size() && static_cast<int>(i) < c.numSlots - 1; ++i) {
        slotAdapters[i] = &adapters[i];
        cpu.writeSlot(static_cast<int>(i), *buildHostAdapter(adapters[i].input(), c));
        ranks[i] = adapters[i].rank;
      }
      DeviceBuffer<int32_t> dRanks;
      dRanks.upload(ranks);
      for (Module m : {Module::QKV, Module::O, Module::GateUp, Module::Down, Module::Embed}) {
        DeviceModulePool dev;
        buildDeviceModule(c, m, m == Module::Embed ? -1 : 0, slotAdapters, dtype, dev);  // embed pairs have layer -1
        for (const BatchSpec& b : batches) {
          const std::string batchName = b.name;
          if (quick && batchName != "decode-only" && batchName != "mixed odd prefill" && batchName != "small-step T128") continue;
          std::vector<int> slots = b.slots, counts = b.counts;
          if (std::string(b.name) == "decode one shared adapter") { slots.assign(64, 2); counts.assign(64, 1); }
          for (int& s : slots) s = s < 0 ? -1 : s == 6 ? c.numSlots - 1 : s % (c.numSlots - 1);  // 6 = the empty slot
          struct Variant { const char* name; bool csgmv; int cap; };
          for (const Variant& v : {Variant{"triton", false, 16}, Variant{"csgmv C16", true, 16}, Variant{"csgmv C<=64", true, 64},
                                   Variant{"csgmv C<=128", true, 128}}) {
            if (quick && v.cap != 16) continue;
            const Segments seg = buildSegments(slots, counts, v.csgmv, v.cap);
            for (Path path : {Path::Tiled, Path::TiledPrefetchY, Path::TiledWideShrink, Path::TiledWideShrinkM128K32, Path::TiledWideShrinkM128K64,
                              Path::TiledWideShrinkM64K64, Path::TiledWideShrinkM64K64F, Path::TiledWideShrinkM128K32Cluster,
                              Path::TiledWideShrinkM128K64Cluster, Path::TiledWideShrinkM64K64Cluster, Path::TiledWideShrinkM64K64FCluster,
                              Path::TiledWide, Path::SmallAuto, Path::SmallOne, Path::SmallThree, Path::Fused,
                              Path::FusedForced}) {
              if (quick && (path == Path::SmallOne || path == Path::SmallThree || path == Path::FusedForced)) continue;
              if (onlyPaths != nullptr && ("," + std::string(onlyPaths) + ",").find("," + std::string(pathName(path)) + ",") == std::string::npos)
                continue;
              std::string label = std::string(shape.name) + (dtype == cl::ActDType::BF16 ? " bf16 " : " fp16 ") +
                                  moduleNameOf(m) + " " + b.name + " " + v.name + " " + pathName(path);
              std::string error;
              try {
                error = runCase(c, cpu, m, dev, dRanks.ptr, seg, v.csgmv, dtype, shape.xPad, shape.yPad, rng, numSms, path);
              } catch (const std::exception& e) {
                error = e.what();
              }
              if (error == kNotApplicable) continue;
              if (error.empty()) ++passes, ++(path == Path::Tiled || path == Path::TiledPrefetchY || wideShrinkTileOf(path) >= 0 ? tiledPasses
                                              : path == Path::Fused || path == Path::FusedForced ? fusedPasses : smallPasses);
              else { ++failures; std::printf("FAIL %s: %s\n", label.c_str(), error.c_str()); }
            }
          }
        }
      }
    }
  }
  std::printf("(%d tiled-kernel cases, %d small-step pair cases and %d fused small-step cases passed)\n", tiledPasses, smallPasses,
              fusedPasses);
  // Bits of every small-step pair output (the same inputs for the same LORA_TEST_PATHS): two runs with different
  // switches of lora_small_variant.h must print the same digest (their contract: bit-identical results).
  std::printf("small-step pair output digest: %016llx\n", static_cast<unsigned long long>(smallPairDigest));
  std::printf("%s: %d cases passed, %d failed\n", failures ? "FAIL" : "ok", passes, failures);
  return failures ? 1 : 0;
}
