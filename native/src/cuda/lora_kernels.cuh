// CUDA twins of the CPU LoRA kernels (native/src/lora/lora_apply.cpp): shrink U = X·Aᵀ and expand Y += U·Bᵀ over
// the same per-step segment metadata, in bf16 or fp16 with fp32 accumulation (tensor cores through WMMA).
//
// Pool layout (identical to lora.h, in the activation dtype): per (layer, module)
//   A: [S, c*R, in]     slot s, slice j at rows [j*r, (j+1)*r) (stride r = the slot's own rank); rows >= c*r stale
//   B: [S, outTotal, R] columns [0, r) valid, scaling already folded in; the rest stale
// Kernels read only [0, r) of a slot (rank from slotRanks on the device), so stale data is never touched.
//
// Both strategies run these kernels; they differ only in metadata: "triton" = one segment per request (identity
// order, maxSegmentRows = the longest request), "csgmv" = rows permuted by slot and chunked to ≤ C rows
// (maxSegmentRows = C). Every launch is sized from static maxima (maxSegments, maxSegmentRows, R, kSplits), so it
// can be captured in a CUDA graph and replayed with rewritten metadata: padding segments repeat the last boundary
// (empty) and return at once, as do base segments (slot -1 or rank 0).
#pragma once
#include <cstddef>
#include <cstdint>

#include <cuda_runtime.h>

