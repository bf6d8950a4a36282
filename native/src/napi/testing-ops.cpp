#include "testing-ops.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <thread>
#include <vector>

#include "../cpu/cpu-isa.h"
#include "../cpu/gemm-chunks.h"
#include "../cpu/gemm.h"
#include "../cpu/ops.h"
#include "../cpu/sampling.h"
#include "js-read.h"
#ifdef TSLORA_HAVE_LORA
#include "../cpu/lora-step.h"
#include "../lora/cpu_expand.h"
#include "../lora/slot_image.h"
#endif
#include "tslora/thread-pool.h"

namespace tslora::napi {
namespace {

Napi::Float32Array requireF32(const Napi::Value& v, const char* name) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) {
    throw NativeError("native_invalid_argument", detail::concat(name, " must be a Float32Array"));
  }
  return v.As<Napi::Float32Array>();
}

// ropeInverseFrequencies({headDim, theta, type, factor, lowFreqFactor, highFreqFactor, originalMaxPositionEmbeddings})
Napi::Value RopeInvFreq(const Napi::CallbackInfo& info) {
  try {
    Napi::Object o = requireObject(info[0], "rope");
    cpu::RopeConfig c;
    c.headDim = requireInt(o, "headDim", "rope", 2, 1024);
    c.theta = static_cast<float>(requireNumber(o, "theta", "rope"));
    std::string type = requireString(o, "type", "rope");
    c.scalingType = type == "linear" ? 1 : type == "llama3" ? 2 : 0;
    if (c.scalingType != 0) c.factor = static_cast<float>(requireNumber(o, "factor", "rope"));
    if (c.scalingType == 2) {
      c.lowFreqFactor = static_cast<float>(requireNumber(o, "lowFreqFactor", "rope"));
      c.highFreqFactor = static_cast<float>(requireNumber(o, "highFreqFactor", "rope"));
      c.originalMaxPositionEmbeddings = requireInt(o, "originalMaxPositionEmbeddings", "rope", 1, 1 << 30);
    }
    std::vector<float> inv = cpu::ropeInverseFrequencies(c);
    auto out = Napi::Float32Array::New(info.Env(), inv.size());
    std::memcpy(out.Data(), inv.data(), inv.size() * 4);
    return out;
  } catch (...) {
    rethrowAsJs(info.Env());
  }
}

// applyRope(heads: Float32Array [numHeads*headDim], numHeads, headDim, position, invFreq) — in place
Napi::Value ApplyRope(const Napi::CallbackInfo& info) {
  try {
    auto heads = requireF32(info[0], "heads");
    int numHeads = requireIntArg(info[1], "numHeads", 1, 1 << 16);
    int headDim = requireIntArg(info[2], "headDim", 2, 1024);
    int position = requireIntArg(info[3], "position", 0, 1 << 30);
    auto inv = requireF32(info[4], "invFreq");
    TSLORA_CHECK(heads.ElementLength() == static_cast<size_t>(numHeads) * headDim, "heads must hold numHeads*headDim");
    TSLORA_CHECK(inv.ElementLength() == static_cast<size_t>(headDim / 2), "invFreq must hold headDim/2");
    cpu::applyRope(heads.Data(), numHeads, headDim, position, inv.Data());
    return info.Env().Undefined();
  } catch (...) {
    rethrowAsJs(info.Env());
  }
}

// rmsNorm(x, w, eps) → Float32Array
Napi::Value RmsNorm(const Napi::CallbackInfo& info) {
  try {
    auto x = requireF32(info[0], "x");
    auto w = requireF32(info[1], "w");
    TSLORA_CHECK(x.ElementLength() == w.ElementLength() && x.ElementLength() > 0, "x and w must have equal length");
    float eps = info[2].As<Napi::Number>().FloatValue();
    auto out = Napi::Float32Array::New(info.Env(), x.ElementLength());
    cpu::rmsNorm(x.Data(), w.Data(), out.Data(), static_cast<int>(x.ElementLength()), eps);
    return out;
  } catch (...) {
    rethrowAsJs(info.Env());
  }
}

