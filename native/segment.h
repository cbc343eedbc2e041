// shmq native: POSIX shared-memory segments mapped into external ArrayBuffers.
#pragma once
#include <napi.h>

namespace shmq {

Napi::Value SegmentCreate(const Napi::CallbackInfo& info);  // (name, size, mode) -> ArrayBuffer
Napi::Value SegmentOpen(const Napi::CallbackInfo& info);    // (name) -> { buffer|null, size, uid, gid, mode }
Napi::Value SegmentUnlink(const Napi::CallbackInfo& info);  // (name) -> undefined
Napi::Value SegmentUnmap(const Napi::CallbackInfo& info);   // (buffer) -> boolean (false: was not mapped)
Napi::Value SegmentSize(const Napi::CallbackInfo& info);
// (buffer, byteOffset, expected: bigint): if the buffer is finalized while still
// mapped, compare-and-clear that 64-bit word (an unclosed endpoint's role)
Napi::Value SegmentClearOnFinalize(const Napi::CallbackInfo& info);    // (buffer) -> current size of the mapped object

// the largest mapping shmq will make: 1 GiB of ring plus a header, with room to spare
constexpr size_t kMaxMappingBytes = (size_t{1} << 30) + (size_t{1} << 20);
// segment names are validated in JS; native code checks them again and refuses
// anything that could leave /dev/shm
constexpr size_t kMaxNameBytes = 200;

void CheckSegmentName(Napi::Env env, const std::string& name);

}  // namespace shmq
