// shmq native: a one-shot watch of a file descriptor on the event loop.
//
// Shared by the wake-up FIFOs (doorbell.cc) and peer liveness (process.cc):
// arm() starts a uv_poll for readability; when the fd becomes readable, the
// watch stops and calls its JS callback through MakeCallback, so promise
// continuations run before control returns to libuv.
#pragma once
#include <napi.h>
#include <uv.h>

namespace shmq {

class FdWatch {
 public:
  // takes ownership of fd; `drain`: read and discard what is readable before the
  // callback (a FIFO); `keep_alive`: whether an armed watch holds the loop open
  FdWatch(Napi::Env env, int fd, Napi::Function on_readable, const char* resource, bool drain, bool keep_alive);
  ~FdWatch();
  FdWatch(const FdWatch&) = delete;
  FdWatch& operator=(const FdWatch&) = delete;

  int fd() const { return fd_; }
  bool closed() const { return fd_ < 0; }
  void Arm(Napi::Env env);  // throws ERR_SHMQ_CLOSED when closed; arming twice is one arm
  void Disarm();
  void Close();  // idempotent; safe from inside the callback

 private:
  static void OnReadable(uv_poll_t* handle, int status, int events);
  static void OnEnvCleanup(void* data);

  napi_env env_;
  int fd_;
  bool drain_;
  bool keep_alive_;
  bool armed_ = false;
  uv_poll_t* poll_ = nullptr;  // created on first arm; freed by its close callback
  Napi::FunctionReference on_readable_;
  Napi::AsyncContext* context_ = nullptr;
};

}  // namespace shmq
