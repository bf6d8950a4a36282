// Native errors that reach JS as an Error with a string `code` (see src/binding/types.ts).
// Native code checks its inputs and throws one of these; nothing reachable from JS aborts.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace tslora {

class NativeError : public std::runtime_error {
 public:
  NativeError(std::string code, const std::string& message) : std::runtime_error(message), code_(std::move(code)) {}
  const std::string& code() const { return code_; }

 private:
  std::string code_;
};

namespace detail {
template <typename... Args>
std::string concat(const Args&... args) {
  std::ostringstream out;
  (out << ... << args);
  return out.str();
}
}  // namespace detail

}  // namespace tslora

// TSLORA_CHECK(cond, parts...) throws native_invalid_argument with the concatenated message parts.
#define TSLORA_CHECK(cond, ...)                                                                  \
  do {                                                                                           \
    if (!(cond)) throw ::tslora::NativeError("native_invalid_argument", ::tslora::detail::concat(__VA_ARGS__)); \
  } while (0)

#define TSLORA_CHECK_CODE(cond, code, ...)                                               \
  do {                                                                                   \
    if (!(cond)) throw ::tslora::NativeError(code, ::tslora::detail::concat(__VA_ARGS__)); \
  } while (0)
