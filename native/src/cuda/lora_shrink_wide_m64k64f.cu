// The wide shrink's m64k64f block tile (lora_shrink_wide.cuh: m64k64 with the fragments of a step loaded first), both
// activation dtypes, compiled apart from lora_shrink.cu (lora_shrink_wide_instances.h says why).
#include "lora_shrink_wide_instances.h"

namespace tslora::cuda::lora::wide {
TSLORA_WIDE_SHRINK_TILE_INSTANCES(, WideTile::M64K64F)
}  // namespace tslora::cuda::lora::wide
