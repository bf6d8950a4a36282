// LoRA device pool, host-tier adapters and the two kernel strategies on the CPU (spec sections c.4, d, e).
// Owned by the LoRA work; the forward pass (src/cpu) calls LoraPool::apply after each base projection.
//
// Layout contract (spec e.2, e.6): for every layer and target module, slot s holds
//   A_s: [c * R, in]  rows [j*r, (j+1)*r) = slice j's A (stride r, the slot's own rank), rows >= c*r stale
//   B_s: [outTotal, R] columns [0, r) valid, already multiplied by the module's scaling (fp32); rest stale
// Kernels never read beyond the slot's rank r, so stale data from an earlier, larger adapter is harmless.
// (The CPU pool keeps Bᵀ_s in panels of 16 output columns, [r][16] each (lora_internal.h: panelIndex), so that the
// expand of any run of output columns reads one contiguous stretch; the CUDA kernels use B_s as above. The layout
// is private to LoraPool.)
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace tslora {
class ThreadPool;
}

namespace tslora::lora {

enum class Module : int { QKV = 0, O = 1, GateUp = 2, Down = 3, Embed = 4, LmHead = 5 };
constexpr int kNumModules = 6;

// Shape of one (possibly fused) target module. For QKV: numSlices 3, sliceOffsets {0, q, q+kv, q+2kv};
// GateUp: 2 slices {0, I, 2I}; others 1 slice {0, out}. For Embed, `in` is the vocabulary size.
struct ModuleShape {
  int in = 0;
  int numSlices = 1;
  int sliceOffsets[4] = {0, 0, 0, 0};
  int outTotal() const { return sliceOffsets[numSlices]; }
};

// Storage of the pool's A/B buffers (additive). BF16 halves the memory and the bytes the kernels read;
// B is rounded after σ is folded in fp32. Kernels always compute in fp32.
// I8 (CPU pool only) quarters them, symmetric absmax quantization computed once when an adapter enters the host tier:
//   A [c*r, in]: one fp32 scale per A row i, sA_i = max_k |A_ik| / 127; qA_ik = rne(A_ik / sA_i) in [-127, 127].
//   B [outTotal, r] (σ folded in fp32 first): one fp32 scale per output column n (a row of B), sB_n = max_k |B_nk| /
//   127; qB_nk = rne(B_nk / sB_n). A row / column of zeros has scale 0 and codes 0.
//   Each dequantized weight q·s is within s/2 of the fp32 value (half a step of 1/127 of its row's / column's absmax).
//   Under tensor parallelism each rank quantizes its own slice: a row-parallel module's A rows (split along `in`) get
//   one scale per slice, no coarser than the whole row's.
// Kernels widen the codes to fp32 (no int8 activations): u_raw_i = Σ_k qA_ik x_k (the fused shrink's GEMM part does
// exactly this), then the expand computes y_n += sB_n · Σ_i (u_raw_i · sA_i) · qB_ni. Bᵀ panels of int8 carry their
// 16 column scales right after the codes (lora_internal.h: panelStride), so the expand reads one stream.
enum class PoolDType : int { F32 = 0, BF16 = 1, I8 = 2 };

struct PoolConfig {
  int numSlots = 0;    // S
  int maxRank = 0;     // R
  int numLayers = 0;
  bool targets[kNumModules] = {};
  ModuleShape shapes[kNumModules];
  PoolDType weightDtype = PoolDType::F32;
};

// Raw tensor handed over by the napi layer: a pointer into a memory-mapped adapter file.
enum class DType : int { F32 = 0, F16 = 1, BF16 = 2 };
struct TensorInput {
  const void* data = nullptr;
  DType dtype = DType::F32;
  int64_t rows = 0;  // shape[0]
  int64_t cols = 0;  // shape[1]
};

// One LoRA pair as PEFT stores it: un-fused module name index (q=0,k=1,v=2,o=3,gate=4,up=5,down=6,embed=7,lm_head=8).
// Additive: 9 = an already-fused qkv_proj pair, 10 = an already-fused gate_up_proj pair (spec e.2: A [r, in] is
// repeated once per slice, B [outTotal, r] is split by the slice offsets).
enum PeftModule : int {
  kPeftQ = 0, kPeftK = 1, kPeftV = 2, kPeftO = 3, kPeftGate = 4, kPeftUp = 5, kPeftDown = 6,
  kPeftEmbed = 7, kPeftLmHead = 8, kPeftFusedQkv = 9, kPeftFusedGateUp = 10
};
constexpr int kNumPeftModules = 11;

struct PairInput {
  int layer = -1;  // decoder layer; -1 (or 0) for embed / lm_head, which exist once
  int peftModule = 0;
  int rank = 0;
  float scaling = 1.0f;
  TensorInput a;  // [rank, in]   (embed: [rank, vocab])
  TensorInput b;  // [out, rank]  (embed: [hidden, rank])
};

struct AdapterInput {
  int rank = 0;  // the adapter's rank: max over pairs
  std::vector<PairInput> pairs;
};

// Validated fp32 copy in the pool's layout (rank r, not R), scaling folded into B. Immutable once built. The CPU
// backend's host tier converts it once more, to the pool's storage format (slot_image.h: buildSlotImage).
class HostAdapter {
 public:
  virtual ~HostAdapter() = default;
  virtual int rank() const = 0;
  virtual size_t sizeBytes() const = 0;
};

// Converts and checks (shapes against the pool config, finite values). Throws std::invalid_argument with a
// message starting "corrupt adapter file" for NaN/Inf, or "incompatible" for shape mismatches.
std::unique_ptr<HostAdapter> buildHostAdapter(const AdapterInput& input, const PoolConfig& config);

// Per-step segment metadata (spec e.3), pointers valid for the duration of one forward call.
struct StepLora {
  bool csgmv = true;                      // false = "triton" per-request segments
  const int32_t* segIndptr = nullptr;     // [numSegments + 1] over (permuted) rows
  const int32_t* weightIndices = nullptr; // [numSegments] slot per segment, -1 = base
  int numSegments = 0;
  const int32_t* permutation = nullptr;   // [numTokens] physical row per permuted position, nullptr = identity
  int numTokens = 0;
  int chunkSize = 16;                     // csgmv C / triton max segment length
};

class LoraPool {
 public:
  explicit LoraPool(const PoolConfig& config);
  ~LoraPool();
  LoraPool(const LoraPool&) = delete;
  LoraPool& operator=(const LoraPool&) = delete;

