// shmq native: peer liveness through pidfd.
#pragma once
#include <napi.h>

#include <memory>

#include "fdwatch.h"

namespace shmq {

// new ProcessWatch(pid, onExit)
//   arm()    call onExit once, on the event loop, when process `pid` has exited
//            (at once if it already has); never keeps the process alive by itself
//   exited() whether the process has exited (poll(2) on the pidfd, no waiting)
//   disarm(), close()
// Throws ESRCH when there is no such process, ENOSYS where the kernel has no
// pidfd_open (before Linux 5.3): the caller then polls /proc instead.
class ProcessWatch : public Napi::ObjectWrap<ProcessWatch> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit ProcessWatch(const Napi::CallbackInfo& info);

 private:
  Napi::Value Arm(const Napi::CallbackInfo& info);
  Napi::Value Disarm(const Napi::CallbackInfo& info);
  Napi::Value Exited(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);

  std::unique_ptr<FdWatch> watch_;
};

}  // namespace shmq
