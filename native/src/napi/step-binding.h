// forwardLaunch / forwardWait (overlap scheduling, step-queue.h) for both addons: the same checked step reader as
// forward(), then the step thread of the model's handle.
#pragma once
#include <napi.h>

#include <memory>

#include "js-read.h"
#include "step-convert.h"
#include "step-queue.h"

namespace tslora::napi {

template <typename Handles, typename Model>
struct StepBinding {
  // forwardLaunch(model, step): copies the step and queues it; returns at once. Token ids < 0 are references to the
  // previous launched step's sampled rows (step-queue.h).
  static Napi::Value launch(const Napi::CallbackInfo& info) {
    try {
      auto model = Handles::requireModel(info[0]);
      auto& holder = Handles::modelHolder(info[0]);
      cpu::StepInputView view = readStepInput(info[1], model->dims().vocab);
      auto step = std::make_unique<OwnedStep>(view);
      if (!holder.steps) holder.steps = std::make_unique<StepQueue<Model>>(model);
      holder.steps->launch(std::move(step));
      return info.Env().Undefined();
    } catch (...) {
      rethrowAsJs(info.Env());
    }
  }

  // forwardWait(model): the oldest launched step's StepOutput, plus forwardMs (the forward alone, native clock).
  static Napi::Value wait(const Napi::CallbackInfo& info) {
    try {
      Handles::requireModel(info[0]);
      auto& holder = Handles::modelHolder(info[0]);
      if (!holder.steps) throw NativeError("native_invalid_argument", "forwardWait: no step was launched");
      StepResult result = holder.steps->wait();
      if (result.error) std::rethrow_exception(result.error);
      Napi::Object o = writeStepOutput(info.Env(), result.out);
      o.Set("forwardMs", Napi::Number::New(info.Env(), result.forwardMs));
      return o;
    } catch (...) {
      rethrowAsJs(info.Env());
    }
  }

  static void exportTo(Napi::Env env, Napi::Object exports) {
    exports.Set("forwardLaunch", Napi::Function::New(env, launch));
    exports.Set("forwardWait", Napi::Function::New(env, wait));
  }
};

}  // namespace tslora::napi
