#include "futex.h"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdint>
#include <ctime>

#include "errors.h"

namespace shmq {

// the futex word must lie inside a live (not detached) buffer, 4-byte aligned
static uint32_t* WordArg(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsArrayBuffer()) {
    throw Napi::TypeError::New(env, "buffer must be an ArrayBuffer");
  }
  Napi::ArrayBuffer buffer = info[0].As<Napi::ArrayBuffer>();
  if (buffer.IsDetached()) ThrowCode(env, "ERR_SHMQ_CLOSED", "the segment is closed");
  size_t length = buffer.ByteLength();
  int64_t offset = IntegerArg(info, 1, "byteOffset", 0, INT64_MAX);
  if (offset % 4 != 0 || static_cast<uint64_t>(offset) + 4 > length) {
    throw Napi::RangeError::New(env, "futex word outside the buffer or misaligned");
  }
  uintptr_t address = reinterpret_cast<uintptr_t>(buffer.Data()) + static_cast<uintptr_t>(offset);
  if (address % 4 != 0) throw Napi::RangeError::New(env, "futex word misaligned");
  return reinterpret_cast<uint32_t*>(address);
}

Napi::Value FutexWait(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t* word = WordArg(info);
  // expected is compared with the word as an unsigned 32-bit value; JS passes
  // what it read through an Int32Array, so accept the signed range too
  int64_t expected = IntegerArg(info, 2, "expected", INT32_MIN, UINT32_MAX);
  double timeout_ms = -1;
  if (info.Length() > 3 && !info[3].IsUndefined()) {
    if (!info[3].IsNumber()) throw Napi::TypeError::New(env, "timeout must be a number");
    timeout_ms = info[3].As<Napi::Number>().DoubleValue();
    if (timeout_ms != timeout_ms) throw Napi::RangeError::New(env, "timeout must not be NaN");
  }
  struct timespec relative;
  struct timespec* timeout = nullptr;
  if (timeout_ms >= 0 && timeout_ms < 1e12) {
    relative.tv_sec = static_cast<time_t>(timeout_ms / 1000);
    relative.tv_nsec = static_cast<long>((timeout_ms - relative.tv_sec * 1000.0) * 1e6);
    if (relative.tv_nsec >= 1000000000L) relative.tv_nsec = 999999999L;
    if (relative.tv_nsec < 0) relative.tv_nsec = 0;
    timeout = &relative;
  }
  // shared futex (no FUTEX_PRIVATE_FLAG): the waker is another process
  long rc = syscall(SYS_futex, word, FUTEX_WAIT, static_cast<uint32_t>(expected), timeout, nullptr, 0);
  if (rc == 0) return Napi::Number::New(env, 0);
  switch (errno) {
    case EINTR: return Napi::Number::New(env, 0);  // a signal: the caller re-checks, like a wake-up
    case ETIMEDOUT: return Napi::Number::New(env, 1);
    case EAGAIN: return Napi::Number::New(env, 2);
    default: ThrowErrno(env, "futex_wait", "", errno);
  }
}

Napi::Value FutexWake(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t* word = WordArg(info);
  int64_t count = IntegerArg(info, 2, "count", 1, INT_MAX);
  long rc = syscall(SYS_futex, word, FUTEX_WAKE, static_cast<int>(count), nullptr, nullptr, 0);
  if (rc < 0) ThrowErrno(env, "futex_wake", "", errno);
  return Napi::Number::New(env, static_cast<double>(rc));
}

}  // namespace shmq
