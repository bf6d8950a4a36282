#include "step-convert.h"

#include <cstring>

#include "js-read.h"

namespace tslora::napi {

namespace {

// Optional per-row CSR of token ids that must not be sampled (min_new_tokens). Absent / undefined: no suppression.
void readSuppression(const Napi::Object& s, cpu::StepInputView& in, int vocab) {
  const bool hasIndptr = s.Has("suppressIndptr") && !s.Get("suppressIndptr").IsUndefined();
  const bool hasIds = s.Has("suppressTokenIds") && !s.Get("suppressTokenIds").IsUndefined();
  if (!hasIndptr && !hasIds) return;
  if (!hasIndptr || !hasIds) {
    throw NativeError("native_invalid_argument", "step.suppressIndptr and step.suppressTokenIds must be given together");
  }
  in.suppressIndptr = typedArray<int32_t>(s, "suppressIndptr", napi_int32_array, "Int32Array");
  in.suppressTokenIds = typedArray<int32_t>(s, "suppressTokenIds", napi_int32_array, "Int32Array");
  const size_t N = in.logitRows.size;
  TSLORA_CHECK(in.suppressIndptr.size == N + 1, "forward: suppressIndptr has ", in.suppressIndptr.size,
               " entries, expected ", N + 1, " (logit rows + 1)");
  TSLORA_CHECK(in.suppressIndptr[0] == 0 && static_cast<size_t>(in.suppressIndptr[N]) == in.suppressTokenIds.size,
               "forward: suppressIndptr must start at 0 and end at the suppression list length ",
               in.suppressTokenIds.size);
  for (size_t i = 0; i < N; ++i) {
    TSLORA_CHECK(in.suppressIndptr[i + 1] >= in.suppressIndptr[i], "forward: suppressIndptr must not decrease");
  }
  for (size_t i = 0; i < in.suppressTokenIds.size; ++i) {
    TSLORA_CHECK(in.suppressTokenIds[i] >= 0 && in.suppressTokenIds[i] < vocab, "forward: suppressTokenIds[", i,
                 "] = ", in.suppressTokenIds[i], " is outside the vocabulary (", vocab, ")");
  }
}

}  // namespace

cpu::StepInputView readStepInput(const Napi::Value& v, int vocab) {
  Napi::Object s = requireObject(v, "step");
  cpu::StepInputView in;
  auto i32 = [&](const char* key) { return typedArray<int32_t>(s, key, napi_int32_array, "Int32Array"); };
  auto f32 = [&](const char* key) { return typedArray<float>(s, key, napi_float32_array, "Float32Array"); };
  in.tokenIds = i32("tokenIds");
  in.positions = i32("positions");
  in.seqTokenStart = i32("seqTokenStart");
  in.seqContextLen = i32("seqContextLen");
  in.blockTables = i32("blockTables");
  in.maxBlocksPerSeq = requireInt(s, "maxBlocksPerSeq", "step", 1, 1 << 24);
  std::string backend = requireString(s, "loraBackend", "step");
  if (backend != "triton" && backend != "csgmv") {
    throw NativeError("native_invalid_argument", "step.loraBackend must be 'triton' or 'csgmv', got " + backend);
  }
  in.loraCsgmv = backend == "csgmv";
  in.loraSegIndptr = i32("loraSegIndptr");
  in.loraWeightIndices = i32("loraWeightIndices");
  in.loraPermutation = i32("loraPermutation");
  in.loraChunkSize = requireInt(s, "loraChunkSize", "step", 0, 1 << 24);
  in.logitRows = i32("logitRows");
  in.sampleMask = typedArray<uint8_t>(s, "sampleMask", napi_uint8_array, "Uint8Array");
  in.temperature = f32("temperature");
  in.topP = f32("topP");
  in.topK = i32("topK");
  in.minP = f32("minP");
  in.rngSeeds = typedArray<uint32_t>(s, "rngSeeds", napi_uint32_array, "Uint32Array");
  in.repetitionPenalty = f32("repetitionPenalty");
  in.frequencyPenalty = f32("frequencyPenalty");
  in.presencePenalty = f32("presencePenalty");
  in.penaltyIndptr = i32("penaltyIndptr");
  in.penaltyTokenIds = i32("penaltyTokenIds");
  in.penaltyOutputCounts = i32("penaltyOutputCounts");
  in.targetTokenIds = i32("targetTokenIds");
  in.topLogprobsNum = i32("topLogprobsNum");
  in.returnLogits = readBool(s, "returnLogits", false);
  readSuppression(s, in, vocab);
  return in;
}

namespace {
template <typename ArrayT, typename T>
ArrayT copyOut(Napi::Env env, const std::vector<T>& v) {
  ArrayT arr = ArrayT::New(env, v.size());
  if (!v.empty()) std::memcpy(arr.Data(), v.data(), v.size() * sizeof(T));
  return arr;
}
}  // namespace

Napi::Object writeStepOutput(Napi::Env env, const cpu::StepOutputData& out) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("sampledTokenIds", copyOut<Napi::Int32Array>(env, out.sampledTokenIds));
  o.Set("sampledLogprobs", copyOut<Napi::Float32Array>(env, out.sampledLogprobs));
  o.Set("targetLogprobs", copyOut<Napi::Float32Array>(env, out.targetLogprobs));
  o.Set("topLogprobIds", copyOut<Napi::Int32Array>(env, out.topLogprobIds));
  o.Set("topLogprobs", copyOut<Napi::Float32Array>(env, out.topLogprobs));
  o.Set("topLogprobsK", Napi::Number::New(env, out.topLogprobsK));
  if (!out.logits.empty()) o.Set("logits", copyOut<Napi::Float32Array>(env, out.logits));
  return o;
}

}  // namespace tslora::napi
