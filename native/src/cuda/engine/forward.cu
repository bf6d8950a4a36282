// CudaModel::forward: the step tables go up in one copy; embedding → layers (cuBLAS projections, LoRA after each,
// paged attention) → final norm and LM head on the logit rows only → sampling on the GPU (plain greedy rows: argmax
// only; every other row: gpu-sample-step.cu, the CPU sampler's rules and RNG) so that only tokens and logprobs come
// back; TSLORA_CUDA_HOST_SAMPLING=1 downloads the logits and runs the CPU backend's own sampler instead.
// With TSLORA_CUDA_PDL=1 the row, attention and skinny GEMM kernels are programmatic dependents of the kernel before
// them (pdl.h): each one is scheduled while its predecessor finishes and waits on the device before reading its
// output. With the fusion switches on, where the skinny GEMM takes a decode projection and no LoRA delta must be added
// to its output first, the gate_up projection runs SwiGLU and the qkv projection the bias / RoPE / cache write
// (models without q/k norms) in their epilogues.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "../../cpu/sample-rows.h"
#include "../lora_env_flag.h"
#include "tslora/env-int.h"
#include "cuda-model.h"
#include "lora-passes.h"
#include "skinny-gemm.h"
#include "../../cpu/step-checks.h"

namespace tslora::cuda {

namespace host = lora::host;

namespace {

// The forward's switches: one row each (environment variable, value when unset), read once per process by
// lora::envFlag ("0" off, any other value on).
// - TSLORA_CUDA_FUSED_SWIGLU / _FUSED_QKV_ROPE: the skinny-GEMM epilogue fusions, on since the final H100 run of
//   session 12 (56/56 GPU tests with them on, graphs vs eager and PEFT parity included; their kernels are bit-identical
//   to the two-kernel paths: kernel-emu-test, skinny-gemm-test, cuda-pdl); =0 runs gate_up and SwiGLU, or qkv and the
//   RoPE / cache write, as two kernels.
// - TSLORA_CUDA_FUSED_ROPE_ATTN: where qkv is not the skinny fused epilogue (more rows than it takes, or a LoRA delta
//   in between) and the rows are one token of each sequence, launchQkvRopeAttention replaces launchQkvPost +
//   launchAttention (one kernel less per layer, bit-identical by construction: the same ropePair, rope.cuh, and the
//   same attention; kernel-emu-test). On since session 17: on an H100 it saved 25-90 µs per 8B batch-64 step in-graph
//   (step64-bench), GPU tests with it on 25 / 25 (engine-kernels, graphs, fixtures, 1B parity); =0 keeps two launches.
// (TSLORA_CUDA_LORA_SIDE_EXPAND is read per model instead: readSideExpandSwitches below.)
enum class Switch { FusedSwiglu, FusedQkvRope, FusedRopeAttention, Count };
struct SwitchRow {
  const char* env;
  bool unsetValue;
};
constexpr SwitchRow kSwitches[] = {
    {"TSLORA_CUDA_FUSED_SWIGLU", true},
    {"TSLORA_CUDA_FUSED_QKV_ROPE", true},
    {"TSLORA_CUDA_FUSED_ROPE_ATTN", true},
};
static_assert(sizeof(kSwitches) / sizeof(kSwitches[0]) == static_cast<size_t>(Switch::Count), "one row per switch");

bool switchOn(Switch which) {
  static const auto values = [] {
    std::array<bool, static_cast<size_t>(Switch::Count)> v{};
    for (size_t i = 0; i < v.size(); ++i) v[i] = lora::envFlag(kSwitches[i].env, kSwitches[i].unsetValue);
    return v;
  }();
  return values[static_cast<size_t>(which)];
}

// The side expand's row bound: decode batches (graph buckets up to 64) and short chunks. Prefill keeps the in-place
// expand: its steps run the tiled LoRA kernels (no delta variant) and its projections are long enough to hide the
// expand's latency anyway; the fp32 delta buffer stays small (64 x 2 x 14336 x 4 bytes = 7.3 MB on Llama-3.1-8B).
// The price grows with the rows: the delta is written in fp32 and read again by the consumer (~11 MB per 8B layer at
// 64 rows, ~0.1 ms per step at 3.35 TB/s if none of it hid under the projections), so the bound is tunable for the A/B.
constexpr int kSideExpandMaxRows = 64;

// Store-first prefill LoRA (session 21; on by default since session 23's device call, one H100: the 8B prefill 8 x 512
// with 8 distinct r16 adapters, triton, 134.2 -> 129.0 ms, LoRA cost 11.5 -> 7.8 %; TSLORA_CUDA_LORA_STORE_FIRST=0 turns
// it off): for steps of more
// than kStoreFirstMinRows rows whose LoRA runs the wide expand, the module's shrink and a store-form expand write the
// delta into y (DeviceLoraPool::applyStore: zeros in base rows, y not read), then the projection adds x·Wᵀ to it
// (Blas::gemmAccumulate, beta = 1), instead of the projection writing y and the expand reading and writing it again.
// The expand's bytes halve (prefill 8 × 512 r64 on Llama-3.1-8B: gate_up's 470 MB of y read-modify-write becomes
// 235 MB of writes; the bytes floor of the LoRA kernels per layer 293 → ~200 µs at 3.1 TB/s) for one read of y in the
// projection's epilogue, which a compute-bound prefill GEMM mostly hides. The delta is rounded to the activation dtype
// before the sum (PEFT rounds lora_B's output so too) and the sum once in cuBLAS's epilogue: not bit-identical to the
// in-place expand. Above 128 rows the projection is cublasGemmEx either way (Blas::gemm), so the base GEMM's kernel
// choice does not change (TSLORA_CUDA_LORA_STORE_FIRST_MIN_ROWS lowers the bound, so that the PEFT parity test's
// prefill of 86 rows takes the path: test/gpu/cuda-store-first). The shrink runs on the forward stream (no side-stream
// overlap: the expand needs it first).
constexpr int kStoreFirstMinRows = 128;
constexpr bool kStoreFirstDefaultOn = true;  // bench/cuda/step-targets.ts STORE_FIRST_ON_BY_DEFAULT follows it

}  // namespace

// The side expand (session 18; runLayers' project): at steps of at most sideExpandMaxRows_ rows on the small-step LoRA
// kernels, a module's expand runs on the LoRA side stream after its shrink, beside the base projection, storing the
// delta into loraDelta_ (fp32), and the projection's consumer adds it (act_round(y + delta): bit-identical to the
// in-place expand; small_step_emu_test, delta-consumer-test, test/gpu/cuda-side-expand). Needs the side stream
// (TSLORA_CUDA_LORA_SIDE_STREAM). Read at construction, so that one process can A/B two models
// (bench/cuda/side-expand-ab.ts). On by default since session 18's device round (one H100: GPU tests bit-identical on /
// off; 8B decode, csgmv, graphs: 0.95 of the step at batch 1 / 2 / 32 with an adapter, 1.00 at 64 and for base steps;
// bench/cuda/README.md); TSLORA_CUDA_LORA_SIDE_EXPAND=0 keeps the expand after the projection on the forward stream,
// and then the consumers get a null delta (a runtime branch; a compile-time split, PTX-identical to the old kernels
// without the delta, exists at commit 5fde2db but has not run on a GPU); TSLORA_CUDA_LORA_SIDE_EXPAND_MAX_ROWS (1..64,
// default 64) lowers the row bound;
// TSLORA_CUDA_LORA_SIDE_EXPAND_PDL=0 launches the side expand plainly instead of as a programmatic dependent of its
// shrink (whose early-launched blocks wait resident on the SMs the projection wants);
// TSLORA_CUDA_LORA_DELTA_ACT=1 (opt-in, session 20, not yet run on a GPU) stores the delta in the activation dtype: half
// the bytes the expand writes and the consumer reads again at 64 rows (~5.5 of ~11 MB per 8B layer), the delta rounded
// once more before act_round(y + delta) (PEFT rounds lora_B's output so too), so no longer bit-identical to the
// in-place expand. For the A/B of the batch-64 LoRA cost (bench/cuda/side-expand-ab.ts --variants);
// TSLORA_CUDA_LORA_SIDE_EXPAND_MAX_BLOCKS=N (opt-in, session 20, not yet run on a GPU): at most N blocks per side expand,
// striding over the column blocks (loraExpandSmallDelta), so it holds fewer SMs for longer beside the projection
// (gate_up at 64 rows: 448 blocks, 4 per SM, for ~10 µs). Same values.
void CudaModel::readSideExpandSwitches() {
  sideExpand_ = lora::envFlag("TSLORA_CUDA_LORA_SIDE_EXPAND", true) && loraOverlap_ && loraOverlap_->enabled();
  sideExpandPdl_ = lora::envFlag("TSLORA_CUDA_LORA_SIDE_EXPAND_PDL", true);
  sideExpandDeltaAct_ = lora::envFlag("TSLORA_CUDA_LORA_DELTA_ACT", false);
  sideExpandMaxBlocks_ = std::max(0, envInt("TSLORA_CUDA_LORA_SIDE_EXPAND_MAX_BLOCKS", 0));
  const int v = envInt("TSLORA_CUDA_LORA_SIDE_EXPAND_MAX_ROWS", kSideExpandMaxRows);
  sideExpandMaxRows_ = v >= 1 && v <= kSideExpandMaxRows ? v : kSideExpandMaxRows;
  storeFirst_ = lora::envFlag("TSLORA_CUDA_LORA_STORE_FIRST", kStoreFirstDefaultOn);
  storeFirstMinRows_ = std::max(1, envInt("TSLORA_CUDA_LORA_STORE_FIRST_MIN_ROWS", kStoreFirstMinRows));
}

// Columns of the side expand's delta rows: the widest projection that can carry a LoRA delta (qkv, gate_up, o, down).
size_t CudaModel::sideExpandDeltaCols() const {
  const cpu::ModelDims& d = dims_;
  return std::max({static_cast<size_t>(d.qkvOut()), 2 * static_cast<size_t>(d.intermediate), static_cast<size_t>(d.hidden)});
}

namespace {

// True when every logit row is a plain greedy draw the GPU can finish alone: sampled, temperature 0 (or top-k 1),
// penalties that change nothing, no target / top logprobs, no raw logits asked for. Then only the token and its
// logprob come back instead of N × V logits.
bool greedyRowsOnly(const cpu::StepInputView& s) {
  if (s.returnLogits) return false;
  for (size_t i = 0; i < s.logitRows.size; ++i) {
    if (s.sampleMask[i] == 0 || !(s.temperature[i] <= 0.0f || s.topK[i] == 1)) return false;
    if (s.targetTokenIds[i] >= 0 || s.topLogprobsNum[i] > 0) return false;
    if (s.suppressIndptr.size > 0 && s.suppressIndptr[i + 1] > s.suppressIndptr[i]) return false;  // min_new_tokens
    if (s.biasIndptr.size > 0 && s.biasIndptr[i + 1] > s.biasIndptr[i]) return false;  // logit_bias
    const bool penalties = s.penaltyIndptr[i + 1] > s.penaltyIndptr[i];
    if (penalties && (s.repetitionPenalty[i] != 1.0f || s.frequencyPenalty[i] != 0.0f || s.presencePenalty[i] != 0.0f))
      return false;
  }
  return true;
}

}  // namespace

void CudaModel::ensureStepBuffers(int T, int N, size_t tableInts) {
  const cpu::ModelDims& d = dims_;
  const size_t t = static_cast<size_t>(T), a = 2;  // Act bytes
  hidden_.ensure(t * d.hidden * sizeof(float), "hidden buffer");
  xn_.ensure(t * d.hidden * a, "norm buffer");
  qkv_.ensure(t * d.qkvOut() * a, "qkv buffer");
  q_.ensure(t * d.qOut() * a, "q buffer");
  attn_.ensure(t * d.qOut() * a, "attention buffer");
  proj_.ensure(t * d.hidden * a, "projection buffer");
  gateUp_.ensure(t * 2 * d.intermediate * a, "gate_up buffer");
  mlpAct_.ensure(t * d.intermediate * a, "mlp buffer");
  finalRows_.ensure(static_cast<size_t>(std::max(N, 1)) * d.hidden * a, "final rows");
  logits_.ensure(static_cast<size_t>(std::max(N, 1)) * d.vocab * sizeof(float), "logits");
  tables_.ensure(tableInts * sizeof(int32_t), "step tables");
  if (lmHeadLora()) lmDelta_.ensure(static_cast<size_t>(std::max(N, 1)) * d.vocab * a, "lm_head LoRA delta");
  if (lora_ && sideExpand_)  // [rows, sideExpandDeltaCols] fp32
    loraDelta_.ensure(static_cast<size_t>(std::min(T, sideExpandMaxRows_)) * sideExpandDeltaCols() * sizeof(float),
                      "LoRA delta (side expand)");
  hostTables_.ensure(tableInts * sizeof(int32_t), "step tables (host)");
  hostLogits_.ensure(static_cast<size_t>(std::max(N, 1)) * d.vocab * sizeof(float), "logits (host)");
}

cpu::StepOutputData CudaModel::forward(const cpu::StepInputView& step) {
  std::lock_guard<std::mutex> lock(forwardMutex_);
  cpu::validateStep(step, cpu::StepLimits{dims_, kvNumBlocks_, kvBlockSize_, loraSlots_});
  const int N = static_cast<int>(step.logitRows.size);
  cudaCheck(cudaSetDevice(device_), "cudaSetDevice");

  bool loraActive = false;
  if (lora_) {
    for (size_t g = 0; g < step.loraWeightIndices.size; ++g) loraActive |= step.loraWeightIndices[g] >= 0;
  }
  const bool greedyOnGpu = N > 0 && greedyRowsOnly(step);
  // Every other row is sampled on the GPU too, unless TSLORA_CUDA_HOST_SAMPLING=1 asks for the CPU sampler on the
  // downloaded logits (the reference the GPU tests compare with; also a switch for operators).
  const char* hostSampling = std::getenv("TSLORA_CUDA_HOST_SAMPLING");
  const bool sampleOnDevice = N > 0 && !greedyOnGpu && !(hostSampling && std::strcmp(hostSampling, "1") == 0) &&
                              gpuSamplingFits(step);
  if (graphMaxBs_ > 0 && decodeGraphFits(step, loraActive)) {
    runDecodeGraph(step, loraActive);  // logits of rows [0, N) in logits_
  } else {
    eagerLogits(step, loraActive);
  }

  cpu::StepOutputData out;
  if (sampleOnDevice) {
    sampleOnGpu(step, out);
    return out;
  }
  if (N > 0) {
    if (greedyOnGpu) {
      auto* dTokens = reinterpret_cast<int32_t*>(finalRows_.get<char>());  // the rows were consumed by the LM head
      auto* dLogprobs = reinterpret_cast<float*>(dTokens + N);
      // The chunk partials go to the gate_up buffer (free once the layers ran; T ≥ N rows of 2I values).
      cudaCheck(launchGreedyRows(logits_.get<float>(), N, dims_.vocab, dTokens, dLogprobs, gateUp_.get(),
                                 gateUp_.sizeBytes(), stream_),
                "greedy rows");
      cudaCheck(cudaMemcpyAsync(hostLogits_.get(), dTokens, static_cast<size_t>(N) * 8, cudaMemcpyDeviceToHost, stream_),
                "greedy rows download");
    } else {
      cudaCheck(cudaMemcpyAsync(hostLogits_.get(), logits_.get(), static_cast<size_t>(N) * dims_.vocab * sizeof(float),
                                cudaMemcpyDeviceToHost, stream_),
                "logits download");
    }
  }
  cudaCheck(cudaStreamSynchronize(stream_), "forward step");

  if (greedyOnGpu) {
    const auto* tokens = hostLogits_.get<int32_t>();
    const auto* logprobs = reinterpret_cast<const float*>(tokens + N);
    out.sampledTokenIds.assign(tokens, tokens + N);
    out.sampledLogprobs.assign(logprobs, logprobs + N);
    out.targetLogprobs.assign(N, std::nanf(""));
    return out;
  }
  sample(step, hostLogits_.get<float>(), out);
  if (step.returnLogits && N > 0) {
    out.logits.assign(hostLogits_.get<float>(), hostLogits_.get<float>() + static_cast<size_t>(N) * dims_.vocab);
  }
  return out;
}

// The eager step: tables up, embedding, layers (in LoRA passes when the step exceeds the pool's static maxima), final
// norm and LM head over the logit rows into logits_ rows [0, N).
void CudaModel::eagerLogits(const cpu::StepInputView& step, bool loraActive) {
  const int T = static_cast<int>(step.tokenIds.size);
  const int B = static_cast<int>(step.seqTokenStart.size - 1);
  const int N = static_cast<int>(step.logitRows.size);
  // Tables: tokenIds [T] | positions [T] | tokenSeq [T] | blockTables [B * maxBlocks] | logitRows [N].
  const size_t blockInts = static_cast<size_t>(B) * step.maxBlocksPerSeq;
  const size_t tableInts = 3 * static_cast<size_t>(T) + blockInts + N;
  ensureStepBuffers(T, N, tableInts);
  int32_t* h = hostTables_.get<int32_t>();
  std::memcpy(h, step.tokenIds.data, T * sizeof(int32_t));
  std::memcpy(h + T, step.positions.data, T * sizeof(int32_t));
  for (int b = 0; b < B; ++b)
    for (int t = step.seqTokenStart[b]; t < step.seqTokenStart[b + 1]; ++t) h[2 * T + t] = b;
  // Unused block-table entries (beyond a sequence's context) may hold anything; they are never read.
  std::memcpy(h + 3 * T, step.blockTables.data, blockInts * sizeof(int32_t));
  if (N > 0) std::memcpy(h + 3 * T + blockInts, step.logitRows.data, N * sizeof(int32_t));
  cudaCheck(cudaMemcpyAsync(tables_.get(), h, tableInts * sizeof(int32_t), cudaMemcpyHostToDevice, stream_),
            "step tables upload");

  const int32_t* dTokens = tables_.get<int32_t>();
  cudaCheck(launchEmbed(act_, embed_, dTokens, T, dims_.hidden, hidden_.get<float>(), stream_), "embedding");

  const int G = static_cast<int>(step.loraWeightIndices.size);
  if (loraActive && (G > loraMaxSegments_ || T > loraMaxPassRows_)) {
    // More segments (or rows) than the pool's static maxima: consecutive passes over row ranges (lora-passes.h).
    const std::vector<int32_t> rowSlot = loraRowSlots(step);
    const int32_t* tokenSeq = h + 2 * T;
    PassLora pass;
    const int coalesceAboveRows = lora_->coalesceAboveRows();  // csgmv prefill passes counted as the pool merges them
    for (const RowRange& range :
         planLoraPasses(step, rowSlot, tokenSeq, loraSlots_, loraMaxSegments_, loraMaxPassRows_, coalesceAboveRows)) {
      buildPassLora(step, rowSlot, tokenSeq, range, pass, coalesceAboveRows);
      if (pass.active && lora_->staticGrid()) lora_->setStaticGrid(false);
      if (pass.active) setLoraStep(pass.view);
      if (pass.active && embedLora())
        applyEmbedLora(dTokens + range.r0, range.r1 - range.r0, hidden_.get<float>() + static_cast<size_t>(range.r0) * dims_.hidden);
      runLayers(tables_.get<int32_t>(), T, step.maxBlocksPerSeq, range.r0, range.r1, pass.active);
    }
  } else {
    if (loraActive) {
      if (lora_->staticGrid()) lora_->setStaticGrid(false);  // a decode graph's grid: back to the narrowed one
      host::StepLora sl;
      sl.csgmv = step.loraCsgmv;
      sl.segIndptr = step.loraSegIndptr.data;
      sl.weightIndices = step.loraWeightIndices.data;
      sl.numSegments = G;
      sl.permutation = step.loraPermutation.size ? step.loraPermutation.data : nullptr;
      sl.numTokens = T;
      sl.chunkSize = step.loraChunkSize;
      setLoraStep(sl);
      if (embedLora()) applyEmbedLora(dTokens, T, hidden_.get<float>());
    }
    runLayers(tables_.get<int32_t>(), T, step.maxBlocksPerSeq, 0, T, loraActive);
  }

  if (N > 0) {
    const int32_t* dLogitRows = tables_.get<int32_t>() + 3 * T + blockInts;
    cudaCheck(launchAddRmsNorm(act_, hidden_.get<float>(), nullptr, finalNorm_, finalRows_.get(), dLogitRows, N,
                               dims_.hidden, dims_.rmsNormEps, stream_),
              "final norm");
    blas_->gemm(act_, finalRows_.get(), N, dims_.hidden, lmHead_, dims_.vocab, logits_.get(), true);
    if (loraActive && lmHeadLora()) applyLmHeadLora(step, N);
  }
}

void CudaModel::applyLoraChecked(int layer, host::Module m, const void* x, int xStride, void* y, int yStride,
                                 const int32_t* tokenIds) {
  try {
    lora_->apply(layer, m, x, xStride, y, yStride, 0, stream_, tokenIds);
  } catch (const std::runtime_error& e) {
    if (dynamic_cast<const NativeError*>(&e)) throw;
    throw NativeError("native_cuda_error", e.what());
  }
}

void CudaModel::applyEmbedLora(const int32_t* dTokens, int rows, float* hidden) {
  const size_t n = static_cast<size_t>(rows) * dims_.hidden;
  cudaCheck(cudaMemsetAsync(proj_.get(), 0, n * 2, stream_), "embed_tokens LoRA delta");
  applyLoraChecked(0, host::Module::Embed, nullptr, 0, proj_.get(), dims_.hidden, dTokens);
  cudaCheck(launchAddDeltaToF32(act_, proj_.get(), n, hidden, stream_), "embed_tokens LoRA add");
}

void CudaModel::applyLmHeadLora(const cpu::StepInputView& step, int N) {
  const int H = dims_.hidden, V = dims_.vocab;
  const std::vector<int32_t> rowSlot = loraRowSlots(step);  // per token row
  if (lora_->staticGrid()) lora_->setStaticGrid(false);
  auto* delta = lmDelta_.get<uint16_t>();
  auto* rows = finalRows_.get<uint16_t>();
  cudaCheck(cudaMemsetAsync(delta, 0, static_cast<size_t>(N) * V * 2, stream_), "lm_head LoRA delta");
  std::vector<int32_t> indptr, weights;
  for (int r0 = 0, r = 0; r0 < N; r0 = r) {
    indptr.assign(1, 0);
    weights.clear();
    r = r0;
    while (r < N && r - r0 < loraMaxPassRows_) {
      const int32_t slot = rowSlot[step.logitRows[r]];
      if (weights.empty() || slot != weights.back()) {
        if (static_cast<int>(weights.size()) == loraMaxSegments_) break;
        weights.push_back(slot);
        indptr.push_back(r - r0);
      }
      indptr.back() = ++r - r0;
    }
    host::StepLora sl;
    sl.csgmv = false;  // runs of logit rows in order: one segment per run
    sl.segIndptr = indptr.data();
    sl.weightIndices = weights.data();
    sl.numSegments = static_cast<int>(weights.size());
    sl.numTokens = r - r0;
    setLoraStep(sl);
    applyLoraChecked(0, host::Module::LmHead, rows + static_cast<size_t>(r0) * H, H, delta + static_cast<size_t>(r0) * V, V);
  }
  cudaCheck(launchAddDeltaToF32(act_, delta, static_cast<size_t>(N) * V, logits_.get<float>(), stream_), "lm_head LoRA add");
}

void CudaModel::setLoraStep(const host::StepLora& sl) {
  try {
    lora_->setStep(sl, stream_);
  } catch (const std::invalid_argument& e) {
    throw NativeError("native_invalid_argument", e.what());
  } catch (const std::runtime_error& e) {
    if (dynamic_cast<const NativeError*>(&e)) throw;
    throw NativeError("native_cuda_error", e.what());
  }
}

// Rows [r0, r1) of the step through every layer (the whole step, or one LoRA pass of it). Activation buffers are
// used from row 0; the residual stream and the step tables are offset by r0.
void CudaModel::runLayers(const int32_t* tables, int stepT, int maxBlocksPerSeq, int r0, int r1, bool loraActive) {
  const cpu::ModelDims& d = dims_;
  const int T = r1 - r0;
  const int H = d.hidden, I = d.intermediate, qOut = d.qOut(), qkvW = d.qkvOut();
  const float eps = d.rmsNormEps;
  AttnTables tabs;
  tabs.positions = tables + stepT + r0;
  tabs.tokenSeq = tables + 2 * stepT + r0;
  tabs.blockTables = tables + 3 * stepT;
  tabs.maxBlocksPerSeq = maxBlocksPerSeq;
  tabs.blockSize = kvBlockSize_;
  // Sequences among rows [r0, r1), which picks the attention kernel (prefill on tensor cores when they bring many
  // tokens each): read from the host copy of an eager step's tables (rows are sequences in order); a decode graph's
  // rows are one token per sequence.
  tabs.numSeqs = T;
  if (tables == tables_.get<int32_t>() && T > 0) {
    const int32_t* hostTokenSeq = hostTables_.get<int32_t>() + 2 * stepT;
    tabs.numSeqs = hostTokenSeq[r1 - 1] - hostTokenSeq[r0] + 1;
  }
  const HeadShape hs{d.numHeads, d.numKvHeads, d.headDim};
  const float scale = 1.0f / std::sqrt(static_cast<float>(d.headDim));
  const size_t planeElems = static_cast<size_t>(kvNumBlocks_ + 1) * kvBlockSize_ * d.kvOut();  // + scratch block
  float* hidden = hidden_.get<float>() + static_cast<size_t>(r0) * H;

  const auto loraOn = [&](host::Module m) { return loraActive && lora_->config().targets[static_cast<int>(m)]; };
  const bool overlapOn = loraActive && loraOverlap_ && loraOverlap_->enabled();
  // Side expand (readSideExpandSwitches) for this step: the pool's launches address exactly these T rows.
  const bool sideExpand = overlapOn && sideExpand_ && T <= sideExpandMaxRows_ && lora_->stepRows() == T &&
                          loraDelta_.sizeBytes() >= static_cast<size_t>(T) * sideExpandDeltaCols() * sizeof(float);
  // y[T, N] = x[T, K] · wᵀ, plus the LoRA delta of (layer, m) when the step has adapters: the shrink on the overlap's
  // side stream under the projection (lora-overlap.h), then the expand
  //  - side expand: on the side stream too, into loraDelta_ [T, N] (fp32, or Act with TSLORA_CUDA_LORA_DELTA_ACT); returned for the consumer (the next launch on
  //    the forward stream, after the join) to add: act_round(y + delta). The delta buffer and the LoRA workspace are
  //    shared by all modules: the next module's fork comes after this consumer on the forward stream, so its shrink and
  //    expand wait for it (also as graph edges);
  //  - else after the projection on the forward stream, into y (returns an empty LoraDeltaIn); or shrink + expand there.
  // [T, N] fp32, or Act with sideExpandDeltaAct_ (the buffer is sized for fp32 either way)
  void* const delta = loraDelta_.get();
  auto project = [&](int layer, host::Module m, const void* x, int K, const void* weight, int N, void* y) -> LoraDeltaIn {
    const bool lora = loraOn(m);
    const bool overlap = lora && overlapOn;
    const bool side = overlap && sideExpand && lora_->deltaExpandApplies(m);
    try {
      if (lora && !side && storeFirst_ && T > storeFirstMinRows_ && lora_->storeApplies(m, y, N)) {
        lora_->applyStore(layer, m, x, K, y, N, stream_);
        blas_->gemmAccumulate(act_, x, T, K, weight, N, y);
        return LoraDeltaIn{};
      }
      if (overlap) {
        loraOverlap_->fork(stream_);
        lora_->shrink(layer, m, x, K, loraOverlap_->side());
        if (side)
          lora_->expandDelta(layer, m, delta, N, loraOverlap_->side(), sideExpandPdl_, sideExpandDeltaAct_, sideExpandMaxBlocks_);
        loraOverlap_->shrinkLaunched();
      }
      blas_->gemm(act_, x, T, K, weight, N, y, false);
      if (overlap) loraOverlap_->join(stream_);
      if (side) return LoraDeltaIn{delta, sideExpandDeltaAct_};
      if (overlap) {
        lora_->expand(layer, m, y, N, 0, stream_);
      } else if (lora) {
        lora_->apply(layer, m, x, K, y, N, 0, stream_);
      }
    } catch (const std::runtime_error& e) {
      if (dynamic_cast<const NativeError*>(&e)) throw;
      throw NativeError("native_cuda_error", e.what());
    }
    return LoraDeltaIn{};
  };

  for (int l = 0; l < d.numLayers; ++l) {
    const DeviceLayer& w = layers_[l];
    auto* kCache = static_cast<uint16_t*>(kvCache_) + (static_cast<size_t>(l) * 2) * planeElems;
    auto* vCache = kCache + planeElems;
    if (l == 0) {
      cudaCheck(launchAddRmsNorm(act_, hidden, nullptr, w.inputNorm, xn_.get(), nullptr, T, H, eps, stream_),
                "input norm");
    }
    const bool qkNorm = w.qNorm != nullptr || w.kNorm != nullptr;  // needs whole heads: the separate kernel
    // A LoRA delta comes between the projection and RoPE: two kernels then.
    const int qkvSplit = switchOn(Switch::FusedQkvRope) && !qkNorm && !loraOn(host::Module::QKV)
                             ? blas_->skinnyKSplit(T, qkvW, H, xn_.get(), w.qkv)
                             : 0;
    bool attended = false;  // the fused qkv rope + attention launch took the attention too
    if (qkvSplit > 0) {
      SkinnyQkvRope out;
      out.hs = hs;
      out.qBias = w.qBias;
      out.kBias = w.kBias;
      out.vBias = w.vBias;
      out.invFreq = invFreq_;
      out.tabs = tabs;
      out.q = q_.get();
      out.kCache = kCache;
      out.vCache = vCache;
      cudaCheck(launchSkinnyGemmQkvRope(act_, xn_.get(), T, H, w.qkv, out, qkvSplit, stream_),
                "qkv + rope / cache write (skinny)");
    } else {
      const LoraDeltaIn qkvDelta = project(l, host::Module::QKV, xn_.get(), H, w.qkv, qkvW, qkv_.get());
      // With the switch, rows of distinct sequences (decode) without q/k norms: RoPE and the cache write inside the
      // attention launch (its split partials in the logits buffer, as below).
      QkvRope src;
      src.qkv = qkv_.get();
      src.qBias = w.qBias;
      src.kBias = w.kBias;
      src.vBias = w.vBias;
      src.invFreq = invFreq_;
      src.delta = qkvDelta;
      const cudaError_t fused = switchOn(Switch::FusedRopeAttention) && !qkNorm
                                    ? launchQkvRopeAttention(act_, src, T, hs, scale, tabs, kCache, vCache, attn_.get(),
                                                             logits_.get(), logits_.sizeBytes(), stream_)
                                    : cudaErrorNotSupported;
      attended = fused != cudaErrorNotSupported;
      if (attended) cudaCheck(fused, "qkv rope / cache write + attention");
      else
        cudaCheck(launchQkvPost(act_, qkv_.get(), T, hs, w.qBias, w.kBias, w.vBias, w.qNorm, w.kNorm, eps, invFreq_, tabs,
                                q_.get(), kCache, vCache, stream_, qkvDelta),
                  "qkv rope / cache write");
    }
    // Key-split partials of long contexts go to the logits buffer (written only by the LM head, after the layers).
    if (!attended)
      cudaCheck(launchAttention(act_, q_.get(), T, hs, scale, tabs, kCache, vCache, attn_.get(), logits_.get(),
                                logits_.sizeBytes(), stream_),
                "attention");
    const LoraDeltaIn oDelta = project(l, host::Module::O, attn_.get(), qOut, w.o, H, proj_.get());
    cudaCheck(launchAddRmsNorm(act_, hidden, proj_.get(), w.postNorm, xn_.get(), nullptr, T, H, eps, stream_, oDelta),
              "residual + post-attention norm");
    const int gateUpSplit =
        switchOn(Switch::FusedSwiglu) && !loraOn(host::Module::GateUp) ? blas_->skinnyKSplit(T, 2 * I, H, xn_.get(), w.gateUp) : 0;
    if (gateUpSplit > 0) {
      cudaCheck(launchSkinnyGemmSwiglu(act_, xn_.get(), T, H, w.gateUp, I, mlpAct_.get(), gateUpSplit, stream_),
                "gate_up + SwiGLU (skinny)");
    } else {
      const LoraDeltaIn guDelta = project(l, host::Module::GateUp, xn_.get(), H, w.gateUp, 2 * I, gateUp_.get());
      cudaCheck(launchSwiglu(act_, gateUp_.get(), T, I, mlpAct_.get(), stream_, guDelta), "swiglu");
    }
    const LoraDeltaIn downDelta = project(l, host::Module::Down, mlpAct_.get(), I, w.down, H, proj_.get());
    // Residual add, fused with the next layer's input norm (the last layer only adds).
    const float* nextNorm = l + 1 < d.numLayers ? layers_[l + 1].inputNorm : nullptr;
    cudaCheck(launchAddRmsNorm(act_, hidden, proj_.get(), nextNorm, xn_.get(), nullptr, T, H, eps, stream_, downDelta),
              "residual + input norm");
  }
}

void CudaModel::sample(const cpu::StepInputView& s, const float* logits, cpu::StepOutputData& out) {
  cpu::sampleRows(s, logits, dims_.vocab, *samplers_, out);
}

}  // namespace tslora::cuda
