// Sampling kernels: see gpu-sampling.h. One block of kThreads per logit row.
#include "gpu-sampling.h"

#include <cfloat>
#include <cmath>

#include <cub/block/block_reduce.cuh>
#include <cub/block/block_scan.cuh>
#include <cub/device/device_segmented_sort.cuh>

namespace tslora::cuda {
namespace {

constexpr int kThreads = 1024;
using BlockReduceF = cub::BlockReduce<float, kThreads>;
using BlockReduceD = cub::BlockReduce<double, kThreads>;
using BlockScanD = cub::BlockScan<double, kThreads>;

struct Best {
  float v;
  int id;
};
// (v desc, id asc): the CPU's `better` (first maximum on ties).
__device__ __forceinline__ bool better(float va, int ia, float vb, int ib) { return va > vb || (va == vb && ia < ib); }
struct BestOp {
  __device__ __forceinline__ Best operator()(const Best& a, const Best& b) const {
    if (a.id < 0) return b;
    if (b.id < 0) return a;
    return better(a.v, a.id, b.v, b.id) ? a : b;
  }
};
using BlockReduceBest = cub::BlockReduce<Best, kThreads>;
struct MaxOp {
  __device__ __forceinline__ float operator()(float a, float b) const { return fmaxf(a, b); }
};

union SharedTemp {
  typename BlockReduceF::TempStorage f;
  typename BlockReduceD::TempStorage d;
  typename BlockScanD::TempStorage scan;
  typename BlockReduceBest::TempStorage best;
};

// Best (value, id) of x[0, n) among entries strictly after (prevV, prevId) in the (v desc, id asc) order
// (prevId < 0: all entries). Result broadcast to every thread.
__device__ Best blockBestAfter(const float* x, int n, float prevV, int prevId, SharedTemp& tmp, Best& shared) {
  Best mine{-INFINITY, -1};
  for (int i = threadIdx.x; i < n; i += kThreads) {
    const float v = x[i];
    if (prevId >= 0 && !better(prevV, prevId, v, i)) continue;
    if (mine.id < 0 || better(v, i, mine.v, mine.id)) mine = {v, i};
  }
  const Best b = BlockReduceBest(tmp.best).Reduce(mine, BestOp());
  if (threadIdx.x == 0) shared = b;
  __syncthreads();
  const Best out = shared;
  __syncthreads();
  return out;
}

__device__ float blockMax(float v, SharedTemp& tmp, float& shared) {
  const float m = BlockReduceF(tmp.f).Reduce(v, MaxOp());
  if (threadIdx.x == 0) shared = m;
  __syncthreads();
  const float out = shared;
  __syncthreads();
  return out;
}

__device__ double blockSum(double v, SharedTemp& tmp, double& shared) {
  const double s = BlockReduceD(tmp.d).Sum(v);
  if (threadIdx.x == 0) shared = s;
  __syncthreads();
  const double out = shared;
  __syncthreads();
  return out;
}

// Contiguous chunk of [0, n) owned by this thread (cumulative sums need index order).
__device__ __forceinline__ void chunkOf(int n, int& begin, int& end) {
  const int per = (n + kThreads - 1) / kThreads;
  begin = min(n, static_cast<int>(threadIdx.x) * per);
  end = min(n, begin + per);
}

// The seeded draw over p[0, n) in index order, counting only entries with p >= minProb (p = probabilities):
// the first i whose cumulative kept mass exceeds u · kept; the last kept entry when rounding leaves none; -1 when
// nothing is kept. `order` maps positions to token ids (nullptr = identity).
__device__ int drawInOrder(const float* p, const int32_t* order, int n, float minProb, double u, SharedTemp& tmp,
                           int* sharedInt, double& sharedD) {
  int b, e;
  chunkOf(n, b, e);
  double local = 0;
  int lastKept = -1;
  for (int i = b; i < e; ++i)
    if (p[i] >= minProb) {
      local += p[i];
      lastKept = i;
    }
  double excl, kept;
  BlockScanD(tmp.scan).ExclusiveSum(local, excl, kept);
  __syncthreads();
  if (threadIdx.x == 0) {
    sharedInt[0] = INT_MAX;
    sharedInt[1] = -1;
  }
  __syncthreads();
  if (lastKept >= 0) atomicMax(&sharedInt[1], lastKept);
  const double target = u * kept;
  double cum = excl;
  if (excl <= target || b == 0) {
    for (int i = b; i < e; ++i) {
      if (p[i] < minProb) continue;
      cum += p[i];
      if (cum > target) {
        atomicMin(&sharedInt[0], i);
        break;
      }
    }
  }
  __syncthreads();
  int pos = sharedInt[0] != INT_MAX ? sharedInt[0] : sharedInt[1];
  __syncthreads();
  (void)sharedD;
  if (pos < 0) return -1;
  return order ? order[pos] : pos;
}

__global__ void __launch_bounds__(kThreads) prepareKernel(GpuSamplingArgs a) {
  __shared__ SharedTemp tmp;
  __shared__ float sf;
  __shared__ double sd;
  __shared__ int si[2];
  __shared__ Best sb;
  const int row = blockIdx.x, V = a.V;
  const SampleRowParams prm = a.rows[row];
  const float* logits = a.logits + static_cast<size_t>(row) * V;
  float* l = a.probs + static_cast<size_t>(row) * V;

  // Log-probabilities of the raw logits (cpu::logSumExp: fp32 max and exp, fp64 sum).
  float mx = -INFINITY;
  for (int i = threadIdx.x; i < V; i += kThreads) mx = fmaxf(mx, logits[i]);
  mx = blockMax(mx, tmp, sf);
  double lse = mx;
  if (isfinite(mx)) {
    double s = 0;
    for (int i = threadIdx.x; i < V; i += kThreads) s += expf(logits[i] - mx);
    lse = mx + log(blockSum(s, tmp, sd));
  }
  if (threadIdx.x == 0) {
    a.lse[row] = lse;
    a.targetLogprobs[row] = prm.target >= 0 && prm.target < V ? static_cast<float>(logits[prm.target] - lse) : nanf("");
    a.tokens[row] = -1;
    a.sampledLogprobs[row] = nanf("");
  }
  Best prev{0, -1};
  for (int k = 0; k < a.topLogprobsK; ++k) {
    const Best b = k < V ? blockBestAfter(logits, V, prev.v, prev.id, tmp, sb) : Best{0, -1};
    if (threadIdx.x == 0) {
      a.topIds[static_cast<size_t>(row) * a.topLogprobsK + k] = b.id;
      a.topLogprobs[static_cast<size_t>(row) * a.topLogprobsK + k] = b.id >= 0 ? static_cast<float>(b.v - lse) : nanf("");
    }
    prev = b;
  }
  if (!prm.sample) return;

  // Penalties (the CSR lists distinct ids: one thread each).
  for (int i = threadIdx.x; i < V; i += kThreads) l[i] = logits[i];
  __syncthreads();
  for (int j = prm.penaltyBegin + threadIdx.x; j < prm.penaltyEnd; j += kThreads) {
    const int id = a.penaltyIds[j];
    if (id < 0 || id >= V) continue;
    const int count = a.penaltyCounts[j];
    float v = l[id];
    if (prm.repetition != 1.0f) v = v > 0.0f ? v / prm.repetition : v * prm.repetition;
    v -= prm.frequency * static_cast<float>(count);
    if (count > 0) v -= prm.presence;
    l[id] = v;
  }
  __syncthreads();
  // logit_bias (after the penalties, as the CPU sampler does; ids are distinct within a row).
  for (int j = prm.biasBegin + threadIdx.x; j < prm.biasEnd; j += kThreads) {
    const int id = a.biasIds[j];
    if (id >= 0 && id < V) l[id] += a.biasValues[j];
  }
  __syncthreads();
  // Suppressed ids (after the penalties, as the CPU sampler does): never drawn. A separate pass: an id may also
  // be in the penalty list.
  for (int j = prm.suppressBegin + threadIdx.x; j < prm.suppressEnd; j += kThreads) {
    const int id = a.suppressIds[j];
    if (id >= 0 && id < V) l[id] = -INFINITY;
  }
  __syncthreads();

  int token;
  if (prm.temperature <= 0.0f || prm.topK == 1) {
    token = blockBestAfter(l, V, 0, -1, tmp, sb).id;
  } else {
    const float invT = 1.0f / prm.temperature;
    float m = -INFINITY;
    for (int i = threadIdx.x; i < V; i += kThreads) {
      const float v = l[i] * invT;
      l[i] = v;
      m = fmaxf(m, v);
    }
    m = blockMax(m, tmp, sf);
    double s = 0;
    for (int i = threadIdx.x; i < V; i += kThreads) {
      const float e = expf(l[i] - m);
      l[i] = e;
      s += e;
    }
    const double sum = blockSum(s, tmp, sd);
    const float invSum = static_cast<float>(1.0 / sum);
    for (int i = threadIdx.x; i < V; i += kThreads) l[i] *= invSum;
    __syncthreads();
    if (prm.sorted) {  // top-k / top-p: the segmented sort and drawSortedKernel finish the row
      int32_t* ids = a.idsIn + static_cast<size_t>(row) * V;
      for (int i = threadIdx.x; i < V; i += kThreads) ids[i] = i;
      return;
    }
    const float minProb = prm.minP > 0.0f ? prm.minP * invSum : 0.0f;
    token = drawInOrder(l, nullptr, V, minProb, prm.uniform, tmp, si, sd);
    if (token < 0) token = blockBestAfter(l, V, 0, -1, tmp, sb).id;
  }
  if (token < 0) token = 0;  // every value NaN: the CPU's argmax also answers 0
  if (threadIdx.x == 0) {
    a.tokens[row] = token;
    a.sampledLogprobs[row] = static_cast<float>(logits[token] - lse);
  }
}

// Rows sorted by (p desc, id asc): keep the prefix SGLang's joint rule keeps (stop at the first position whose mass
// before it exceeds top_p, whose probability is below min_p · max, or at top_k), then draw in sorted order.
__global__ void __launch_bounds__(kThreads) drawSortedKernel(GpuSamplingArgs a) {
  __shared__ SharedTemp tmp;
  __shared__ double sd;
  __shared__ int si[2];
  const int row = blockIdx.x, V = a.V;
  const SampleRowParams prm = a.rows[row];
  if (!prm.sample || !prm.sorted) return;
  const float* p = a.sortedProbs + static_cast<size_t>(row) * V;
  const int32_t* order = a.idsSorted + static_cast<size_t>(row) * V;
  const bool useTopK = prm.topK > 0 && prm.topK < V, useTopP = prm.topP < 1.0f;
  const int candidates = useTopK ? prm.topK : V;
  const float minProb = prm.minP > 0.0f ? prm.minP * p[0] : 0.0f;  // p[0] = the largest probability
  // keptCount: the first stop position (exclusive prefix > top_p, or p < min_p · max), else all candidates.
  int b, e;
  chunkOf(candidates, b, e);
  double local = 0;
  for (int i = b; i < e; ++i) local += p[i];
  double excl, total;
  BlockScanD(tmp.scan).ExclusiveSum(local, excl, total);
  __syncthreads();
  if (threadIdx.x == 0) si[0] = candidates;
  __syncthreads();
  double before = excl;
  for (int i = b; i < e; ++i) {
    if ((useTopP && before > prm.topP) || p[i] < minProb) {
      atomicMin(&si[0], i);
      break;
    }
    before += p[i];
  }
  __syncthreads();
  const int keptCount = si[0];
  __syncthreads();
  int token;
  if (keptCount == 0) {
    token = order[0];
  } else {
    // The draw over the kept prefix in sorted order (minProb 0: the prefix is exactly what is kept).
    token = drawInOrder(p, order, keptCount, 0.0f, prm.uniform, tmp, si, sd);
    if (token < 0) token = order[keptCount - 1];
  }
  if (threadIdx.x == 0) {
    a.tokens[row] = token;
    a.sampledLogprobs[row] = static_cast<float>(a.logits[static_cast<size_t>(row) * V + token] - a.lse[row]);
  }
}

}  // namespace

size_t gpuSamplingSortTempBytes(int N, int V) {
  size_t bytes = 0;
  cub::DeviceSegmentedSort::StableSortPairsDescending(nullptr, bytes, static_cast<const float*>(nullptr), static_cast<float*>(nullptr),
                                                      static_cast<const int32_t*>(nullptr), static_cast<int32_t*>(nullptr),
                                                      static_cast<long long>(N) * V, N, static_cast<const int32_t*>(nullptr),
                                                      static_cast<const int32_t*>(nullptr));
  return bytes;
}

cudaError_t launchGpuSampling(const GpuSamplingArgs& a, cudaStream_t stream) {
  if (a.N == 0) return cudaSuccess;
  prepareKernel<<<a.N, kThreads, 0, stream>>>(a);
  cudaError_t status = cudaGetLastError();
  if (status != cudaSuccess || !a.anySorted) return status;
  size_t bytes = a.sortTempBytes;
  status = cub::DeviceSegmentedSort::StableSortPairsDescending(a.sortTemp, bytes, a.probs, a.sortedProbs, a.idsIn, a.idsSorted,
                                                               static_cast<long long>(a.N) * a.V, a.N, a.segBegin, a.segEnd, stream);
  if (status != cudaSuccess) return status;
  drawSortedKernel<<<a.N, kThreads, 0, stream>>>(a);
  return cudaGetLastError();
}

}  // namespace tslora::cuda
