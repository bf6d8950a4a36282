// This GPU's device-memory bandwidth, measured in the run whose decode steps are judged against it (the memory floor
// of bench/cuda/memory-floor.ts uses it instead of a datasheet figure). Three measures over 1 GiB buffers (far past
// L2), each the median of 20 timed repeats after 3 warm-ups, timed with events:
//   read:   every 16-byte vector read once (4 in flight per thread), one 4-byte sum per thread written   → bytes read
//   copy:   16-byte vector copy kernel                                                     → bytes read + written
//   memcpy: cudaMemcpyAsync device to device                                               → bytes read + written
// Every kernel's result is checked on the host (the read sum against the sum of the fill pattern; the copy at 4096
// sampled words), so a kernel that skips work cannot report a rate. Usage: bandwidth [out.json]
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <vector>

#define CHECK(x)                                                                          \
  do {                                                                                    \
    cudaError_t e_ = (x);                                                                 \
    if (e_ != cudaSuccess) {                                                              \
      std::fprintf(stderr, "%s failed: %s\n", #x, cudaGetErrorString(e_));                \
      return 1;                                                                           \
    }                                                                                     \
  } while (0)

namespace {

constexpr size_t kWords = size_t{1} << 28;  // 1 GiB of uint32
constexpr int kThreads = 512;

__host__ __device__ inline uint32_t pattern(size_t i) { return static_cast<uint32_t>(i * 2654435761u) ^ static_cast<uint32_t>(i >> 7); }

__global__ void fillKernel(uint32_t* p, size_t n) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n; i += static_cast<size_t>(gridDim.x) * blockDim.x)
    p[i] = pattern(i);
}

// Sum (mod 2^32) of every word; n4 = number of uint4 vectors, a multiple of 4 × the thread count.
__global__ void readKernel(const uint4* __restrict__ src, size_t n4, uint32_t* __restrict__ sums) {
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  uint32_t acc = 0;
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n4; i += 4 * stride) {
    uint4 v[4];
#pragma unroll
    for (int u = 0; u < 4; ++u) v[u] = src[i + u * stride];
#pragma unroll
    for (int u = 0; u < 4; ++u) acc += v[u].x + v[u].y + v[u].z + v[u].w;
  }
  sums[blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x] = acc;
}

__global__ void copyKernel(const uint4* __restrict__ src, uint4* __restrict__ dst, size_t n4) {
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n4; i += 4 * stride) {
    uint4 v[4];
#pragma unroll
    for (int u = 0; u < 4; ++u) v[u] = src[i + u * stride];
#pragma unroll
    for (int u = 0; u < 4; ++u) dst[i + u * stride] = v[u];
  }
}

template <typename F>
int medianMs(F launch, double& ms) {
  cudaEvent_t a, b;
  CHECK(cudaEventCreate(&a));
  CHECK(cudaEventCreate(&b));
  std::vector<float> t;
  for (int r = 0; r < 23; ++r) {
    CHECK(cudaEventRecord(a));
    launch();
    CHECK(cudaEventRecord(b));
    CHECK(cudaEventSynchronize(b));
    CHECK(cudaGetLastError());
    float x = 0;
    CHECK(cudaEventElapsedTime(&x, a, b));
    if (r >= 3) t.push_back(x);
  }
  std::sort(t.begin(), t.end());
  ms = t[t.size() / 2];
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  cudaDeviceProp prop{};
  CHECK(cudaGetDeviceProperties(&prop, 0));
  const int blocks = prop.multiProcessorCount * 4;
  const size_t n4 = kWords / 4;
  int grid = blocks;  // the largest grid ≤ 4 blocks per SM whose 4 × threads divide the vector count
  while (n4 % (4 * static_cast<size_t>(grid) * kThreads) != 0) --grid;
  uint32_t *src = nullptr, *dst = nullptr, *sums = nullptr;
  CHECK(cudaMalloc(&src, kWords * 4));
  CHECK(cudaMalloc(&dst, kWords * 4));
  CHECK(cudaMalloc(&sums, static_cast<size_t>(grid) * kThreads * 4));
  fillKernel<<<blocks, kThreads>>>(src, kWords);
  CHECK(cudaMemset(dst, 0, kWords * 4));
  CHECK(cudaDeviceSynchronize());

  const double bytes = static_cast<double>(kWords) * 4;
  double readMs = 0, copyMs = 0, memcpyMs = 0;
  if (medianMs([&] { readKernel<<<grid, kThreads>>>(reinterpret_cast<const uint4*>(src), n4, sums); }, readMs)) return 1;
  if (medianMs([&] { copyKernel<<<grid, kThreads>>>(reinterpret_cast<const uint4*>(src), reinterpret_cast<uint4*>(dst), n4); }, copyMs)) return 1;
  if (medianMs([&] { cudaMemcpyAsync(dst, src, kWords * 4, cudaMemcpyDeviceToDevice); }, memcpyMs)) return 1;

  // Checks: the read sum equals the pattern's; the copy (and memcpy, which ran last over it) match at sampled words.
  std::vector<uint32_t> hostSums(static_cast<size_t>(grid) * kThreads);
  CHECK(cudaMemcpy(hostSums.data(), sums, hostSums.size() * 4, cudaMemcpyDeviceToHost));
  uint32_t got = 0, want = 0;
  for (uint32_t s : hostSums) got += s;
  for (size_t i = 0; i < kWords; ++i) want += pattern(i);
  bool ok = got == want;
  for (int k = 0; k < 4096 && ok; ++k) {
    const size_t i = (static_cast<size_t>(k) * 65537u * 2654435761u) % kWords;
    uint32_t v = 0;
    CHECK(cudaMemcpy(&v, dst + i, 4, cudaMemcpyDeviceToHost));
    ok = v == pattern(i);
  }
  const double readBps = bytes / (readMs * 1e-3), copyBps = 2 * bytes / (copyMs * 1e-3), memcpyBps = 2 * bytes / (memcpyMs * 1e-3);
  std::printf("%s: read %.0f GB/s (%.3f ms), copy kernel %.0f GB/s, cudaMemcpy D2D %.0f GB/s (read + written), checks %s\n",
              prop.name, readBps / 1e9, readMs, copyBps / 1e9, memcpyBps / 1e9, ok ? "passed" : "FAILED");
  if (argc > 1) {
    FILE* f = std::fopen(argv[1], "w");
    if (!f) return 1;
    std::fprintf(f,
                 "{\"gpu\":\"%s\",\"bufferBytes\":%.0f,\"readBytesPerS\":%.6e,\"copyBytesPerS\":%.6e,\"memcpyBytesPerS\":%.6e,"
                 "\"floorBytesPerS\":%.6e,\"checksPassed\":%s}\n",
                 prop.name, bytes, readBps, copyBps, memcpyBps, std::max(readBps, copyBps), ok ? "true" : "false");
    std::fclose(f);
  }
  cudaFree(src);
  cudaFree(dst);
  cudaFree(sums);
  return ok ? 0 : 2;
}