namespace tslora::cuda::lora {

enum class ActDType : int { BF16 = 0, F16 = 1 };

struct DeviceModule {
  const void* a = nullptr;  // [S, c*R, in]
  const void* b = nullptr;  // [S, outTotal, R]
  int in = 0;
  int numSlices = 1;
  int sliceOffsets[4] = {0, 0, 0, 0};
  int maxRank = 0;  // R
  int outTotal() const { return sliceOffsets[numSlices]; }
};

struct DeviceStep {
  const int32_t* segIndptr = nullptr;      // [maxSegments + 1] device
  const int32_t* weightIndices = nullptr;  // [maxSegments] device, -1 = base
  const int32_t* permutation = nullptr;    // [numTokens] device, nullptr = identity
  const int32_t* slotRanks = nullptr;      // [S] device, 0 = base / empty
  int maxSegments = 0;                     // grid size (static under CUDA graphs)
  int maxSegmentRows = 1;                  // upper bound on rows per segment: csgmv C, triton max_len
  int numTokens = 0;                       // rows of X / Y (the U workspace is [kSplits, numTokens, c*R])
  // Optional (additive): split-K arrival tickets in a buffer of their own, all zero, at least
  // loraShrinkCounterBytes(module, step) bytes, for callers that share one workspace between modules whose layouts
  // differ (the tickets reset themselves after every shrink). nullptr = at the end of the workspace.
  int* counters = nullptr;
  // Optional (additive, small-step kernels only): the rank of each segment's slot (0 = base or empty), [maxSegments]
  // device, snapshotted by the caller with the tables (DeviceLoraPool::setStep): saves the kernels a dependent read
  // of slotRanks. nullptr = read slotRanks.
  const int32_t* segmentRanks = nullptr;
  // Optional (additive): the wide prefill shrink's switches for this step (DeviceLoraPool reads them from its own
  // environment at construction, so models of one process can differ: bench/cuda/side-expand-ab.ts's A/B); -1 = the
  // process-wide ones (loraSetShrinkWide / loraSetShrinkWideTile / loraSetShrinkWideCluster). on: 0 / 1; tile: WideTile.
  int wideShrink = -1, wideShrinkTile = -1, wideShrinkCluster = -1;
  // Optional (additive): the store-form expand's lean layout for this step (loraExpandStore; DeviceLoraPool's
  // TSLORA_CUDA_LORA_STORE_LEAN read at construction); -1 = the process-wide switch (loraSetExpandStoreLean). 0 / 1.
  int storeLean = -1;
};

// Split-K factor for the shrink: enough blocks to fill the GPU even at decode, at least 256 K per split.
int loraShrinkSplits(const DeviceModule& module, const DeviceStep& step, int numMultiprocessors);

// The wide tiled shrink (lora_shrink_wide.cuh: 128-row tiles × all c·R columns up to 192, mma.sync + ldmatrix) for
// steps whose segments are long (maxSegmentRows > 32, i.e. prefill). Off by default: correct on an H100 (1040/1040
// CPU-twin cases, device pool 1360/1360) but slower than the v5 shrink there (prefill 8 x 512 r64: qkv 79.1 vs 60.9 us,
// gate_up 55.4 vs 45.1, down 94.7 vs 82.8; bench/lora/README.md v10);
// TSLORA_CUDA_LORA_WIDE_SHRINK=1 / =0 at start-up or loraSetShrinkWide (process-wide, not concurrently with launches)
// turns it on / off. loraShrinkSplits sizes the split count for the kernel the switch picks (any count is correct
// for both kernels). TSLORA_CUDA_LORA_WIDE_BLOCKS_PER_SM / loraSetShrinkWideBlocksPerSm (0 = auto) tunes its waves.
void loraSetShrinkWide(bool on);
bool loraShrinkWideOn();
void loraSetShrinkWideBlocksPerSm(int blocks);
// The wide shrink's block tile (lora_shrink_wide.cuh WideTile: 0 w8, 1 m128k32, 2 m128k64, 3 m64k64, the default since
// session 23, 4 m64k64f; TSLORA_CUDA_LORA_WIDE_SHRINK_TILE names one at start-up). Process-wide, not
// concurrently with launches; false for a tile that does not exist. loraShrinkSplits sizes the splits for the tile.
bool loraSetShrinkWideTile(int tile);
int loraShrinkWideTile();
const char* loraShrinkWideTileName(int tile);
// The wide shrink's split-K through thread-block clusters of the splits (distributed shared memory, no global partials;
// at most 8 splits; where the device cannot run the clusters, the global partials): TSLORA_CUDA_LORA_WIDE_SHRINK_CLUSTER=1
// at start-up or this setter (process-wide, not concurrently with launches). Opt-in: slower than the global partials at
// the automatic split counts on an H100 (session 23).
void loraSetShrinkWideCluster(bool on);
bool loraShrinkWideClusterOn();

// Shrink workspace, allocated once for the static maxima and zeroed once at allocation (cudaMemset): it holds
//   U        fp32 [numTokens, c*R]            the shrink result read by the expand
//   partials fp32 [kSplits, numTokens, c*R]   split-K partial sums (kSplits > 1)
//   counters int  [tiles * column blocks]     arrival tickets; the last split block of a tile sums the partials into
//                                             U and resets its ticket to 0, so the workspace stays reusable and
//                                             graph replays need no memset.
size_t loraShrinkWorkspaceBytes(const DeviceModule& module, const DeviceStep& step, int kSplits);
inline const float* loraShrinkOutput(const void* workspace) { return static_cast<const float*>(workspace); }
// The tickets sit at the end of the workspace (unless step.counters is set): these many bytes must be zero before a
// shrink (the rest may hold anything, e.g. a NaN poison in tests).
size_t loraShrinkCounterBytes(const DeviceModule& module, const DeviceStep& step);

// U[p, n] = Σ_k X[p, k] · A[w, n, k] for n < c*r of every non-base segment row p (rows of base segments and
// columns >= c*r are not written).   x: [numTokens, xStride] activations (dtype).
cudaError_t loraShrink(ActDType dtype, const DeviceModule& module, const DeviceStep& step, const void* x, int xStride,
                       void* workspace, int kSplits, cudaStream_t stream);

// Y[p, yOffset + off_j + n] += Σ_{k<r} U[p, j*r + k] · B[w, off_j + n, k], added in fp32 and rounded once to the
// activation dtype (spec e.8). u = loraShrinkOutput(workspace).
cudaError_t loraExpand(ActDType dtype, const DeviceModule& module, const DeviceStep& step, const float* u, void* y,
                       int yStride, int yOffset, cudaStream_t stream);

// The expand's store form (prefill; the wide kernel only): Y[p, yOffset + off_j + n] = round(Σ_{k<r} U[p, j*r + k] ·
// B[w, off_j + n, k]) for the rows of adapter segments and 0 for the rows of base segments and rank-0 slots, over the
// module's columns; y is not read. Rows outside every segment keep what they held, so a caller that wants the whole
// [numTokens, outTotal] block written needs segments covering every row. The engine's store-first prefill
// (forward.cu) writes the delta first and lets the base GEMM add x·Wᵀ with beta = 1: the expand's DRAM bytes halve.
// loraExpandStoreApplies: the wide expand is on and serves this step, module and y (else loraExpandStore returns
// cudaErrorNotSupported and writes nothing). The launch covers loraExpandStoreRowsPerSegment(step) rows of each segment
// (whole 128-row tiles over step.maxSegmentRows): a segment longer than that (a base segment longer than every adapter
// segment, whose rows step.maxSegmentRows need not count) would keep stale rows, so callers check it.
bool loraExpandStoreApplies(const DeviceModule& module, const DeviceStep& step, const void* y, int yStride, int yOffset);
int loraExpandStoreRowsPerSegment(const DeviceStep& step);
cudaError_t loraExpandStore(ActDType dtype, const DeviceModule& module, const DeviceStep& step, const float* u, void* y,
                            int yStride, int yOffset, cudaStream_t stream);

// Small-step (decode) path (lora_small_step.cuh, lora_small_shrink.cu, lora_small_expand.cu): for steps of few rows
// (numTokens <= kSmallStepMaxTokens) and ranks up to 64, the launch grids depend only on numTokens, the module and the
// split count (never on the segment layout), so a captured graph stays valid whatever adapters the replayed batch
// mixes. Positions are taken in groups of 16; a group's rows may belong to several slots (runs). The shrink splits K
// over many blocks (mma.sync straight from global memory) and writes per-split partial sums; the expand sums the
// partials of its rows in a fixed order (deterministic) and adds U·Bᵀ in fp32. No tickets, no atomics.
constexpr int kSmallStepMaxTokens = 256;  // the kernels' limit; DeviceLoraPool may use a lower threshold (env)
constexpr int kSmallStepMaxRank = 64;
// The split count for the small-step path, or 0 when the step or module does not qualify (then use loraShrink /
// loraExpand). Pure function of (module.in, numSlices, maxRank, step.numTokens, numMultiprocessors).
int loraSmallStepSplits(const DeviceModule& module, const DeviceStep& step, int numMultiprocessors);
// Workspace: fp32 partials [kSplits, numTokens, c*R] by position (no tickets, nothing needs zeroing).
size_t loraSmallStepWorkspaceBytes(const DeviceModule& module, const DeviceStep& step, int kSplits);
cudaError_t loraShrinkSmall(ActDType dtype, const DeviceModule& module, const DeviceStep& step, const void* x, int xStride,
                            void* workspace, int kSplits, cudaStream_t stream);
// Like every LoRA kernel, a programmatic dependent (PDL, where lora_launch.cuh turns it on) of whatever kernel comes
// before on `stream`: its table and B-tile loads overlap that kernel (typically its shrink), y and the partials are
// read after it completes. programmatic = false: a plain launch.
cudaError_t loraExpandSmall(ActDType dtype, const DeviceModule& module, const DeviceStep& step, const void* workspace,
                            int kSplits, void* y, int yStride, int yOffset, cudaStream_t stream, bool programmatic = true);
// The store variant (session 18, the engine's side expand: the expand runs on a side stream beside the base projection,
// so it must not read y): delta[phys, off_j + n] = Σ_{k<r} U[p, j*r + k] · B[w, off_j + n, k] in fp32, unrounded, for the
// rows of adapter segments and -0.0f for every other row p < numTokens (physical rows through the permutation, which
// must then be a bijection of [0, numTokens)), all outTotal columns: no zeroing needed. The consumer's
// act_round(y + delta) equals what loraExpandSmall stores into y, bit for bit.   delta: [numTokens, deltaStride] fp32,
// deltaStride >= outTotal. deltaAct (opt-in, TSLORA_CUDA_LORA_DELTA_ACT): delta holds the activation dtype, each value the
// fp32 sum rounded to it (-0 for base rows), half the bytes; cudaErrorNotSupported on the v9 layout. maxBlocks > 0
// (TSLORA_CUDA_LORA_SIDE_EXPAND_MAX_BLOCKS, opt-in, v10 layout): at most that many blocks (at least one column block per
// position group), each striding over the column blocks; the same values.
cudaError_t loraExpandSmallDelta(ActDType dtype, const DeviceModule& module, const DeviceStep& step, const void* workspace,
                                 int kSplits, void* delta, int deltaStride, cudaStream_t stream, bool programmatic = true,
                                 bool deltaAct = false, int maxBlocks = 0);

// Fused small-step path (lora_small_fused.cu): shrink and expand of a module in ONE launch, for the same steps as the
// pair above. A thread-block cluster per position group (and column part): each block of the cluster computes one K
// split of the group's U into its shared memory, the cluster synchronises (barrier.cluster), every block sums the
// splits of all its peers from distributed shared memory in rank order (deterministic) and then adds U·Bᵀ to its own
// range of output columns. No workspace, no tickets, nothing to reset between graph replays; the grid depends only
// on numTokens and the module. Needs thread-block clusters (sm_90+). Correct (checked against the CPU twin and PEFT)
// but slower than the pair on an H100 (bench/lora/README.md v8: 10-13 µs per module at batch 1, 22-48 µs at 64 rows
// with 8 adapters), so DeviceLoraPool runs it only with TSLORA_CUDA_LORA_FUSED=1.
struct FusedPlan {
  int clusterSize = 0;  // blocks per cluster = K splits (1, 2, 4, 8 or 16); 0 = the fused path does not apply
  int columnParts = 1;  // clusters per position group: each recomputes the group's U and expands 1/columnParts of the columns
};
// Pure function of (module.in, numSlices, outTotal, maxRank, step.numTokens, numMultiprocessors).
FusedPlan loraFusedPlan(const DeviceModule& module, const DeviceStep& step, int numMultiprocessors);
// Y[p, yOffset + off_j + n] += Σ_{k<r} U[p, j*r + k] · B[w, off_j + n, k] with U = X·Aᵀ rounded to the activation dtype,
// as loraShrinkSmall + loraExpandSmall compute it. cudaErrorNotSupported when the device cannot run the plan's cluster.
cudaError_t loraApplyFused(ActDType dtype, const DeviceModule& module, const DeviceStep& step, const FusedPlan& plan, const void* x,
                           int xStride, void* y, int yStride, int yOffset, cudaStream_t stream);

// Every kernel here keeps engine/pdl.h's contract and launches as a programmatic dependent (PDL) where
// TSLORA_CUDA_LORA_PDL / loraSetProgrammaticLaunch (lora_launch.cuh) turn that on.

// Switch for the tiled expand (on by default since run 8; TSLORA_CUDA_LORA_PREFETCH_Y=0 turns it off at start-up): the
// block's y tile is prefetched into shared memory with cp.async at kernel start instead of loaded in the epilogue
// (16-byte paths only). Process-wide; set it before launches, not concurrently with them.
void loraSetExpandPrefetchY(bool on);
bool loraExpandPrefetchY();

// The wide tiled expand (lora_expand_wide.cuh: a 128-row tile walks a strip of 64-column sub-tiles with the y of the
// next two in flight; R <= 64, slice offsets multiples of 64, 16-byte y rows) for steps with maxSegmentRows > 32.
// On by default (H100: prefill 8 x 512 r64 525.4 -> 496.4 us per layer; bench/lora/README.md v10);
// TSLORA_CUDA_LORA_WIDE_EXPAND=0 / =1 at start-up or loraSetExpandWide (process-wide, not concurrently with launches)
// turns it off / on; where it does not apply the v5 expand runs. It reads only U (whichever shrink or the embed gather
// wrote it), B and y.
void loraSetExpandWide(bool on);
bool loraExpandWideOn();
// TSLORA_CUDA_LORA_WIDE_EXPAND_BLOCKS_PER_SM / loraSetExpandWideBlocksPerSm (0 = 2): the strips' wave target.
void loraSetExpandWideBlocksPerSm(int blocks);
// TSLORA_CUDA_LORA_WIDE_EXPAND_STAGES=4 / loraSetExpandWideStages(4): a 4-stage pipeline instead of 3 (an A/B experiment,
// checked by the host emulator only: never run on a GPU yet).
void loraSetExpandWideStages(int stages);
// TSLORA_CUDA_LORA_STORE_LEAN=1 / loraSetExpandStoreLean(true): the store-form expand (loraExpandStore) in its lean
// layout (lora_expand_wide.cuh: B-only stages and one staging tile, built for 3 blocks per SM); off by default (session
// 24, not yet measured). Process-wide, not concurrently with launches; DeviceStep::storeLean overrides it per step.
void loraSetExpandStoreLean(bool on);
bool loraExpandStoreLeanOn();

// embed_tokens (spec e.9; module.in = vocab, one slice): U[p, k] = A[w, k, tokenIds[p]] for k < r of every
// non-base segment row p, the column gather that replaces the shrink; then loraExpand with the same u adds σ·B·U.
// tokenIds: [numTokens] device, by physical row. u: at least numTokens * R floats (loraShrinkOutput(workspace)).
cudaError_t loraEmbedGather(ActDType dtype, const DeviceModule& module, const DeviceStep& step, const int32_t* tokenIds,
                            float* u, cudaStream_t stream);

}  // namespace tslora::cuda::lora
