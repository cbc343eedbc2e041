#include "membarrier.h"

#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

#include "errors.h"

namespace shmq {

static long Membarrier(int command) { return syscall(SYS_membarrier, command, 0, 0); }

Napi::Value MembarrierRegister(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  long supported = Membarrier(MEMBARRIER_CMD_QUERY);
  bool can_fence = supported > 0 && (supported & MEMBARRIER_CMD_GLOBAL_EXPEDITED) != 0;
  bool registered = can_fence && (supported & MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED) != 0 &&
                    Membarrier(MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED) == 0;
  Napi::Object result = Napi::Object::New(env);
  result.Set("canFence", Napi::Boolean::New(env, can_fence));
  result.Set("registered", Napi::Boolean::New(env, registered));
  return result;
}

Napi::Value MembarrierFence(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (Membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED) != 0) ThrowErrno(env, "membarrier", "", errno);
  return env.Undefined();
}

}  // namespace shmq
