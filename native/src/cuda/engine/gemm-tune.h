// cuBLASLt algorithm choice for decode-sized GEMMs (16..128 rows, multiples of 8), timed once per shape on this GPU.
// cublasGemmEx takes the heuristic's first pick; at M = 64 that streams the 8B o / qkv projections at 70-77 % of the
// read bandwidth (bench/cuda/README.md, "Tensor-core decode GEMM"). GemmTuner asks cuBLASLt for its top candidates
// of one shape (act, M, N, K, fp32 out or not), times each on the caller's own buffers with the L2 flushed before
// every timed run (weights stream from HBM in a real step), and keeps the fastest for the rest of the process, so a
// shape's bits never change after its first call (graphs and eager steps of the same M agree). Tuning needs a
// synchronising timer, so it never happens while the stream is being captured: a shape first met inside a capture
// (decode graphs warm up eagerly first, so only a failed warm-up could lead there) is left to the caller.
// The header does not include cuBLAS: only gemm-tune.cu needs its headers.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "kernels.h"

namespace tslora::cuda {

// One timed candidate of a shape (for the benchmark's report and the tuner's choice).
struct GemmCandidate {
  int heuristicRank = 0;  // 0 = cuBLASLt's first pick
  double meanUs = 0.0;
  std::string config;     // algo id, tile, split-K, stages, swizzle, reduction (readable)
  uint64_t algo[8] = {};  // the cublasLtMatmulAlgo_t itself (opaque here)
};

class GemmTuner {
 public:
  static constexpr int kTuneMinRows = 9;     // the skinny kernel takes fewer rows
  static constexpr int kTuneMaxRows = 128;   // decode graph buckets; larger (prefill) shapes vary per step
  static constexpr int kMaxCandidates = 8;

  // workspace: the cuBLAS workspace Blas owns (every candidate must fit it).
  GemmTuner(cudaStream_t stream, void* workspace, size_t workspaceBytes);
  ~GemmTuner();
  GemmTuner(const GemmTuner&) = delete;
  GemmTuner& operator=(const GemmTuner&) = delete;

  // The decode graphs' bucket sizes (multiples of 8 from 16): a bounded set of shapes, each tuned once (an eager
  // step of any other row count keeps cublasGemmEx rather than pausing to tune a shape it may never meet again).
  static bool applies(int M) { return M >= kTuneMinRows && M <= kTuneMaxRows && M % 8 == 0; }

  // y[M, N] = x[M, K] · w[N, K]ᵀ with the shape's tuned algorithm (tuned now if first met outside a capture).
  // False: nothing was launched (no candidate, or first met while capturing); the caller runs cublasGemmEx.
  bool run(Act act, const void* x, int M, int K, const void* w, int N, void* y, bool yF32);

  // Every candidate of a shape timed `reps` times on these buffers (L2 flushed before each run), in heuristic order.
  // For the benchmark; the tuner's cache is not touched.
  std::vector<GemmCandidate> timeCandidates(Act act, const void* x, int M, int K, const void* w, int N, void* y,
                                            bool yF32, int reps);

 private:
  struct Shape;
  struct Tuned;
  using Key = std::tuple<int, int, int, int, bool>;  // act, M, N, K, yF32
  bool launch(const Shape& s, const void* algo, const void* x, const void* w, void* y);
  void* lt_ = nullptr;  // cublasLtHandle_t
  cudaStream_t stream_ = nullptr;
  void* workspace_ = nullptr;
  size_t workspaceBytes_ = 0;
  std::map<Key, std::unique_ptr<Tuned>> tuned_;  // Tuned is complete in gemm-tune.cu, where ~GemmTuner is
};

// TSLORA_CUDA_GEMM_TUNE=1 / 0 turns the tuner on / off in Blas (unset: kGemmTuneDefaultOn). Off: on an H100 (session
// 17) it saved 2 % of the 8B batch-64 step in-graph (step64-bench 6492 against 6620 µs; engine 7.10 against 7.21-7.30
// ms), but its choice comes from a timing, so which algorithm (and so which bits) a shape gets depends on a
// measurement of that process: two processes may differ in the last bits of their logits.
constexpr bool kGemmTuneDefaultOn = false;
bool gemmTuneEnabled();

}  // namespace tslora::cuda
