// CUDA graphs for decode steps (--cuda-graph-max-bs, spec e.10). A decode step (one new token per sequence, one
// logit row per sequence, batch B ≤ the maximum) is padded to a bucket size bs (1, 2, 4, 8, then multiples of 8) and
// runs as one graph: embedding → every layer with LoRA after each projection → final norm → LM head into logits_.
// Everything a replay changes lives in static buffers rewritten in place before the launch:
//  - the graph's own step tables (token ids, positions, row → sequence, block tables with a fixed capacity per
//    graph, logit rows); padding rows use token 0 at position 0 in the KV cache's scratch block (id kvNumBlocks_,
//    allocated beside the real blocks and never handed out), so they cannot touch a real sequence's cache;
//  - the LoRA pool's segment tables, slot ranks and permutation (DeviceLoraPool::setStep) under a static grid of
//    min(bs, pool maximum) segments × bs rows × bs rows per segment: any decode batch of ≤ bs rows fits it (each
//    segment holds ≥ 1 row), whatever its adapter mix, and an all-base batch is just empty segments.
// The engine's own kernels are launched as programmatic dependents (pdl.h), so the capture links consecutive kernel
// nodes by programmatic edges: a replay starts each kernel while the one before it drains, as eager steps do.
// A bucket has two graphs when the model has a LoRA pool: one with the LoRA kernels (any step with an adapter row)
// and one without them for all-base steps (128 empty LoRA launches cost ~0.1 ms per 1B step at batch 1).
// The first step of a bucket runs the same launches eagerly (which also sizes the LoRA workspace) and then captures
// them; later steps replay. A graph bakes in the addresses of the step buffers and of the LoRA workspace: when any of
// them moves (a larger eager step grew it), every graph is dropped and recaptured on next use. If capture or
// instantiation fails, graphs are turned off for this model and steps run eagerly (the step that tried is already
// computed by its warm-up); that is said once on stderr, with the bucket and the CUDA error.
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>

#include "cuda-model.h"

