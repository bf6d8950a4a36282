// Decode GEMM (decode-gemm.h). Block = 8 warps; grid (column tiles, K splits). Warp w of column tile c owns weight
// rows [(c·8 + w)·16·MT, +16·MT) (MT mma A tiles) and the tokens' n-tiles [0, NT) (8 tokens each; rows past M read row
// M - 1 and are never stored), over the block's K range in steps of 64. Lane (g = lane/4, t = lane%4) loads 16
// consecutive elements (two 16-byte loads) of weight rows g and g + 8 of each A tile and of token g of each n-tile
// and feeds four mma.m16n8k16 per tile pair with K permuted: logical k {2t, 2t+1, 2t+8, 2t+9} of sub-step s is
// physical t·16 + 4s + {0, 1, 2, 3} for both operands, so every dot product is unchanged (the trick of
// lora_small_mma.cuh). The weight loads run kStages − 1 steps ahead of the mma; the activations come from L1 / L2.
// With one split the block stores y; otherwise every block writes its fp32 partial [M, tile] and the last block of
// the column tile (integer ticket) sums the splits in split order and stores y, then resets the ticket; or the splits
// of a tile form a thread-block cluster and sum through distributed shared memory (decode-gemm.h, DecodeGemmReduce).
// Launched as a programmatic dependent launch (pdl.h): the first weight loads overlap the previous kernel's tail.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cooperative_groups.h>

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "cuda-check.h"
#include "decode-gemm.h"
#include "mma16816.cuh"
#include "pdl.h"

