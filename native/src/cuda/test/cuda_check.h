// CUDA error checking for the test and benchmark drivers.
#pragma once
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#define CUDA_CHECK(expr)                                                                                 \
  do {                                                                                                   \
    const cudaError_t cudaCheckStatus_ = (expr);                                                         \
    if (cudaCheckStatus_ != cudaSuccess)                                                                 \
      throw std::runtime_error(std::string(#expr) + " failed: " + cudaGetErrorString(cudaCheckStatus_)); \
  } while (0)

template <typename T>
struct DeviceBuffer {
  T* ptr = nullptr;
  size_t count = 0;
  explicit DeviceBuffer(size_t n = 0) { resize(n); }
  ~DeviceBuffer() { cudaFree(ptr); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  void resize(size_t n) {
    cudaFree(ptr);
    ptr = nullptr;
    count = n;
    if (n > 0) CUDA_CHECK(cudaMalloc(&ptr, n * sizeof(T)));
  }
  template <typename V>
  void upload(const V& host) {
    if (host.size() > count) resize(host.size());
    CUDA_CHECK(cudaMemcpy(ptr, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice));
  }
};
