#include "gemm.h"

#include <algorithm>

#include "tslora/thread-pool.h"

namespace tslora::cpu {
namespace {

constexpr int kRowBlock = 64;  // activation rows per pass over a weight row block (fits L2 for K <= 8192)
constexpr int kColBlock = 16;  // weight rows per parallel work item

// acc[m][n] = dot(x row m, w row n) for an MR x NR tile.
template <WType T, int MR, int NR>
inline void tile(const float* const* xRows, const void* w, int64_t wRowElems, int K, float* out, int outStride) {
  VecF acc[MR][NR];
  for (int m = 0; m < MR; ++m)
    for (int n = 0; n < NR; ++n) acc[m][n] = vzero();
  int k = 0;
  for (; k + kLanes <= K; k += kLanes) {
    VecF xv[MR];
    for (int m = 0; m < MR; ++m) xv[m] = vload(xRows[m] + k);
    for (int n = 0; n < NR; ++n) {
      VecF wv = vloadW<T>(w, n * wRowElems + k);
      for (int m = 0; m < MR; ++m) acc[m][n] = vfma(xv[m], wv, acc[m][n]);
    }
  }
  for (int m = 0; m < MR; ++m) {
    for (int n = 0; n < NR; ++n) {
      float s = vsum(acc[m][n]);
      for (int kk = k; kk < K; ++kk) s += xRows[m][kk] * loadScalar<T>(w, n * wRowElems + kk);
      out[m * outStride + n] = s;
    }
  }
}

// Decode path (few activation rows): one weight row at a time, read sequentially (the hardware prefetcher keeps
// up with one long stream far better than with several short row streams), K unrolled U vectors deep so the
// FMA latency is hidden; each converted weight vector serves all MR activation rows.
template <WType T, int MR>
inline void rowDot(const float* const* xRows, const void* wRow, int K, float* out) {
  constexpr int U = (kLanes == 16 || MR <= 2) ? 4 : 2;
  VecF acc[MR][U];
  for (int m = 0; m < MR; ++m)
    for (int u = 0; u < U; ++u) acc[m][u] = vzero();
  int k = 0;
  for (; k + U * kLanes <= K; k += U * kLanes) {
    for (int u = 0; u < U; ++u) {
      VecF wv = vloadW<T>(wRow, k + u * kLanes);
      for (int m = 0; m < MR; ++m) acc[m][u] = vfma(vload(xRows[m] + k + u * kLanes), wv, acc[m][u]);
    }
  }
  for (; k + kLanes <= K; k += kLanes) {
    VecF wv = vloadW<T>(wRow, k);
    for (int m = 0; m < MR; ++m) acc[m][0] = vfma(vload(xRows[m] + k), wv, acc[m][0]);
  }
  for (int m = 0; m < MR; ++m) {
    VecF total = acc[m][0];
    for (int u = 1; u < U; ++u) total = vadd(total, acc[m][u]);
    float sum = vsum(total);
    for (int kk = k; kk < K; ++kk) sum += xRows[m][kk] * loadScalar<T>(wRow, kk);
    out[m] = sum;
  }
}

#ifndef TSLORA_DECODE_MAX_ROWS
#define TSLORA_DECODE_MAX_ROWS 3
#endif
constexpr int kDecodeMaxRows = TSLORA_DECODE_MAX_ROWS;  // below this many activation rows, stream weight rows one by one

template <WType T>
void gemmRangeDecode(const float* const* xRows, float* const* yRows, int M, const WeightView& w, int n0, int n1,
                     int yOffset) {
  const int K = w.cols;
  const size_t rowBytes = static_cast<size_t>(K) * w.bytesPerElement();
  float out[4];
  for (int n = n0; n < n1; ++n) {
    const char* wRow = static_cast<const char*>(w.data) + static_cast<size_t>(n) * rowBytes;
    int m = 0;
    for (; m + 4 <= M; m += 4) {
      rowDot<T, 4>(xRows + m, wRow, K, out);
      for (int i = 0; i < 4; ++i) yRows[m + i][yOffset + n] = out[i];
    }
    switch (M - m) {
      case 3:
        rowDot<T, 3>(xRows + m, wRow, K, out);
        break;
      case 2:
        rowDot<T, 2>(xRows + m, wRow, K, out);
        break;
      case 1:
        rowDot<T, 1>(xRows + m, wRow, K, out);
        break;
      default:
        break;
    }
    for (int i = 0; i < M - m; ++i) yRows[m + i][yOffset + n] = out[i];
  }
}

#if defined(__AVX512F__)
constexpr int kWideNR = 8;  // up to 3 activation rows x 8 weight rows = 24 zmm accumulators
#else
constexpr int kWideNR = 4;  // AVX2 has 16 registers: 2 x 4 accumulators
#endif

// Computes y rows (via xRows / yRows pointers) for weight rows [n0, n1) of w; columns land at yOffset + n.
template <WType T>
void gemmRange(const float* const* xRows, float* const* yRows, int M, const WeightView& w, int n0, int n1,
               int yOffset) {
  if (M < kDecodeMaxRows) return gemmRangeDecode<T>(xRows, yRows, M, w, n0, n1, yOffset);
  const int K = w.cols;
  const size_t rowBytes = static_cast<size_t>(K) * w.bytesPerElement();
  float tmp[4 * kWideNR];
  for (int mb = 0; mb < M; mb += kRowBlock) {
    const int me = std::min(M, mb + kRowBlock);
    for (int n = n0; n < n1;) {
      const char* wRow = static_cast<const char*>(w.data) + static_cast<size_t>(n) * rowBytes;
      auto emit = [&](int m, int mr, int nc, int nOff) {
        for (int i = 0; i < mr; ++i)
          for (int j = 0; j < nc; ++j) yRows[m + i][yOffset + n + nOff + j] = tmp[i * nc + j];
      };
      if (n1 - n >= kWideNR) {
        int m = mb;
#if defined(__AVX512F__)
        // 3 x 8 tile: 24 zmm accumulators; measured ~30% faster than two 4 x 4 tiles on Zen 4.
        for (; m + 3 <= me; m += 3) {
          tile<T, 3, 8>(xRows + m, wRow, K, K, tmp, 8);
          emit(m, 3, 8, 0);
        }
#endif
        for (; m + 2 <= me; m += 2) {
          tile<T, 2, kWideNR>(xRows + m, wRow, K, K, tmp, kWideNR);
          emit(m, 2, kWideNR, 0);
        }
        for (; m < me; ++m) {
          tile<T, 1, kWideNR>(xRows + m, wRow, K, K, tmp, kWideNR);
          emit(m, 1, kWideNR, 0);
        }
        n += kWideNR;
      } else {
        for (int m = mb; m < me; ++m) {
          tile<T, 1, 1>(xRows + m, wRow, K, K, tmp, 1);
          emit(m, 1, 1, 0);
        }
        n += 1;
      }
    }
  }
}

void gemmRangeAny(const float* const* xRows, float* const* yRows, int M, const WeightView& w, int n0, int n1,
                  int yOffset) {
  switch (w.type) {
    case WType::BF16:
      return gemmRange<WType::BF16>(xRows, yRows, M, w, n0, n1, yOffset);
    case WType::F16:
      return gemmRange<WType::F16>(xRows, yRows, M, w, n0, n1, yOffset);
    default:
      return gemmRange<WType::F32>(xRows, yRows, M, w, n0, n1, yOffset);
  }
}

void gemmPointers(ThreadPool& pool, const std::vector<const float*>& xRows, const std::vector<float*>& yRows,
                  const std::vector<GemmPart>& parts) {
  int M = static_cast<int>(xRows.size());
  if (M == 0) return;
  // Global column index over the concatenated parts, split into blocks of kColBlock.
  std::vector<int> blockStart{0};
  for (const auto& p : parts) blockStart.push_back(blockStart.back() + (p.w.rows + kColBlock - 1) / kColBlock);
  int totalBlocks = blockStart.back();
  // A few chunks per thread, claimed dynamically: a thread that runs late on a shared machine takes fewer.
  const int numChunks = std::min(totalBlocks, pool.numThreads() * 4);
  auto runBlocks = [&](int b0, int b1) {
    for (size_t pi = 0; pi < parts.size(); ++pi) {
      int lo = std::max(b0, blockStart[pi]), hi = std::min(b1, blockStart[pi + 1]);
      if (lo >= hi) continue;
      const GemmPart& part = parts[pi];
      int n0 = (lo - blockStart[pi]) * kColBlock;
      int n1 = std::min(part.w.rows, (hi - blockStart[pi]) * kColBlock);
      gemmRangeAny(xRows.data(), yRows.data(), M, part.w, n0, n1, part.outOffset);
    }
  };
  if (numChunks <= 1) return runBlocks(0, totalBlocks);
  pool.run(numChunks, [&](int c) {
    runBlocks(static_cast<int>(static_cast<int64_t>(totalBlocks) * c / numChunks),
              static_cast<int>(static_cast<int64_t>(totalBlocks) * (c + 1) / numChunks));
  });
}

}  // namespace

void gemm(ThreadPool& pool, const float* x, int M, int ldx, const std::vector<GemmPart>& parts, float* y, int ldy) {
  std::vector<const float*> xRows(M);
  std::vector<float*> yRows(M);
  for (int m = 0; m < M; ++m) {
    xRows[m] = x + static_cast<size_t>(m) * ldx;
    yRows[m] = y + static_cast<size_t>(m) * ldy;
  }
  gemmPointers(pool, xRows, yRows, parts);
}

void gemmRows(ThreadPool& pool, const float* x, const int32_t* rowIndex, int numRows, int ldx, const WeightView& w,
              float* y, int ldy) {
  std::vector<const float*> xRows(numRows);
  std::vector<float*> yRows(numRows);
  for (int i = 0; i < numRows; ++i) {
    xRows[i] = x + static_cast<size_t>(rowIndex[i]) * ldx;
    yRows[i] = y + static_cast<size_t>(i) * ldy;
  }
  gemmPointers(pool, xRows, yRows, {GemmPart{w, 0}});
}

void loadRow(const WeightView& w, int row, float* out) {
  const size_t esz = w.bytesPerElement();
  const void* src = static_cast<const char*>(w.data) + static_cast<size_t>(row) * w.cols * esz;
  switch (w.type) {
    case WType::BF16:
      for (int i = 0; i < w.cols; ++i) out[i] = loadScalar<WType::BF16>(src, i);
      break;
    case WType::F16:
      for (int i = 0; i < w.cols; ++i) out[i] = loadScalar<WType::F16>(src, i);
      break;
    default:
      std::memcpy(out, src, static_cast<size_t>(w.cols) * 4);
  }
}

}  // namespace tslora::cpu
