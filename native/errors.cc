#include "errors.h"

#include <cerrno>
#include <cmath>
#include <cstring>
#include <string>

#include <uv.h>

namespace shmq {

// the errno's own name ("ENOENT", "EAGAIN", "EISDIR", ...): libuv knows the
// ones Node reports; glibc names the rest; a number no one names keeps its number
static std::string ErrnoName(int err) {
  char buffer[64];
  // the _r form: uv_err_name leaks a string for codes it does not know
  const char* name = uv_err_name_r(-err, buffer, sizeof buffer);
  if (name != nullptr && std::strncmp(name, "Unknown", 7) != 0) return name;
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 32))
  name = strerrorname_np(err);
  if (name != nullptr) return name;
#endif
  return "ERRNO_" + std::to_string(err);
}

void ThrowErrno(Napi::Env env, const char* syscall, const std::string& segment, int err) {
  std::string message = std::string(syscall) + " failed";
  if (!segment.empty()) message += " for '" + segment + "'";
  message += ": ";
  message += std::strerror(err);
  Napi::Error error = Napi::Error::New(env, message);
  error.Set("code", Napi::String::New(env, ErrnoName(err)));
  error.Set("errno", Napi::Number::New(env, err));
  error.Set("syscall", Napi::String::New(env, syscall));
  if (!segment.empty()) error.Set("segment", Napi::String::New(env, segment));
  throw error;
}

void ThrowCode(Napi::Env env, const char* code, const std::string& message) {
  Napi::Error error = Napi::Error::New(env, message);
  error.Set("code", Napi::String::New(env, code));
  throw error;
}

std::string StringArg(const Napi::CallbackInfo& info, size_t index, const char* what) {
  if (info.Length() <= index || !info[index].IsString()) {
    throw Napi::TypeError::New(info.Env(), std::string(what) + " must be a string");
  }
  return info[index].As<Napi::String>().Utf8Value();
}

int64_t IntegerArg(const Napi::CallbackInfo& info, size_t index, const char* what, int64_t min, int64_t max) {
  if (info.Length() <= index || !info[index].IsNumber()) {
    throw Napi::TypeError::New(info.Env(), std::string(what) + " must be a number");
  }
  double value = info[index].As<Napi::Number>().DoubleValue();
  if (!std::isfinite(value) || value != std::floor(value) || value < static_cast<double>(min) ||
      value > static_cast<double>(max)) {
    throw Napi::RangeError::New(info.Env(), std::string(what) + " is out of range");
  }
  return static_cast<int64_t>(value);
}

}  // namespace shmq
