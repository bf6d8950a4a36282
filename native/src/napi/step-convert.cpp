#include "step-convert.h"

#include <cmath>
#include <cstring>

#include "js-read.h"

namespace tslora::napi {

namespace {

// An optional per-row CSR over token ids: `indptrKey` [N+1] and `idsKey` [S], both given or both absent (false).
bool readTokenCsr(const Napi::Object& s, const char* indptrKey, const char* idsKey, size_t N, int vocab,
                  cpu::Span<int32_t>& indptr, cpu::Span<int32_t>& ids) {
  const bool hasIndptr = s.Has(indptrKey) && !s.Get(indptrKey).IsUndefined();
  const bool hasIds = s.Has(idsKey) && !s.Get(idsKey).IsUndefined();
  if (!hasIndptr && !hasIds) return false;
  if (!hasIndptr || !hasIds) {
    throw NativeError("native_invalid_argument",
                      detail::concat("step.", indptrKey, " and step.", idsKey, " must be given together"));
  }
  indptr = typedArray<int32_t>(s, indptrKey, napi_int32_array, "Int32Array");
  ids = typedArray<int32_t>(s, idsKey, napi_int32_array, "Int32Array");
  TSLORA_CHECK(indptr.size == N + 1, "forward: ", indptrKey, " has ", indptr.size, " entries, expected ", N + 1,
               " (logit rows + 1)");
  TSLORA_CHECK(indptr[0] == 0 && static_cast<size_t>(indptr[N]) == ids.size, "forward: ", indptrKey,
               " must start at 0 and end at the length of ", idsKey, " (", ids.size, ")");
  for (size_t i = 0; i < N; ++i) TSLORA_CHECK(indptr[i + 1] >= indptr[i], "forward: ", indptrKey, " must not decrease");
  for (size_t i = 0; i < ids.size; ++i) {
    TSLORA_CHECK(ids[i] >= 0 && ids[i] < vocab, "forward: ", idsKey, "[", i, "] = ", ids[i],
                 " is outside the vocabulary (", vocab, ")");
  }
  return true;
}

// Token ids that must not be sampled (min_new_tokens) and logit_bias entries (ids + finite values), per row.
void readRowTokenLists(const Napi::Object& s, cpu::StepInputView& in, int vocab) {
  const size_t N = in.logitRows.size;
  readTokenCsr(s, "suppressIndptr", "suppressTokenIds", N, vocab, in.suppressIndptr, in.suppressTokenIds);
  if (readTokenCsr(s, "biasIndptr", "biasTokenIds", N, vocab, in.biasIndptr, in.biasTokenIds)) {
    in.biasValues = typedArray<float>(s, "biasValues", napi_float32_array, "Float32Array");
    TSLORA_CHECK(in.biasValues.size == in.biasTokenIds.size, "forward: biasValues has ", in.biasValues.size,
                 " entries but biasTokenIds has ", in.biasTokenIds.size);
    for (size_t i = 0; i < in.biasValues.size; ++i)
      TSLORA_CHECK(std::isfinite(in.biasValues[i]), "forward: biasValues[", i, "] is not finite");
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
  readRowTokenLists(s, in, vocab);
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
