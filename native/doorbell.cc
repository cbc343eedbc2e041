#include "doorbell.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "errors.h"
#include "segment.h"

namespace shmq {

// The FIFO that wakes slot S of segment NAME is /dev/shm/.shmq-NAME.wake-SUFFIX, with
// the slot's suffix from lib/layout.ts ("consumer", "producer", "producer-7"). Segment
// names never start with '.', so these paths cannot collide with a segment.
static constexpr size_t kMaxSuffixBytes = 24;

static std::string DoorbellPath(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = StringArg(info, 0, "name");
  CheckSegmentName(env, name);
  std::string suffix = StringArg(info, 1, "suffix");
  // a suffix names a file next to the segment: lower-case letters, digits and '-', a letter first
  bool valid = !suffix.empty() && suffix.size() <= kMaxSuffixBytes && suffix[0] >= 'a' && suffix[0] <= 'z';
  for (char c : suffix) valid = valid && ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-');
  if (!valid) throw Napi::TypeError::New(env, "suffix must be 1 to 24 of [a-z0-9-], starting with a letter");
  return "/dev/shm/.shmq-" + name + ".wake-" + suffix;
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

// opens the FIFO at `path` and checks that it is a FIFO owned by `owner`
// O_RDWR: opening never blocks or fails for want of a peer, and polling never
// reports a hang-up when the peer closes its end
static int OpenFifo(Napi::Env env, const std::string& path, const std::string& name, int64_t owner) {
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
  return fd;
}

// one byte, nonblocking: a FIFO already holding 64 KiB of unread bells wakes its reader anyway
static void RingFd(int fd) {
  ssize_t written;
  do {
    written = write(fd, "", 1);
  } while (written < 0 && errno == EINTR);
}

Doorbell::Doorbell(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Doorbell>(info) {
  Napi::Env env = info.Env();
  std::string path = DoorbellPath(info);
  std::string name = info[0].As<Napi::String>();
  int64_t owner = IntegerArg(info, 2, "ownerUid", 0, UINT32_MAX);
  if (info.Length() < 4 || !info[3].IsFunction()) throw Napi::TypeError::New(env, "onRing must be a function");
  int fd = OpenFifo(env, path, name, owner);
  watch_ = std::make_unique<FdWatch>(env, fd, info[3].As<Napi::Function>(), "shmq:doorbell", true, true);
}

Napi::Function DoorbellWriter::Define(Napi::Env env) {
  return DefineClass(env, "DoorbellWriter",
                     {InstanceMethod<&DoorbellWriter::Ring>("ring"), InstanceMethod<&DoorbellWriter::Close>("close")});
}

DoorbellWriter::DoorbellWriter(const Napi::CallbackInfo& info) : Napi::ObjectWrap<DoorbellWriter>(info) {
  Napi::Env env = info.Env();
  std::string path = DoorbellPath(info);
  std::string name = info[0].As<Napi::String>();
  int64_t owner = IntegerArg(info, 2, "ownerUid", 0, UINT32_MAX);
  fd_ = OpenFifo(env, path, name, owner);
}

DoorbellWriter::~DoorbellWriter() {
  if (fd_ >= 0) close(fd_);
}

Napi::Value DoorbellWriter::Ring(const Napi::CallbackInfo& info) {
  if (fd_ >= 0) RingFd(fd_);
  return info.Env().Undefined();
}

Napi::Value DoorbellWriter::Close(const Napi::CallbackInfo& info) {
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
  return info.Env().Undefined();
}

Napi::Value Doorbell::Ring(const Napi::CallbackInfo& info) {
  if (!watch_->closed()) RingFd(watch_->fd());
  return info.Env().Undefined();
}

Napi::Value Doorbell::Arm(const Napi::CallbackInfo& info) {
  watch_->Arm(info.Env());
  return info.Env().Undefined();
}

Napi::Value Doorbell::Disarm(const Napi::CallbackInfo& info) {
  watch_->Disarm();
  return info.Env().Undefined();
}

Napi::Value Doorbell::Close(const Napi::CallbackInfo& info) {
  watch_->Close();
  return info.Env().Undefined();
}

}  // namespace shmq
