// shmq native: event-loop wake-ups through a named FIFO next to the segment.
//
// Why a FIFO: the waker is another, unrelated process. An eventfd cannot be
// opened by name (it would have to be passed over a Unix socket), and a thread
// blocked in futex wait that posts to the loop costs a second cross-core wake-up
// per message (measured: 65 us round trip against 52-54 us for an fd the loop
// polls directly). A FIFO opened O_RDWR by each side is found by name, polled by
// libuv like a socket, and the waker's write() wakes the loop in one step.
#pragma once
#include <napi.h>
#include <memory>
#include <string>

#include "fdwatch.h"

namespace shmq {

// (segmentName, which: "consumer"|"producer", mode) -> undefined; mkfifo, O_EXCL-like
Napi::Value DoorbellCreate(const Napi::CallbackInfo& info);
// (segmentName, which) -> undefined; throws ENOENT when absent
Napi::Value DoorbellUnlink(const Napi::CallbackInfo& info);

// new Doorbell(segmentName, which, ownerUid, onRing)
//   ring()   wake whoever waits on this FIFO (one byte, never blocks)
//   arm()    call onRing once, on the event loop, when the FIFO is rung; while
//            armed the handle keeps the process alive, and only then
//   disarm() stop waiting (the handle no longer keeps the process alive)
//   close()  release the fd and the handle; idempotent
class Doorbell : public Napi::ObjectWrap<Doorbell> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit Doorbell(const Napi::CallbackInfo& info);

 private:
  Napi::Value Ring(const Napi::CallbackInfo& info);
  Napi::Value Arm(const Napi::CallbackInfo& info);
  Napi::Value Disarm(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);

  std::unique_ptr<FdWatch> watch_;
};

// new DoorbellWriter(segmentName, which, ownerUid): the peer's FIFO, only to ring
// it: no watch, no event-loop handle, no callback (the same checks on opening)
//   ring()   one byte, never blocks; nothing once closed
//   close()  idempotent; the finalizer closes a writer never closed
class DoorbellWriter : public Napi::ObjectWrap<DoorbellWriter> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit DoorbellWriter(const Napi::CallbackInfo& info);
  ~DoorbellWriter() override;

 private:
  Napi::Value Ring(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);

  int fd_ = -1;
};

}  // namespace shmq