namespace tslora::cuda {

namespace host = lora::host;

int CudaModel::graphBucket(int batch) const {
  int bs = batch <= 1 ? 1 : batch <= 2 ? 2 : batch <= 4 ? 4 : (batch + 7) / 8 * 8;
  return std::min(bs, std::max(graphMaxBs_, batch));
}

bool CudaModel::decodeGraphFits(const cpu::StepInputView& step, bool loraActive) const {
  const int T = static_cast<int>(step.tokenIds.size);
  const int B = static_cast<int>(step.seqTokenStart.size - 1);
  const int N = static_cast<int>(step.logitRows.size);
  if (B < 1 || B > graphMaxBs_ || T != B || N != B || step.maxBlocksPerSeq < 1) return false;
  for (int b = 0; b <= B; ++b)
    if (step.seqTokenStart[b] != b) return false;
  for (int i = 0; i < N; ++i)
    if (step.logitRows[i] != i) return false;
  if (loraActive) {
    const int G = static_cast<int>(step.loraWeightIndices.size);
    if (G > std::min(graphBucket(B), loraMaxSegments_)) return false;
  }
  return true;
}

uint64_t CudaModel::graphBufferKey() const {
  // Every device address a decode graph captures that can move after construction.
  const void* ptrs[] = {hidden_.get(), xn_.get(), qkv_.get(), q_.get(), attn_.get(), proj_.get(),
                        gateUp_.get(), mlpAct_.get(), finalRows_.get(), logits_.get(), lmDelta_.get(), loraDelta_.get()};
  uint64_t key = lora_ ? lora_->workspaceGeneration() * 0x9E3779B97F4A7C15ull : 0;
  for (const void* p : ptrs) key = (key ^ reinterpret_cast<uintptr_t>(p)) * 0x100000001B3ull;
  return key;
}

void CudaModel::decodeBody(const DecodeGraph& g) {
  const int bs = g.bs;
  const int32_t* tables = g.tables.get<int32_t>();
  cudaCheck(launchEmbed(act_, embed_, tables, bs, dims_.hidden, hidden_.get<float>(), stream_), "embedding");
  if (g.lora && embedLora()) applyEmbedLora(tables, bs, hidden_.get<float>());  // padding rows are in no LoRA segment
  runLayers(tables, bs, g.capBlocks, 0, bs, g.lora);
  const int32_t* logitRows = tables + 3 * bs + static_cast<size_t>(bs) * g.capBlocks;
  cudaCheck(launchAddRmsNorm(act_, hidden_.get<float>(), nullptr, finalNorm_, finalRows_.get(), logitRows, bs,
                             dims_.hidden, dims_.rmsNormEps, stream_),
            "final norm");
  blas_->gemm(act_, finalRows_.get(), bs, dims_.hidden, lmHead_, dims_.vocab, logits_.get(), true);
  if (g.lora && lmHeadLora()) {
    // Decode: logit row i is token row i, so the step's token-row segments are the logit rows' segments.
    const size_t n = static_cast<size_t>(bs) * dims_.vocab;
    cudaCheck(cudaMemsetAsync(lmDelta_.get(), 0, n * 2, stream_), "lm_head LoRA delta");
    applyLoraChecked(0, host::Module::LmHead, finalRows_.get(), dims_.hidden, lmDelta_.get(), dims_.vocab);
    cudaCheck(launchAddDeltaToF32(act_, lmDelta_.get(), n, logits_.get<float>(), stream_), "lm_head LoRA add");
  }
}

void CudaModel::runDecodeGraph(const cpu::StepInputView& step, bool loraActive) {
  const int B = static_cast<int>(step.seqTokenStart.size - 1);
  const int bs = graphBucket(B);
  const bool withLora = lora_ != nullptr && loraActive;
  int capBlocks = 16;
  while (capBlocks < step.maxBlocksPerSeq) capBlocks *= 2;
  ensureStepBuffers(bs, bs, 1);
  if (graphBufferKey() != graphKey_) {
    graphs_.clear();
    graphKey_ = graphBufferKey();
  }
  DecodeGraph* g = nullptr;
  for (auto& candidate : graphs_)
    if (candidate->bs == bs && candidate->lora == withLora && candidate->capBlocks >= capBlocks) g = candidate.get();
  std::unique_ptr<DecodeGraph> fresh;
  if (g == nullptr) {
    // A larger block capacity replaces the bucket's old graph.
    graphs_.erase(std::remove_if(graphs_.begin(), graphs_.end(), [&](const auto& x) { return x->bs == bs && x->lora == withLora; }), graphs_.end());
    fresh = std::make_unique<DecodeGraph>();
    fresh->bs = bs;
    fresh->capBlocks = capBlocks;
    fresh->lora = withLora;
    fresh->tables.ensure((4 * static_cast<size_t>(bs) + static_cast<size_t>(bs) * capBlocks) * sizeof(int32_t), "graph tables");
    g = fresh.get();
  }

  // Tables, rewritten in place.
  const size_t ints = 4 * static_cast<size_t>(bs) + static_cast<size_t>(bs) * g->capBlocks;
  hostGraphTables_.ensure(ints * sizeof(int32_t), "graph tables (host)");
  int32_t* h = hostGraphTables_.get<int32_t>();
  int32_t* blockTables = h + 3 * bs;
  std::fill(blockTables, blockTables + static_cast<size_t>(bs) * g->capBlocks, kvNumBlocks_);  // the scratch block
  for (int b = 0; b < bs; ++b) {
    const bool real = b < B;
    h[b] = real ? step.tokenIds[b] : 0;
    h[bs + b] = real ? step.positions[b] : 0;
    h[2 * bs + b] = b;
    h[3 * bs + static_cast<size_t>(bs) * g->capBlocks + b] = b;
    if (real)
      std::memcpy(blockTables + static_cast<size_t>(b) * g->capBlocks, step.blockTables.data + static_cast<size_t>(b) * step.maxBlocksPerSeq,
                  step.maxBlocksPerSeq * sizeof(int32_t));
  }
  cudaCheck(cudaMemcpyAsync(g->tables.get(), h, ints * sizeof(int32_t), cudaMemcpyHostToDevice, stream_), "graph tables upload");

  if (withLora) {
    lora_->setGraphGrid(std::min(bs, loraMaxSegments_), bs, bs);
    host::StepLora sl;
    sl.numTokens = B;
    sl.csgmv = step.loraCsgmv;
    sl.segIndptr = step.loraSegIndptr.data;
    sl.weightIndices = step.loraWeightIndices.data;
    sl.numSegments = static_cast<int>(step.loraWeightIndices.size);
    sl.permutation = step.loraPermutation.size ? step.loraPermutation.data : nullptr;
    sl.chunkSize = step.loraChunkSize;
    setLoraStep(sl);
  }

  if (!fresh) {
    cudaCheck(cudaGraphLaunch(g->exec, stream_), "decode graph replay");
    return;
  }
  decodeBody(*g);  // warm-up = this step's result; sizes the LoRA workspace before capture
  if (graphBufferKey() != graphKey_) {  // the warm-up moved the workspace: the other graphs are stale
    graphs_.clear();
    graphKey_ = graphBufferKey();
  }
  cudaGraph_t graph = nullptr;
  std::string failedAt = "begin capture";
  cudaError_t status = cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal);
  if (status == cudaSuccess) {
    failedAt = "capture";
    try {
      decodeBody(*g);
    } catch (const std::exception& e) {
      status = cudaErrorStreamCaptureInvalidated;
      failedAt = std::string("capture (") + e.what() + ")";
    }
    cudaGraph_t captured = nullptr;
    const cudaError_t end = cudaStreamEndCapture(stream_, &captured);
    if (status == cudaSuccess) status = end;
    if (status == cudaSuccess) graph = captured;
    else if (captured) cudaGraphDestroy(captured);
  }
  if (status == cudaSuccess) {
    failedAt = "instantiate";
    // The LoRA side stream's priority lives in its captured kernel nodes; without the flag the graph would run them
    // at the launch stream's priority (lora-overlap.h).
    const unsigned long long flags = loraOverlap_ ? loraOverlap_->graphInstantiateFlags() : 0;
    status = cudaGraphInstantiate(&fresh->exec, graph, flags);
  }
  if (graph) cudaGraphDestroy(graph);
  if (status != cudaSuccess) {
    // Once per model (graphs stay off afterwards): a silent fall-back to eager steps looks like a slow kernel.
    std::fprintf(stderr, "tslora: CUDA graph %s failed for a decode step of batch %d (bucket %d, %s LoRA kernels): %s (%s); "
                 "decode steps run eagerly from now on\n", failedAt.c_str(), B, bs, withLora ? "with" : "without",
                 cudaGetErrorName(status), cudaGetErrorString(status));
    cudaGetLastError();  // capture errors are not sticky; clear the last-error state
    graphMaxBs_ = 0;     // eager from now on; this step's logits came from the warm-up
    graphs_.clear();
    return;
  }
  graphs_.push_back(std::move(fresh));
}

}  // namespace tslora::cuda