// gemm(x: Float32Array [M*K], M, w: Uint16Array (bf16 or f16 bits) | Int8Array (int8, no scale) | Float32Array [N*K], dtype,
//      N, K, numThreads)
Napi::Value Gemm(const Napi::CallbackInfo& info) {
  try {
    auto x = requireF32(info[0], "x");
    int M = requireIntArg(info[1], "M", 1, 1 << 20);
    std::string dtype = info[3].ToString().Utf8Value();
    int N = requireIntArg(info[4], "N", 1, 1 << 24);
    int K = requireIntArg(info[5], "K", 1, 1 << 20);
    int threads = requireIntArg(info[6], "numThreads", 0, 64);
    auto wArr = info[2].As<Napi::TypedArray>();
    cpu::WeightView w;
    w.type = dtype == "bf16" ? cpu::WType::BF16 : dtype == "f16" ? cpu::WType::F16 : dtype == "int8" ? cpu::WType::I8 : cpu::WType::F32;
    w.rows = N;
    w.cols = K;
    w.data = static_cast<const uint8_t*>(wArr.ArrayBuffer().Data()) + wArr.ByteOffset();
    TSLORA_CHECK(wArr.ByteLength() == w.sizeBytes(), "w must hold N*K elements of ", dtype);
    TSLORA_CHECK(x.ElementLength() == static_cast<size_t>(M) * K, "x must hold M*K floats");
    ThreadPool pool(threads);
    auto y = Napi::Float32Array::New(info.Env(), static_cast<size_t>(M) * N);
    cpu::gemm(pool, x.Data(), M, K, {{w, 0}}, y.Data(), N);
    return y;
  } catch (...) {
    rethrowAsJs(info.Env());
  }
}

// rowKernel(kind: 'exp' | 'swiglu', a: Float32Array, b: Float32Array (swiglu's up), scalar: boolean) → Float32Array:
// exp(a) (softmax's exp-and-sum with shift 0) or silu(a) · b, by the active kernel copy or the one-lane twin.
Napi::Value RowKernel(const Napi::CallbackInfo& info) {
  try {
    const std::string kind = info[0].ToString().Utf8Value();
    auto a = requireF32(info[1], "a");
    const cpu::CpuKernels k = info[3].ToBoolean().Value() ? cpu::scalarRowKernels() : cpu::cpuKernels();
    const int n = static_cast<int>(a.ElementLength());
    auto out = Napi::Float32Array::New(info.Env(), a.ElementLength());
    if (kind == "exp") {
      std::copy(a.Data(), a.Data() + n, out.Data());
      k.expShiftSum(out.Data(), n, 0.0f);
    } else {
      TSLORA_CHECK(kind == "swiglu", "rowKernel: kind must be 'exp' or 'swiglu', got '", kind, "'");
      auto b = requireF32(info[2], "b");
      TSLORA_CHECK(b.ElementLength() == a.ElementLength(), "rowKernel: a and b must have the same length");
      k.swigluRow(a.Data(), b.Data(), out.Data(), n);
    }
    return out;
  } catch (...) {
    rethrowAsJs(info.Env());
  }
}

