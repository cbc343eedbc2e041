#include "errors.h"

#include <cerrno>
#include <cmath>
#include <cstring>

namespace shmq {

static const char* ErrnoName(int err) {
  switch (err) {
    case ENOENT: return "ENOENT";
    case EEXIST: return "EEXIST";
    case EACCES: return "EACCES";
    case EPERM: return "EPERM";
    case ENOSPC: return "ENOSPC";
    case ENOMEM: return "ENOMEM";
    case EMFILE: return "EMFILE";
    case ENFILE: return "ENFILE";
    case EINVAL: return "EINVAL";
    case ENAMETOOLONG: return "ENAMETOOLONG";
    case EFBIG: return "EFBIG";
    case EBADF: return "EBADF";
    case ELOOP: return "ELOOP";
    case ENXIO: return "ENXIO";
    case EAGAIN: return "EAGAIN";
    case EINTR: return "EINTR";
    case ENOSYS: return "ENOSYS";
    case ESRCH: return "ESRCH";
    case EOPNOTSUPP: return "EOPNOTSUPP";
    default: return "EIO";
  }
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
