#include "js-read.h"

#include <cmath>
#include <new>
#include <stdexcept>

namespace tslora::napi {

Napi::Object requireObject(const Napi::Value& v, const std::string& name) {
  if (!v.IsObject()) throw NativeError("native_invalid_argument", name + " must be an object");
  return v.As<Napi::Object>();
}

double requireNumber(const Napi::Object& obj, const char* key, const std::string& ctx) {
  Napi::Value v = obj.Get(key);
  if (!v.IsNumber()) throw NativeError("native_invalid_argument", detail::concat(ctx, ".", key, " must be a number"));
  return v.As<Napi::Number>().DoubleValue();
}

int requireInt(const Napi::Object& obj, const char* key, const std::string& ctx, int64_t lo, int64_t hi) {
  double d = requireNumber(obj, key, ctx);
  if (!(d == std::floor(d)) || d < static_cast<double>(lo) || d > static_cast<double>(hi)) {
    throw NativeError("native_invalid_argument",
                      detail::concat(ctx, ".", key, " must be an integer in [", lo, ", ", hi, "], got ", d));
  }
  return static_cast<int>(d);
}

int requireIntArg(const Napi::Value& v, const std::string& name, int64_t lo, int64_t hi) {
  if (!v.IsNumber()) throw NativeError("native_invalid_argument", name + " must be a number");
  double d = v.As<Napi::Number>().DoubleValue();
  if (!(d == std::floor(d)) || d < static_cast<double>(lo) || d > static_cast<double>(hi)) {
    throw NativeError("native_invalid_argument",
                      detail::concat(name, " must be an integer in [", lo, ", ", hi, "], got ", d));
  }
  return static_cast<int>(d);
}

bool readBool(const Napi::Object& obj, const char* key, bool fallback) {
  Napi::Value v = obj.Get(key);
  if (v.IsUndefined() || v.IsNull()) return fallback;
  return v.ToBoolean().Value();
}

std::string requireString(const Napi::Object& obj, const char* key, const std::string& ctx) {
  Napi::Value v = obj.Get(key);
  if (!v.IsString()) throw NativeError("native_invalid_argument", detail::concat(ctx, ".", key, " must be a string"));
  return v.As<Napi::String>().Utf8Value();
}

Napi::Error errorWithCode(Napi::Env env, const std::string& code, const std::string& message) {
  Napi::Error err = Napi::Error::New(env, message);
  err.Value().Set("code", Napi::String::New(env, code));
  return err;
}

void rethrowAsJs(Napi::Env env) {
  try {
    throw;
  } catch (const Napi::Error&) {
    throw;
  } catch (const NativeError& e) {
    throw errorWithCode(env, e.code(), e.what());
  } catch (const std::invalid_argument& e) {
    std::string msg = e.what();
    std::string code = msg.rfind("corrupt", 0) == 0 ? "corrupt_file"
                       : msg.rfind("incompatible", 0) == 0 ? "incompatible"
                                                            : "native_invalid_argument";
    throw errorWithCode(env, code, msg);
  } catch (const std::bad_alloc&) {
    throw errorWithCode(env, "native_out_of_memory", "out of memory in the native backend");
  } catch (const std::exception& e) {
    throw errorWithCode(env, "native_error", e.what());
  }
}

}  // namespace tslora::napi
