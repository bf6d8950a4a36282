// CUDA error checking for the test and benchmark drivers: CUDA_CHECK throws (drivers that catch and report), CHECK
// prints the error and where it happened and ends the driver with exit status 1.
#pragma once
#include <cuda_runtime.h>

#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>

#define CUDA_CHECK(expr)                                                                                 \
  do {                                                                                                   \
    const cudaError_t cudaCheckStatus_ = (expr);                                                         \
    if (cudaCheckStatus_ != cudaSuccess)                                                                 \
      throw std::runtime_error(std::string(#expr) + " failed: " + cudaGetErrorString(cudaCheckStatus_)); \
  } while (0)

// The error's text in CHECK's message; a host-emulator build that links no cudart defines it before this header.
#ifndef TSLORA_CHECK_ERROR_TEXT
#define TSLORA_CHECK_ERROR_TEXT cudaGetErrorString
#endif
#define CHECK(call)                                                                                \
  do {                                                                                             \
    const cudaError_t e_ = (call);                                                                 \
    if (e_ != cudaSuccess) {                                                                       \
      std::printf("CUDA error %s at %s:%d\n", TSLORA_CHECK_ERROR_TEXT(e_), __FILE__, __LINE__);    \
      std::exit(1);                                                                                \
    }                                                                                              \
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
