// Runtime choice of the CPU kernels' instruction set. The addon is built for a baseline (-march from
// scripts/build-native.mjs; x86-64-v2 for portable prebuilds), and the hot kernels are compiled once per wider
// instruction set (gemm-isa-*.cpp, each under its own target attribute); the widest one this CPU and OS support is
// chosen when the addon loads. TSLORA_CPU_ISA=baseline|avx2|avx512|amx picks another (never one the CPU lacks), and
// the tests switch between every available one to check that they agree within rounding. "amx" is the avx512 set
// plus prefill GEMMs of bf16 weights on AMX tiles (amx-kernels.inc), offered where CPUID reports AMX-BF16 and Linux
// grants the tile state (arch_prctl); TSLORA_CPU_ISA=avx512 forbids it. "amx-emulated" (tests only, never chosen on
// its own) runs the same tile GEMM on a C++ model of the tiles, so CI without AMX checks its layouts.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "simd.h"

namespace tslora::cpu {

// y rows [.. yOffset + n0, yOffset + n1) = x rows · weight rows [n0, n1) of a row-major [*, K] matrix of `type`.
using GemmRangeFn = void (*)(const float* const* xRows, float* const* yRows, int M, const void* wData, WType type,
                             int K, int n0, int n1, int yOffset, int prefetchBytes, int prefetchFlags /* simd.h */,
                             int packMinRows);

// act[i] = silu(gate[i]) · up[i] for i < n (vexp, simd-vec.inc).
using SwigluRowFn = void (*)(const float* gate, const float* up, float* act, int n);
// x[i] = exp(x[i] - shift) for i < n; returns their sum (softmax).
using ExpShiftSumFn = float (*)(float* x, int n, float shift);

// Activation rows split into bf16 terms for the tile GEMM (amx-kernels.inc): x = Σ_t term_t, laid out
// [ceil(M / 16) blocks][terms][kFull / 2][16 rows] as pairs (element 2kk in the low half, 2kk + 1 in the high half).
struct SplitActs {
  const uint32_t* pairs = nullptr;
  int kFull = 0;  // K rounded down to the tiles' k step (32); the rest of k is summed in fp32
  int terms = 0;
};
// block = 16 activation rows (rows < 16: the rest zero) of one SplitActs.
using SplitRowsFn = void (*)(const float* const* xRows, int rows, int kFull, int terms, uint32_t* block);
// Like GemmRangeFn for bf16 weights, on tiles; acts holds xRows split.
using TileGemmFn = void (*)(const SplitActs& acts, const float* const* xRows, float* const* yRows, int M,
                            const void* wData, int K, int n0, int n1, int yOffset);

struct CpuKernels {
  const char* name = "baseline";  // "baseline" | "avx2" | "avx512" | "amx" | "amx-emulated"
  GemmRangeFn gemmRange = nullptr;
  SwigluRowFn swigluRow = nullptr;
  ExpShiftSumFn expShiftSum = nullptr;
  // Software prefetch distance of the decode GEMV: -1 = one tile of weight rows ahead (default), 0 = none, else
  // bytes (TSLORA_PREFETCH_BYTES, for tuning on a new machine).
  int prefetchBytes = -1;
  // Batches of at least this many activation rows take the packed GEMM (gemm-packed.inc); 0 = never
  // (TSLORA_GEMM_PACK_MIN_ROWS; the benchmark switches it to time both paths in one run).
  int packMinRows = 16;
  // Prefill (M >= packMinRows) of bf16 weights on tiles: set in the amx sets only.
  SplitRowsFn splitRows = nullptr;
  TileGemmFn tileGemm = nullptr;
  // bf16 terms per activation (TSLORA_AMX_TERMS = 2 or 3; amx-kernels.inc says what each costs).
  int splitTerms = 3;
};

// The kernels in use (chosen once, thread-safe).
const CpuKernels& cpuKernels();

// The one-lane (scalar) copy of the row kernels, the same steps as every vector copy (tests compare them).
CpuKernels scalarRowKernels();

// Names of the instruction sets this machine can run, narrowest first (always includes "baseline").
std::vector<std::string> availableCpuIsas();

// Switches every later kernel call to `name` (one of availableCpuIsas()); throws NativeError otherwise. Not meant
// to race with a running forward step: tests and benchmarks call it between steps.
void selectCpuIsa(const std::string& name);

// Sets packMinRows of every copy (0 = never pack). Like selectCpuIsa: between steps only.
void setGemmPackMinRows(int rows);

// What the CPU reports, for logs and the benchmark: e.g. "avx2 fma f16c avx512f avx512bw avx512_bf16 amx_bf16".
std::string cpuFeatureSummary();

}  // namespace tslora::cpu
