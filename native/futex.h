// shmq native: shared (cross-process) futex wait and wake on a word of a mapping.
#pragma once
#include <napi.h>

namespace shmq {

// (buffer, byteOffset, expected, timeoutMs) -> 0 woken (or spurious), 1 timed out, 2 value differed
// blocks the calling thread: for worker threads and synchronous code only
Napi::Value FutexWait(const Napi::CallbackInfo& info);
// (buffer, byteOffset, count) -> number of waiters woken
Napi::Value FutexWake(const Napi::CallbackInfo& info);

}  // namespace shmq
