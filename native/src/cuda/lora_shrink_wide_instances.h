// Where the wide shrink's block tiles are compiled: lora_shrink.cu instantiates w8 (and dispatches to all), every other
// tile has its own translation unit, lora_shrink_wide_<tile>.cu, so a parallel build compiles them side by side (all
// 48 kernels in lora_shrink.cu took 33 s of nvcc on the development machine, against 14 s without the new tiles and
// 21 s for the slowest other LoRA file).
#pragma once
#include "lora_shrink_wide.cuh"

// The two activation dtypes' instantiations of shrinkWideTile for TILE; PREFIX: extern (a declaration) or nothing.
#define TSLORA_WIDE_SHRINK_TILE_INSTANCES(PREFIX, TILE)                                                                     \
  PREFIX template cudaError_t shrinkWideTile<__nv_bfloat16, TILE>(const DeviceModule&, const DeviceStep&, const void*, int, \
                                                                  float*, float*, int*, int, cudaStream_t, bool);          \
  PREFIX template cudaError_t shrinkWideTile<__half, TILE>(const DeviceModule&, const DeviceStep&, const void*, int, float*,  \
                                                           float*, int*, int, cudaStream_t, bool);

namespace tslora::cuda::lora::wide {
TSLORA_WIDE_SHRINK_TILE_INSTANCES(extern, WideTile::M128K32)
TSLORA_WIDE_SHRINK_TILE_INSTANCES(extern, WideTile::M128K64)
TSLORA_WIDE_SHRINK_TILE_INSTANCES(extern, WideTile::M64K64)
TSLORA_WIDE_SHRINK_TILE_INSTANCES(extern, WideTile::M64K64F)
}  // namespace tslora::cuda::lora::wide
