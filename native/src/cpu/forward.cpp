// The forward step: embedding → layers (attention over the paged KV cache, SwiGLU MLP, LoRA after every base
// projection) → final norm and LM head on the logit rows only → sampling. One call per scheduler step.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>

#include "attention.h"
#include "lora-step.h"
#include "model.h"
#include "ops.h"
#include "sample-rows.h"
#include "tp/tp-model.h"

namespace tslora::cpu {

namespace {

// Rows [0, T) processed in parallel in chunks; a decode step (few rows) stays on the calling thread.
template <typename Fn>
void forRows(ThreadPool& pool, int T, Fn&& fn) {
  parallelFor(pool, 0, T, 4, [&](int r0, int r1) {
    for (int r = r0; r < r1; ++r) fn(r);
  });
}

}  // namespace

StepOutputData CpuModel::forward(const StepInputView& step) {
  std::lock_guard<std::mutex> lock(forwardMutex_);
  validate(step);
  if (tp_) return tp_->forward(step);
  const ModelDims& d = dims_;
  const int T = static_cast<int>(step.tokenIds.size);
  const int H = d.hidden;

  std::vector<float> hidden(static_cast<size_t>(T) * H);  // [T, H] residual stream
  forRows(*threads_, T, [&](int t) { loadRow(embed_, step.tokenIds[t], hidden.data() + static_cast<size_t>(t) * H); });

#ifdef TSLORA_HAVE_LORA
  LoraStep ls;
  if (lora_) {
    initTokenSegments(step, ls);
    if (ls.active && lora_->targets(lora::Module::Embed)) {
      lora_->apply(0, lora::Module::Embed, nullptr, 0, hidden.data(), H, 0, ls.tokens, *threads_,
                   step.tokenIds.data);
    }
  }
  const void* loraStep = ls.active ? &ls.tokens : nullptr;
#else
  const void* loraStep = nullptr;
#endif

  LayerStack stack;
  stack.dims = d;
  stack.layers = &layers_;
  stack.invFreq = invFreq_.data();
  stack.kv = kv_.get();
#ifdef TSLORA_HAVE_LORA
  stack.lora = lora_.get();
#endif
  stack.threads = threads_.get();
  runDecoderLayers(stack, step, hidden, loraStep);

  std::vector<float> logits;
  computeLogits(step, hidden, logits);
#ifdef TSLORA_HAVE_LORA
  if (ls.active && lora_->targets(lora::Module::LmHead) && step.logitRows.size > 0) {
    // lm_head LoRA reads the normed rows gathered in computeLogits (kept in finalRows_).
    buildLogitSegments(step, ls);
    lora_->apply(0, lora::Module::LmHead, finalRows_.data(), H, logits.data(), d.vocab, 0, ls.logits, *threads_);
  }
#endif

  StepOutputData out;
  sample(step, logits, out);
  if (step.returnLogits) out.logits = std::move(logits);
  return out;
}

void runDecoderLayers(const LayerStack& stack, const StepInputView& step, std::vector<float>& hidden,
                      const void* loraStep) {
  const ModelDims& d = stack.dims;
  const int T = static_cast<int>(step.tokenIds.size);
  const int H = d.hidden, I = d.intermediate, D = d.headDim;
  const int qOut = d.qOut(), kvOut = d.kvOut(), qkvW = d.qkvOut();
  ThreadPool& pool = *stack.threads;
  KvCache& kv = *stack.kv;

  std::vector<float> xn(static_cast<size_t>(T) * H);        // [T, H] normed input of a block
  std::vector<float> qkv(static_cast<size_t>(T) * qkvW);    // [T, q | k | v]
  std::vector<float> attn(static_cast<size_t>(T) * qOut);   // [T, numHeads * headDim]
  std::vector<float> proj(static_cast<size_t>(T) * H);      // [T, H] o_proj / down_proj output
  std::vector<float> gateUp(static_cast<size_t>(T) * 2 * I);  // [T, gate | up]
  std::vector<float> act(static_cast<size_t>(T) * I);       // [T, I]

  AttentionStep as;
  as.numSeqs = static_cast<int>(step.seqTokenStart.size - 1);
  as.seqTokenStart = step.seqTokenStart.data;
  as.positions = step.positions.data;
  as.blockTables = step.blockTables.data;
  as.maxBlocksPerSeq = step.maxBlocksPerSeq;
  AttentionShape shape{d.numHeads, d.numKvHeads, D, 1.0f / std::sqrt(static_cast<float>(D))};

  // The shrink of a module whose LoRA rows all use one slot rides along the base GEMM as one more part (one pass
  // over x, no separate dispatch; LoraPool::fusedShrink), and its expand runs in that GEMM's epilogue: each thread
  // adds B·u to the output columns it just wrote (LoraPool::fusedExpand), so the module's LoRA has no parallel
  // region of its own. fuseShrink returns u's rows [T, uStride], or null when the module is not fused.
#ifdef TSLORA_HAVE_LORA
  lora::LoraPool::ShrinkMatrix shrink;
#endif
  std::vector<float> shrinkRows;
  auto fuseShrink = [&](int layer, int module, std::vector<GemmPart>& parts) -> const float* {
#ifdef TSLORA_HAVE_LORA
    auto m = static_cast<lora::Module>(module);
    if (!loraStep || !loraShrinkFusion() || !stack.lora->targets(m) ||
        !stack.lora->fusedShrink(layer, m, *static_cast<const lora::StepLora*>(loraStep), shrink))
      return nullptr;
    shrinkRows.resize(static_cast<size_t>(T) * shrink.uStride);
    // An int8 pool's A: the part computes raw dot products with the codes; the expand applies the A-row scales.
    const WType aType = shrink.dtype == lora::PoolDType::I8 ? WType::I8 : shrink.dtype == lora::PoolDType::BF16 ? WType::BF16 : WType::F32;
    parts.push_back({WeightView{shrink.a, aType, shrink.rows, shrink.cols}, 0, shrinkRows.data(), shrink.uStride});
    return shrinkRows.data();
#else
    (void)layer, (void)module, (void)parts;
    return nullptr;
#endif
  };
  auto addLora = [&](int layer, int module, const float* x, int xStride, float* y, int yStride, const float* shrunk) {
#ifdef TSLORA_HAVE_LORA
    auto m = static_cast<lora::Module>(module);
    if (loraStep && stack.lora->targets(m)) {
      stack.lora->apply(layer, m, x, xStride, y, yStride, 0, *static_cast<const lora::StepLora*>(loraStep), pool,
                        nullptr, shrunk);
    }
#else
    (void)layer, (void)module, (void)x, (void)xStride, (void)y, (void)yStride, (void)loraStep, (void)shrunk;
#endif
  };
  // y = x Wᵀ for the parts, then addBias(row, c0, c1) on its columns, then the module's LoRA (shrink and expand
  // fused into the same GEMM where possible).
  using BiasFn = std::function<void(int t, int c0, int c1)>;
  auto project = [&](int layer, int module, const float* x, int K, std::vector<GemmPart> parts, float* y, int ldy,
                     const BiasFn& addBias) {
    const float* shrunk = fuseShrink(layer, module, parts);
#ifdef TSLORA_HAVE_LORA
    if (shrunk && loraExpandFusion()) {
      GemmEpilogue epilogue;
      epilogue.before = [&](int c0, int c1) { stack.lora->prefetchExpand(shrink, c0, c1); };
      epilogue.after = [&](int c0, int c1) {
        if (addBias)
          for (int t = 0; t < T; ++t) addBias(t, c0, c1);
        stack.lora->fusedExpand(shrink, shrunk, y, ldy, c0, c1);
      };
      // Bᵀ per output column (int8: the codes and the column's scale)
      epilogue.bytesPerColumn = shrink.dtype == lora::PoolDType::I8 ? static_cast<size_t>(shrink.rank) + sizeof(float)
                                : static_cast<size_t>(shrink.rank) * (shrink.dtype == lora::PoolDType::BF16 ? 2 : 4);
      gemm(pool, x, T, K, parts, y, ldy, &epilogue);
      return;
    }
#endif
    gemm(pool, x, T, K, parts, y, ldy);
    if (addBias) forRows(pool, T, [&](int t) { addBias(t, 0, ldy); });
    addLora(layer, module, x, K, y, ldy, shrunk);
  };

  for (int l = 0; l < d.numLayers; ++l) {
    const LayerWeights& w = (*stack.layers)[l];
    forRows(pool, T, [&](int t) {
      rmsNorm(hidden.data() + static_cast<size_t>(t) * H, w.inputNorm.data(), xn.data() + static_cast<size_t>(t) * H,
              H, d.rmsNormEps);
    });
    // q | k | v biases (Qwen2) on columns [c0, c1) of row t.
    const BiasFn qkvBias = !d.qkvBias ? BiasFn() : [&](int t, int c0, int c1) {
      float* row = qkv.data() + static_cast<size_t>(t) * qkvW;
      const float* biases[3] = {w.qBias.data(), w.kBias.data(), w.vBias.data()};
      const int starts[4] = {0, qOut, qOut + kvOut, qkvW};
      for (int b = 0; b < 3; ++b)
        for (int i = std::max(c0, starts[b]); i < std::min(c1, starts[b + 1]); ++i) row[i] += biases[b][i - starts[b]];
    };
    project(l, 0, xn.data(), H, {{w.q, 0}, {w.k, qOut}, {w.v, qOut + kvOut}}, qkv.data(), qkvW, qkvBias);
    forRows(pool, T, [&](int t) {
      float* row = qkv.data() + static_cast<size_t>(t) * qkvW;
      if (d.qkNorm) {
        for (int h = 0; h < d.numHeads; ++h) rmsNorm(row + h * D, w.qNorm.data(), row + h * D, D, d.rmsNormEps);
        for (int h = 0; h < d.numKvHeads; ++h)
          rmsNorm(row + qOut + h * D, w.kNorm.data(), row + qOut + h * D, D, d.rmsNormEps);
      }
      applyRope(row, d.numHeads, D, step.positions[t], stack.invFreq);
      applyRope(row + qOut, d.numKvHeads, D, step.positions[t], stack.invFreq);
    });
    writeKv(kv, l, as, qkv.data() + qOut, qkv.data() + qOut + kvOut, qkvW, kvOut);
    pagedAttention(pool, kv, l, as, shape, qkv.data(), qkvW, attn.data());

    project(l, 1, attn.data(), qOut, {{w.o, 0}}, proj.data(), H, {});  // row-parallel: a shard adds B·(A_r x_r)
    if (stack.allReduce) stack.allReduce(proj.data(), proj.size());
    forRows(pool, T, [&](int t) {
      float* h = hidden.data() + static_cast<size_t>(t) * H;
      const float* p = proj.data() + static_cast<size_t>(t) * H;
      for (int i = 0; i < H; ++i) h[i] += p[i];
      rmsNorm(h, w.postAttentionNorm.data(), xn.data() + static_cast<size_t>(t) * H, H, d.rmsNormEps);
    });

    project(l, 2, xn.data(), H, {{w.gate, 0}, {w.up, I}}, gateUp.data(), 2 * I, {});
    forRows(pool, T, [&](int t) {
      const float* g = gateUp.data() + static_cast<size_t>(t) * 2 * I;
      swiglu(g, g + I, act.data() + static_cast<size_t>(t) * I, I);
    });
    project(l, 3, act.data(), I, {{w.down, 0}}, proj.data(), H, {});
    if (stack.allReduce) stack.allReduce(proj.data(), proj.size());
    forRows(pool, T, [&](int t) {
      float* h = hidden.data() + static_cast<size_t>(t) * H;
      const float* p = proj.data() + static_cast<size_t>(t) * H;
      for (int i = 0; i < H; ++i) h[i] += p[i];
    });
  }
}

void computeLogitRows(ThreadPool& threads, const StepInputView& step, const std::vector<float>& hidden,
                      const ModelDims& dims, const std::vector<float>& finalNorm, const WeightView& lmHead,
                      int vocabOffset, std::vector<float>& finalRows, float* logits, int ldLogits) {
  const int N = static_cast<int>(step.logitRows.size);
  const int H = dims.hidden;
  finalRows.assign(static_cast<size_t>(N) * H, 0.0f);  // [N, H] final-normed logit rows
  for (int i = 0; i < N; ++i) {
    rmsNorm(hidden.data() + static_cast<size_t>(step.logitRows[i]) * H, finalNorm.data(),
            finalRows.data() + static_cast<size_t>(i) * H, H, dims.rmsNormEps);
  }
  gemm(threads, finalRows.data(), N, H, {{lmHead, vocabOffset}}, logits, ldLogits);
}

void CpuModel::computeLogits(const StepInputView& step, const std::vector<float>& hidden, std::vector<float>& logits) {
  logits.assign(step.logitRows.size * dims_.vocab, 0.0f);  // [N, V]
  computeLogitRows(*threads_, step, hidden, dims_, finalNorm_, lmHead_, 0, finalRows_, logits.data(), dims_.vocab);
}

void CpuModel::sample(const StepInputView& s, const std::vector<float>& logits, StepOutputData& out) {
  sampleRows(s, logits.data(), dims_.vocab, *threads_, out);
}

}  // namespace tslora::cpu