namespace tslora::cuda {
namespace {

namespace cg = cooperative_groups;

constexpr int kWarps = 8;
constexpr int kThreads = kWarps * 32;
constexpr int kMaxDevices = 64;  // the cluster kernels' shared-memory opt-in is remembered per device up to this index

// Weights are read once: non-coherent loads that skip L1 and ask L2 for 256-byte sectors (each warp reads 128
// contiguous bytes of a row per step, so the next step's bytes come with them). On the H100 sweep this beat streaming
// loads (ld.global.cs) at M ≤ 32: LM head 95-97 % of bandwidth against 91 %, 8B gate_up 87-89 % against 78-83 %.
// -DTSLORA_DECODE_GEMM_WEIGHT_LOAD=0: ld.global.cs (for A/B builds). Activations are re-read by every warp and tile.
#ifndef TSLORA_DECODE_GEMM_WEIGHT_LOAD
#define TSLORA_DECODE_GEMM_WEIGHT_LOAD 1
#endif
__device__ __forceinline__ uint4 loadWeight16(const uint16_t* p) {
#if defined(__CUDA_ARCH__) && TSLORA_DECODE_GEMM_WEIGHT_LOAD == 1
  uint4 v;
  asm("ld.global.nc.L1::no_allocate.L2::256B.v4.u32 {%0, %1, %2, %3}, [%4];\n" : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "l"(p));
  return v;
#else
  return __ldcs(reinterpret_cast<const uint4*>(p));
#endif
}
__device__ __forceinline__ uint4 loadAct16(const uint16_t* p) { return __ldg(reinterpret_cast<const uint4*>(p)); }

__device__ __forceinline__ void storeAs(__nv_bfloat16* y, float v) { *y = __float2bfloat16_rn(v); }
__device__ __forceinline__ void storeAs(__half* y, float v) { *y = __float2half_rn(v); }
template <typename T>
__device__ __forceinline__ void storeY(void* y, size_t index, float v, int yF32) {
  if (yF32) static_cast<float*>(y)[index] = v;
  else storeAs(static_cast<T*>(y) + index, v);
}

// One 64-K step of one lane: rows g and g + 8 of each A tile, 16 elements each (two 16-byte vectors per row).
template <int MT>
struct WeightStep {
  uint4 v[MT][2][2];  // [tile][row g / g + 8][first / second 8 elements]
};

template <int MT>
__device__ __forceinline__ void loadWeights(WeightStep<MT>& s, const uint16_t* (&rows)[MT][2], int k) {
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      s.v[mt][h][0] = loadWeight16(rows[mt][h] + k);
      s.v[mt][h][1] = loadWeight16(rows[mt][h] + k + 8);
    }
}

__device__ __forceinline__ uint32_t word(const uint4 (&v)[2], int i) {  // 32-bit word i (0..7) of 16 elements
  const uint4& q = v[i / 4];
  const int j = i % 4;
  return j == 0 ? q.x : j == 1 ? q.y : j == 2 ? q.z : q.w;
}

// The activations of the step first, then the mma with MT·NT independent accumulators between two that depend.
template <typename T, int MT, int NT>
__device__ __forceinline__ void mmaStep(float (&acc)[MT][NT][4], const WeightStep<MT>& ws, const uint16_t* xLane, const int (&xRowOffset)[NT],
                                        int k) {
  uint4 xv[NT][2];
#pragma unroll
  for (int nt = 0; nt < NT; ++nt) {
    xv[nt][0] = loadAct16(xLane + xRowOffset[nt] + k);
    xv[nt][1] = loadAct16(xLane + xRowOffset[nt] + k + 8);
  }
#pragma unroll
  for (int s = 0; s < 4; ++s)
#pragma unroll
    for (int nt = 0; nt < NT; ++nt)
#pragma unroll
      for (int mt = 0; mt < MT; ++mt)
        mma16816<T>(acc[mt][nt], word(ws.v[mt][0], 2 * s), word(ws.v[mt][1], 2 * s), word(ws.v[mt][0], 2 * s + 1),
                    word(ws.v[mt][1], 2 * s + 1), word(xv[nt], 2 * s), word(xv[nt], 2 * s + 1));
}

// Small tiles leave registers for two blocks per SM; 8·MT·NT accumulators and up to 16 weight registers per stage.
template <int MT, int NT>
constexpr int minBlocksPerSm() { return MT == 1 && NT <= 2 ? 2 : 1; }

// x: [M, K], w: [N, K] (raw 16-bit values, 16-byte aligned rows, K % 64 == 0); kPerSplit a multiple of 64.
struct Params {
  const uint16_t* x;
  int M, K;
  const uint16_t* w;
  int N;
  void* y;
  int yF32;
  int splits, kPerSplit;
  float* partials;  // ticket reduction: [splits, M, N]
  int* tickets;     // ticket reduction: [column tiles]
};

// Split-K reduction of the blocks of one column tile: kTicket = partials through global memory, the last block to
// take a ticket sums them; kCluster = the splits are one thread-block cluster, every block leaves its partial tile in
// shared memory and sums a slice of the tile over the cluster's blocks (distributed shared memory).
enum class Reduce { kNone, kTicket, kCluster };

template <int MT>
constexpr int kTileRowsOf = kWarps * 16 * MT;
template <int MT>
constexpr int kTileLdOf = kTileRowsOf<MT> + 4;  // +4 floats: the fragment writes hit 32 different banks

template <typename T, int MT, int NT, Reduce R>
__global__ void __launch_bounds__(kThreads, minBlocksPerSm<MT, NT>()) decodeGemmKernel(const Params p) {
  // Weight steps in flight per warp: 8 KB (4 KB where 16 n-tiles' accumulators and activations need the registers).
  constexpr int kStages = MT * NT >= 24 ? 1 : MT * NT >= 12 ? 2 : 4 / MT;
  constexpr int kTileRows = kTileRowsOf<MT>;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  // Clusters group the splits of a tile along x; otherwise the tiles run along x.
  const int split = R == Reduce::kCluster ? blockIdx.x : blockIdx.y, tile = R == Reduce::kCluster ? blockIdx.y : blockIdx.x;
  const int M = p.M, K = p.K, N = p.N;
  const uint16_t* __restrict__ const xs = p.x;
  const uint16_t* __restrict__ const ws = p.w;
  const int colBase = tile * kTileRows, rowBase = colBase + warp * 16 * MT;
  const int k0 = split * p.kPerSplit, k1 = min(K, k0 + p.kPerSplit);
  const int steps = k1 > k0 && rowBase < N ? (k1 - k0) / 64 : 0;  // warp-uniform

  const uint16_t* wRows[MT][2];
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int h = 0; h < 2; ++h) wRows[mt][h] = ws + static_cast<size_t>(min(rowBase + mt * 16 + h * 8 + g, N - 1)) * K + t * 16;
  const uint16_t* xLane = xs + t * 16;
  int xRowOffset[NT];  // x is at most 128 x 64K elements: 32-bit offsets
#pragma unroll
  for (int nt = 0; nt < NT; ++nt) xRowOffset[nt] = min(nt * 8 + g, M - 1) * K;

