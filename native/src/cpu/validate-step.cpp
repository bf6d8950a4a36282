// CpuModel's step checks: the shared rules of step-checks.cpp with this model's limits.
#include "model.h"
#include "step-checks.h"

namespace tslora::cpu {

void CpuModel::validate(const StepInputView& s) const {
  validateStep(s, StepLimits{dims_, kvNumBlocks_, kvBlockSize_, loraSlots_});
}

}  // namespace tslora::cpu
