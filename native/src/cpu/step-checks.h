// Argument checks of one forward step, shared by the CPU engine (CpuModel::validate) and the CUDA engine.
#pragma once
#include "model-init.h"
#include "step-io.h"

namespace tslora::cpu {

struct StepLimits {
  ModelDims dims;
  int kvNumBlocks = 0, kvBlockSize = 0, loraSlots = 0;
};

// Throws NativeError("native_invalid_argument") naming the first bad field.
void validateStep(const StepInputView& s, const StepLimits& limits);

}  // namespace tslora::cpu
