// CPU feature detection (cpuid + the OS's saved-state mask) and the choice of kernel copy; see cpu-isa.h.
#include "cpu-isa.h"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>

#include "ops.h"
#include "tslora/env-int.h"
#include "tslora/errors.h"
#ifdef TSLORA_HAVE_LORA
#include "../lora/cpu_expand.h"
#endif

#if defined(__x86_64__)
#include <cpuid.h>
#endif
#if defined(__x86_64__) && defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace tslora::cpu {

namespace isa_scalar {
void swigluRow(const float*, const float*, float*, int);
float expShiftSumRow(float*, int, float);
}
namespace isa_baseline {
void gemmRange(const float* const*, float* const*, int, const void*, WType, int, int, int, int, int, int, int);
void swigluRow(const float*, const float*, float*, int);
float expShiftSumRow(float*, int, float);
}
#if defined(__x86_64__)
namespace isa_avx2 {
void gemmRange(const float* const*, float* const*, int, const void*, WType, int, int, int, int, int, int, int);
void swigluRow(const float*, const float*, float*, int);
float expShiftSumRow(float*, int, float);
}
namespace isa_avx512 {
void gemmRange(const float* const*, float* const*, int, const void*, WType, int, int, int, int, int, int, int);
void swigluRow(const float*, const float*, float*, int);
float expShiftSumRow(float*, int, float);
}
namespace isa_amx {
void splitRows(const float* const*, int, int, int, uint32_t*);
void gemmBf16Tiles(const SplitActs&, const float* const*, float* const*, int, const void*, int, int, int, int);
}
#endif
namespace isa_amx_emulated {
void splitRows(const float* const*, int, int, int, uint32_t*);
void gemmBf16Tiles(const SplitActs&, const float* const*, float* const*, int, const void*, int, int, int, int);
}

namespace {

struct Features {
  bool sse41 = false, avx2 = false, fma = false, f16c = false;
  bool avx512f = false, avx512bw = false, avx512vl = false, avx512dq = false, avx512bf16 = false, avx512fp16 = false;
  bool amxTile = false, amxBf16 = false;
  bool osAvx = false, osAvx512 = false, osAmx = false;  // the OS saves these register states (XCR0)
  bool amxGranted = false;  // Linux lets this process use the tile data (arch_prctl, asked once)
};

// Linux (5.16+) enables the 8 KiB tile state per process on request; without it the first tile instruction faults.
// The permission covers every thread of the process, including those started later.
bool requestAmxPermission() {
#if defined(__x86_64__) && defined(__linux__)
  constexpr long kArchGetXcompPerm = 0x1022, kArchReqXcompPerm = 0x1023;
  constexpr int kXfeatureXtileData = 18;
  if (syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtileData) != 0) return false;
  unsigned long permitted = 0;
  if (syscall(SYS_arch_prctl, kArchGetXcompPerm, &permitted) != 0) return false;
  return (permitted >> kXfeatureXtileData) & 1u;
#else
  return false;
#endif
}

Features detect() {
  Features f;
#if defined(__x86_64__)
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
  f.sse41 = c & (1u << 19);
  f.fma = c & (1u << 12);
  f.f16c = c & (1u << 29);
  const bool osxsave = c & (1u << 27), avx = c & (1u << 28);
  if (osxsave && avx) {
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    f.osAvx = (lo & 0x6u) == 0x6u;
    f.osAvx512 = f.osAvx && (lo & 0xe0u) == 0xe0u;
    f.osAmx = (lo & 0x60000u) == 0x60000u;
  }
  if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) {
    f.avx2 = b & (1u << 5);
    f.avx512f = b & (1u << 16);
    f.avx512dq = b & (1u << 17);
    f.avx512bw = b & (1u << 30);
    f.avx512vl = b & (1u << 31);
    f.avx512fp16 = d & (1u << 23);
    f.amxBf16 = d & (1u << 22);
    f.amxTile = d & (1u << 24);
    unsigned a1, b1, c1, d1;
    if (a >= 1 && __get_cpuid_count(7, 1, &a1, &b1, &c1, &d1)) f.avx512bf16 = a1 & (1u << 5);
  }
  if (f.amxTile && f.amxBf16 && f.osAmx) f.amxGranted = requestAmxPermission();
