// The wide shrink's m128k32 block tile (lora_shrink_wide.cuh), both activation dtypes, compiled apart from lora_shrink.cu
// (lora_shrink_wide_instances.h says why).
#include "lora_shrink_wide_instances.h"

namespace tslora::cuda::lora::wide {
TSLORA_WIDE_SHRINK_TILE_INSTANCES(, WideTile::M128K32)
}  // namespace tslora::cuda::lora::wide
