// Checks of a model description and of its tensors against the mapped safetensors files, shared by the CPU model
// (model.cpp) and the CUDA model (cuda/engine/cuda-model.cu), so both refuse the same inputs with the same messages.
// Every function throws NativeError: native_invalid_argument for a bad spec, corrupt_file for a truncated file.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "mapped-file.h"
#include "model-init.h"

namespace tslora::cpu {

using MappedFiles = std::vector<std::unique_ptr<MappedFile>>;

// Dimensions positive, heads a multiple of KV heads, headDim even and <= maxHeadDim (the backend's attention
// limit), one layer spec per layer, a KV cache and at least one file.
void checkModelInit(const ModelInit& init, int maxHeadDim);

size_t elementBytes(WType type);

// The tensor's bytes in its file, checked: present, a valid file index, shape × dtype size = its byte count, and
// [offset, offset + size) inside the file; then its shape is [rows, cols] (matrix) or [n] (vector).
const unsigned char* checkedMatrixData(const TensorSpec& spec, const MappedFiles& files, int64_t rows, int64_t cols);
const unsigned char* checkedVectorData(const TensorSpec& spec, const MappedFiles& files, int64_t n);

// Element i of a bf16 / f16 / f32 tensor as float.
float loadAsFloat(const void* data, WType type, int64_t i);

// A checked [n] vector (norm weights, biases) converted to float32.
std::vector<float> readVectorF32(const TensorSpec& spec, const MappedFiles& files, int64_t n);

}  // namespace tslora::cpu
