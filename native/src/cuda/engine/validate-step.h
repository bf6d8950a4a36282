// Argument checks of one forward step for the CUDA engine. The same rules as CpuModel::validate
// (native/src/cpu/validate-step.cpp), which is a CpuModel member and so cannot be called from here.
#pragma once
#include "../../cpu/model-init.h"
#include "../../cpu/step-io.h"

namespace tslora::cuda {

struct StepLimits {
  cpu::ModelDims dims;
  int kvNumBlocks = 0, kvBlockSize = 0, loraSlots = 0;
};

// Throws NativeError("native_invalid_argument") naming the first bad field.
void validateStep(const cpu::StepInputView& s, const StepLimits& limits);

}  // namespace tslora::cuda
