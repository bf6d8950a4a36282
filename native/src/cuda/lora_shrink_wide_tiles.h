// Block tiles of the wide tiled shrink (lora_shrink_wide.cuh): the shapes each kernel instantiation uses and what the
// host needs of them (rows per block, shared memory, blocks per SM, split limits). No device code: the host emulator
// includes it as it is.
#pragma once
#include <cstring>

#include "lora_kernels.cuh"

namespace tslora::cuda::lora::wide {

constexpr int kThreads = 256;  // 8 warps
constexpr int kBM = 128;       // rows per block of the session-14 tile (WideTile::W8); WideTile::M64K64 takes 64
constexpr int kChunk = 64;     // U columns per chunk; a block owns NC chunks
constexpr int kMaxChunks = 3;

// The largest cluster of the cluster split-K: the portable limit (larger clusters need a non-portable attribute and
// may not fit a GPC beside 138 KB of shared memory per block).
constexpr int kMaxClusterSplits = 8;

// Block tiles of the wide shrink (TSLORA_CUDA_LORA_WIDE_SHRINK_TILE; session 22; measured on an H100 in session 23, which
// made M64K64 the default: bench/lora/README.md v13). W8 is session 14's kernel: 8 warps stacked along the rows (16 rows × all NC·64
// columns each), 32-K stages × 4; every warp loads all of the block's A columns from shared memory per 16 K (13
// ldmatrix.x4 for 24 MMAs at NC = 3, ~0.135 shared-memory bytes per multiply-add). The others lay the 8 warps out in
// two dimensions, so a warp's x fragments serve more columns and its A fragments more rows (8 ldmatrix.x4 for 24 MMAs
// at NC = 3, ~0.083 B per multiply-add): M128K32 (128 rows, 4 × 2 warps of 32 rows × NC·32 columns, 32-K stages × 4),
// M128K64 (the same warps, 64-K stages × 3: half the barriers and waits per K), M64K64 (64 rows, 2 × 4 warps of 32
// rows × NC·16 columns, 64-K stages × 3: twice the tiles, so the same SMs with half the splits and half the split-K
// partials). Within a split every tile accumulates in the same K order, but the split boundaries round up to the
// stage's K, so the 64-K tiles may cut K elsewhere than W8 (other fp32 sums, within the shrink's tolerance).
// M64K64F (session 25) is M64K64 with every fragment of a 16-K step loaded before its MMAs, each B fragment in its own
// registers, and no per-fragment branch on the slot's rank (A rows past the rank are zero-filled, so their MMAs add
// zeros to columns that are never stored): M64K64's SASS reuses one B register set for the three fragments of a qkv
// step, so every ldmatrix waited for the MMAs before it and its own result (and a branch and a warp sync split each
// step); M64K64F's lets ptxas load the next fragments under the MMAs. The same MMAs on every stored accumulator in the
// same order: M64K64's bits.
enum class WideTile { W8 = 0, M128K32 = 1, M128K64 = 2, M64K64 = 3, M64K64F = 4 };
constexpr int kWideTiles = 5;
constexpr const char* wideTileName(WideTile tile) {
  return tile == WideTile::W8 ? "w8" : tile == WideTile::M128K32 ? "m128k32" : tile == WideTile::M128K64 ? "m128k64"
         : tile == WideTile::M64K64 ? "m64k64" : "m64k64f";
}
// The tile a name (wideTileName's) stands for, -1 for none.
inline int wideTileFromName(const char* name) {
  for (int t = 0; t < kWideTiles; ++t)
    if (std::strcmp(name, wideTileName(static_cast<WideTile>(t))) == 0) return t;
  return -1;
}

template <int BM, int BK, int Stages, int WarpsN, int NC, bool FragsFirst = false>
struct WideShape {
  static constexpr int kBM = BM, kBK = BK, kStages = Stages, kLd = BK + 8;  // 80- / 144-byte rows: conflict-free ldmatrix
  static constexpr bool kFragsFirst = FragsFirst;  // M64K64F's inner loop (above)
  static constexpr int kBN = NC * kChunk;
  static constexpr int kWarpsN = WarpsN, kWarpsM = 8 / WarpsN;
  static constexpr int kWarpRows = BM / kWarpsM, kWarpCols = kBN / kWarpsN;
  static constexpr int kMTiles = kWarpRows / 16, kPairs = kWarpCols / 16;  // 16-row A fragments, 16-column ldmatrix pairs
  static constexpr int kStageElems = (BM + kBN) * kLd;                     // x rows, then A rows
  static constexpr int kBytes = Stages * kStageElems * 2;                  // bf16 / fp16
  static_assert(kWarpRows % 16 == 0 && kWarpCols % 16 == 0, "warp tiles of whole fragments");
  static_assert(BM * (BK / 8) % kThreads == 0 && kBN * (BK / 8) % kThreads == 0, "whole 16-byte copies per thread");
};
template <WideTile Tile, int NC>
struct TileShape;
template <int NC> struct TileShape<WideTile::W8, NC> : WideShape<128, 32, 4, 1, NC> {};
template <int NC> struct TileShape<WideTile::M128K32, NC> : WideShape<128, 32, 4, 2, NC> {};
template <int NC> struct TileShape<WideTile::M128K64, NC> : WideShape<128, 64, 3, 2, NC> {};
template <int NC> struct TileShape<WideTile::M64K64, NC> : WideShape<64, 64, 3, 4, NC> {};
template <int NC> struct TileShape<WideTile::M64K64F, NC> : WideShape<64, 64, 3, 4, NC, true> {};

// Host view of a tile: rows per block and the dynamic shared memory of NC chunks.
template <WideTile Tile>
constexpr int tileSmemBytes(int chunks) {
  return chunks == 1 ? TileShape<Tile, 1>::kBytes : chunks == 2 ? TileShape<Tile, 2>::kBytes : TileShape<Tile, 3>::kBytes;
}
inline int wideTileRows(WideTile tile) {
  return tile == WideTile::M64K64 || tile == WideTile::M64K64F ? TileShape<WideTile::M64K64, 1>::kBM : kBM;
}
inline int wideSmemBytes(WideTile tile, int chunks) {
  switch (tile) {
    case WideTile::M128K32: return tileSmemBytes<WideTile::M128K32>(chunks);
    case WideTile::M128K64: return tileSmemBytes<WideTile::M128K64>(chunks);
    case WideTile::M64K64: return tileSmemBytes<WideTile::M64K64>(chunks);
    case WideTile::M64K64F: return tileSmemBytes<WideTile::M64K64F>(chunks);
    default: return tileSmemBytes<WideTile::W8>(chunks);
  }
}
// Blocks that fit on one SM by shared memory (228 KB per SM, 1 KB reserved per block, the row table), at most 3 for
// W8 with one chunk and 2 otherwise (the launch bounds of wideMinBlocks).
inline int wideBlocksPerSm(WideTile tile, int chunks) {
  const int bySmem = (228 * 1024) / (wideSmemBytes(tile, chunks) + 1024 + 4 * wideTileRows(tile));
  const int bound = tile == WideTile::W8 && chunks == 1 ? 3 : 2;
  return bySmem < 1 ? 1 : bySmem < bound ? bySmem : bound;
}

// The launch bounds' blocks per SM: 3 for W8 with one chunk, 1 where the stages allow no second block (M128K64 at
// NC = 3: 138 KB; the register cap of 2 blocks made its cluster variant spill), else 2.
template <WideTile Tile, int NC>
constexpr int wideMinBlocks() {
  return Tile == WideTile::W8 && NC == 1 ? 3 : 2 * (TileShape<Tile, NC>::kBytes + 2048) > 228 * 1024 ? 1 : 2;
}

// Column chunks per block: all c·R columns up to kMaxChunks · 64 (wider pools take several column blocks).
inline int wideChunks(const DeviceModule& module) {
  const int chunks = (module.numSlices * module.maxRank + kChunk - 1) / kChunk;
  return chunks < kMaxChunks ? chunks : kMaxChunks;
}

}  // namespace tslora::cuda::lora::wide
