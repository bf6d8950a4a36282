// Device twin of tslora::lora::LoraPool (native/src/lora/lora.h) for the CUDA engine: S slots of A [c*R, in] and
// B [outTotal, R] per (layer, module) in bf16 or fp16, allocated once (slots never move: spec c.4, e.10), written
// from the host tier (HostAdapter, fp32 with σ folded) and applied with the kernels of lora_kernels.cuh.
// Per-step metadata lives in static device buffers whose contents setStep rewrites in place, so a captured CUDA
// graph stays valid for replays whose segments are no longer than at capture (csgmv: the same or a smaller chunk
// size; spec e.10); capture after one warm-up step of that shape (the split-K workspace grows on demand). Modules
// are applied one after another on one stream (they share the workspace and the split-K tickets).
// embed_tokens LoRA (spec e.9) is a column gather from A (loraEmbedGather) followed by the shared expand.
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "lora.h"
#include "lora_kernels.cuh"

namespace tslora::lora::detail {
class HostAdapterImpl;
}

namespace tslora::cuda::lora {

namespace host = tslora::lora;
class DeviceHostAdapter;  // lora_host_image.h

// The step the tiled shrink's split count is chosen for in a csgmv decode graph on the tiled kernels (v10,
// DeviceLoraPool::graphTiledApplies): the grid has as many segments as rows, almost all of them empty, so the policy
// is given a typical tile count instead, two 16-row tiles per 16 rows (e.g. 8 adapters over 64 rows: 8 tiles). Fixed
// per grid (a captured graph bakes the split count in).
inline DeviceStep graphTiledSplitStep(DeviceStep step) {
  step.maxSegments = std::max(1, 2 * ((step.numTokens + 15) / 16));
  step.maxSegmentRows = 16;
  return step;
}

class DeviceLoraPool {
 public:
  // maxTokens: rows of the largest step; maxSegments: the largest segment count (csgmv: ⌈tokens/16⌉ + slots).
  DeviceLoraPool(const host::PoolConfig& config, ActDType dtype, int maxTokens, int maxSegments);
  ~DeviceLoraPool();
  DeviceLoraPool(const DeviceLoraPool&) = delete;
  DeviceLoraPool& operator=(const DeviceLoraPool&) = delete;

  const host::PoolConfig& config() const { return config_; }
  size_t sizeBytes() const { return weightBytes_; }
  int slotRank(int slot) const;

  // Rank-r regions (A rows [0, c*r), B columns [0, r); a host-tier image also zeroes B's columns [r, R)); modules
  // the adapter lacks are zeroed there (spec c.4). `adapter` is a DeviceHostAdapter (lora_host_image.h: a few copies
  // from page-locked memory, no host arithmetic) or an fp32 host::buildHostAdapter copy (converted here, through the
  // staging buffer). `afterReuseEvent`: the copies wait on the device for the point recordSlotReuse marked (the
  // compute stream's enqueued steps, which may still read the slot when `stream` is a side stream). Synchronises
  // `stream` before returning; the slot's rank is 0 (unused by steps) until the copies have landed.
  void writeSlot(int slot, const host::HostAdapter& adapter, cudaStream_t stream, bool afterReuseEvent = false);
  // Marks the work enqueued on `compute` so far for the next writeSlot(…, true). Call it where no graph capture can
  // be under way on `compute` (CudaModel: under its forward mutex).
  void recordSlotReuse(cudaStream_t compute);
  // Zeroes the whole slot and marks it rank 0.
  void clearSlot(int slot, cudaStream_t stream);