  const PoolConfig& config() const;
  size_t sizeBytes() const;
  // Writes an adapter into a slot (rank r regions; modules the adapter lacks in a layer are zeroed for [0, r)).
  void writeSlot(int slot, const HostAdapter& adapter);
  // Zeroes the slot and marks rank 0 (base / empty).
  void clearSlot(int slot);
  int slotRank(int slot) const;
  bool targets(Module m) const;

  // y[p, :] += B_s (A_s x[p, :]) for every row p of a segment served by slot s with rank > 0.
  //   x: [numTokens, xStride] input rows (xStride >= shape.in); y: [numTokens, yStride], columns
  //   [yOffset, yOffset + outTotal) receive the delta. Embed: x is ignored and tokenIds selects A's columns.
  //   Embed / LmHead exist once: `layer` is ignored for them. Throws std::invalid_argument on bad metadata
  //   (segment bounds, slots, permutation entries or token ids out of range).
  //   shrunk: the shrink already done (fusedShrink below), u [numTokens, c*R] by physical row; x is then unused.
  void apply(int layer, Module module, const float* x, int xStride, float* y, int yStride, int yOffset,
             const StepLora& step, ThreadPool& threads, const int32_t* tokenIds = nullptr,
             const float* shrunk = nullptr) const;

  // When every LoRA row of the step uses one slot (a single-stream decode step, a batch on one adapter; base rows
  // may be mixed in), the shrink u = A_s x is a plain GEMM over the same input rows as the base projection: the
  // forward adds A_s as one more part of the base GEMM (one pass over x, no extra dispatch). Fills the slot's A rows
  // [0, c*r) x in (fp32, bf16 bits or int8 codes), u's row stride c*R and what fusedExpand needs; false when there is
  // nothing to fuse (embed, several slots, no LoRA row, or the slot lacks the module in this layer). Throws like
  // apply() on bad metadata. u then goes to apply(shrunk = u), or column range by column range to fusedExpand (with
  // an I8 pool u is raw, see below).
  // I8: `a` is the int8 codes, so the GEMM's u holds raw dot products u_raw = qA x; aScale holds the slot's c*r A-row
  // scales, which fusedExpand / apply(shrunk) apply as they read u (u is only c*r floats per row).
  struct ShrinkMatrix {
    const void* a = nullptr;
    PoolDType dtype = PoolDType::F32;
    const float* aScale = nullptr;  // [c*r], I8 only
    int rows = 0, cols = 0, uStride = 0;
    Module module = Module::QKV;
    int layer = 0, slot = -1, rank = 0;
    std::vector<int32_t> loraRows;  // physical rows served by the slot, in segment order
  };
  bool fusedShrink(int layer, Module module, const StepLora& step, ShrinkMatrix& out) const;

  // y[p, c0:c1) += B_s u[p] for the LoRA rows p of a fused step: the expand of output columns [c0, c1) of the module
  // (y's columns, yOffset 0), run by the GEMM thread that just wrote them (cpu::GemmEpilogue). u: [numTokens, uStride]
  // from the fused shrink. Any split of the columns into ranges gives the bits of apply(shrunk = u).
  void fusedExpand(const ShrinkMatrix& sm, const float* u, float* y, int yStride, int c0, int c1) const;
  // Prefetches the start of what fusedExpand(c0, c1) reads (the first expandPrefetchBytes() of each slice's Bᵀ
  // panels), for the GEMM thread to call before it computes those columns: the panels arrive while the weights
  // stream, and the expand's own prefetch keeps the same distance ahead from there.
  void prefetchExpand(const ShrinkMatrix& sm, int c0, int c1) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tslora::lora