// sampleRow(logits, {temperature, topP, topK, minP, seedLo, seedHi, repetitionPenalty, frequencyPenalty,
//   presencePenalty, penaltyTokenIds, penaltyOutputCounts, targetTokenId, sample, suppressTokenIds?, biasTokenIds?,
//   biasValues?}, topLogprobsK)
Napi::Value SampleRow(const Napi::CallbackInfo& info) {
  try {
    Napi::Env env = info.Env();
    auto logits = requireF32(info[0], "logits");
    Napi::Object o = requireObject(info[1], "params");
    int K = requireIntArg(info[2], "topLogprobsK", 0, static_cast<int64_t>(logits.ElementLength()));
    cpu::SamplingParams p;
    p.sample = readBool(o, "sample", true);
    p.temperature = static_cast<float>(requireNumber(o, "temperature", "params"));
    p.topP = static_cast<float>(requireNumber(o, "topP", "params"));
    p.topK = static_cast<int>(requireNumber(o, "topK", "params"));
    p.minP = static_cast<float>(requireNumber(o, "minP", "params"));
    p.seed = static_cast<uint64_t>(static_cast<uint32_t>(requireNumber(o, "seedLo", "params"))) |
             static_cast<uint64_t>(static_cast<uint32_t>(requireNumber(o, "seedHi", "params"))) << 32;
    p.repetitionPenalty = static_cast<float>(requireNumber(o, "repetitionPenalty", "params"));
    p.frequencyPenalty = static_cast<float>(requireNumber(o, "frequencyPenalty", "params"));
    p.presencePenalty = static_cast<float>(requireNumber(o, "presencePenalty", "params"));
    auto ids = typedArray<int32_t>(o, "penaltyTokenIds", napi_int32_array, "Int32Array");
    auto counts = typedArray<int32_t>(o, "penaltyOutputCounts", napi_int32_array, "Int32Array");
    TSLORA_CHECK(ids.size == counts.size, "penalty arrays must have equal length");
    p.penaltyTokenIds = ids.data;
    p.penaltyOutputCounts = counts.data;
    p.numPenaltyTokens = static_cast<int>(ids.size);
    p.targetTokenId = static_cast<int>(requireNumber(o, "targetTokenId", "params"));
    if (o.Has("suppressTokenIds") && !o.Get("suppressTokenIds").IsUndefined()) {
      auto suppressed = typedArray<int32_t>(o, "suppressTokenIds", napi_int32_array, "Int32Array");
      p.suppressTokenIds = suppressed.data;
      p.numSuppressTokens = static_cast<int>(suppressed.size);
    }
    if (o.Has("biasTokenIds") && !o.Get("biasTokenIds").IsUndefined()) {
      auto biasIds = typedArray<int32_t>(o, "biasTokenIds", napi_int32_array, "Int32Array");
      auto biasValues = typedArray<float>(o, "biasValues", napi_float32_array, "Float32Array");
      TSLORA_CHECK(biasIds.size == biasValues.size, "biasTokenIds and biasValues must have equal length");
      p.biasTokenIds = biasIds.data;
      p.biasValues = biasValues.data;
      p.numBiasTokens = static_cast<int>(biasIds.size);
    }
    int V = static_cast<int>(logits.ElementLength());
    TSLORA_CHECK(p.targetTokenId >= -1 && p.targetTokenId < V, "targetTokenId out of range");
    std::vector<int32_t> topIds(K);
    std::vector<float> topLps(K), scratch;
    std::vector<int32_t> order;
    cpu::SamplingOutput r = cpu::sampleRow(logits.Data(), V, p, K, topIds.data(), topLps.data(), scratch, order);
    Napi::Object out = Napi::Object::New(env);
    out.Set("token", r.token);
    out.Set("sampledLogprob", r.sampledLogprob);
    out.Set("targetLogprob", r.targetLogprob);
    auto ti = Napi::Int32Array::New(env, K);
    auto tl = Napi::Float32Array::New(env, K);
    if (K > 0) {
      std::memcpy(ti.Data(), topIds.data(), K * 4);
      std::memcpy(tl.Data(), topLps.data(), K * 4);
    }
    out.Set("topIds", ti);
    out.Set("topLogprobs", tl);
    return out;
  } catch (...) {
    rethrowAsJs(info.Env());
  }
}

