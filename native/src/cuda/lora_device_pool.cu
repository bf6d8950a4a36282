// DeviceLoraPool: see lora_device_pool.h.
#include "lora_device_pool.h"
#include "lora_step_tables.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>

#include "lora_env_flag.h"
#include "lora_shrink_wide_tiles.h"
#include "lora_host_image.h"
#include "lora_internal.h"

namespace tslora::cuda::lora {
namespace {

void check(cudaError_t status, const char* what) {
  if (status != cudaSuccess) throw std::runtime_error(std::string("LoRA device pool: ") + what + ": " + cudaGetErrorString(status));
}

size_t aSlotElems(const host::ModuleShape& s, int R) { return static_cast<size_t>(s.numSlices) * R * s.in; }
size_t bSlotElems(const host::ModuleShape& s, int R) { return static_cast<size_t>(s.outTotal()) * R; }

}  // namespace

DeviceLoraPool::DeviceLoraPool(const host::PoolConfig& config, ActDType dtype, int maxTokens, int maxSegments)
    : config_(config), dtype_(dtype), maxTokens_(maxTokens), maxSegments_(maxSegments) {
  host::detail::validatePoolConfig(config);
  if (maxTokens < 1 || maxSegments < 1) throw std::invalid_argument("LoRA device pool: maxTokens and maxSegments must be >= 1");
  int device = 0;
  check(cudaGetDevice(&device), "cudaGetDevice");
  check(cudaDeviceGetAttribute(&numSms_, cudaDevAttrMultiProcessorCount, device), "multiprocessor count");
  const char* smallStep = std::getenv("TSLORA_CUDA_LORA_SMALL_STEP");  // "0": always the tiled kernels (A/B switch)
  const char* smallMax = std::getenv("TSLORA_CUDA_LORA_SMALL_STEP_MAX_TOKENS");
  if (smallMax != nullptr) smallStepMaxTokens_ = std::clamp(std::atoi(smallMax), 0, kSmallStepMaxTokens);
  if (smallStep != nullptr && std::string(smallStep) == "0") smallStepMaxTokens_ = 0;
  smallStepAlways_ = smallStep != nullptr && std::string(smallStep) == "1";  // "1": whenever they apply (A/B switch)
  int maxPitch = 0;
  check(cudaDeviceGetAttribute(&maxPitch, cudaDevAttrMaxPitch, device), "max pitch");
  maxPitchBytes_ = static_cast<size_t>(maxPitch);
  const char* perLayer = std::getenv("TSLORA_CUDA_LORA_LOAD_PER_LAYER");
  loadPerLayer_ = perLayer != nullptr && std::string(perLayer) == "1";
  // "1": the fused small-step kernel instead of the pair. Opt-in: slower than the pair on the H100 (bench/lora/README.md v8).
  const char* fused = std::getenv("TSLORA_CUDA_LORA_FUSED");
  fused_ = fused != nullptr && std::string(fused) == "1";
  // "1": csgmv decode graphs above 16 rows take the tiled kernels on 16-row tiles (graphTiledApplies; v10 A/B switch).
  // N >= 1: at most N K splits for the small-step shrink of shrink() (the engine's side stream hides the shrink, so
  // fewer splits trade shrink time for fewer partials for the expand to re-read; v10 experiment).
  const char* maxSplits = std::getenv("TSLORA_CUDA_LORA_SMALL_MAX_SPLITS");
  if (maxSplits != nullptr && std::atoi(maxSplits) > 0) smallMaxSplits_ = std::atoi(maxSplits);
  const char* graphTiled = std::getenv("TSLORA_CUDA_LORA_GRAPH_TILED");
  graphTiledOn_ = graphTiled == nullptr ? kGraphTiledDefaultOn : std::string(graphTiled) != "0";
  graphSmallStep_ = envFlag("TSLORA_CUDA_LORA_GRAPH_SMALL_STEP", true);
  // Coalesced csgmv prefill chunks (session 21; on by default since session 23's device call, one H100: the 8B prefill
  // 8 x 512 with 8 distinct r16 adapters, csgmv, 149.8 -> 138.0 ms, LoRA cost 26.3 -> 15.0 %); =0 keeps the chunks.
  coalesceCsgmv_ = envFlag("TSLORA_CUDA_LORA_CSGMV_COALESCE", true);
  const int S = config.numSlots, R = config.maxRank;
  int maxColumnBlocks = 1;
  for (int m = 0; m < host::kNumModules; ++m) {
    if (!config.targets[m]) continue;
    const host::ModuleShape& s = config.shapes[m];
    const int layers = host::detail::layerCount(config, static_cast<host::Module>(m));
    buffers_[m].resize(layers);
    // One allocation per module and matrix, [layers][S][slot]: a slot's regions of successive layers lie at a fixed
    // pitch, so a load copies each matrix of each module for all layers in one 2-D copy (writeImage).
    const size_t aBytes = aSlotElems(s, R) * S * 2, bBytes = bSlotElems(s, R) * S * 2;
    check(cudaMalloc(&moduleA_[m], aBytes * layers), "cudaMalloc A");
    check(cudaMalloc(&moduleB_[m], bBytes * layers), "cudaMalloc B");
    check(cudaMemset(moduleA_[m], 0, aBytes * layers), "cudaMemset A");
    check(cudaMemset(moduleB_[m], 0, bBytes * layers), "cudaMemset B");
    weightBytes_ += (aBytes + bBytes) * layers;
    for (int layer = 0; layer < layers; ++layer) {
      buffers_[m][layer].a = static_cast<char*>(moduleA_[m]) + aBytes * layer;
      buffers_[m][layer].b = static_cast<char*>(moduleB_[m]) + bBytes * layer;
    }
    stagingElems_ = std::max({stagingElems_, static_cast<size_t>(s.numSlices) * R * s.in, static_cast<size_t>(s.outTotal()) * R});
    maxColumnBlocks = std::max(maxColumnBlocks, (s.numSlices * R + 63) / 64);
  }
  ranks_.assign(S, 0);
  check(cudaMalloc(&slotRanks_, S * sizeof(int32_t)), "cudaMalloc ranks");
  check(cudaMemset(slotRanks_, 0, S * sizeof(int32_t)), "cudaMemset ranks");
  // One upload per step: indptr [maxSegments + 1], slots [maxSegments], slot ranks per segment [maxSegments] (the
  // small-step kernels read them with the tables instead of slotRanks afterwards), permutation [maxTokens].
  const size_t tableInts = static_cast<size_t>(maxSegments) * 3 + 1 + maxTokens;
  check(cudaMalloc(&segIndptr_, tableInts * sizeof(int32_t)), "cudaMalloc tables");
  weightIndices_ = segIndptr_ + maxSegments + 1;
  segmentRanks_ = weightIndices_ + maxSegments;
  permutation_ = segmentRanks_ + maxSegments;
  check(cudaMallocHost(&hostTables_, tableInts * sizeof(int32_t)), "cudaMallocHost tables");
  check(cudaMallocHost(&staging_, stagingElems_ * sizeof(uint16_t)), "cudaMallocHost staging");
  check(cudaEventCreateWithFlags(&tablesCopied_, cudaEventDisableTiming), "cudaEventCreate");
  check(cudaEventCreateWithFlags(&slotFree_, cudaEventDisableTiming), "cudaEventCreate");
  // Tickets for every (row tile, column block) a step can have: 16-row tiles at the finest.
  countersInts_ = static_cast<size_t>(maxSegments) * ((maxTokens + 15) / 16) * maxColumnBlocks;
  check(cudaMalloc(&counters_, countersInts_ * sizeof(int)), "cudaMalloc tickets");
  check(cudaMemset(counters_, 0, countersInts_ * sizeof(int)), "cudaMemset tickets");
  step_.segIndptr = segIndptr_;
  step_.weightIndices = weightIndices_;
  step_.permutation = permutation_;  // always set (identity when the step has none): one graph fits every step
  step_.segmentRanks = segmentRanks_;
  step_.slotRanks = slotRanks_;
  step_.maxSegments = maxSegments;
  step_.maxSegmentRows = 16;
  step_.numTokens = maxTokens;
  step_.counters = counters_;
  readWideShrinkSwitches();
  // Empty tables until the first setStep: every segment empty.
  std::fill(hostTables_, hostTables_ + tableInts, 0);
  check(cudaMemcpy(segIndptr_, hostTables_, tableInts * sizeof(int32_t), cudaMemcpyHostToDevice), "init tables");
}

DeviceLoraPool::~DeviceLoraPool() {
  for (int m = 0; m < host::kNumModules; ++m) {
    cudaFree(moduleA_[m]);
    cudaFree(moduleB_[m]);
  }
  cudaFree(slotRanks_);
  cudaFree(segIndptr_);
  cudaFree(counters_);
  cudaFree(workspace_);
  cudaFreeHost(hostTables_);
  cudaFreeHost(staging_);
  cudaEventDestroy(tablesCopied_);
  cudaEventDestroy(slotFree_);
}

int DeviceLoraPool::slotRank(int slot) const {
  if (slot < 0 || slot >= config_.numSlots) throw std::invalid_argument("LoRA device pool: slot out of range");
  return ranks_[slot];
}

DeviceModule DeviceLoraPool::view(host::Module m, int layer) const {
  const host::ModuleShape& s = config_.shapes[static_cast<int>(m)];
  DeviceModule v;
  v.a = buffers_[static_cast<int>(m)][layer].a;
  v.b = buffers_[static_cast<int>(m)][layer].b;
  v.in = s.in;
  v.numSlices = s.numSlices;
  for (int j = 0; j <= s.numSlices; ++j) v.sliceOffsets[j] = s.sliceOffsets[j];
  v.maxRank = config_.maxRank;
  return v;
}

void DeviceLoraPool::zeroRegion(const ModuleBuffers& buf, const host::ModuleShape& s, int slot, int r, cudaStream_t stream) {
  const int R = config_.maxRank;
  auto* a = static_cast<uint16_t*>(buf.a) + aSlotElems(s, R) * slot;
  auto* b = static_cast<uint16_t*>(buf.b) + bSlotElems(s, R) * slot;
  check(cudaMemsetAsync(a, 0, static_cast<size_t>(s.numSlices) * r * s.in * 2, stream), "zero A");
  check(cudaMemset2DAsync(b, R * 2, 0, r * 2, s.outTotal(), stream), "zero B");
}

void DeviceLoraPool::recordSlotReuse(cudaStream_t compute) { check(cudaEventRecord(slotFree_, compute), "slot reuse event"); }

void DeviceLoraPool::writeSlot(int slot, const host::HostAdapter& adapter, cudaStream_t stream, bool afterReuseEvent) {
  slotRank(slot);
  const auto* image = dynamic_cast<const DeviceHostAdapter*>(&adapter);
  const auto* fp32 = image ? nullptr : dynamic_cast<const host::detail::HostAdapterImpl*>(&adapter);
  if (image == nullptr && fp32 == nullptr)
    throw std::invalid_argument("LoRA device pool: adapter was not built by buildHostAdapter or buildDeviceHostAdapter");
  if (!host::detail::sameShapes(image ? image->config() : fp32->config(), config_) || (image && image->config().maxRank != config_.maxRank))
    throw std::invalid_argument("incompatible: adapter was built for a different pool shape");
  if (image && image->dtype() != dtype_) throw std::invalid_argument("incompatible: adapter was converted for another compute dtype");
  const int r = adapter.rank();
  if (r > config_.maxRank) throw std::invalid_argument("incompatible: adapter rank exceeds the pool's maximum rank");
  ranks_[slot] = 0;  // unusable while being written
  check(cudaMemcpyAsync(slotRanks_ + slot, &ranks_[slot], sizeof(int32_t), cudaMemcpyHostToDevice, stream), "rank");
  if (afterReuseEvent) check(cudaStreamWaitEvent(stream, slotFree_, 0), "slot reuse wait");  // behind recordSlotReuse
  if (image) writeImage(slot, *image, stream);
  else writeFp32(slot, *fp32, stream);
  check(cudaStreamSynchronize(stream), "writeSlot");  // the copies are done: the slot is readable with its rank
  ranks_[slot] = r;
  check(cudaMemcpyAsync(slotRanks_ + slot, &ranks_[slot], sizeof(int32_t), cudaMemcpyHostToDevice, stream), "rank");
  check(cudaStreamSynchronize(stream), "writeSlot");
}

// The host tier's format (lora_host_image.h). A module present in every layer is two cudaMemcpy2DAsync: A's
// rank-packed rows and the rank-padded B of all layers, whose regions lie back to back in the image and at the pitch
// of S slots on the device (one allocation per module and matrix). Other modules go layer by layer.
void DeviceLoraPool::writeImage(int slot, const DeviceHostAdapter& image, cudaStream_t stream) {
  const int r = image.rank(), R = config_.maxRank, S = config_.numSlots;
  for (int m = 0; m < host::kNumModules; ++m) {
    if (!config_.targets[m]) continue;
    const host::ModuleShape& s = config_.shapes[m];
    const int layers = static_cast<int>(buffers_[m].size());
    const size_t aSlotBytes = aSlotElems(s, R) * 2, bSlotBytes = bSlotElems(s, R) * 2;
    // 2-D over the layers: needs more than one layer, device pitches within cudaDevAttrMaxPitch, and not the
    // per-layer path forced (TSLORA_CUDA_LORA_LOAD_PER_LAYER=1, the path of the H100 run 1 figures).
    const bool twoD = !loadPerLayer_ && layers > 1 && image.moduleContiguous(static_cast<host::Module>(m)) &&
                      aSlotBytes * S <= maxPitchBytes_ && bSlotBytes * S <= maxPitchBytes_;
    if (twoD) {
      const DeviceHostAdapter::Region& first = image.region(static_cast<host::Module>(m), 0);
      check(cudaMemcpy2DAsync(static_cast<char*>(moduleA_[m]) + aSlotBytes * slot, aSlotBytes * S, image.bytes() + first.aOffsetBytes,
                              first.aBytes, first.aBytes, layers, cudaMemcpyHostToDevice, stream), "copy A");
      check(cudaMemcpy2DAsync(static_cast<char*>(moduleB_[m]) + bSlotBytes * slot, bSlotBytes * S, image.bytes() + first.bOffsetBytes,
                              first.bBytes, first.bBytes, layers, cudaMemcpyHostToDevice, stream), "copy B");
      continue;
    }
    for (int layer = 0; layer < layers; ++layer) {
      const ModuleBuffers& buf = buffers_[m][layer];
      const DeviceHostAdapter::Region& region = image.region(static_cast<host::Module>(m), layer);
      if (!region.present) {
        zeroRegion(buf, s, slot, r, stream);
        continue;
      }
      check(cudaMemcpyAsync(static_cast<char*>(buf.a) + aSlotBytes * slot, image.bytes() + region.aOffsetBytes, region.aBytes,
                            cudaMemcpyHostToDevice, stream), "copy A");
      check(cudaMemcpyAsync(static_cast<char*>(buf.b) + bSlotBytes * slot, image.bytes() + region.bOffsetBytes, region.bBytes,
                            cudaMemcpyHostToDevice, stream), "copy B");
    }
  }
}

// An fp32 host copy (tests, tools): converted here through the pinned staging buffer, one module at a time.
void DeviceLoraPool::writeFp32(int slot, const host::detail::HostAdapterImpl& hostAdapter, cudaStream_t stream) {
  const int r = hostAdapter.rank(), R = config_.maxRank;
  for (int m = 0; m < host::kNumModules; ++m) {
    if (!config_.targets[m]) continue;
    const host::ModuleShape& s = config_.shapes[m];
    for (int layer = 0; layer < static_cast<int>(buffers_[m].size()); ++layer) {
      const ModuleBuffers& buf = buffers_[m][layer];
      const host::detail::HostModule& hm = hostAdapter.module(static_cast<host::Module>(m), layer);
      if (!hm.present) {
        zeroRegion(buf, s, slot, r, stream);
        continue;
      }
      for (size_t i = 0; i < hm.a.size(); ++i) staging_[i] = actBitsOf(hm.a[i], dtype_);  // [c*r, in]
      check(cudaMemcpyAsync(static_cast<uint16_t*>(buf.a) + aSlotElems(s, R) * slot, staging_, hm.a.size() * 2,
                            cudaMemcpyHostToDevice, stream), "copy A");
      check(cudaStreamSynchronize(stream), "copy A");
      for (size_t i = 0; i < hm.b.size(); ++i) staging_[i] = actBitsOf(hm.b[i], dtype_);  // [outTotal, r] → pitch R
      check(cudaMemcpy2DAsync(static_cast<uint16_t*>(buf.b) + bSlotElems(s, R) * slot, R * 2, staging_, r * 2, r * 2,
                              s.outTotal(), cudaMemcpyHostToDevice, stream), "copy B");
      check(cudaStreamSynchronize(stream), "copy B");
    }
  }
}

void DeviceLoraPool::clearSlot(int slot, cudaStream_t stream) {
  slotRank(slot);
  ranks_[slot] = 0;
  check(cudaMemcpyAsync(slotRanks_ + slot, &ranks_[slot], sizeof(int32_t), cudaMemcpyHostToDevice, stream), "rank");
  for (int m = 0; m < host::kNumModules; ++m)
    for (const ModuleBuffers& buf : buffers_[m]) zeroRegion(buf, config_.shapes[m], slot, config_.maxRank, stream);
  check(cudaStreamSynchronize(stream), "clearSlot");
}

void DeviceLoraPool::setStep(const host::StepLora& step, cudaStream_t stream) {
  const int G = step.numSegments, T = step.numTokens;
  if (G < 0 || G > maxSegments_ || T < 0 || T > maxTokens_)
    throw std::invalid_argument("LoRA device pool: step has " + std::to_string(G) + " segments / " + std::to_string(T) +
                                " tokens, above the static maxima " + std::to_string(maxSegments_) + " / " + std::to_string(maxTokens_));
  if (gridSegments_ > 0 && (G > gridSegments_ || T > gridTokens_))
    throw std::invalid_argument("LoRA device pool: step has " + std::to_string(G) + " segments / " + std::to_string(T) +
                                " tokens, above the captured grid " + std::to_string(gridSegments_) + " / " + std::to_string(gridTokens_));
  check(cudaEventSynchronize(tablesCopied_), "previous tables");  // the pinned staging is about to be rewritten
  int32_t* indptr = hostTables_;
  int32_t* weights = indptr + maxSegments_ + 1;
  int32_t* segRanks = weights + maxSegments_;  // rank snapshot of each segment's slot (ranks_ mirrors slotRanks_)
  int32_t* perm = segRanks + maxSegments_;
  // A csgmv decode graph on the tiled kernels (graphTiledApplies) bakes in 16-row tiles: adapter segments longer than
  // that (a chunk size above 16) go up as several segments of at most 16 rows, which the tiled kernels compute the
  // same way (each 16-row tile of a segment is its own block either way).
  graphTiled_ = graphTiledApplies(step);
  const int maxChunkRows = graphTiled_ ? kGraphTiledRows : T + 1;
  // A csgmv prefill-sized eager step (TSLORA_CUDA_LORA_CSGMV_COALESCE=1): consecutive chunks of one slot go up as one
  // segment, so that the tiled kernels take whole runs of an adapter's rows (the wide expand once they are longer than
  // 32) instead of C-row chunks: the same rows, slots and sums; only the tiles change.
  const bool coalesce = coalesceCsgmv_ && step.csgmv && gridSegments_ == 0 && T > kCoalesceMinRows;
  StepTableLimits limits;
  limits.numSlots = config_.numSlots;
  limits.maxSegments = maxSegments_;
  limits.segmentBudget = gridSegments_ > 0 ? gridSegments_ : maxSegments_;
  limits.maxChunkRows = maxChunkRows;
  limits.coalesce = coalesce;
  const StepTableShape shape = buildStepTables(step, limits, ranks_.data(), indptr, weights, segRanks, perm, rowSeen_);
  const int segments = shape.segments, longest = shape.longestAdapterRows;
  // What storeApplies needs: every row in one segment, and the longest segment (base ones included).
  coversAllRows_ = shape.coversAllRows;
  longestSegmentRows_ = shape.longestRows;
  // The launch grid's rows beyond the step's (a graph grid's padding rows): the identity, so that the permutation is a
  // bijection of every row the kernels address (expandDelta writes every one of them: stale entries could alias rows).
  const int gridRows = gridSegments_ > 0 ? gridTokens_ : std::max(1, T);
  for (int p = T; p < gridRows; ++p) perm[p] = p;
  const size_t ints = static_cast<size_t>(maxSegments_) * 3 + 1 + gridRows;
  check(cudaMemcpyAsync(segIndptr_, hostTables_, ints * sizeof(int32_t), cudaMemcpyHostToDevice, stream), "tables");
  check(cudaEventRecord(tablesCopied_, stream), "tables");
  step_.maxSegmentRows = std::min(maxTokens_, step.csgmv ? std::max(step.chunkSize, longest) : longest);
  // Narrowed grid: segments [G, maxSegments) are empty padding and rows >= T are never addressed, so launching
  // only max(1, G) segments over max(1, T) rows (U / partials strided by T) gives the same result.
  if (gridSegments_ > 0) {
    step_.maxSegments = gridSegments_;
    step_.numTokens = gridTokens_;
    if (gridSegmentRows_ > 0) {
      if (longest > gridSegmentRows_) throw std::invalid_argument("LoRA device pool: a segment is longer than the captured grid's rows");
      step_.maxSegmentRows = gridSegmentRows_;
    }
    if (graphTiled_) step_.maxSegmentRows = kGraphTiledRows;
  } else {
    step_.maxSegments = std::max(1, segments);
    step_.numTokens = std::max(1, T);
  }
  useSmallStep_ = chooseSmallStep(step);
}

// Which kernels apply() runs for the current step (run 8, H200, µs per layer for qkv + gate_up + down):
//  - a graph grid (decode-graph.cu) bakes the choice into the captured graph, so it may depend on the grid only. The
//    tiled kernels there run 32- or 64-row tiles over every padded segment once the bucket has more than 16 rows
//    (64 rows: 136 µs against 53 small-step); up to 16 rows their grid is as narrow as an eager step's and they take
//    many adapters in parallel (8 rows, 8 adapters: 40 against 66), except 1-2 rows (1 row: 35 against 24);
//  - a narrowed (eager) grid: the small-step kernels when every 16-row group of positions holds one adapter, or for
//    1-2 rows (64 rows, one adapter: 43 against 50); the tiled kernels once groups mix adapters (64 rows, 8 adapters:
//    49 against 53; 8 rows, 8 adapters: 40 against 66) or past 128 rows (256 rows: 72 against 121).
//  - v10: a csgmv graph grid above 16 rows takes the tiled kernels on 16-row tiles instead (graphTiledApplies).
//  - session 20: graph grids of 3-16 rows take the small-step kernels too (TSLORA_CUDA_LORA_GRAPH_SMALL_STEP=0: the
//    tiled ones, as above). The kernel-level figures above leave out the engine's side expand, which only the
//    small-step pair has: in the 8B step (one H100, csgmv, graphs, side expand on; bench/cuda/README.md session 20)
//    small-step against tiled at batch 8 / 16 was 6.70 / 6.91 against 7.16 / 7.39 ms with one shared r16 adapter,
//    7.82 / 8.28 against 7.97 / 8.29 ms with 8 distinct.
bool DeviceLoraPool::chooseSmallStep(const host::StepLora& step) {
  if (graphTiled_) return false;
  if (step_.numTokens > smallStepMaxTokens_) return false;
  if (smallStepAlways_) return true;
  if (step_.numTokens <= 2) return true;
  if (gridSegments_ > 0) return graphSmallStep_ || (gridSegmentRows_ > 0 ? gridSegmentRows_ : gridTokens_) > 16;  // fixed per grid
  if (step.numTokens > 128) return false;
  // Slot of every position (-1: base or an empty slot), then the distinct slots of each 16-row group.
  positionSlots_.assign(step.numTokens, -1);
  for (int g = 0; g < step.numSegments; ++g) {
    const int slot = step.weightIndices[g];
    if (slot < 0 || ranks_[slot] <= 0) continue;
    for (int p = step.segIndptr[g]; p < step.segIndptr[g + 1]; ++p) positionSlots_[p] = slot;
  }
  for (int p0 = 0; p0 < step.numTokens; p0 += 16) {
    int first = -1;
    for (int p = p0; p < std::min(step.numTokens, p0 + 16); ++p) {
      const int slot = positionSlots_[p];
      if (slot < 0) continue;
      if (first < 0) first = slot;
      else if (slot != first) return false;
    }
  }
  return true;
}

// A csgmv decode graph of more than 16 rows: the tiled kernels with 16-row tiles over the grid's segments (empty
// tiles exit at once) instead of the small-step pair (bench/lora/README.md v10: the "csgmv graph C16" rows). Fixed per
// grid and backend, so capture and replays agree. Needs as many grid segments as rows: then the step split into
// chunks of at most 16 rows (setStep) always fits, since every chunk holds at least one row.
bool DeviceLoraPool::graphTiledApplies(const host::StepLora& step) const {
  if (!graphTiledOn_ || smallStepAlways_ || gridSegments_ <= 0 || !step.csgmv) return false;
  const int rows = gridSegmentRows_ > 0 ? gridSegmentRows_ : gridTokens_;
  return rows > kGraphTiledRows && gridSegments_ >= gridTokens_;
}

void DeviceLoraPool::setGraphGrid(int segments, int tokens, int segmentRows) {
  if (segments < 0 || segments > maxSegments_ || tokens < 1 || tokens > maxTokens_ || segmentRows < 0 || segmentRows > tokens)
    throw std::invalid_argument("LoRA device pool: graph grid " + std::to_string(segments) + " segments / " +
                                std::to_string(tokens) + " rows is outside the static maxima");
  gridSegments_ = segments;
  gridTokens_ = tokens;
  gridSegmentRows_ = segmentRows;
}

void DeviceLoraPool::ensureWorkspace(size_t bytes, cudaStream_t stream) {
  if (bytes <= workspaceBytes_) return;  // grows during warm-up; capture graphs afterwards
  check(cudaStreamSynchronize(stream), "workspace");
  cudaFree(workspace_);
  workspace_ = nullptr;
  check(cudaMalloc(&workspace_, bytes), "cudaMalloc workspace");
  workspaceBytes_ = bytes;
  ++workspaceGeneration_;
}

DeviceModule DeviceLoraPool::checkedView(int layer, host::Module module) const {
  const int m = static_cast<int>(module);
  if (m < 0 || m >= host::kNumModules || !config_.targets[m])
    throw std::invalid_argument("LoRA device pool: module is not targeted by the pool");
  if (!host::detail::isPerLayer(module)) layer = 0;
  if (layer < 0 || layer >= static_cast<int>(buffers_[m].size())) throw std::invalid_argument("LoRA device pool: layer out of range");
  return view(module, layer);
}

void DeviceLoraPool::apply(int layer, host::Module module, const void* x, int xStride, void* y, int yStride, int yOffset,
                           cudaStream_t stream, const int32_t* tokenIds) {
  if (module == host::Module::Embed) {  // spec e.9: a column gather from A instead of the shrink, then the expand
    const DeviceModule v = checkedView(layer, module);
    if (tokenIds == nullptr) throw std::invalid_argument("LoRA device pool: embed_tokens LoRA needs the step's token ids");
    ensureWorkspace(loraShrinkWorkspaceBytes(v, step_, 1), stream);
    float* u = static_cast<float*>(workspace_);
    check(loraEmbedGather(dtype_, v, step_, tokenIds, u, stream), "embed gather");
    check(loraExpand(dtype_, v, step_, u, y, yStride, yOffset, stream), "embed expand");
    return;
  }
  shrink(layer, module, x, xStride, stream);
  expand(layer, module, y, yStride, yOffset, stream);
}

void DeviceLoraPool::applySmallStep(const DeviceModule& v, int splits, const void* x, int xStride, void* y, int yStride, int yOffset,
                                    cudaStream_t stream) {
  if (fusedApplies(v)) {
    const cudaError_t status = loraApplyFused(dtype_, v, step_, loraFusedPlan(v, step_, numSms_), x, xStride, y, yStride, yOffset, stream);
    if (status == cudaSuccess) return;
    if (status != cudaErrorNotSupported) check(status, "fused small-step LoRA");
    // else: the device cannot run this plan's clusters (asked once per kernel variant): the pair, for this call
  }
  ensureWorkspace(loraSmallStepWorkspaceBytes(v, step_, splits), stream);
  check(loraShrinkSmall(dtype_, v, step_, x, xStride, workspace_, splits, stream), "small-step shrink");
  check(loraExpandSmall(dtype_, v, step_, workspace_, splits, y, yStride, yOffset, stream), "small-step expand");
}

int DeviceLoraPool::smallSplitsFor(const DeviceModule& v) const {
  return useSmallStep_ ? std::min(smallMaxSplits_, loraSmallStepSplits(v, step_, numSms_)) : 0;
}

bool DeviceLoraPool::deltaExpandApplies(host::Module module) const {
  if (module == host::Module::Embed || module == host::Module::LmHead) return false;
  const int m = static_cast<int>(module);
  if (m < 0 || m >= host::kNumModules || !config_.targets[m]) return false;
  const DeviceModule v = view(module, 0);  // every layer of a module has the same shape
  return smallSplitsFor(v) > 0 && !fusedApplies(v);
}

void DeviceLoraPool::shrink(int layer, host::Module module, const void* x, int xStride, cudaStream_t stream) {
  if (module == host::Module::Embed) throw std::invalid_argument("LoRA device pool: embed_tokens has no shrink (use apply)");
  const DeviceModule v = checkedView(layer, module);
  // Small steps (decode): grids sized by numTokens only, split-K partials summed by the expand (lora_small_step.cuh).
  const int smallSplits = smallSplitsFor(v);
  deferredX_ = nullptr;
  if (smallSplits > 0 && fusedApplies(v)) {  // one launch in expand(), on the expand's stream
    deferredX_ = x;
    deferredXStride_ = xStride;
    pendingSplits_ = smallSplits;
    return;
  }
  if (smallSplits > 0) {
    ensureWorkspace(loraSmallStepWorkspaceBytes(v, step_, smallSplits), stream);
    check(loraShrinkSmall(dtype_, v, step_, x, xStride, workspace_, smallSplits, stream), "small-step shrink");
    pendingSplits_ = smallSplits;
    return;
  }
  int kSplits = loraShrinkSplits(v, graphTiled_ ? graphTiledSplitStep(step_) : step_, numSms_);
  // A narrowed step with few tiles but many rows (e.g. one short adapter segment beside a long base prefill)
  // would ask for many splits over all T rows: keep the split-K partials under kMaxPartialBytes.
  constexpr size_t kMaxPartialBytes = size_t{64} << 20;
  const size_t splitBytes = static_cast<size_t>(step_.numTokens) * v.numSlices * v.maxRank * sizeof(float);
  if (kSplits > 1 && splitBytes * kSplits > kMaxPartialBytes)
    kSplits = static_cast<int>(std::max<size_t>(1, kMaxPartialBytes / splitBytes));
  ensureWorkspace(loraShrinkWorkspaceBytes(v, step_, kSplits), stream);
  check(loraShrink(dtype_, v, step_, x, xStride, workspace_, kSplits, stream), "shrink");
  pendingSplits_ = 0;
}

void DeviceLoraPool::expand(int layer, host::Module module, void* y, int yStride, int yOffset, cudaStream_t stream) {
  if (module == host::Module::Embed) throw std::invalid_argument("LoRA device pool: embed_tokens has no expand alone (use apply)");
  const DeviceModule v = checkedView(layer, module);
  if (deferredX_ != nullptr) {
    const void* x = deferredX_;
    deferredX_ = nullptr;
    applySmallStep(v, pendingSplits_, x, deferredXStride_, y, yStride, yOffset, stream);
    return;
  }
  if (pendingSplits_ > 0) {
    check(loraExpandSmall(dtype_, v, step_, workspace_, pendingSplits_, y, yStride, yOffset, stream), "small-step expand");
    return;
  }
  check(loraExpand(dtype_, v, step_, loraShrinkOutput(workspace_), y, yStride, yOffset, stream), "expand");
}

// The wide prefill shrink's switches of this pool, where its environment sets them (TSLORA_CUDA_LORA_WIDE_SHRINK,
// _TILE, _CLUSTER, read at construction like the pool's other switches), so models of one process can differ
// (side-expand-ab.ts's variants); unset: the process-wide switches (lora_shrink.cu). An unknown tile name leaves the
// process's tile (lora_shrink.cu reports it).
void DeviceLoraPool::readWideShrinkSwitches() {
  const auto tri = [](const char* name) { return std::getenv(name) == nullptr ? -1 : envFlag(name, false) ? 1 : 0; };
  step_.wideShrink = tri("TSLORA_CUDA_LORA_WIDE_SHRINK");
  step_.wideShrinkCluster = tri("TSLORA_CUDA_LORA_WIDE_SHRINK_CLUSTER");
  const char* tile = std::getenv("TSLORA_CUDA_LORA_WIDE_SHRINK_TILE");
  step_.wideShrinkTile = tile != nullptr ? wide::wideTileFromName(tile) : -1;
  step_.storeLean = tri("TSLORA_CUDA_LORA_STORE_LEAN");  // the store-form expand's lean layout (session 24), likewise
}

bool DeviceLoraPool::storeApplies(host::Module module, const void* y, int yStride) const {
  if (module == host::Module::Embed || module == host::Module::LmHead) return false;
  const int m = static_cast<int>(module);
  if (m < 0 || m >= host::kNumModules || !config_.targets[m] || gridSegments_ > 0 || !coversAllRows_) return false;
  const DeviceModule v = view(module, 0);  // every layer of a module has the same shape
  return smallSplitsFor(v) == 0 && !graphTiled_ && v.outTotal() == yStride && longestSegmentRows_ <= loraExpandStoreRowsPerSegment(step_) &&
         loraExpandStoreApplies(v, step_, y, yStride, 0);
}

void DeviceLoraPool::applyStore(int layer, host::Module module, const void* x, int xStride, void* y, int yStride, cudaStream_t stream) {
  if (!storeApplies(module, y, yStride))
    throw std::invalid_argument("LoRA device pool: applyStore outside storeApplies (the caller must check it first)");
  shrink(layer, module, x, xStride, stream);
  const DeviceModule v = checkedView(layer, module);
  check(loraExpandStore(dtype_, v, step_, loraShrinkOutput(workspace_), y, yStride, 0, stream), "expand (store)");
}

void DeviceLoraPool::expandDelta(int layer, host::Module module, void* delta, int deltaStride, cudaStream_t stream,
                                 bool programmatic, bool deltaAct, int maxBlocks) {
  const DeviceModule v = checkedView(layer, module);
  if (pendingSplits_ <= 0 || deferredX_ != nullptr)
    throw std::invalid_argument("LoRA device pool: expandDelta needs a small-step shrink before it (deltaExpandApplies)");
  check(loraExpandSmallDelta(dtype_, v, step_, workspace_, pendingSplits_, delta, deltaStride, stream, programmatic, deltaAct,
                             maxBlocks),
        "small-step expand (delta)");
}

}  // namespace tslora::cuda::lora
