// CUDA status → NativeError ("native_cuda_error"): every runtime call of the engine is checked, nothing aborts.
#pragma once
#include <cuda_runtime.h>

#include "tslora/errors.h"

namespace tslora::cuda {

inline void cudaCheck(cudaError_t status, const char* what) {
  if (status == cudaSuccess) return;
  const char* code = status == cudaErrorMemoryAllocation ? "native_out_of_memory" : "native_cuda_error";
  throw NativeError(code, detail::concat("CUDA: ", what, " failed: ", cudaGetErrorName(status), " (",
                                         cudaGetErrorString(status), ")"));
}

// Owns one device allocation; grows (discarding its contents) when a step needs more.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  ~DeviceBuffer() { cudaFree(ptr_); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  void ensure(size_t sizeBytes, const char* what) {
    if (sizeBytes <= size_) return;
    cudaFree(ptr_);
    ptr_ = nullptr;
    size_ = 0;
    cudaCheck(cudaMalloc(&ptr_, sizeBytes), what);
    size_ = sizeBytes;
  }
  template <typename T = void>
  T* get() const { return static_cast<T*>(ptr_); }
  size_t sizeBytes() const { return size_; }

 private:
  void* ptr_ = nullptr;
  size_t size_ = 0;
};

}  // namespace tslora::cuda

namespace tslora::cuda {

// Page-locked host memory for the step tables and logits (async copies); grows like DeviceBuffer.
class PinnedBuffer {
 public:
  PinnedBuffer() = default;
  ~PinnedBuffer() { cudaFreeHost(ptr_); }
  PinnedBuffer(const PinnedBuffer&) = delete;
  PinnedBuffer& operator=(const PinnedBuffer&) = delete;
  void ensure(size_t sizeBytes, const char* what) {
    if (sizeBytes <= size_) return;
    cudaFreeHost(ptr_);
    ptr_ = nullptr;
    size_ = 0;
    cudaCheck(cudaMallocHost(&ptr_, sizeBytes), what);
    size_ = sizeBytes;
  }
  template <typename T = void>
  T* get() const { return static_cast<T*>(ptr_); }

 private:
  void* ptr_ = nullptr;
  size_t size_ = 0;
};

}  // namespace tslora::cuda
