// The generic copy of the CPU LoRA expand (cpu_expand.h) in the build's own target, and the choice of copy.
#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "cpu_dot.h"
#include "cpu_expand.h"
#include "tslora/env-int.h"

// The 8-lane helpers below pass vectors between inline functions of this file only (no ABI to keep; see cpu_dot.h).
#pragma GCC diagnostic ignored "-Wpsabi"

namespace tslora::lora {
namespace detail {

// An empty value is the default, as for every CPU knob (tslora/env-int.h; before session 17 it meant 0 here).
int expandPrefetchBytes() {
  static const int bytes = std::max(0, envInt("TSLORA_LORA_EXPAND_PREFETCH_BYTES", 4096));
  return bytes;
}
int expandEarlyBytes() {
  static const int bytes = std::max(0, envInt("TSLORA_LORA_EXPAND_EARLY_BYTES", 0));
  return bytes;
}

namespace expand_generic {
// A panel row as two 8-lane vectors (columns 0-7, 8-15).
struct Lanes16 {
  Vec8 lo, hi;
};
inline Lanes16 zeroLanes() { return {Vec8{}, Vec8{}}; }
template <typename W>
inline Lanes16 loadLanes(const W* p) {
  return {loadVec8(p), loadVec8(p + 8)};
}
inline Lanes16 mulAddLanes(Lanes16 acc, float u, Lanes16 b) {
  const Vec8 uu = broadcast8(u);
  return {mulAdd(acc.lo, uu, b.lo), mulAdd(acc.hi, uu, b.hi)};
}
inline void addSumTo(float* y, Lanes16 a, Lanes16 b) {
  const Vec8 lo = a.lo + b.lo, hi = a.hi + b.hi;
  for (int l = 0; l < 8; ++l) y[l] += lo[l];
  for (int l = 0; l < 8; ++l) y[8 + l] += hi[l];
}
inline void addScaledSumTo(float* y, Lanes16 a, Lanes16 b, const float* scales) {
  const Vec8 lo = mulAdd(loadVec8(y), a.lo + b.lo, loadVec8(scales)), hi = mulAdd(loadVec8(y + 8), a.hi + b.hi, loadVec8(scales + 8));
  std::memcpy(y, &lo, sizeof lo);
  std::memcpy(y + 8, &hi, sizeof hi);
}
inline float mulAddScalar(float acc, float a, float b) { return mulAdd(acc, a, b); }
#include "cpu_expand.inc"
}  // namespace expand_generic

namespace {
// Whether the AVX-512 copy is used by default where the CPU has it: TSLORA_LORA_WIDE_EXPAND=1 / 0, unset = this.
// Measured on the Xeon (session 15, bench/native/RESULTS.md): r16 / r64 single-stream LoRA cost 3.3 / 12.9 %
// (medians of 6 processes) against 4.2 / 14.8 % with the 8-lane copy in the same processes; same bits (FMA builds).
constexpr bool kWideExpandDefault = true;
bool wideAllowed() {
  static const bool allowed = [] {
    const char* s = std::getenv("TSLORA_LORA_WIDE_EXPAND");
    return s && *s ? std::strcmp(s, "0") != 0 : kWideExpandDefault;
  }();
  return allowed;
}
bool wideByDefault() {
  if (!wideExpandAvailable() || !wideAllowed()) return false;
  const char* isa = std::getenv("TSLORA_CPU_ISA");  // the CPU addon's kernel set (cpu-isa.h), followed here too
  return !(isa && (std::strcmp(isa, "baseline") == 0 || std::strcmp(isa, "avx2") == 0 || std::strcmp(isa, "amx-emulated") == 0));
}
std::atomic<bool>& wideInUse() {
  static std::atomic<bool> on{wideByDefault()};
  return on;
}
}  // namespace

// e with u's rows scaled by e.uScale (an I8 pool's raw shrink), in this thread's own buffer, rows indexed as in e:
// scaled[k] = u[k] · uScale[k], rounded once, the same in every copy. e itself when it has no scales.
ExpandRange withScaledU(const ExpandRange& e) {
  if (e.uScale == nullptr) return e;
  thread_local std::vector<float> scaled;
  int maxRow = 0;
  for (int i = 0; i < e.numRows; ++i) maxRow = std::max(maxRow, e.rows[i]);
  const size_t need = (static_cast<size_t>(maxRow) + 1) * e.rank;
  if (scaled.size() < need) scaled.resize(need);
  for (int i = 0; i < e.numRows; ++i) {
    const float* u = e.u + static_cast<size_t>(e.rows[i]) * e.uStride;
    float* out = scaled.data() + static_cast<size_t>(e.rows[i]) * e.rank;
    for (int k = 0; k < e.rank; ++k) out[k] = u[k] * e.uScale[k];
  }
  ExpandRange out = e;
  out.u = scaled.data();
  out.uStride = e.rank;
  out.uScale = nullptr;
  return out;
}

template <typename W>
void dispatchExpand(const ExpandRange& e, const W* panels) {
  const ExpandRange run = withScaledU(e);
#if defined(__x86_64__)
  if (wideInUse().load(std::memory_order_relaxed)) return expand_avx512::expandRange(run, panels);
#endif
  expand_generic::expandRange(run, panels);
}

void expandRange(const ExpandRange& e, const float* panels) { dispatchExpand(e, panels); }
void expandRange(const ExpandRange& e, const uint16_t* panels) { dispatchExpand(e, panels); }
void expandRange(const ExpandRange& e, const int8_t* panels) { dispatchExpand(e, panels); }

}  // namespace detail

bool wideExpandAvailable() {
#if defined(__x86_64__)
  static const bool available = (__builtin_cpu_init(), __builtin_cpu_supports("avx512f")) && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("fma");
  return available;
#else
  return false;
#endif
}

bool useWideExpand(bool on) {
  detail::wideInUse().store(on && wideExpandAvailable(), std::memory_order_relaxed);
  return wideExpandInUse();
}

void followCpuKernelSet(bool avx512Set) {
  detail::wideInUse().store(avx512Set && wideExpandAvailable() && detail::wideAllowed(), std::memory_order_relaxed);
}

bool wideExpandInUse() { return detail::wideInUse().load(std::memory_order_relaxed); }

}  // namespace tslora::lora
