// Slot-load time of one adapter against the pinned host→device bandwidth measured in the same run (issue #11, must-show 1).
// Shape: Llama-3.1-8B (32 layers, hidden 4096, q 4096, kv 1024, intermediate 14336), LoRA on all seven linear modules
// (q, k, v, o, gate, up, down), rank 16 (pool R = 16) and rank 64 (R = 64), bf16 compute.
// Per rank:
//   convert_ms      building the host-tier image (buildDeviceHostAdapter: checks + one conversion into page-locked memory)
//   load_ms         DeviceLoraPool::writeSlot from the image on the compute stream (median of the timed loads)
//   load_side_ms    the same on a side stream behind the compute stream (the overlap-loading path)
//   h2d_gbps        one cudaMemcpyAsync of a page-locked buffer of the image's size (median)
//   load_gbps       image bytes / load_ms; fraction = load_gbps / h2d_gbps (target ≥ 0.8)
//   fp32_load_ms    rank 16 only: the old path (fp32 host copy converted per load through the staging buffer)
// Usage: adapter_load_bench OUT.json [timed loads, default 10]. Exit 77 = no usable GPU.
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <cstdio>
#include <string>
#include <vector>

#include "lora_device_pool.h"
#include "lora_host_image.h"
#include "test_support.h"

using namespace tslora::lora;
using namespace tslora::lora::test;
namespace cl = tslora::cuda::lora;

namespace {

double nowMs() { return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
}

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) {
    std::fprintf(stderr, "%s: %s\n", what, cudaGetErrorString(e));
    std::exit(1);
  }
}

// Median GB/s of one cudaMemcpyAsync of `bytes` from a page-locked buffer.
double pinnedH2dGbps(size_t bytes, int reps, cudaStream_t stream) {
  void *host = nullptr, *device = nullptr;
  check(cudaHostAlloc(&host, bytes, cudaHostAllocPortable), "cudaHostAlloc");
  check(cudaMalloc(&device, bytes), "cudaMalloc");
  std::memset(host, 1, bytes);
  cudaEvent_t start, stop;
  cudaEventCreate(&start);
  cudaEventCreate(&stop);
  std::vector<double> gbps;
  for (int i = 0; i < reps + 1; ++i) {
    cudaEventRecord(start, stream);
    check(cudaMemcpyAsync(device, host, bytes, cudaMemcpyHostToDevice, stream), "H2D");
    cudaEventRecord(stop, stream);
    check(cudaEventSynchronize(stop), "H2D");
    float ms = 0;
    cudaEventElapsedTime(&ms, start, stop);
    if (i > 0) gbps.push_back(bytes / (ms * 1e6));
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  cudaFree(device);
  cudaFreeHost(host);
  return median(gbps);
}

std::string runRank(int rank, int reps) {
  PoolConfig c = makeConfig(2, rank, 32, 4096, 4096, 1024, 14336, 128256);
  c.targets[static_cast<int>(Module::Embed)] = false;
  c.targets[static_cast<int>(Module::LmHead)] = false;
  Rng rng(rank);
  const TestAdapter adapter = makeAdapter(rng, c, rank, {kPeftQ, kPeftK, kPeftV, kPeftO, kPeftGate, kPeftUp, kPeftDown}, DType::BF16, false);
  cl::DeviceLoraPool pool(c, cl::ActDType::BF16, 64, 8);
  cudaStream_t compute, side;
  check(cudaStreamCreateWithFlags(&compute, cudaStreamNonBlocking), "stream");
  check(cudaStreamCreateWithFlags(&side, cudaStreamNonBlocking), "stream");
  double t0 = nowMs();
  const auto image = cl::buildDeviceHostAdapter(adapter.input(), c, cl::ActDType::BF16);
  const double convertMs = nowMs() - t0;
  const auto* img = dynamic_cast<const cl::DeviceHostAdapter*>(image.get());
  const size_t bytes = image->sizeBytes();
  std::vector<double> load, loadSide;
  for (int i = 0; i < reps + 1; ++i) {
    t0 = nowMs();
    pool.writeSlot(i % 2, *image, compute);
    if (i > 0) load.push_back(nowMs() - t0);
    t0 = nowMs();
    pool.recordSlotReuse(compute);
    pool.writeSlot((i + 1) % 2, *image, side, true);
    if (i > 0) loadSide.push_back(nowMs() - t0);
  }
  double fp32Ms = -1;
  if (rank == 16) {  // the path the engine used before: fp32 host copy, conversion per load
    const auto fp32 = buildHostAdapter(adapter.input(), c);
    std::vector<double> v;
    for (int i = 0; i < 3; ++i) {
      t0 = nowMs();
      pool.writeSlot(0, *fp32, compute);
      v.push_back(nowMs() - t0);
    }
    fp32Ms = median(v);
  }
  const double h2d = pinnedH2dGbps(bytes, reps, compute);
  const double loadMs = median(load), loadSideMs = median(loadSide);
  const double loadGbps = bytes / (loadMs * 1e6);
  char buf[1024];
  std::snprintf(buf, sizeof buf,
                "{\"rank\": %d, \"bytes\": %zu, \"pinned\": %s, \"copy_path\": \"%s\", \"convert_ms\": %.2f, \"load_ms\": %.3f, "
                "\"load_side_ms\": %.3f, \"load_gbps\": %.2f, \"h2d_gbps\": %.2f, \"fraction\": %.3f, \"fp32_load_ms\": %.2f}",
                rank, bytes, img && img->pinned() ? "true" : "false",
                std::getenv("TSLORA_CUDA_LORA_LOAD_PER_LAYER") ? "per-layer" : "2d-per-module", convertMs, loadMs, loadSideMs, loadGbps, h2d,
                loadGbps / h2d, fp32Ms);
  std::printf("%s\n", buf);
  std::fflush(stdout);
  cudaStreamDestroy(compute);
  cudaStreamDestroy(side);
  return buf;
}

}  // namespace

int main(int argc, char** argv) {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::printf("skip: no usable CUDA device\n");
    return 77;
  }
  const int reps = argc > 2 ? std::max(1, std::atoi(argv[2])) : 10;
  cudaDeviceProp prop{};
  cudaGetDeviceProperties(&prop, 0);
  std::string json = std::string("{\"gpu\": \"") + prop.name + "\", \"shape\": \"llama-3.1-8b, q/k/v/o/gate/up/down, bf16\", \"ranks\": [";
  json += runRank(16, reps) + ", " + runRank(64, reps) + "]}\n";
  if (argc > 1) {
    FILE* f = std::fopen(argv[1], "w");
    if (f == nullptr) return 1;
    std::fputs(json.c_str(), f);
    std::fclose(f);
  }
  return 0;
}
