// StepInput (JS) → cpu::StepInputView, and cpu::StepOutputData → StepOutput (JS).
#pragma once
#include <napi.h>

#include "../cpu/step-io.h"

namespace tslora::napi {

cpu::StepInputView readStepInput(const Napi::Value& v);
Napi::Object writeStepOutput(Napi::Env env, const cpu::StepOutputData& out);

}  // namespace tslora::napi