#endif
  return f;
}

const Features& features() {
  static const Features f = detect();
  return f;
}

bool hasAvx2(const Features& f) { return f.osAvx && f.avx2 && f.fma && f.f16c; }
bool hasAvx512(const Features& f) {
  return hasAvx2(f) && f.osAvx512 && f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq;
}

bool hasAmx(const Features& f) { return hasAvx512(f) && f.amxTile && f.amxBf16 && f.osAmx && f.amxGranted; }

int envPrefetchBytes() {  // unset or -1: automatic (one tile of weight rows ahead); other negatives: none
  const int v = envInt("TSLORA_PREFETCH_BYTES", -1);
  return v == -1 ? -1 : std::min(1 << 20, std::max(0, v));
}

int envPackMinRows() { return std::max(0, envInt("TSLORA_GEMM_PACK_MIN_ROWS", 16)); }

int envSplitTerms() { return envInt("TSLORA_AMX_TERMS", 3) == 2 ? 2 : 3; }

bool always(const Features&) { return true; }

// Narrowest first; entries the CPU cannot run are skipped by availableCpuIsas(), and test-only ones (`testOnly`)
// are neither listed nor chosen by default, only selected by name.
struct Entry {
  const char* name;
  GemmRangeFn gemm;
  SwigluRowFn swiglu;
  ExpShiftSumFn expShiftSum;
  bool (*supported)(const Features&);
  SplitRowsFn splitRows = nullptr;
  TileGemmFn tileGemm = nullptr;
  bool testOnly = false;
};
const Entry kEntries[] = {
    {"baseline", isa_baseline::gemmRange, isa_baseline::swigluRow, isa_baseline::expShiftSumRow, always},
    {"amx-emulated", isa_baseline::gemmRange, isa_baseline::swigluRow, isa_baseline::expShiftSumRow, always,
     isa_amx_emulated::splitRows, isa_amx_emulated::gemmBf16Tiles, true},
#if defined(__x86_64__)
    {"avx2", isa_avx2::gemmRange, isa_avx2::swigluRow, isa_avx2::expShiftSumRow, hasAvx2},
    {"avx512", isa_avx512::gemmRange, isa_avx512::swigluRow, isa_avx512::expShiftSumRow, hasAvx512},
    {"amx", isa_avx512::gemmRange, isa_avx512::swigluRow, isa_avx512::expShiftSumRow, hasAmx, isa_amx::splitRows,
     isa_amx::gemmBf16Tiles},
#endif
};
constexpr int kNumEntries = static_cast<int>(sizeof(kEntries) / sizeof(kEntries[0]));

CpuKernels kernelsFor(int index) {
  CpuKernels k;
  k.name = kEntries[index].name;
  k.gemmRange = kEntries[index].gemm;
  k.swigluRow = kEntries[index].swiglu;
  k.expShiftSum = kEntries[index].expShiftSum;
  k.prefetchBytes = envPrefetchBytes();
  k.packMinRows = envPackMinRows();
  k.splitRows = kEntries[index].splitRows;
  k.tileGemm = kEntries[index].tileGemm;
  k.splitTerms = envSplitTerms();
  return k;
}

int indexOf(const std::string& name) {
  for (int i = 0; i < kNumEntries; ++i)
    if (name == kEntries[i].name && kEntries[i].supported(features())) return i;
  return -1;
}

std::string availableList() {
  std::string list;
  for (const auto& n : availableCpuIsas()) list += (list.empty() ? "" : ", ") + n;
  return list;
}

