// shmq native: asymmetric fences with membarrier(2).
//
// Publishing a position with a plain store (x64: release, no fence) is twice as
// fast as a sequentially consistent one, but the publish/check-waiting pair then
// lacks the store-load fence a Dekker handshake needs. The parking side, which is
// about to sleep anyway, supplies it: after announcing itself it runs
// MEMBARRIER_CMD_GLOBAL_EXPEDITED, a full barrier on every CPU running a
// registered process. So publishers register, and parkers fence.
#pragma once
#include <napi.h>

namespace shmq {

// () -> { canFence: boolean, registered: boolean }
// canFence: this process may issue global expedited barriers (parkers do);
// registered: barriers issued by others reach this process (plain publishing is safe)
Napi::Value MembarrierRegister(const Napi::CallbackInfo& info);
// () -> undefined; a full memory barrier on every CPU running a registered process
Napi::Value MembarrierFence(const Napi::CallbackInfo& info);

}  // namespace shmq
