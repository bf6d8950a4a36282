// The CPU sampler's greedy rule (native/src/cpu/sampling.cpp): the first maximum of a row, and its logsumexp with
// the sum in fp64. The reference the split greedy-row kernels are checked against (host rules test, emulator and
// GPU kernel checks).
#pragma once
#include <algorithm>
#include <cmath>

inline double cpuLogSumExp(const float* x, int n) {
  float mx = -INFINITY;
  for (int i = 0; i < n; ++i) mx = std::max(mx, x[i]);
  if (!std::isfinite(mx)) return mx;
  double s = 0.0;
  for (int i = 0; i < n; ++i) s += std::exp(x[i] - mx);
  return mx + std::log(s);
}

inline int cpuArgmax(const float* x, int n) {
  int best = 0;
  for (int i = 1; i < n; ++i)
    if (x[i] > x[best]) best = i;
  return best;
}
