// shmq native: POSIX shared-memory segments mapped into external ArrayBuffers.
#pragma once
#include <napi.h>

#include <string>

namespace shmq {

Napi::Value SegmentCreate(const Napi::CallbackInfo& info);  // (name, size, mode) -> ArrayBuffer
Napi::Value SegmentOpen(const Napi::CallbackInfo& info);    // (name) -> { buffer|null, size, uid, gid, mode }
Napi::Value SegmentUnlink(const Napi::CallbackInfo& info);  // (name) -> undefined
Napi::Value SegmentUnmap(const Napi::CallbackInfo& info);   // (buffer) -> boolean (false: was not mapped)
Napi::Value SegmentSize(const Napi::CallbackInfo& info);    // (buffer) -> current size of the mapped object
Napi::Value SegmentStat(const Napi::CallbackInfo& info);    // (buffer) -> { size, blocks } of the mapped object now
// (buffer, byteOffset, 'take' | 'release' | 'test') -> boolean: the role lock on
// the 8 bytes at byteOffset ('take': false when another open file holds it;
// 'test': whether another open file holds it as a writer)
Napi::Value SegmentRoleLock(const Napi::CallbackInfo& info);
// (buffer, byteOffset, expected: bigint): if the buffer is finalized while still
// mapped, compare-and-clear that 64-bit word (an unclosed endpoint's role)
Napi::Value SegmentClearOnFinalize(const Napi::CallbackInfo& info);

// the largest mapping shmq will make: 1 GiB of ring plus a header, with room to spare
constexpr size_t kMaxMappingBytes = (size_t{1} << 30) + (size_t{1} << 20);
// segment names are validated in JS; native code checks them again and refuses
// anything that could leave /dev/shm
constexpr size_t kMaxNameBytes = 200;

// the most one read() of a SegmentFile returns: a header, with room to spare
constexpr int64_t kMaxReadBytes = 1 << 16;

void CheckSegmentName(Napi::Env env, const std::string& name);

// new SegmentFile(name, writable): /dev/shm/NAME opened but not mapped, so that
// its header can be checked before anything touches its pages. Opening never
// follows a symlink (ELOOP) and never waits for a file lease (EAGAIN).
//   stat()              { size, blocks, uid, gid, mode, regular }, from fstat now
//   read(offset, n)     a Buffer of up to n bytes at offset (pread; short at the end)
//   map(size)           an ArrayBuffer over the whole file, if it is a regular file
//                       of exactly `size` bytes with every page allocated (else
//                       ERR_SHMQ_CORRUPT); needs writable; the fd moves into the mapping
//   roleLocked(offset)  whether a live endpoint holds the role lock at offset (see SegmentRoleLock)
//   close()             idempotent; the finalizer closes a file never closed
class SegmentFile : public Napi::ObjectWrap<SegmentFile> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit SegmentFile(const Napi::CallbackInfo& info);
  ~SegmentFile() override;

 private:
  int OpenFd(Napi::Env env);
  Napi::Value Stat(const Napi::CallbackInfo& info);
  Napi::Value Read(const Napi::CallbackInfo& info);
  Napi::Value Map(const Napi::CallbackInfo& info);
  Napi::Value RoleLocked(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);

  std::string name_;
  bool writable_ = false;
  int fd_ = -1;
};

}  // namespace shmq
