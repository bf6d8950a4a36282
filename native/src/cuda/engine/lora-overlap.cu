// LoraShrinkOverlap (lora-overlap.h): a non-blocking side stream and two timing-free events, reused by every module.
#include "../lora_env_flag.h"
#include "cuda-check.h"
#include "lora-overlap.h"

namespace tslora::cuda {

bool LoraShrinkOverlap::disabledByEnv() { return !lora::envFlag("TSLORA_CUDA_LORA_SIDE_STREAM", true); }

LoraShrinkOverlap::LoraShrinkOverlap() {
  if (disabledByEnv()) return;
  if (lora::envFlag("TSLORA_CUDA_LORA_SIDE_PRIORITY", true)) {
    int leastPriority = 0, greatestPriority = 0;  // numerically: greatest <= least (lower = scheduled first)
    cudaCheck(cudaDeviceGetStreamPriorityRange(&leastPriority, &greatestPriority), "cudaDeviceGetStreamPriorityRange");
    prioritized_ = greatestPriority < leastPriority;
    if (prioritized_)
      cudaCheck(cudaStreamCreateWithPriority(&side_, cudaStreamNonBlocking, greatestPriority), "cudaStreamCreate (LoRA shrink)");
  }
  if (!prioritized_) cudaCheck(cudaStreamCreateWithFlags(&side_, cudaStreamNonBlocking), "cudaStreamCreate (LoRA shrink)");
  cudaCheck(cudaEventCreateWithFlags(&forked_, cudaEventDisableTiming), "cudaEventCreate (LoRA fork)");
  cudaCheck(cudaEventCreateWithFlags(&shrunk_, cudaEventDisableTiming), "cudaEventCreate (LoRA join)");
  enabled_ = true;
}

LoraShrinkOverlap::~LoraShrinkOverlap() {
  if (side_) cudaStreamSynchronize(side_);
  if (forked_) cudaEventDestroy(forked_);
  if (shrunk_) cudaEventDestroy(shrunk_);
  if (side_) cudaStreamDestroy(side_);
}

void LoraShrinkOverlap::fork(cudaStream_t main) {
  cudaCheck(cudaEventRecord(forked_, main), "LoRA shrink fork (record)");
  cudaCheck(cudaStreamWaitEvent(side_, forked_, 0), "LoRA shrink fork (wait)");
}

void LoraShrinkOverlap::shrinkLaunched() { cudaCheck(cudaEventRecord(shrunk_, side_), "LoRA shrink join (record)"); }

void LoraShrinkOverlap::join(cudaStream_t main) { cudaCheck(cudaStreamWaitEvent(main, shrunk_, 0), "LoRA shrink join (wait)"); }

}  // namespace tslora::cuda