// copyBandwidth(sizeBytes, numThreads, repeats) → GB/s counting bytes read + bytes written (best of repeats).
Napi::Value CopyBandwidth(const Napi::CallbackInfo& info) {
  try {
    const size_t size = static_cast<size_t>(requireIntArg(info[0], "sizeBytes", 4096, int64_t(1) << 31));
    int threads = requireIntArg(info[1], "numThreads", 0, 256);
    int repeats = requireIntArg(info[2], "repeats", 1, 1000);
    std::vector<char> src(size, 1), dst(size, 0);
    ThreadPool pool(threads);
    const int chunks = pool.numThreads();
    double best = 0;
    for (int r = 0; r < repeats; ++r) {
      auto t0 = std::chrono::steady_clock::now();
      parallelFor(pool, 0, chunks, 1, [&](int c0, int c1) {
        for (int c = c0; c < c1; ++c) {
          size_t b = size * c / chunks, e = size * (c + 1) / chunks;
          std::memcpy(dst.data() + b, src.data() + b, e - b);
        }
      });
      double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      best = std::max(best, 2.0 * static_cast<double>(size) / s / 1e9);
    }
    return Napi::Number::New(info.Env(), best);
  } catch (...) {
    rethrowAsJs(info.Env());
  }
}

// cpuKernelIsa() → { active, available: string[], features }: the CPU kernel copy in use (cpu-isa.h).
Napi::Value CpuKernelIsa(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("active", cpu::cpuKernels().name);
  const std::vector<std::string> names = cpu::availableCpuIsas();
  Napi::Array list = Napi::Array::New(env, names.size());
  for (size_t i = 0; i < names.size(); ++i) list.Set(static_cast<uint32_t>(i), names[i]);
  o.Set("available", list);
  o.Set("features", cpu::cpuFeatureSummary());
  o.Set("prefetchBytes", cpu::cpuKernels().prefetchBytes);
  o.Set("packMinRows", cpu::cpuKernels().packMinRows);
  return o;
}

// selectCpuKernelIsa(name): every later CPU kernel call in this process uses that copy (tests, benchmarks).
Napi::Value SelectCpuKernelIsa(const Napi::CallbackInfo& info) {
  try {
    if (!info[0].IsString()) throw NativeError("native_invalid_argument", "selectCpuKernelIsa: name must be a string");
    cpu::selectCpuIsa(info[0].As<Napi::String>().Utf8Value());
    return info.Env().Undefined();
  } catch (...) {
    rethrowAsJs(info.Env());
  }
}

// setGemmPackMinRows(rows): batches of at least `rows` activation rows take the packed GEMM; 0 = never (benchmarks).
Napi::Value SetGemmPackMinRows(const Napi::CallbackInfo& info) {
  try {
    if (!info[0].IsNumber()) throw NativeError("native_invalid_argument", "setGemmPackMinRows: rows must be a number");
    cpu::setGemmPackMinRows(info[0].As<Napi::Number>().Int32Value());
    return info.Env().Undefined();
  } catch (...) {
    rethrowAsJs(info.Env());
  }
}

// setLoraShrinkFusion(on): whether single-slot LoRA shrinks ride along the base GEMM (cpu/lora-step.h; benchmarks).
Napi::Value SetLoraShrinkFusion(const Napi::CallbackInfo& info) {
#ifdef TSLORA_HAVE_LORA
  cpu::setLoraShrinkFusion(info[0].ToBoolean().Value());
#endif
  return info.Env().Undefined();
}

// setLoraExpandFusion(on): whether a fused shrink's expand runs in the base GEMM's epilogue (cpu/lora-step.h).
Napi::Value SetLoraExpandFusion(const Napi::CallbackInfo& info) {
#ifdef TSLORA_HAVE_LORA
  cpu::setLoraExpandFusion(info[0].ToBoolean().Value());
#endif
  return info.Env().Undefined();
}

// gemmProfile(on) → the GEMM threads' time and bytes since the last call (cpu/gemm.h: GemmProfile), then profiling
// on or off for the next steps (benchmarks: where a LoRA step's time goes).
Napi::Value GemmProfileOp(const Napi::CallbackInfo& info) {
  const cpu::GemmProfile p = cpu::takeGemmProfile();
  cpu::setGemmProfiling(info[0].ToBoolean().Value());
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("baseNs", p.baseNs);
  o.Set("baseBytes", p.baseBytes);
  o.Set("ownNs", p.ownNs);
  o.Set("ownBytes", p.ownBytes);
  o.Set("awaitNs", p.awaitNs);
  o.Set("epilogueNs", p.epilogueNs);
  o.Set("wallNs", p.wallNs);
  return o;
}

