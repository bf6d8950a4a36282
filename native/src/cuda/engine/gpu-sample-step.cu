// CudaModel::sampleOnGpu: one step's logit rows sampled by the kernels of gpu-sampling.h. The per-row parameters
// (with u = cpu::uniformFromSeed(seed), the CPU backend's RNG), the penalty CSR, the suppressed ids and the logit_bias entries go up in one copy; tokens and
// log-probabilities come back in one copy (plus the raw logits when the step asks for them).
#include <algorithm>
#include <climits>
#include <cmath>
#include <cstring>

#include "../../cpu/sampling.h"
#include "cuda-model.h"
#include "gpu-sampling.h"

namespace tslora::cuda {

bool CudaModel::gpuSamplingFits(const cpu::StepInputView& s) const {
  // CUB segment offsets are int32.
  return static_cast<long long>(s.logitRows.size) * dims_.vocab < INT_MAX;
}

void CudaModel::sampleOnGpu(const cpu::StepInputView& s, cpu::StepOutputData& out) {
  const int N = static_cast<int>(s.logitRows.size), V = dims_.vocab;
  int K = 0;
  for (int i = 0; i < N; ++i) K = std::max(K, static_cast<int>(s.topLogprobsNum[i]));
  const size_t P = s.penaltyTokenIds.size;
  const size_t Q = s.suppressIndptr.size > 0 ? s.suppressTokenIds.size : 0;
  const size_t B = s.biasIndptr.size > 0 ? s.biasTokenIds.size : 0;
  // Host → device, one copy: params [N] | penalty ids [P] | penalty counts [P] | segBegin [N] | segEnd [N] |
  // suppressed ids [Q] | bias ids [B] | bias values [B] (fp32, 4 bytes like the ints).
  const size_t paramBytes = static_cast<size_t>(N) * sizeof(SampleRowParams);
  const size_t upBytes = paramBytes + (2 * P + 2 * static_cast<size_t>(N) + Q + 2 * B) * sizeof(int32_t);
  hostSampleUp_.ensure(upBytes, "sampling parameters (host)");
  sampleUp_.ensure(upBytes, "sampling parameters");
  auto* prm = hostSampleUp_.get<SampleRowParams>();
  auto* ints = reinterpret_cast<int32_t*>(hostSampleUp_.get<char>() + paramBytes);
  int32_t* segBegin = ints + 2 * P;
  int32_t* segEnd = segBegin + N;
  int32_t* suppressed = segEnd + N;
  int32_t* biasIds = suppressed + Q;
  auto* biasValues = reinterpret_cast<float*>(biasIds + B);
  bool anySorted = false;
  for (int i = 0; i < N; ++i) {
    SampleRowParams& r = prm[i];
    r = SampleRowParams{};
    r.sample = s.sampleMask[i] != 0;
    r.temperature = s.temperature[i];
    r.topP = s.topP[i];
    r.topK = s.topK[i];
    r.minP = s.minP[i];
    r.uniform = cpu::uniformFromSeed(static_cast<uint64_t>(s.rngSeeds[2 * i]) | static_cast<uint64_t>(s.rngSeeds[2 * i + 1]) << 32);
    r.repetition = s.repetitionPenalty[i];
    r.frequency = s.frequencyPenalty[i];
    r.presence = s.presencePenalty[i];
    r.penaltyBegin = s.penaltyIndptr[i];
    r.penaltyEnd = s.penaltyIndptr[i + 1];
    r.target = s.targetTokenIds[i];
    if (Q > 0) {
      r.suppressBegin = s.suppressIndptr[i];
      r.suppressEnd = s.suppressIndptr[i + 1];
    }
    if (B > 0) {
      r.biasBegin = s.biasIndptr[i];
      r.biasEnd = s.biasIndptr[i + 1];
    }
    const bool greedy = r.temperature <= 0.0f || r.topK == 1;
    r.sorted = r.sample && !greedy && ((r.topK > 0 && r.topK < V) || r.topP < 1.0f);
    anySorted |= r.sorted != 0;
    segBegin[i] = i * V;
    segEnd[i] = r.sorted ? (i + 1) * V : i * V;  // rows that need no sort: empty segments
  }
  if (P > 0) {
    std::memcpy(ints, s.penaltyTokenIds.data, P * sizeof(int32_t));
    std::memcpy(ints + P, s.penaltyOutputCounts.data, P * sizeof(int32_t));
  }
  if (Q > 0) std::memcpy(suppressed, s.suppressTokenIds.data, Q * sizeof(int32_t));
  if (B > 0) {
    std::memcpy(biasIds, s.biasTokenIds.data, B * sizeof(int32_t));
    std::memcpy(biasValues, s.biasValues.data, B * sizeof(float));
  }
  cudaCheck(cudaMemcpyAsync(sampleUp_.get(), hostSampleUp_.get(), upBytes, cudaMemcpyHostToDevice, stream_), "sampling parameters upload");

  const size_t nv = static_cast<size_t>(N) * V;
  sampleProbs_.ensure(nv * sizeof(float), "sampling scratch");
  // Results: tokens [N] | sampled [N] | target [N] | top ids [N*K] | top logprobs [N*K].
  const size_t resultBytes = (3 * static_cast<size_t>(N) + 2 * static_cast<size_t>(N) * K) * 4;
  sampleResults_.ensure(resultBytes, "sampling results");
  hostSampleResults_.ensure(resultBytes, "sampling results (host)");
  sampleLse_.ensure(static_cast<size_t>(N) * sizeof(double), "sampling lse");

  GpuSamplingArgs a;
  a.logits = logits_.get<float>();
  a.N = N;
  a.V = V;
  a.topLogprobsK = K;
  a.rows = sampleUp_.get<SampleRowParams>();
  auto* dInts = reinterpret_cast<int32_t*>(sampleUp_.get<char>() + paramBytes);
  a.penaltyIds = dInts;
  a.penaltyCounts = dInts + P;
  a.segBegin = dInts + 2 * P;
  a.segEnd = a.segBegin + N;
  a.suppressIds = a.segEnd + N;
  a.biasIds = a.suppressIds + Q;
  a.biasValues = reinterpret_cast<const float*>(a.biasIds + B);
  a.probs = sampleProbs_.get<float>();
  a.lse = sampleLse_.get<double>();
  a.tokens = sampleResults_.get<int32_t>();
  a.sampledLogprobs = reinterpret_cast<float*>(a.tokens + N);
  a.targetLogprobs = a.sampledLogprobs + N;
  a.topIds = reinterpret_cast<int32_t*>(a.targetLogprobs + N);
  a.topLogprobs = reinterpret_cast<float*>(a.topIds + static_cast<size_t>(N) * K);
  a.anySorted = anySorted;
  if (anySorted) {
    sampleSorted_.ensure(nv * sizeof(float), "sampling sort keys");
    sampleIdsIn_.ensure(nv * sizeof(int32_t), "sampling sort ids");
    sampleIdsSorted_.ensure(nv * sizeof(int32_t), "sampling sorted ids");
    a.sortTempBytes = gpuSamplingSortTempBytes(N, V);
    sampleSortTemp_.ensure(std::max<size_t>(a.sortTempBytes, 1), "sampling sort workspace");
    a.sortedProbs = sampleSorted_.get<float>();
    a.idsIn = sampleIdsIn_.get<int32_t>();
    a.idsSorted = sampleIdsSorted_.get<int32_t>();
    a.sortTemp = sampleSortTemp_.get();
  }
  cudaCheck(launchGpuSampling(a, stream_), "GPU sampling");
  cudaCheck(cudaMemcpyAsync(hostSampleResults_.get(), sampleResults_.get(), resultBytes, cudaMemcpyDeviceToHost, stream_),
            "sampling results download");
  if (s.returnLogits) {
    cudaCheck(cudaMemcpyAsync(hostLogits_.get(), logits_.get(), nv * sizeof(float), cudaMemcpyDeviceToHost, stream_),
              "logits download");
  }
  cudaCheck(cudaStreamSynchronize(stream_), "GPU sampling");

  const auto* tokens = hostSampleResults_.get<int32_t>();
  const auto* sampled = reinterpret_cast<const float*>(tokens + N);
  const float* target = sampled + N;
  const auto* topIds = reinterpret_cast<const int32_t*>(target + N);
  const auto* topLps = reinterpret_cast<const float*>(topIds + static_cast<size_t>(N) * K);
  out.topLogprobsK = K;
  out.sampledTokenIds.assign(tokens, tokens + N);
  out.sampledLogprobs.assign(sampled, sampled + N);
  out.targetLogprobs.assign(target, target + N);
  out.topLogprobIds.assign(topIds, topIds + static_cast<size_t>(N) * K);
  out.topLogprobs.assign(topLps, topLps + static_cast<size_t>(N) * K);
  if (s.returnLogits) out.logits.assign(hostLogits_.get<float>(), hostLogits_.get<float>() + nv);
}

}  // namespace tslora::cuda
