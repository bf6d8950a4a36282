#include "handles.h"

namespace tslora::napi_cuda {

const napi_type_tag CudaHandleTags::model = {0x5c0da11e7e4b4d01ull, 0x8e21f0c3a9d64b27ull};
const napi_type_tag CudaHandleTags::adapter = {0x5c0da11e7e4b4d02ull, 0x1b7a93e4c0f25d68ull};

}  // namespace tslora::napi_cuda