// setGemmEpilogueChunks(n[, minChunkBytes]) → the previous n: chunks per thread of a GEMM with an epilogue, 0 =
// chosen from its bytes (cpu/gemm.h; benchmarks).
Napi::Value SetGemmEpilogueChunks(const Napi::CallbackInfo& info) {
  const int64_t minChunkBytes = info.Length() > 1 ? info[1].As<Napi::Number>().Int64Value() : 0;
  return Napi::Number::New(info.Env(), cpu::setGemmEpilogueChunks(info[0].As<Napi::Number>().Int32Value(),
                                                                   static_cast<size_t>(std::max<int64_t>(0, minChunkBytes))));
}

// setGemmChunks(n): chunks per thread of a GEMM without an epilogue (cpu/gemm.h; benchmarks).
Napi::Value SetGemmChunks(const Napi::CallbackInfo& info) {
  cpu::setGemmChunks(info[0].As<Napi::Number>().Int32Value());
  return info.Env().Undefined();
}

// setGemmOwnedRanges(mode) → the previous mode: 0 = no GEMM on owned ranges, 1 = those without an epilogue, 2 = all
// (cpu/gemm.h; benchmarks, tests).
Napi::Value SetGemmOwnedRanges(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), cpu::setGemmOwnedRanges(info[0].As<Napi::Number>().Int32Value()));
}

// ownedRangesTrial(totalBlocks, numThreads, subRanges) → { runs: Int32Array (times each block ran), lateRan }:
// the last owner's call starts only after every other owner's call returned (a thread that runs late), so the others
// must have taken all of its pieces: lateRan = the blocks its own call ran (cpu/gemm-chunks.h OwnedRanges; tests).
Napi::Value OwnedRangesTrial(const Napi::CallbackInfo& info) {
  const int total = info[0].As<Napi::Number>().Int32Value(), threads = info[1].As<Napi::Number>().Int32Value();
  const int subRanges = info[2].As<Napi::Number>().Int32Value();
  if (total < 0 || total > (1 << 20) || threads < 2 || threads > 64 || subRanges < 1 || subRanges > 64)
    throw NativeError("native_invalid_argument", "ownedRangesTrial: totalBlocks 0..2^20, numThreads 2..64, subRanges 1..64");
  ThreadPool pool(threads);
  cpu::OwnedRanges ranges(total, threads, subRanges);
  std::vector<std::atomic<int>> runs(total);
  std::atomic<int> othersDone{0}, lateRan{0};
  const int late = ranges.numOwners() - 1;  // claimed last (the pool hands out chunks in order): no deadlock
  pool.run(ranges.numOwners(), [&](int owner) {
    if (owner == late)
      while (othersDone.load(std::memory_order_acquire) < late) std::this_thread::yield();
    ranges.work(owner, [&](int b0, int b1) {
      for (int b = b0; b < b1; ++b) runs[b].fetch_add(1, std::memory_order_relaxed);
      if (owner == late) lateRan.fetch_add(b1 - b0, std::memory_order_relaxed);
    });
    if (owner != late) othersDone.fetch_add(1, std::memory_order_release);
  });
  Napi::Object o = Napi::Object::New(info.Env());
  auto counts = Napi::Int32Array::New(info.Env(), total);
  for (int b = 0; b < total; ++b) counts[b] = runs[b].load();
  o.Set("runs", counts);
  o.Set("lateRan", lateRan.load());
  return o;
}

