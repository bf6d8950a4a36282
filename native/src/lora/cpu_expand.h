// The CPU LoRA expand (cpu_expand.inc) and its copies: a generic one in the build's own target (8-lane GCC
// vectors, cpu_expand.cpp) and, on x86-64, an AVX-512 one (16 lanes, one zmm per panel row: half the instructions
// per byte of Bᵀ, cpu_expand_avx512.cpp) compiled under its own target attribute and used where the CPU has
// AVX-512 F/BW and FMA. Both sum every column in the same order with FMA where the build has it, so on such builds
// (-march=native on any FMA machine) they agree bitwise; an x86-64-v2 build's generic copy rounds products apart.
#pragma once
#include <cstddef>
#include <cstdint>

#include "lora_internal.h"

namespace tslora::lora {

// Whether this CPU can run the AVX-512 expand (x86-64 with AVX-512 F/BW, FMA and the OS's zmm state).
bool wideExpandAvailable();
// Chooses the AVX-512 copy (when available; otherwise the generic one stays) or the generic one; returns whether
// the AVX-512 copy is now in use. Between steps only (tests, benchmarks).
bool useWideExpand(bool on);
bool wideExpandInUse();
// The default: the CPU addon calls this with its kernel set (cpu-isa.h: true for avx512 / amx, false for baseline /
// avx2 / amx-emulated); the AVX-512 copy is used where available, the set is wide and TSLORA_LORA_WIDE_EXPAND allows
// it (cpu_expand.cpp: kWideExpandDefault when unset). Without the CPU addon (the CUDA addon's host code, the test
// drivers) the same default follows TSLORA_CPU_ISA.
void followCpuKernelSet(bool avx512Set);

namespace detail {

// One expand call: y[rows[i]][g0:g1) += u[rows[i]][0:rank) · Bᵀ[0:rank, g0:g1) for the physical rows of one run
// of a slot, module columns [g0, g1) inside one slice; u points at the slice's first shrink column of row 0, y at
// the module's first output column of row 0 (row p at + p * stride).
struct ExpandRange {
  const int32_t* rows;
  int numRows;
  const float* u;
  int uStride;
  float* y;
  int yStride;
  int rank;
  int g0, g1;
  // I8 pools: the slice's A-row scales [rank]; u holds raw dot products and the expand reads u[k] · uScale[k]
  // (cpu_expand.cpp scales a copy of the rows first). nullptr: u is used as it is.
  const float* uScale = nullptr;
};

// The copy in use (see useWideExpand); panels: the slot's Bᵀ panels of its rank (lora_internal.h).
// int8 panels (PoolDType::I8) carry their column scales: y[n] += sB[n] · Σ_k u[k] · q[k][n].
void expandRange(const ExpandRange& e, const float* panels);
void expandRange(const ExpandRange& e, const uint16_t* panels);
void expandRange(const ExpandRange& e, const int8_t* panels);

namespace expand_generic {
void expandRange(const ExpandRange& e, const float* panels);
void expandRange(const ExpandRange& e, const uint16_t* panels);
void expandRange(const ExpandRange& e, const int8_t* panels);
}  // namespace expand_generic
namespace expand_avx512 {  // defined on x86-64 only
void expandRange(const ExpandRange& e, const float* panels);
void expandRange(const ExpandRange& e, const uint16_t* panels);
void expandRange(const ExpandRange& e, const int8_t* panels);
}  // namespace expand_avx512

// How far ahead the expand prefetches its Bᵀ panels: 4 KiB by default, TSLORA_LORA_EXPAND_PREFETCH_BYTES (0 = none)
// for tuning on a new machine. Read once.
int expandPrefetchBytes();
// That distance for panels of each weight type: int8 panels (16-byte rows) get half of it, i.e. as many panels ahead
// as bf16 ones. Measured on the Xeon (session 18, bench/results/cpu/issue17-int8-pool/round2): the int8 r64
// expand read faster with 2 KiB than with 4 KiB (pool-dtypes.ts A/B in alternating processes; see the README there).
inline size_t expandPrefetchBytesFor(const float*) { return static_cast<size_t>(expandPrefetchBytes()); }
inline size_t expandPrefetchBytesFor(const uint16_t*) { return static_cast<size_t>(expandPrefetchBytes()); }
inline size_t expandPrefetchBytesFor(const int8_t*) { return static_cast<size_t>(expandPrefetchBytes()) / 2; }

// Prefetches [from, from + bytes) up to `end`, one request per 64-byte line.
inline void prefetchBytes(const char* from, size_t bytes, const char* end) {
  for (const char* p = from; p < from + bytes && p < end; p += 64) __builtin_prefetch(p);
}

// How much of a range's panels LoraPool::prefetchExpand requests before the GEMM computes its columns: the first
// expandPrefetchBytesFor(panels) into L1, and from TSLORA_LORA_EXPAND_EARLY_BYTES (default 0, for tuning) up to that many
// more into L2 (prefetcht1), so they stream in beside the weights. Read once.
int expandEarlyBytes();

// The start of the panels expandRange reads for columns [g0, g1) (LoraPool::prefetchExpand; see expandEarlyBytes).
template <typename W>
void prefetchRunColumns(const W* panels, int r, int g0, int g1) {
  const size_t stride = panelStride(r, panels);
  const char* first = reinterpret_cast<const char*>(panels + static_cast<size_t>(g0 / kPanelCols) * stride);
  const char* end = reinterpret_cast<const char*>(panels + static_cast<size_t>((g1 + kPanelCols - 1) / kPanelCols) * stride);
  const size_t l1Bytes = expandPrefetchBytesFor(panels);
  prefetchBytes(first, l1Bytes, end);
  for (const char* p = first + l1Bytes; p < first + l1Bytes + expandEarlyBytes() && p < end; p += 64) __builtin_prefetch(p, 0, 2);
}

}  // namespace detail
}  // namespace tslora::lora
