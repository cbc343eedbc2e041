#include "process.h"

#include <poll.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <climits>

#include "errors.h"

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

namespace shmq {

Napi::Function ProcessWatch::Define(Napi::Env env) {
  return DefineClass(env, "ProcessWatch",
                     {InstanceMethod<&ProcessWatch::Arm>("arm"), InstanceMethod<&ProcessWatch::Disarm>("disarm"),
                      InstanceMethod<&ProcessWatch::Exited>("exited"),
                      InstanceMethod<&ProcessWatch::Close>("close")});
}

ProcessWatch::ProcessWatch(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ProcessWatch>(info) {
  Napi::Env env = info.Env();
  int64_t pid = IntegerArg(info, 0, "pid", 1, INT_MAX);
  if (info.Length() < 2 || !info[1].IsFunction()) throw Napi::TypeError::New(env, "onExit must be a function");
  long fd = syscall(SYS_pidfd_open, static_cast<pid_t>(pid), 0);
  if (fd < 0) ThrowErrno(env, "pidfd_open", "", errno);
  // a pidfd becomes readable when the process exits; it is never read
  watch_ = std::make_unique<FdWatch>(env, static_cast<int>(fd), info[1].As<Napi::Function>(), "shmq:process-watch", false, false);
}

Napi::Value ProcessWatch::Arm(const Napi::CallbackInfo& info) {
  watch_->Arm(info.Env());
  return info.Env().Undefined();
}

Napi::Value ProcessWatch::Disarm(const Napi::CallbackInfo& info) {
  watch_->Disarm();
  return info.Env().Undefined();
}

Napi::Value ProcessWatch::Exited(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (watch_->closed()) ThrowCode(env, "ERR_SHMQ_CLOSED", "the watch is closed");
  struct pollfd entry = {watch_->fd(), POLLIN, 0};
  int rc;
  do {
    rc = poll(&entry, 1, 0);
  } while (rc < 0 && errno == EINTR);
  if (rc < 0) ThrowErrno(env, "poll", "", errno);
  return Napi::Boolean::New(env, rc > 0);
}

Napi::Value ProcessWatch::Close(const Napi::CallbackInfo& info) {
  watch_->Close();
  return info.Env().Undefined();
}

}  // namespace shmq