int initialIndex() {
  int best = 0;
  for (int i = 0; i < kNumEntries; ++i)
    if (kEntries[i].supported(features()) && !kEntries[i].testOnly) best = i;
  const char* forced = std::getenv("TSLORA_CPU_ISA");
  if (forced && *forced) {
    int i = indexOf(forced);
    if (i >= 0) return i;
    std::fprintf(stderr, "tslora: TSLORA_CPU_ISA=%s is not available on this CPU (available: %s); using %s\n", forced,
                 availableList().c_str(), kEntries[best].name);
  }
  return best;
}

CpuKernels gKernels[kNumEntries > 0 ? kNumEntries : 1];
std::atomic<int> gActive{-1};

// The LoRA expand follows the kernel set: its AVX-512 copy with the avx512 / amx sets, the generic one otherwise
// (native/src/lora/cpu_expand.h), so TSLORA_CPU_ISA and selectCpuIsa switch both.
void followWithLoraExpand(int index) {
#ifdef TSLORA_HAVE_LORA
  const std::string name = kEntries[index].name;
  lora::followCpuKernelSet(name == "avx512" || name == "amx");
#else
  (void)index;
#endif
}

}  // namespace

const CpuKernels& cpuKernels() {
  static const bool ready = [] {
    for (int i = 0; i < kNumEntries; ++i) gKernels[i] = kernelsFor(i);
    int expected = -1;
    if (gActive.compare_exchange_strong(expected, initialIndex())) followWithLoraExpand(gActive.load());
    return true;
  }();
  (void)ready;
  return gKernels[gActive.load(std::memory_order_acquire)];
}

CpuKernels scalarRowKernels() {
  CpuKernels k;
  k.name = "scalar";
  k.swigluRow = isa_scalar::swigluRow;
  k.expShiftSum = isa_scalar::expShiftSumRow;
  return k;
}

std::vector<std::string> availableCpuIsas() {
  std::vector<std::string> out;
  for (int i = 0; i < kNumEntries; ++i)
    if (kEntries[i].supported(features()) && !kEntries[i].testOnly) out.emplace_back(kEntries[i].name);
  return out;
}

void selectCpuIsa(const std::string& name) {
  cpuKernels();  // initialise the table first
  int i = indexOf(name);
  if (i < 0) {
    throw NativeError("native_invalid_argument",
                      detail::concat("CPU kernel instruction set '", name, "' is not available here (available: ",
                                     availableList(), ")"));
  }
  gActive.store(i, std::memory_order_release);
  followWithLoraExpand(i);
}

void setGemmPackMinRows(int rows) {
  cpuKernels();  // initialise the table first
  for (int i = 0; i < kNumEntries; ++i) gKernels[i].packMinRows = rows < 0 ? 0 : rows;
}

std::string cpuFeatureSummary() {
  const Features& f = features();
  std::string s;
  auto add = [&](bool on, const char* name) {
    if (on) s += (s.empty() ? "" : " ") + std::string(name);
  };
  add(f.sse41, "sse4.1");
  add(f.avx2 && f.osAvx, "avx2");
  add(f.fma, "fma");
  add(f.f16c, "f16c");
  add(f.avx512f && f.osAvx512, "avx512f");
  add(f.avx512bw && f.osAvx512, "avx512bw");
  add(f.avx512bf16 && f.osAvx512, "avx512_bf16");
  add(f.avx512fp16 && f.osAvx512, "avx512_fp16");
  add(f.amxTile && f.osAmx, "amx_tile");
  add(f.amxBf16 && f.osAmx, "amx_bf16");
  add(f.amxGranted, "amx_permitted");
  return s;
}

// ops.h's SwiGLU is defined here, beside the kernel table it dispatches through, so that ops.cpp (which the CUDA
// addon links for the RoPE frequencies) does not pull the CPU kernel copies into that addon.
void swiglu(const float* gate, const float* up, float* act, int n) { cpuKernels().swigluRow(gate, up, act, n); }

}  // namespace tslora::cpu
