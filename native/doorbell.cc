#include "doorbell.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "errors.h"
#include "segment.h"

namespace shmq {

// The FIFO of segment NAME that wakes the consumer is /dev/shm/.shmq-NAME.wake-consumer
// (and .wake-producer for the producer). Segment names never start with '.', so
// these paths cannot collide with a segment.
static std::string DoorbellPath(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = StringArg(info, 0, "name");
  CheckSegmentName(env, name);
  std::string which = StringArg(info, 1, "which");
  if (which != "consumer" && which != "producer") {
    throw Napi::TypeError::New(env, "which must be 'consumer' or 'producer'");
  }
  return "/dev/shm/.shmq-" + name + ".wake-" + which;
}

Napi::Value DoorbellCreate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = DoorbellPath(info);
  mode_t mode = static_cast<mode_t>(IntegerArg(info, 2, "mode", 0, 0777));
  if (mkfifo(path.c_str(), mode) != 0) ThrowErrno(env, "mkfifo", info[0].As<Napi::String>(), errno);
  // the umask must not narrow the mode the caller asked for
  if (chmod(path.c_str(), mode) != 0) {
    int err = errno;
    unlink(path.c_str());
    ThrowErrno(env, "chmod", info[0].As<Napi::String>(), err);
  }
  return env.Undefined();
}

Napi::Value DoorbellUnlink(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = DoorbellPath(info);
  if (unlink(path.c_str()) != 0) ThrowErrno(env, "unlink", info[0].As<Napi::String>(), errno);
  return env.Undefined();
}

Napi::Function Doorbell::Define(Napi::Env env) {
  return DefineClass(env, "Doorbell",
                     {InstanceMethod<&Doorbell::Ring>("ring"), InstanceMethod<&Doorbell::Arm>("arm"),
                      InstanceMethod<&Doorbell::Disarm>("disarm"), InstanceMethod<&Doorbell::Close>("close")});
}

Doorbell::Doorbell(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Doorbell>(info), env_(info.Env()) {
  Napi::Env env = info.Env();
  std::string path = DoorbellPath(info);
  std::string name = info[0].As<Napi::String>();
  int64_t owner = IntegerArg(info, 2, "ownerUid", 0, UINT32_MAX);
  if (info.Length() < 4 || !info[3].IsFunction()) throw Napi::TypeError::New(env, "onRing must be a function");

  // O_RDWR: opening never blocks or fails for want of a peer, and polling never
  // reports a hang-up when the peer closes its end
  int fd = open(path.c_str(), O_RDWR | O_NONBLOCK | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) ThrowErrno(env, "open", name, errno);
  struct stat st;
  if (fstat(fd, &st) != 0) {
    int err = errno;
    close(fd);
    ThrowErrno(env, "fstat", name, err);
  }
  if (!S_ISFIFO(st.st_mode) || st.st_uid != static_cast<uid_t>(owner)) {
    // someone else's file under our name: do not trust its wake-ups
    close(fd);
    ThrowCode(env, "ERR_SHMQ_NOT_SHMQ",
              "'" + path + "' is not the wake-up FIFO of segment '" + name + "' (wrong type or owner)");
  }
  fd_ = fd;
  on_ring_ = Napi::Persistent(info[3].As<Napi::Function>());
  context_ = new Napi::AsyncContext(env, "shmq:doorbell");
  napi_add_env_cleanup_hook(env_, OnEnvCleanup, this);
}

Doorbell::~Doorbell() {
  CloseNow();
  delete context_;
}

void Doorbell::OnEnvCleanup(void* data) {
  Doorbell* self = static_cast<Doorbell*>(data);
  self->CloseNow();
  delete self->context_;
  self->context_ = nullptr;
}

void Doorbell::CloseNow() {
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
  // the async context stays until destruction: close() may be called from
  // inside the onRing callback, which is still running under that context
  on_ring_.Reset();
}

void Doorbell::Drain() {
  char scratch[64];
  while (read(fd_, scratch, sizeof scratch) > 0) {
  }
}

Napi::Value Doorbell::Ring(const Napi::CallbackInfo& info) {
  if (fd_ < 0) return info.Env().Undefined();
  // nonblocking: a FIFO already holding 64 KiB of unread bells wakes its reader anyway
  ssize_t written;
  do {
    written = write(fd_, "", 1);
  } while (written < 0 && errno == EINTR);
  return info.Env().Undefined();
}

Napi::Value Doorbell::Arm(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (fd_ < 0) ThrowCode(env, "ERR_SHMQ_CLOSED", "the doorbell is closed");
  if (armed_) return env.Undefined();
  if (poll_ == nullptr) {
    uv_loop_t* loop = nullptr;
    if (napi_get_uv_event_loop(env, &loop) != napi_ok || loop == nullptr) {
      throw Napi::Error::New(env, "no event loop");
    }
    poll_ = new uv_poll_t;
    int rc = uv_poll_init(loop, poll_, fd_);
    if (rc != 0) {
      delete poll_;
      poll_ = nullptr;
      ThrowErrno(env, "uv_poll_init", "", -rc);
    }
    poll_->data = this;
  }
  int rc = uv_poll_start(poll_, UV_READABLE, OnReadable);
  if (rc != 0) ThrowErrno(env, "uv_poll_start", "", -rc);
  armed_ = true;
  return env.Undefined();
}

Napi::Value Doorbell::Disarm(const Napi::CallbackInfo& info) {
  if (armed_ && poll_ != nullptr) uv_poll_stop(poll_);
  armed_ = false;
  return info.Env().Undefined();
}

Napi::Value Doorbell::Close(const Napi::CallbackInfo& info) {
  CloseNow();
  return info.Env().Undefined();
}

void Doorbell::OnReadable(uv_poll_t* handle, int /*status*/, int /*events*/) {
  Doorbell* self = static_cast<Doorbell*>(handle->data);
  if (self == nullptr || self->fd_ < 0 || !self->armed_ || self->context_ == nullptr) return;
  self->Drain();
  uv_poll_stop(handle);
  self->armed_ = false;
  // one-shot; MakeCallback runs the microtasks the callback queues (promise
  // continuations) before returning, as any Node I/O callback would
  Napi::Env env(self->env_);
  Napi::HandleScope scope(env);
  try {
    self->on_ring_.MakeCallback(env.Global(), {}, *self->context_);
  } catch (const Napi::Error& error) {
    // an exception from the callback is the program's, not ours: report it as uncaught
    napi_fatal_exception(self->env_, error.Value());
  }
}

}  // namespace shmq
