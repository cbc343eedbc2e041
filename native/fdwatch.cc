#include "fdwatch.h"

#include <unistd.h>

#include "errors.h"

namespace shmq {

FdWatch::FdWatch(Napi::Env env, int fd, Napi::Function on_readable, const char* resource, bool drain, bool keep_alive)
    : env_(env), fd_(fd), drain_(drain), keep_alive_(keep_alive) {
  // the watch owns fd from here: a constructor that throws runs no destructor
  try {
    on_readable_ = Napi::Persistent(on_readable);
    context_ = new Napi::AsyncContext(env, resource);
  } catch (...) {
    close(fd_);
    fd_ = -1;
    throw;
  }
  napi_add_env_cleanup_hook(env_, OnEnvCleanup, this);
}

FdWatch::~FdWatch() {
  Close();
  delete context_;
}

void FdWatch::OnEnvCleanup(void* data) {
  FdWatch* self = static_cast<FdWatch*>(data);
  self->Close();
  delete self->context_;
  self->context_ = nullptr;
}

void FdWatch::Close() {
  if (fd_ < 0) return;
  if (poll_ != nullptr) {
    // uv_close stops the handle and drops the fd from epoll at once; only the
    // free waits for the close callback, so closing the fd right after is safe
    uv_close(reinterpret_cast<uv_handle_t*>(poll_), [](uv_handle_t* handle) { delete reinterpret_cast<uv_poll_t*>(handle); });
    poll_ = nullptr;
  }
  close(fd_);
  fd_ = -1;
  armed_ = false;
  napi_remove_env_cleanup_hook(env_, OnEnvCleanup, this);
  // the async context stays until destruction: Close() may be called from
  // inside the callback, which is still running under that context
  on_readable_.Reset();
}

void FdWatch::Arm(Napi::Env env) {
  if (fd_ < 0) ThrowCode(env, "ERR_SHMQ_CLOSED", "the watch is closed");
  if (armed_) return;
  if (poll_ == nullptr) {
    uv_loop_t* loop = nullptr;
    if (napi_get_uv_event_loop(env, &loop) != napi_ok || loop == nullptr) throw Napi::Error::New(env, "no event loop");
    poll_ = new uv_poll_t;
    int rc = uv_poll_init(loop, poll_, fd_);
    if (rc != 0) {
      delete poll_;
      poll_ = nullptr;
      ThrowErrno(env, "uv_poll_init", "", -rc);
    }
    poll_->data = this;
    if (!keep_alive_) uv_unref(reinterpret_cast<uv_handle_t*>(poll_));
  }
  int rc = uv_poll_start(poll_, UV_READABLE, OnReadable);
  if (rc != 0) ThrowErrno(env, "uv_poll_start", "", -rc);
  armed_ = true;
}

void FdWatch::Disarm() {
  if (armed_ && poll_ != nullptr) uv_poll_stop(poll_);
  armed_ = false;
}

void FdWatch::OnReadable(uv_poll_t* handle, int /*status*/, int /*events*/) {
  FdWatch* self = static_cast<FdWatch*>(handle->data);
  if (self == nullptr || self->fd_ < 0 || !self->armed_ || self->context_ == nullptr) return;
  if (self->drain_) {
    char scratch[64];
    while (read(self->fd_, scratch, sizeof scratch) > 0) {
    }
  }
  uv_poll_stop(handle);
  self->armed_ = false;
  Napi::Env env(self->env_);
  Napi::HandleScope scope(env);
  try {
    self->on_readable_.MakeCallback(env.Global(), {}, *self->context_);
  } catch (const Napi::Error& error) {
    // an exception from the callback is the program's, not ours: report it as uncaught
    napi_fatal_exception(self->env_, error.Value());
  }
}

}  // namespace shmq
