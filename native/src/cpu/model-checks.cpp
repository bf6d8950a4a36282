// Model and tensor checks shared by the CPU and CUDA models (see model-checks.h).
#include "model-checks.h"

#include "simd.h"
#include "tslora/errors.h"

namespace tslora::cpu {

void checkModelInit(const ModelInit& init, int maxHeadDim) {
  const ModelDims& d = init.dims;
  TSLORA_CHECK(d.hidden > 0 && d.intermediate > 0 && d.numLayers > 0 && d.numHeads > 0 && d.numKvHeads > 0 &&
                   d.headDim > 0 && d.vocab > 0,
               "model dimensions must be positive");
  TSLORA_CHECK(d.numHeads % d.numKvHeads == 0, "numHeads (", d.numHeads, ") must be a multiple of numKvHeads (",
               d.numKvHeads, ")");
  TSLORA_CHECK(d.headDim % 2 == 0 && d.headDim <= maxHeadDim, "headDim must be even and <= ", maxHeadDim,
               " on this backend, got ", d.headDim);
  TSLORA_CHECK(static_cast<int>(init.layers.size()) == d.numLayers, "weights.layers has ", init.layers.size(),
               " entries but the spec says numLayers = ", d.numLayers);
  TSLORA_CHECK(init.kvNumBlocks > 0 && init.kvBlockSize > 0, "kvNumBlocks and kvBlockSize must be positive, got ",
               init.kvNumBlocks, " and ", init.kvBlockSize);
  TSLORA_CHECK(!init.files.empty(), "weights.files is empty");
}

size_t elementBytes(WType type) { return type == WType::F32 ? 4 : 2; }

namespace {

const unsigned char* checkedData(const TensorSpec& s, const MappedFiles& files) {
  TSLORA_CHECK(s.present, "tensor ", s.name, " is missing");
  TSLORA_CHECK(s.file >= 0 && s.file < static_cast<int>(files.size()), "tensor ", s.name, " names file index ",
               s.file, " but there are ", files.size(), " files");
  const MappedFile& f = *files[s.file];
  int64_t count = 1;
  for (int64_t dim : s.shape) {
    TSLORA_CHECK(dim >= 0, "tensor ", s.name, " has a negative dimension");
    count *= dim;
  }
  TSLORA_CHECK(s.sizeBytes == static_cast<uint64_t>(count) * elementBytes(s.type), "tensor ", s.name, " has ",
               s.sizeBytes, " bytes but its shape and dtype need ", count * elementBytes(s.type));
  if (s.offsetBytes > f.sizeBytes() || s.sizeBytes > f.sizeBytes() - s.offsetBytes) {
    throw NativeError("corrupt_file", detail::concat("tensor ", s.name, " (bytes ", s.offsetBytes, "..",
                                                     s.offsetBytes + s.sizeBytes, ") lies beyond the end of ",
                                                     f.path(), " (", f.sizeBytes(), " bytes): the file is truncated"));
  }
  return f.data() + s.offsetBytes;
}

}  // namespace

const unsigned char* checkedMatrixData(const TensorSpec& s, const MappedFiles& files, int64_t rows, int64_t cols) {
  const unsigned char* data = checkedData(s, files);
  TSLORA_CHECK(s.shape.size() == 2 && s.shape[0] == rows && s.shape[1] == cols, "tensor ", s.name,
               " must have shape [", rows, ", ", cols, "]");
  return data;
}

const unsigned char* checkedVectorData(const TensorSpec& s, const MappedFiles& files, int64_t n) {
  const unsigned char* data = checkedData(s, files);
  TSLORA_CHECK(s.shape.size() == 1 && s.shape[0] == n, "tensor ", s.name, " must have shape [", n, "]");
  return data;
}

float loadAsFloat(const void* data, WType type, int64_t i) {
  switch (type) {
    case WType::BF16: return loadScalar<WType::BF16>(data, i);
    case WType::F16: return loadScalar<WType::F16>(data, i);
    default: return loadScalar<WType::F32>(data, i);
  }
}

std::vector<float> readVectorF32(const TensorSpec& spec, const MappedFiles& files, int64_t n) {
  const unsigned char* data = checkedVectorData(spec, files, n);
  std::vector<float> out(n);
  for (int64_t i = 0; i < n; ++i) out[i] = loadAsFloat(data, spec.type, i);
  return out;
}

}  // namespace tslora::cpu
