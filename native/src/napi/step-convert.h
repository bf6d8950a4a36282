// StepInput (JS) → cpu::StepInputView, and cpu::StepOutputData → StepOutput (JS).
#pragma once
#include <napi.h>

#include "../cpu/step-io.h"

namespace tslora::napi {

// vocab: the model's vocabulary size (the optional suppression lists are checked against it here, since the shared
// step checks predate them).
cpu::StepInputView readStepInput(const Napi::Value& v, int vocab);
Napi::Object writeStepOutput(Napi::Env env, const cpu::StepOutputData& out);

}  // namespace tslora::napi
