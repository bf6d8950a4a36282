// Mean µs per launch of a GPU benchmark driver: `launch(i)` called `warmups` times, then `iters` times between two
// events on the default stream (launches back to back, so launch latency that the GPU cannot hide is included).
#pragma once
#include <cuda_runtime.h>

template <typename F>
double meanLaunchUs(F launch, int warmups = 5, int iters = 50) {
  cudaEvent_t a, b;
  cudaEventCreate(&a);
  cudaEventCreate(&b);
  for (int i = 0; i < warmups; ++i) launch(i);
  cudaEventRecord(a);
  for (int i = 0; i < iters; ++i) launch(i);
  cudaEventRecord(b);
  cudaEventSynchronize(b);
  float ms = 0.0f;
  cudaEventElapsedTime(&ms, a, b);
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  return ms * 1000.0 / iters;
}