  float acc[MT][NT][4];
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int nt = 0; nt < NT; ++nt) acc[mt][nt][0] = acc[mt][nt][1] = acc[mt][nt][2] = acc[mt][nt][3] = 0.0f;

  // Launched as a programmatic dependent (pdl.h): the first weight steps are requested while the kernel before is
  // still finishing (no kernel writes weights); x, y, the partials and the tickets only after pdlWait.
  pdlLaunchDependents();
  WeightStep<MT> buf[kStages];
#pragma unroll
  for (int d = 0; d < kStages; ++d)
    if (d < steps) loadWeights<MT>(buf[d], wRows, k0 + d * 64);
  pdlWait();
  for (int st = 0; st < steps; st += kStages) {
#pragma unroll
    for (int d = 0; d < kStages; ++d) {
      if (st + d < steps) {
        const WeightStep<MT> cur = buf[d];
        if (st + d + kStages < steps) loadWeights<MT>(buf[d], wRows, k0 + (st + d + kStages) * 64);
        mmaStep<T, MT, NT>(acc, cur, xLane, xRowOffset, k0 + (st + d) * 64);
      }
    }
  }

  // C fragment of tile (mt, nt): element i is weight row rowBase + mt·16 + g (+8 for i ≥ 2), token nt·8 + 2t + (i & 1).
#define DECODE_GEMM_FOR_FRAGMENT(BODY)                                                      \
  _Pragma("unroll") for (int mt = 0; mt < MT; ++mt)                                         \
  _Pragma("unroll") for (int nt = 0; nt < NT; ++nt)                                         \
  _Pragma("unroll") for (int i = 0; i < 4; ++i) {                                           \
    const int n = rowBase + mt * 16 + g + (i >= 2 ? 8 : 0), m = nt * 8 + 2 * t + (i & 1);   \
    BODY;                                                                                   \
  }
  if constexpr (R == Reduce::kNone) {
    DECODE_GEMM_FOR_FRAGMENT(if (n < N && m < M) storeY<T>(p.y, static_cast<size_t>(m) * N + n, acc[mt][nt][i], p.yF32))
    return;
  }
  const int tileCols = min(kTileRows, N - colBase);
  if constexpr (R == Reduce::kTicket) {
    float* mine = p.partials + static_cast<size_t>(split) * M * N;  // [M, N] of this split (this tile's columns)
    DECODE_GEMM_FOR_FRAGMENT(if (n < N && m < M) mine[static_cast<size_t>(m) * N + n] = acc[mt][nt][i])
    // Classic last-block reduction: every thread publishes its partials, then one ticket per block.
    __threadfence();
    __syncthreads();
    __shared__ int isLast;
    if (threadIdx.x == 0) isLast = atomicAdd(&p.tickets[tile], 1) == p.splits - 1;
    __syncthreads();
    if (!isLast) return;
    __threadfence();
    for (int e = threadIdx.x; e < M * tileCols; e += kThreads) {
      const int m = e / tileCols, n = colBase + e % tileCols;
      float sum = 0.0f;
      for (int s = 0; s < p.splits; ++s) sum += __ldcg(p.partials + (static_cast<size_t>(s) * M + m) * N + n);  // split order
      storeY<T>(p.y, static_cast<size_t>(m) * N + n, sum, p.yF32);
    }
    if (threadIdx.x == 0) p.tickets[tile] = 0;  // ready for the next launch (and graph replay)
  }
  if constexpr (R == Reduce::kCluster) {
#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 900  // clusters exist from sm_90 (run() never picks them below)
    extern __shared__ float tileSmem[];  // [M, tileLd] this block's partial of the tile
    constexpr int ld = kTileLdOf<MT>;
    DECODE_GEMM_FOR_FRAGMENT(if (m < M) tileSmem[m * ld + (n - colBase)] = acc[mt][nt][i])
    cg::cluster_group cluster = cg::this_cluster();
    cluster.sync();
    const float* peers[kDecodeGemmMaxClusterSplits];
#pragma unroll
    for (int s = 0; s < kDecodeGemmMaxClusterSplits; ++s) peers[s] = s < p.splits ? cluster.map_shared_rank(tileSmem, s) : nullptr;
    const int total = M * tileCols, chunk = (total + p.splits - 1) / p.splits;
    for (int e = split * chunk + threadIdx.x; e < min(total, (split + 1) * chunk); e += kThreads) {
      const int m = e / tileCols, c = e % tileCols;
      float sum = 0.0f;
#pragma unroll
      for (int s = 0; s < kDecodeGemmMaxClusterSplits; ++s)
        if (s < p.splits) sum += peers[s][m * ld + c];  // split order
      storeY<T>(p.y, static_cast<size_t>(m) * N + colBase + c, sum, p.yF32);
    }
    cluster.sync();  // no block may leave while its peers still read its shared memory
#else
    __trap();
#endif
  }