// setGemmPrefetchFlags(base, own) → the previous [base, own]: how the decode GEMV prefetches the base weights and a
// fused shrink's A (cpu/simd.h kPrefetchFar = 1, kPrefetchStopAtEnd = 2; benchmarks, tests).
Napi::Value SetGemmPrefetchFlags(const Napi::CallbackInfo& info) {
  const int prev = cpu::setGemmPrefetchFlags(info[0].As<Napi::Number>().Int32Value(), info[1].As<Napi::Number>().Int32Value());
  Napi::Array a = Napi::Array::New(info.Env(), 2);
  a.Set(0u, prev & 0xff);
  a.Set(1u, prev >> 8);
  return a;
}

// setLoraWideExpand([on]) → whether the LoRA expand's AVX-512 copy is now in use (lora/cpu_expand.h; false
// where the CPU lacks it); without an argument only that. selectCpuKernelIsa restores the default of its kernel set.
Napi::Value SetLoraWideExpand(const Napi::CallbackInfo& info) {
#ifdef TSLORA_HAVE_LORA
  if (info.Length() > 0 && !info[0].IsUndefined()) lora::useWideExpand(info[0].ToBoolean().Value());
  return Napi::Boolean::New(info.Env(), lora::wideExpandInUse());
#else
  return Napi::Boolean::New(info.Env(), false);
#endif
}

// loraSlotConversions() → how many adapter conversions to the CPU pool's format ran in this process (one per
// host-tier entry when slot loads copy slot images; see native/src/lora/slot_image.h). 0 without LoRA kernels.
Napi::Value LoraSlotConversions(const Napi::CallbackInfo& info) {
#ifdef TSLORA_HAVE_LORA
  return Napi::Number::New(info.Env(), static_cast<double>(lora::slotConversions()));
#else
  return Napi::Number::New(info.Env(), 0);
#endif
}

Napi::Value UniformFromSeed(const Napi::CallbackInfo& info) {
  uint64_t lo = info[0].As<Napi::Number>().Uint32Value(), hi = info[1].As<Napi::Number>().Uint32Value();
  return Napi::Number::New(info.Env(), cpu::uniformFromSeed(lo | hi << 32));
}

}  // namespace

Napi::Object testingOps(Napi::Env env) {
  Napi::Object t = Napi::Object::New(env);
  t.Set("ropeInverseFrequencies", Napi::Function::New(env, RopeInvFreq));
  t.Set("applyRope", Napi::Function::New(env, ApplyRope));
  t.Set("rmsNorm", Napi::Function::New(env, RmsNorm));
  t.Set("gemm", Napi::Function::New(env, Gemm));
  t.Set("rowKernel", Napi::Function::New(env, RowKernel));
  t.Set("sampleRow", Napi::Function::New(env, SampleRow));
  t.Set("uniformFromSeed", Napi::Function::New(env, UniformFromSeed));
  t.Set("copyBandwidth", Napi::Function::New(env, CopyBandwidth));
  t.Set("cpuKernelIsa", Napi::Function::New(env, CpuKernelIsa));
  t.Set("loraSlotConversions", Napi::Function::New(env, LoraSlotConversions));
  t.Set("selectCpuKernelIsa", Napi::Function::New(env, SelectCpuKernelIsa));
  t.Set("setGemmPackMinRows", Napi::Function::New(env, SetGemmPackMinRows));
  t.Set("setLoraShrinkFusion", Napi::Function::New(env, SetLoraShrinkFusion));
  t.Set("setLoraExpandFusion", Napi::Function::New(env, SetLoraExpandFusion));
  t.Set("setGemmEpilogueChunks", Napi::Function::New(env, SetGemmEpilogueChunks));
  t.Set("setGemmChunks", Napi::Function::New(env, SetGemmChunks));
  t.Set("setGemmOwnedRanges", Napi::Function::New(env, SetGemmOwnedRanges));
  t.Set("ownedRangesTrial", Napi::Function::New(env, OwnedRangesTrial));
  t.Set("setGemmPrefetchFlags", Napi::Function::New(env, SetGemmPrefetchFlags));
  t.Set("gemmProfile", Napi::Function::New(env, GemmProfileOp));
  t.Set("setLoraWideExpand", Napi::Function::New(env, SetLoraWideExpand));
  return t;
}

}  // namespace tslora::napi
