// shmq native addon: a flat list of OS calls. JavaScript owns the protocol, the
// state machines and the layout; this layer maps memory, waits and wakes.
#include <napi.h>
#include <sys/types.h>
#include <unistd.h>

#include <climits>
#include <cstdint>

#include "crc32c.h"
#include "doorbell.h"
#include "futex.h"
#include "membarrier.h"
#include "process.h"
#include "segment.h"

namespace shmq {

// sizes this layer relies on; lib/native.ts compares them with lib/layout.ts at load
static Napi::Object Constants(Napi::Env env) {
  Napi::Object constants = Napi::Object::New(env);
  constants.Set("futexWordBytes", Napi::Number::New(env, sizeof(uint32_t)));
  constants.Set("pidBytes", Napi::Number::New(env, sizeof(pid_t)));
  constants.Set("pageBytes", Napi::Number::New(env, static_cast<double>(sysconf(_SC_PAGESIZE))));
  constants.Set("maxNameBytes", Napi::Number::New(env, static_cast<double>(kMaxNameBytes)));
  constants.Set("maxMappingBytes", Napi::Number::New(env, static_cast<double>(kMaxMappingBytes)));
  return constants;
}

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("segmentCreate", Napi::Function::New<SegmentCreate>(env, "segmentCreate"));
  exports.Set("segmentOpen", Napi::Function::New<SegmentOpen>(env, "segmentOpen"));
  exports.Set("segmentUnlink", Napi::Function::New<SegmentUnlink>(env, "segmentUnlink"));
  exports.Set("segmentClearOnFinalize", Napi::Function::New<SegmentClearOnFinalize>(env, "segmentClearOnFinalize"));
  exports.Set("segmentRoleLock", Napi::Function::New<SegmentRoleLock>(env, "segmentRoleLock"));
  exports.Set("segmentSize", Napi::Function::New<SegmentSize>(env, "segmentSize"));
  exports.Set("segmentStat", Napi::Function::New<SegmentStat>(env, "segmentStat"));
  exports.Set("SegmentFile", SegmentFile::Define(env));
  exports.Set("segmentUnmap", Napi::Function::New<SegmentUnmap>(env, "segmentUnmap"));
  exports.Set("futexWait", Napi::Function::New<FutexWait>(env, "futexWait"));
  exports.Set("futexWake", Napi::Function::New<FutexWake>(env, "futexWake"));
  exports.Set("membarrierRegister", Napi::Function::New<MembarrierRegister>(env, "membarrierRegister"));
  exports.Set("membarrierFence", Napi::Function::New<MembarrierFence>(env, "membarrierFence"));
  exports.Set("doorbellCreate", Napi::Function::New<DoorbellCreate>(env, "doorbellCreate"));
  exports.Set("doorbellUnlink", Napi::Function::New<DoorbellUnlink>(env, "doorbellUnlink"));
  exports.Set("Doorbell", Doorbell::Define(env));
  exports.Set("DoorbellWriter", DoorbellWriter::Define(env));
  exports.Set("ProcessWatch", ProcessWatch::Define(env));
  exports.Set("crc32c", Napi::Function::New<Crc32c>(env, "crc32c"));
  exports.Set("crc32cHardware", Napi::Boolean::New(env, Crc32cHardware()));
  exports.Set("constants", Constants(env));
  return exports;
}

}  // namespace shmq

static Napi::Object InitShmq(Napi::Env env, Napi::Object exports) { return shmq::Init(env, exports); }

NODE_API_MODULE(shmq, InitShmq)
