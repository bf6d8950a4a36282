// Checked reads of JS values (numbers, strings, typed arrays) for the napi entry points. Every failure throws a
// tslora::NativeError("native_invalid_argument") naming the field.
#pragma once
#include <napi.h>

#include <string>

#include "../cpu/step-io.h"
#include "tslora/errors.h"

namespace tslora::napi {

Napi::Object requireObject(const Napi::Value& v, const std::string& name);
double requireNumber(const Napi::Object& obj, const char* key, const std::string& ctx);
int requireInt(const Napi::Object& obj, const char* key, const std::string& ctx, int64_t lo, int64_t hi);
bool readBool(const Napi::Object& obj, const char* key, bool fallback);
std::string requireString(const Napi::Object& obj, const char* key, const std::string& ctx);
int requireIntArg(const Napi::Value& v, const std::string& name, int64_t lo, int64_t hi);

template <typename T>
cpu::Span<T> typedArray(const Napi::Object& obj, const char* key, napi_typedarray_type expected, const char* typeName) {
  Napi::Value v = obj.Get(key);
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != expected) {
    throw NativeError("native_invalid_argument", detail::concat("step.", key, " must be a ", typeName));
  }
  auto ta = v.As<Napi::TypedArray>();
  cpu::Span<T> span;
  span.data = reinterpret_cast<const T*>(static_cast<const uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset());
  span.size = ta.ElementLength();
  return span;
}

// Converts a caught C++ exception into a JS Error with a string `code` and throws it into JS.
[[noreturn]] void rethrowAsJs(Napi::Env env);
Napi::Error errorWithCode(Napi::Env env, const std::string& code, const std::string& message);

}  // namespace tslora::napi
