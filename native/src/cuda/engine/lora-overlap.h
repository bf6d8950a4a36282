// The LoRA shrink of a module only reads the activation x that the module's base projection reads too, so it can run
// at the same time: LoraShrinkOverlap forks a side stream off the forward stream before the projection, the shrink
// runs there (a few latency-bound blocks beside the projection's bandwidth-bound ones), and the forward stream waits
// for it after the projection, before the expand adds U·Bᵀ into the projection's output. Fork and join are events,
// so the pattern is captured into decode CUDA graphs as two parallel branches.
// TSLORA_CUDA_LORA_SIDE_STREAM=0 (read at model construction) keeps shrink and expand on the forward stream, one
// after the other: then base GEMM → shrink → expand → next kernel is one unbroken PDL chain (the LoRA kernels are
// programmatic dependents, lora_launch.cuh). Measured with the chain intact (H100, 8B, csgmv, graphs, 8 distinct r16,
// bench/lora/README.md v9) the side stream still pays at every batch: LoRA cost over base at batch 1 / 8 / 64
// 1.16 / 1.61 / 1.80 ms with it against 1.33 / 1.84 / 2.38 ms on the forward stream, so it stays on by default.
// The side stream has the device's greatest stream priority (session 20; TSLORA_CUDA_LORA_SIDE_PRIORITY=0, read at
// construction, creates it as before). Why: where the base projection's grid has more blocks than the SMs hold at
// once, at equal priority the block scheduler gives the shrink / expand blocks a slot only after the projection's
// queued blocks, i.e. at its end, which puts the LoRA kernels back on the critical path. Stream capture copies a
// stream's priority into its kernel nodes; decode graphs honour it when instantiated with
// cudaGraphInstantiateFlagUseNodePriority (graphInstantiateFlags()). Measured (one H100, 8B, csgmv, graphs, side
// expand on; scripts/device/side-priority-ab.sh, bench/cuda/README.md session 20) LoRA cost over base at batch 1 /
// 64, one shared r16 adapter: 10.4 / 20.4 % without it, 8.4 / 12.7 % with it; 8 distinct at batch 64: 23.5 → 14.5 %.
#pragma once
#include <cuda_runtime.h>

namespace tslora::cuda {

class LoraShrinkOverlap {
 public:
  LoraShrinkOverlap();  // throws NativeError when the stream or the events cannot be created
  ~LoraShrinkOverlap();
  LoraShrinkOverlap(const LoraShrinkOverlap&) = delete;
  LoraShrinkOverlap& operator=(const LoraShrinkOverlap&) = delete;

  bool enabled() const { return enabled_; }
  cudaStream_t side() const { return side_; }
  // Before the projection: the side stream continues once `main` has reached this point (so the previous module's
  // expand, which read the shared LoRA workspace, is done before the next shrink writes it).
  void fork(cudaStream_t main);
  // After the shrink was launched on side(): marks its end.
  void shrinkLaunched();
  // After the projection was launched on `main`: main waits for the shrink.
  void join(cudaStream_t main);
  // Whether the environment turns the overlap off (TSLORA_CUDA_LORA_SIDE_STREAM=0).
  static bool disabledByEnv();
  // Whether side() was created with the device's greatest priority (read at construction).
  bool prioritized() const { return prioritized_; }
  // The flags for cudaGraphInstantiate of a graph captured with this overlap: node priorities when prioritized().
  unsigned long long graphInstantiateFlags() const { return prioritized_ ? cudaGraphInstantiateFlagUseNodePriority : 0; }

 private:
  bool enabled_ = false;
  bool prioritized_ = false;
  cudaStream_t side_ = nullptr;
  cudaEvent_t forked_ = nullptr, shrunk_ = nullptr;
};

}  // namespace tslora::cuda