#undef DECODE_GEMM_FOR_FRAGMENT
}

template <typename T, int MT, int NT>
cudaError_t launchTiles(Params p, Reduce reduce, cudaStream_t stream) {
  const int tiles = (p.N + kTileRowsOf<MT> - 1) / kTileRowsOf<MT>;
  if (reduce == Reduce::kNone) return pdlLaunch(decodeGemmKernel<T, MT, NT, Reduce::kNone>, dim3(tiles, 1), dim3(kThreads), 0, stream, p);
  if (reduce == Reduce::kTicket)
    return pdlLaunch(decodeGemmKernel<T, MT, NT, Reduce::kTicket>, dim3(tiles, p.splits), dim3(kThreads), 0, stream, p);
  auto kernel = decodeGemmKernel<T, MT, NT, Reduce::kCluster>;
  const size_t smemBytes = static_cast<size_t>(p.M) * kTileLdOf<MT> * sizeof(float);
  // Above 48 KB needs the opt-in: once per kernel and device, for its largest M (8·NT rows), not per launch (a driver
  // call on every eager decode GEMM). Not a stream operation: fine under graph capture.
  static bool optedIn[kMaxDevices] = {};
  int device = 0;
  cudaError_t status = cudaGetDevice(&device);
  if (status == cudaSuccess && (device < 0 || device >= kMaxDevices || !optedIn[device])) {
    status = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(8 * NT * kTileLdOf<MT> * sizeof(float)));
    if (status == cudaSuccess && device >= 0 && device < kMaxDevices) optedIn[device] = true;
  }
  if (status != cudaSuccess) {
    (void)cudaGetLastError();
    return status;
  }
  const dim3 grid(p.splits, tiles);
  LaunchExtras cluster;
  cluster.clusterX = static_cast<unsigned>(p.splits);  // the splits of a tile: one cluster
  return pdlLaunchEx(cluster, kernel, grid, dim3(kThreads), smemBytes, stream, p);
}

// n-tiles: M rounded up to 16, 32, 48, 64, 96 or 128 tokens (padding costs mma issue only, no bytes). Two A tiles
// with 12 or 16 n-tiles keep one weight step in flight per warp (their 96 / 128 accumulators need the registers).
template <typename T, int MT>
cudaError_t launchRows(const Params& p, Reduce r, cudaStream_t s) {
  if (p.M <= 16) return launchTiles<T, MT, 2>(p, r, s);
  if (p.M <= 32) return launchTiles<T, MT, 4>(p, r, s);
  if (p.M <= 48) return launchTiles<T, MT, 6>(p, r, s);
  if (p.M <= 64) return launchTiles<T, MT, 8>(p, r, s);
  if (p.M <= 96) return launchTiles<T, MT, 12>(p, r, s);
  return launchTiles<T, MT, 16>(p, r, s);
}

template <typename T>
cudaError_t launchTyped(const Params& p, int rowsPerWarp, Reduce r, cudaStream_t s) {
  return rowsPerWarp == 16 ? launchRows<T, 1>(p, r, s) : launchRows<T, 2>(p, r, s);
}

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

// K per split for `splits` splits: whole 64-K steps; the count actually used is ceil(K / kPerSplit).
int kPerSplitFor(int K, int splits) {
  const int steps = K / kDecodeGemmKStep;
  return (steps + splits - 1) / splits * kDecodeGemmKStep;
}

}  // namespace

int decodeGemmSplits(int N, int K, int numSms) {
  // H100 sweep (bench/cuda/README.md, round 1 of session 12): the fastest split count gives about 0.75 blocks of
  // 256-row tiles per SM (8B qkv 4, o 6, down 6-7, gate_up 1; 1B qkv / down 8, gate_up 1-2; LM heads 1), more splits
  // cost more than the fuller last wave saves. At most 8 (one cluster), at least 4 K steps per split.
  const int columnTiles = (N + 255) / 256;
  const int steps = K / kDecodeGemmKStep;
  const int wanted = std::clamp(static_cast<int>(std::lround(0.75 * numSms / columnTiles)), 1, kDecodeGemmMaxClusterSplits);
  const int stepsPerSplit = std::max(4, (steps + wanted - 1) / wanted);
  return (steps + stepsPerSplit - 1) / stepsPerSplit;  // splits actually used (none empty)
}

