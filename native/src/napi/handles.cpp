#include "handles.h"

namespace tslora::napi {

const napi_type_tag CpuHandleTags::model = {0x7a1c0de5b0e14c21ull, 0x9d3f6a8e2c4b5170ull};
const napi_type_tag CpuHandleTags::adapter = {0x3e8b51f09c2d4a66ull, 0xa47c2e91d05b3f18ull};

}  // namespace tslora::napi
