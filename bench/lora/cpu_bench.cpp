// CPU microbenchmark of LoraPool::apply (both strategies, fp32 and bf16 pool storage) on the 125M-class Llama shapes of kernel-anchor.md
// (hidden 768, 12 heads / 4 KV heads, intermediate 2048): µs per layer (qkv + o + gate_up + down) and GB/s of the
// bytes the kernels must touch (adapter weights of the slots in the batch at their own rank, X read, Y read+write),
// next to a measured copy bandwidth with the same threads. Usage: lora_cpu_bench [threads] [case index]
#include <chrono>
#include <ctime>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "test_support.h"
#include "test_thread_pool.h"

using namespace tslora::lora;
using namespace tslora::lora::test;
using Clock = std::chrono::steady_clock;

namespace {

double copyBandwidthGBs(tslora::ThreadPool& threads) {
  const size_t n = size_t(64) << 20;  // 256 MB of floats each way
  std::vector<float> src(n, 1.0f), dst(n, 0.0f);
  double best = 0;
  for (int rep = 0; rep < 5; ++rep) {
    const auto t0 = Clock::now();
    tslora::parallelFor(threads, 0, 64, 1, [&](int b, int e) {
      std::memcpy(dst.data() + size_t(b) * (n / 64), src.data() + size_t(b) * (n / 64), size_t(e - b) * (n / 64) * sizeof(float));
    });
    const double s = std::chrono::duration<double>(Clock::now() - t0).count();
    best = std::max(best, 2.0 * n * sizeof(float) / s / 1e9);
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  const int numThreads = argc > 1 ? std::atoi(argv[1]) : 2;
  tslora::ThreadPool threads(numThreads);
  const int hidden = 768, qOut = 768, kvOut = 256, inter = 2048, layers = 4;
  struct Case { const char* name; int requests, tokensEach, adapters, rank; };
  const Case cases[] = {{"decode 1x1, 1 adapter, r16", 1, 1, 1, 16},
                        {"decode 16x1, 4 adapters, r16", 16, 1, 4, 16},
                        {"decode 16x1, 4 adapters, r64", 16, 1, 4, 64},
                        {"prefill 4x128, 4 adapters, r64", 4, 128, 4, 64}};
  std::printf("threads %d, copy bandwidth %.1f GB/s (read + write)\n", numThreads, copyBandwidthGBs(threads));
  const int only = argc > 2 ? std::atoi(argv[2]) : -1;
  for (int ci = 0; ci < static_cast<int>(sizeof cases / sizeof cases[0]); ++ci) {
    if (only >= 0 && ci != only) continue;
    const Case& cs = cases[ci];
    for (PoolDType dtype : {PoolDType::F32, PoolDType::BF16, PoolDType::I8}) {
    PoolConfig c = makeConfig(cs.adapters + 1, cs.rank, layers, hidden, qOut, kvOut, inter, 32000);
    c.weightDtype = dtype;
    const double weightBytes = dtype == PoolDType::I8 ? 1.0 : dtype == PoolDType::BF16 ? 2.0 : 4.0;  // I8: codes (scales not counted)
    c.targets[static_cast<int>(Module::Embed)] = false;
    c.targets[static_cast<int>(Module::LmHead)] = false;
    LoraPool pool(c);
    Rng rng(3);
    for (int s = 0; s < cs.adapters; ++s) {
      TestAdapter ad = makeAdapter(rng, c, cs.rank, {kPeftQ, kPeftK, kPeftV, kPeftO, kPeftGate, kPeftUp, kPeftDown}, DType::BF16, false);
      pool.writeSlot(s, *buildHostAdapter(ad.input(), c));
    }
    std::vector<int> slots(cs.requests), counts(cs.requests, cs.tokensEach);
    for (int i = 0; i < cs.requests; ++i) slots[i] = (i * 3) % cs.adapters;
    const int T = cs.requests * cs.tokensEach;
    std::vector<float> x(size_t(T) * inter), y(size_t(T) * 2 * inter);
    for (auto& v : x) v = rng.uniform();
    for (bool csgmv : {false, true}) {
      const Segments seg = buildSegments(slots, counts, csgmv, 16);
      const Module mods[] = {Module::QKV, Module::O, Module::GateUp, Module::Down};
      double bytes = 0;
      for (Module m : mods) {
        const ModuleShape& s = c.shapes[static_cast<int>(m)];
        bytes += weightBytes * cs.adapters * cs.rank * (s.numSlices * s.in + s.outTotal()) + 4.0 * T * (s.in + 2 * s.outTotal());
      }
      const int reps = cs.tokensEach == 1 ? 200 : 10;
      double best = 1e30, bestCpu = 1e30;  // wall time, and process CPU time (less sensitive to a shared machine)
      for (int round = 0; round < 3; ++round) {
        const std::clock_t c0 = std::clock();
        const auto t0 = Clock::now();
        for (int rep = 0; rep < reps; ++rep)
          for (Module m : mods) {
            const ModuleShape& s = c.shapes[static_cast<int>(m)];
            pool.apply(rep % layers, m, x.data(), s.in, y.data(), s.outTotal(), 0, seg.step(csgmv), threads);
          }
        best = std::min(best, std::chrono::duration<double>(Clock::now() - t0).count() / reps);
        bestCpu = std::min(bestCpu, static_cast<double>(std::clock() - c0) / CLOCKS_PER_SEC / reps);
      }
      std::printf("%-32s %-4s %-7s %9.1f us per layer  %6.1f GB/s   (CPU time %9.1f us)\n", cs.name,
                  dtype == PoolDType::I8 ? "int8" : dtype == PoolDType::BF16 ? "bf16" : "fp32", csgmv ? "csgmv" : "triton", best * 1e6, bytes / best / 1e9,
                  bestCpu * 1e6);
    }
    }
  }
  return 0;
}