// Two A tiles per warp: the faster tiling on the H100 sweep for most shapes at every M (the activations' fragments
// serve twice as many weight bytes); 16 rows won only on 1B o / gate_up / down at M ≥ 96.
int decodeGemmRowsPerWarp(int M) {
  (void)M;
  return 32;
}

DecodeGemm::DecodeGemm(int numSms) : numSms_(numSms) {
  int device = 0, major = 0;
  cudaCheck(cudaGetDevice(&device), "cudaGetDevice");
  cudaCheck(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device), "compute capability");
  clusters_ = major >= 9;
  cudaCheck(cudaMalloc(&partials_, kPartialBytes), "decode GEMM partials");
  cudaCheck(cudaMalloc(&tickets_, kDecodeGemmMaxColumnTiles * sizeof(int)), "decode GEMM tickets");
  cudaCheck(cudaMemset(tickets_, 0, kDecodeGemmMaxColumnTiles * sizeof(int)), "decode GEMM tickets");
}

DecodeGemm::~DecodeGemm() {
  cudaFree(partials_);
  cudaFree(tickets_);
}

bool DecodeGemm::applies(int M, int N, int K, const void* x, const void* w) const {
  if (M < kDecodeGemmMinRows || M > kDecodeGemmMaxRows || N < 1 || K < kDecodeGemmKStep || K % kDecodeGemmKStep != 0) return false;
  if (!aligned16(x) || !aligned16(w) || (N + 127) / 128 > kDecodeGemmMaxColumnTiles) return false;
  const int splits = decodeGemmSplits(N, K, numSms_);
  return splits <= kDecodeGemmMaxClusterSplits || static_cast<size_t>(splits) * kDecodeGemmMaxRows * N * sizeof(float) <= kPartialBytes;
}

cudaError_t DecodeGemm::run(Act act, const void* x, int M, int K, const void* w, int N, void* y, bool yF32, cudaStream_t stream,
                            int splits, int rowsPerWarp, DecodeGemmReduce reduce) const {
  if (!applies(M, N, K, x, w) || y == nullptr) return cudaErrorInvalidValue;
  if (splits == 0) splits = decodeGemmSplits(N, K, numSms_);
  if (rowsPerWarp == 0) rowsPerWarp = decodeGemmRowsPerWarp(M);
  if (splits < 1 || splits > kDecodeGemmMaxSplits || (rowsPerWarp != 16 && rowsPerWarp != 32)) return cudaErrorInvalidValue;
  const int kPerSplit = kPerSplitFor(K, splits);
  const int used = (K + kPerSplit - 1) / kPerSplit;
  Reduce r = used == 1 ? Reduce::kNone : Reduce::kTicket;
  if (used > 1 && reduce != DecodeGemmReduce::kTicket && used <= kDecodeGemmMaxClusterSplits && clusters_) r = Reduce::kCluster;
  if (r == Reduce::kTicket && static_cast<size_t>(used) * M * N * sizeof(float) > kPartialBytes) return cudaErrorInvalidValue;
  const Params p{static_cast<const uint16_t*>(x), M, K, static_cast<const uint16_t*>(w), N, y, yF32 ? 1 : 0, used, kPerSplit, partials_, tickets_};
  cudaError_t status = act == Act::BF16 ? launchTyped<__nv_bfloat16>(p, rowsPerWarp, r, stream) : launchTyped<__half>(p, rowsPerWarp, r, stream);
  // A cluster the GPU cannot place (too many blocks for its GPCs): the ticket reduction sums in the same order.
  if (status != cudaSuccess && r == Reduce::kCluster && reduce == DecodeGemmReduce::kAuto &&
      static_cast<size_t>(used) * M * N * sizeof(float) <= kPartialBytes)
    status = act == Act::BF16 ? launchTyped<__nv_bfloat16>(p, rowsPerWarp, Reduce::kTicket, stream)
                              : launchTyped<__half>(p, rowsPerWarp, Reduce::kTicket, stream);
  return status;
}

}  // namespace tslora::cuda