  // Uploads one step's tables (the same StepLora the CPU forward uses); padding segments are empty.
  // Outside graph capture (the default) the launch grid is narrowed to the step's own segment count and token
  // count, so a one-token decode launches a handful of blocks and gets split-K; with setStaticGrid(true) every
  // launch keeps the static maxima (maxSegments, maxTokens), the shape a captured graph needs (spec e.10).
  void setStep(const host::StepLora& step, cudaStream_t stream);
  // Takes effect at the next setStep.
  void setStaticGrid(bool on) { setGraphGrid(on ? maxSegments_ : 0, maxTokens_, 0); }
  // A static grid for one captured graph: `segments` segments over `tokens` rows with tiles for `segmentRows` rows
  // per segment (0 = from the step). setStep then refuses steps that do not fit. segments = 0: narrowed grid.
  void setGraphGrid(int segments, int tokens, int segmentRows);
  bool staticGrid() const { return gridSegments_ > 0; }
  // Changes whenever the shared workspace moves (a captured graph that uses the old one must be recaptured).
  uint64_t workspaceGeneration() const { return workspaceGeneration_; }
  // y[p, yOffset + …] += LoRA delta of (layer, module) for the rows of the current step. x, y: device activations.
  // Embed: x is ignored and tokenIds ([numTokens] device, by physical row) selects A's columns (required).
  void apply(int layer, host::Module module, const void* x, int xStride, void* y, int yStride, int yOffset,
             cudaStream_t stream, const int32_t* tokenIds = nullptr);
  // apply() in two halves, so that the shrink can run on another stream than the expand (the engine runs it on a
  // side stream under the base projection, which reads the same x). expand() must follow the shrink of the same
  // (layer, module) with nothing else of the pool in between, ordered after it (same stream, or an event).
  // Every LoRA launch is a programmatic dependent (PDL) of the kernel before it on its stream and waits for it before
  // reading x, U or y (lora_launch.cuh), whatever that kernel is, so expand() needs no hint of where the shrink ran.
  // Not for embed_tokens (apply() only).
  void shrink(int layer, host::Module module, const void* x, int xStride, cudaStream_t stream);
  void expand(int layer, host::Module module, void* y, int yStride, int yOffset, cudaStream_t stream);
  // The engine's side expand (session 18): expand() without reading y, so that it can run on the shrink's side stream
  // while the base projection writes y: delta[row, n] = the module's fp32 delta of every row of the step (-0.0f for
  // base rows; loraExpandSmallDelta), the projection's consumer adding act_round(y + delta). Only where the current
  // step and the module run the small-step pair (deltaExpandApplies: decode-sized steps; not the tiled kernels, not
  // the opt-in fused kernel), after the module's shrink().   delta: [stepRows(), deltaStride] fp32 device.
  bool deltaExpandApplies(host::Module module) const;
  // programmatic = false: a plain launch (its blocks do not sit resident beside the projection while the shrink runs).
  // deltaAct: delta in the activation dtype; maxBlocks > 0: the capped grid (loraExpandSmallDelta).
  void expandDelta(int layer, host::Module module, void* delta, int deltaStride, cudaStream_t stream, bool programmatic = true,
                   bool deltaAct = false, int maxBlocks = 0);
  // Rows the LoRA launches address in the current step (its rows, or a graph grid's): expandDelta writes all of them.
  int stepRows() const { return step_.numTokens; }
  // Eager csgmv steps of more rows than this have their consecutive chunks of one slot merged by setStep (0: never),
  // so the engine's pass planner can count their segments so (lora-passes.h).
  int coalesceAboveRows() const { return coalesceCsgmv_ ? kCoalesceMinRows : 0; }
  // apply() in its store-first form (prefill; loraExpandStore): y[p, 0 .. outTotal) = the module's delta of every row
  // of the step (0 for base rows), y not read, so that the caller adds the projection after it (Blas::gemmAccumulate)
  // and the expand writes y once instead of reading and writing it. storeApplies: the step's segments cover each of
  // its rows once (setStep) and none is longer than the store expand's tiles reach (loraExpandStoreRowsPerSegment: a
  // long base segment beside short adapter ones), the module's columns are y's whole rows (outTotal == yStride) and
  // the wide expand serves the step (an eager grid with long segments: not the small-step kernels, not a graph grid).
  bool storeApplies(host::Module module, const void* y, int yStride) const;
  void applyStore(int layer, host::Module module, const void* x, int xStride, void* y, int yStride, cudaStream_t stream);

 private:
  struct ModuleBuffers {
    void* a = nullptr;  // [S, c*R, in]
    void* b = nullptr;  // [S, outTotal, R]
  };
  DeviceModule view(host::Module m, int layer) const;
  DeviceModule checkedView(int layer, host::Module m) const;  // throws for untargeted modules / bad layers
  void ensureWorkspace(size_t bytes, cudaStream_t stream);
  void writeImage(int slot, const DeviceHostAdapter& image, cudaStream_t stream);
  void writeFp32(int slot, const host::detail::HostAdapterImpl& adapter, cudaStream_t stream);
  void zeroRegion(const ModuleBuffers& buf, const host::ModuleShape& s, int slot, int r, cudaStream_t stream);
  bool chooseSmallStep(const host::StepLora& step);
  void readWideShrinkSwitches();  // into step_ (constructor)
  int smallSplitsFor(const DeviceModule& v) const;  // shrink()'s small-step split count for the current step, 0 = tiled
  bool graphTiledApplies(const host::StepLora& step) const;
  // The small-step delta of one module on `stream`: the fused kernel (one launch) where it applies and the device
  // runs its clusters, else the shrink + expand pair.
  void applySmallStep(const DeviceModule& v, int splits, const void* x, int xStride, void* y, int yStride, int yOffset, cudaStream_t stream);
  bool fusedApplies(const DeviceModule& v) const { return fused_ && loraFusedPlan(v, step_, numSms_).clusterSize > 0; }

