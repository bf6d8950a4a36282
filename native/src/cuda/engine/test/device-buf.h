// The engine kernel drivers' device buffers (kernel-emu-test, delta-consumer-test): the same source builds for the host
// emulator (plain host memory, synchronous launches) and, with -DTSLORA_KERNEL_TEST_ON_GPU, for a GPU (managed memory).
#pragma once
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <vector>
#ifdef TSLORA_KERNEL_TEST_ON_GPU
#include <cuda_runtime.h>
#endif

// A buffer the kernels can read and write: managed memory on a GPU, plain host memory under the emulator.
template <typename T>
class Buf {
 public:
  explicit Buf(size_t n, T v = T()) : n_(n) {
#ifdef TSLORA_KERNEL_TEST_ON_GPU
    if (cudaMallocManaged(&p_, std::max<size_t>(n, 1) * sizeof(T)) != cudaSuccess) {
      std::printf("cudaMallocManaged failed\n");
      std::exit(2);
    }
#else
    p_ = new T[std::max<size_t>(n, 1)];
#endif
    std::fill(p_, p_ + n, v);
  }
  explicit Buf(const std::vector<T>& v) : Buf(v.size()) { std::copy(v.begin(), v.end(), p_); }
  Buf(const Buf&) = delete;
  Buf& operator=(const Buf&) = delete;
  ~Buf() {
#ifdef TSLORA_KERNEL_TEST_ON_GPU
    cudaFree(p_);
#else
    delete[] p_;
#endif
  }
  T* data() { return p_; }
  const T* data() const { return p_; }
  size_t size() const { return n_; }
  T& operator[](size_t i) { return p_[i]; }
  const T& operator[](size_t i) const { return p_[i]; }
  T* begin() { return p_; }
  T* end() { return p_ + n_; }
  const T* begin() const { return p_; }
  const T* end() const { return p_ + n_; }

 private:
  T* p_ = nullptr;
  size_t n_ = 0;
};

// After a launch: on a GPU, wait for it and report an error; nothing under the emulator (launches are synchronous).
inline void deviceSync(const char* what) {
#ifdef TSLORA_KERNEL_TEST_ON_GPU
  const cudaError_t st = cudaDeviceSynchronize();
  if (st != cudaSuccess) {
    std::printf("FAIL: %s: %s\n", what, cudaGetErrorString(st));
    std::exit(2);
  }
#else
  (void)what;
#endif
}
