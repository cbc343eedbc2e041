// shmq native errors: every OS failure becomes a JS Error with `code` (the errno
// name, e.g. "ENOENT"), `errno`, `syscall` and, when one is involved, `segment`.
#pragma once
#include <napi.h>
#include <string>

namespace shmq {

// throws a Napi::Error for the current errno (or `err` when given)
[[noreturn]] void ThrowErrno(Napi::Env env, const char* syscall, const std::string& segment, int err);

// throws a Napi::Error with a shmq code (ERR_SHMQ_*), for failures that are not an errno
[[noreturn]] void ThrowCode(Napi::Env env, const char* code, const std::string& message);

// argument helpers: each validates the JS value and throws TypeError/RangeError on misuse
std::string StringArg(const Napi::CallbackInfo& info, size_t index, const char* what);
int64_t IntegerArg(const Napi::CallbackInfo& info, size_t index, const char* what, int64_t min, int64_t max);

}  // namespace shmq