  host::PoolConfig config_;
  ActDType dtype_;
  int maxTokens_, maxSegments_, numSms_ = 1;
  // Small-step kernels for steps of at most this many rows, where chooseSmallStep prefers them (kSmallStepMaxTokens;
  // env TSLORA_CUDA_LORA_SMALL_STEP_MAX_TOKENS lowers it, TSLORA_CUDA_LORA_SMALL_STEP=0 turns them off).
  int smallStepMaxTokens_ = kSmallStepMaxTokens;
  bool smallStepAlways_ = false;      // TSLORA_CUDA_LORA_SMALL_STEP=1: whenever they apply, bypassing chooseSmallStep
  bool useSmallStep_ = false;         // the current step's choice (setStep)
  int pendingSplits_ = 0;             // split count of the last shrink() when it ran the small-step kernel, else 0
  std::vector<int32_t> positionSlots_;  // scratch of chooseSmallStep
  // TSLORA_CUDA_LORA_FUSED=1 (opt-in; the H100 run of bench/lora/README.md v8 measured it slower than the pair): the
  // fused small-step kernel (lora_small_fused.cu) wherever the small-step kernels run (the pair still runs where the
  // device cannot run the plan's clusters). Then shrink() only records x and expand() runs the one launch (the
  // engine's side-stream shrink has nothing to overlap).
  bool fused_ = false;
  const void* deferredX_ = nullptr;  // shrink()'s x while a fused expand() is pending
  int deferredXStride_ = 0;
  int gridSegments_ = 0, gridTokens_ = 0, gridSegmentRows_ = 0;  // static grid (graph capture) when segments > 0
  // v10 (bench/lora/README.md): csgmv decode graphs above 16 rows on the tiled kernels with 16-row tiles
  // (graphTiledApplies). TSLORA_CUDA_LORA_GRAPH_TILED=1 / =0 (unset: kGraphTiledDefaultOn).
  static constexpr int kGraphTiledRows = 16;
  static constexpr bool kGraphTiledDefaultOn = false;
  bool graphTiledOn_ = kGraphTiledDefaultOn;
  // Session 20: graph grids of 3-16 rows on the small-step kernels (chooseSmallStep); TSLORA_CUDA_LORA_GRAPH_SMALL_STEP=0
  // gives them the tiled kernels as before.
  bool graphSmallStep_ = true;
  int smallMaxSplits_ = 1 << 20;  // TSLORA_CUDA_LORA_SMALL_MAX_SPLITS: cap of shrink()'s small-step split count
  bool graphTiled_ = false;  // the current step's choice (setStep)
  // TSLORA_CUDA_LORA_CSGMV_COALESCE (session 21; on by default since session 23, =0 turns it off): setStep merges consecutive csgmv
  // chunks of one slot in eager steps of more than kCoalesceMinRows rows (prefill), so they take the long-tile kernels.
  static constexpr int kCoalesceMinRows = 128;
  bool coalesceCsgmv_ = true;
  bool coversAllRows_ = false;  // the current step's segments hold each of its rows exactly once (setStep)
  int longestSegmentRows_ = 0;  // the current step's longest segment, base segments included (setStep)
  std::vector<char> rowSeen_;    // scratch of setStep's coverage check (buildStepTables)
  uint64_t workspaceGeneration_ = 0;
  size_t weightBytes_ = 0;
  std::vector<ModuleBuffers> buffers_[host::kNumModules];  // [module][layer], views into moduleA_ / moduleB_
  void* moduleA_[host::kNumModules] = {};                   // [layers][S, c*R, in]
  void* moduleB_[host::kNumModules] = {};                   // [layers][S, outTotal, R]
  size_t maxPitchBytes_ = 0;                                // cudaDevAttrMaxPitch: the 2-D load's device pitch limit
  bool loadPerLayer_ = false;                               // TSLORA_CUDA_LORA_LOAD_PER_LAYER=1: no 2-D loads
  std::vector<int32_t> ranks_;                            // host mirror of slotRanks_
  int32_t* slotRanks_ = nullptr;                          // [S]
  int32_t* segIndptr_ = nullptr;                          // [maxSegments + 1]
  int32_t* weightIndices_ = nullptr;                      // [maxSegments]
  int32_t* segmentRanks_ = nullptr;                       // [maxSegments] slot rank per segment at setStep
  int32_t* permutation_ = nullptr;                        // [maxTokens]
  int32_t* hostTables_ = nullptr;                         // pinned staging for the three tables
  uint16_t* staging_ = nullptr;                           // pinned, the largest module region of one slot
  size_t stagingElems_ = 0;
  cudaEvent_t tablesCopied_ = nullptr;                    // the last table upload (pinned staging reuse)
  cudaEvent_t slotFree_ = nullptr;                        // writeSlot: the `after` stream's work before the copies
  int* counters_ = nullptr;                               // split-K tickets, all zero between shrinks
  size_t countersInts_ = 0;
  void* workspace_ = nullptr;                             // U and split-K partials, shared by all modules
  size_t workspaceBytes_ = 0;
  DeviceStep step_;
};

}  // namespace tslora::cuda::lora
