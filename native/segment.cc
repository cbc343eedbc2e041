#include "segment.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <mutex>
#include <unordered_map>
#include <utility>
#include <vector>

#include "errors.h"

namespace shmq {

// One live mapping. The external ArrayBuffer's finalizer owns this struct; an
// explicit unmap detaches the buffer and unmaps early but leaves the struct for
// the finalizer, which runs later (at GC or environment teardown) and must then
// not unmap again: by that time the address may belong to a newer mapping.
struct Mapping {
  void* address;
  size_t length;
  int fd;  // kept open to check the object's size later (another process may shrink it)
  bool unmapped;
  // 64-bit words to compare-and-clear if the buffer is finalized while still
  // mapped: an endpoint that was never closed (a worker thread that ended, an
  // object collected) gives up its role. (byte offset, expected value)
  std::vector<std::pair<size_t, uint64_t>> clear_on_finalize;
};

static void Unmap(Mapping* mapping) {
  munmap(mapping->address, mapping->length);
  close(mapping->fd);
  mapping->unmapped = true;
}

// address -> live mapping, so that unmap(buffer) can find the struct. Shared by
// every environment (worker threads) of the process, hence the lock.
static std::mutex registry_lock;
static std::unordered_map<void*, Mapping*> registry;

static void FinalizeMapping(napi_env /*env*/, void* /*data*/, void* hint) {
  Mapping* mapping = static_cast<Mapping*>(hint);
  {
    std::lock_guard<std::mutex> guard(registry_lock);
    if (!mapping->unmapped) {
      auto found = registry.find(mapping->address);
      if (found != registry.end() && found->second == mapping) registry.erase(found);
      // only if the object still spans the word: a shrunk file would fault
      struct stat st;
      bool intact = fstat(mapping->fd, &st) == 0 && static_cast<size_t>(st.st_size) >= mapping->length;
      for (const auto& [offset, expected] : mapping->clear_on_finalize) {
        if (!intact) break;
        uint64_t value = expected;
        __atomic_compare_exchange_n(reinterpret_cast<uint64_t*>(static_cast<char*>(mapping->address) + offset), &value, 0,
                                    false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
      }
      Unmap(mapping);
    }
  }
  delete mapping;
}

// takes ownership of the mapping and of fd
static Napi::ArrayBuffer WrapMapping(Napi::Env env, void* address, size_t length, int fd) {
  Mapping* mapping = new Mapping{address, length, fd, false, {}};
  napi_value result;
  napi_status status =
      napi_create_external_arraybuffer(env, address, length, FinalizeMapping, mapping, &result);
  if (status != napi_ok) {
    Unmap(mapping);
    delete mapping;
    if (status == napi_no_external_buffers_allowed) {
      ThrowCode(env, "ERR_SHMQ_UNSUPPORTED",
                "this runtime forbids external ArrayBuffers (e.g. Electron's V8 memory cage), "
                "so shared memory cannot be mapped into JavaScript");
    }
    throw Napi::Error::New(env, "napi_create_external_arraybuffer failed");
  }
  std::lock_guard<std::mutex> guard(registry_lock);
  registry[address] = mapping;
  return Napi::ArrayBuffer(env, result);
}

void CheckSegmentName(Napi::Env env, const std::string& name) {
  if (name.empty() || name.size() > kMaxNameBytes || name.find('/') != std::string::npos ||
      name.find('\0') != std::string::npos || name[0] == '.') {
    throw Napi::TypeError::New(env, "invalid segment name");
  }
}

Napi::Value SegmentCreate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = StringArg(info, 0, "name");
  CheckSegmentName(env, name);
  size_t size = static_cast<size_t>(IntegerArg(info, 1, "size", 1, kMaxMappingBytes));
  mode_t mode = static_cast<mode_t>(IntegerArg(info, 2, "mode", 0, 0777));
  std::string path = "/" + name;

  int fd = shm_open(path.c_str(), O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, mode);
  if (fd < 0) ThrowErrno(env, "shm_open", name, errno);

  const char* failed = nullptr;
  int err = 0;
  void* address = MAP_FAILED;
  // the umask must not narrow the mode the caller asked for
  if (fchmod(fd, mode) != 0) {
    failed = "fchmod", err = errno;
  } else if (ftruncate(fd, static_cast<off_t>(size)) != 0) {
    failed = "ftruncate", err = errno;
  } else if ((err = posix_fallocate(fd, 0, static_cast<off_t>(size))) != 0) {
    // reserve every page now: a full /dev/shm is ENOSPC here, not SIGBUS later
    failed = "posix_fallocate";
  } else {
    address = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (address == MAP_FAILED) failed = "mmap", err = errno;
  }
  if (failed != nullptr) {
    close(fd);
    shm_unlink(path.c_str());
    ThrowErrno(env, failed, name, err);
  }
  try {
    return WrapMapping(env, address, size, fd);
  } catch (...) {
    // WrapMapping unmapped and closed it; the name is ours (O_EXCL): give it back,
    // or the next create fails with EEXIST
    shm_unlink(path.c_str());
    throw;
  }
}

// O_NONBLOCK: a file lease another process holds makes the open fail with EAGAIN
// at once instead of blocking for the lease-break time (45 s by default);
// O_NOFOLLOW: a symlink planted under the name is ELOOP
static int OpenSegmentFd(const std::string& name, bool writable) {
  std::string path = "/" + name;
  return shm_open(path.c_str(), (writable ? O_RDWR : O_RDONLY) | O_NONBLOCK | O_CLOEXEC | O_NOFOLLOW, 0);
}

// every page of the file exists: touching a page of a sparse file (or one with a
// punched hole) allocates it, and when /dev/shm is full that is SIGBUS. shmq's
// creator reserves every page (posix_fallocate), so a real segment passes.
static bool FullyAllocated(const struct stat& st) {
  return static_cast<uint64_t>(st.st_blocks) * 512 >= static_cast<uint64_t>(st.st_size);
}

static Napi::Object StatObject(Napi::Env env, const struct stat& st) {
  Napi::Object result = Napi::Object::New(env);
  result.Set("size", Napi::Number::New(env, static_cast<double>(st.st_size)));
  result.Set("blocks", Napi::Number::New(env, static_cast<double>(st.st_blocks)));
  result.Set("uid", Napi::Number::New(env, st.st_uid));
  result.Set("gid", Napi::Number::New(env, st.st_gid));
  result.Set("mode", Napi::Number::New(env, st.st_mode & 07777));
  result.Set("regular", Napi::Boolean::New(env, S_ISREG(st.st_mode)));
  return result;
}

// maps all of fd read-write after checking that it is a regular, fully allocated
// file of exactly `size` bytes; on success the mapping owns fd, on failure the caller does
static void* MapChecked(Napi::Env env, const std::string& name, int fd, size_t size) {
  struct stat st;
  if (fstat(fd, &st) != 0) ThrowErrno(env, "fstat", name, errno);
  if (!S_ISREG(st.st_mode) || st.st_size <= 0 || static_cast<uint64_t>(st.st_size) != size) {
    ThrowCode(env, "ERR_SHMQ_CORRUPT", "'/dev/shm/" + name + "' changed size before it could be mapped");
  }
  if (!FullyAllocated(st)) {
    ThrowCode(env, "ERR_SHMQ_CORRUPT", "'/dev/shm/" + name + "' has unallocated pages (a sparse file or a punched hole): mapping it could crash this process with SIGBUS");
  }
  void* address = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (address == MAP_FAILED) ThrowErrno(env, "mmap", name, errno);
  return address;
}

Napi::Value SegmentOpen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = StringArg(info, 0, "name");
  CheckSegmentName(env, name);

  int fd = OpenSegmentFd(name, true);
  if (fd < 0) ThrowErrno(env, "shm_open", name, errno);
  struct stat st;
  if (fstat(fd, &st) != 0) {
    int err = errno;
    close(fd);
    ThrowErrno(env, "fstat", name, err);
  }
  Napi::Object result = StatObject(env, st);
  if (!S_ISREG(st.st_mode) || st.st_size <= 0 || static_cast<size_t>(st.st_size) > kMaxMappingBytes) {
    // empty: the creator has not sized it yet; too large or odd: not ours to map.
    // JS decides which error that is.
    close(fd);
    result.Set("buffer", env.Null());
    return result;
  }
  size_t size = static_cast<size_t>(st.st_size);
  void* address;
  try {
    address = MapChecked(env, name, fd, size);
  } catch (...) {
    close(fd);
    throw;
  }
  result.Set("buffer", WrapMapping(env, address, size, fd));
  return result;
}

// Role locks: an attached endpoint holds an open-file-description write lock on
// the 8 bytes of its owner word, taken through the mapping's fd. The kernel drops
// it when the endpoint closes the segment or its process dies, however it dies,
// and nothing written into the mapping can forge or clear it: it, not the owner
// word, says whether a role is held by a live process.
static bool RoleLock(Napi::Env env, int fd, int64_t offset, const std::string& action) {
  struct flock lock = {};
  lock.l_whence = SEEK_SET;
  lock.l_start = static_cast<off_t>(offset);
  lock.l_len = 8;
  if (action == "test") {
    // a read-lock probe conflicts only with write locks: a process that can merely
    // read the segment (and so can take only read locks) cannot fake a live owner
    lock.l_type = F_RDLCK;
    if (fcntl(fd, F_OFD_GETLK, &lock) != 0) ThrowErrno(env, "fcntl(F_OFD_GETLK)", "", errno);
    return lock.l_type == F_WRLCK;
  }
  lock.l_type = action == "take" ? F_WRLCK : F_UNLCK;
  if (fcntl(fd, F_OFD_SETLK, &lock) == 0) return true;
  if (errno == EAGAIN || errno == EACCES) return false;  // held through another open file
  ThrowErrno(env, "fcntl(F_OFD_SETLK)", "", errno);
  return false;
}

Napi::Function SegmentFile::Define(Napi::Env env) {
  return DefineClass(env, "SegmentFile",
                     {InstanceMethod<&SegmentFile::Stat>("stat"), InstanceMethod<&SegmentFile::Read>("read"),
                      InstanceMethod<&SegmentFile::Map>("map"), InstanceMethod<&SegmentFile::RoleLocked>("roleLocked"),
                      InstanceMethod<&SegmentFile::Close>("close")});
}

SegmentFile::SegmentFile(const Napi::CallbackInfo& info) : Napi::ObjectWrap<SegmentFile>(info) {
  Napi::Env env = info.Env();
  name_ = StringArg(info, 0, "name");
  CheckSegmentName(env, name_);
  if (info.Length() < 2 || !info[1].IsBoolean()) throw Napi::TypeError::New(env, "writable must be a boolean");
  writable_ = info[1].As<Napi::Boolean>().Value();
  fd_ = OpenSegmentFd(name_, writable_);
  if (fd_ < 0) ThrowErrno(env, "shm_open", name_, errno);
}

SegmentFile::~SegmentFile() {
  if (fd_ >= 0) close(fd_);
}

int SegmentFile::OpenFd(Napi::Env env) {
  if (fd_ < 0) ThrowCode(env, "ERR_SHMQ_CLOSED", "the segment file is closed");
  return fd_;
}

Napi::Value SegmentFile::Stat(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  struct stat st;
  if (fstat(OpenFd(env), &st) != 0) ThrowErrno(env, "fstat", name_, errno);
  return StatObject(env, st);
}

Napi::Value SegmentFile::Read(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = OpenFd(env);
  int64_t offset = IntegerArg(info, 0, "offset", 0, static_cast<int64_t>(kMaxMappingBytes));
  size_t length = static_cast<size_t>(IntegerArg(info, 1, "length", 0, kMaxReadBytes));
  Napi::Buffer<uint8_t> bytes = Napi::Buffer<uint8_t>::New(env, length);
  // pread, never a mapping: reading a hole gives zeros and cannot fault
  size_t done = 0;
  while (done < length) {
    ssize_t got = pread(fd, bytes.Data() + done, length - done, static_cast<off_t>(offset + done));
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) ThrowErrno(env, "pread", name_, errno);
    if (got == 0) break;  // end of file
    done += static_cast<size_t>(got);
  }
  return Napi::Buffer<uint8_t>::Copy(env, bytes.Data(), done);
}

Napi::Value SegmentFile::Map(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = OpenFd(env);
  if (!writable_) throw Napi::TypeError::New(env, "the segment file was opened read-only");
  size_t size = static_cast<size_t>(IntegerArg(info, 0, "size", 1, kMaxMappingBytes));
  void* address = MapChecked(env, name_, fd, size);
  fd_ = -1;  // the mapping owns it now (and closes it, even if wrapping fails)
  return WrapMapping(env, address, size, fd);
}

Napi::Value SegmentFile::RoleLocked(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = OpenFd(env);
  int64_t offset = IntegerArg(info, 0, "byteOffset", 0, static_cast<int64_t>(kMaxMappingBytes));
  if (offset % 8 != 0) throw Napi::RangeError::New(env, "byteOffset must be 8-byte aligned");
  return Napi::Boolean::New(env, RoleLock(env, fd, offset, "test"));
}

Napi::Value SegmentFile::Close(const Napi::CallbackInfo& info) {
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
  return info.Env().Undefined();
}

Napi::Value SegmentUnlink(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = StringArg(info, 0, "name");
  CheckSegmentName(env, name);
  std::string path = "/" + name;
  if (shm_unlink(path.c_str()) != 0) ThrowErrno(env, "shm_unlink", name, errno);
  return env.Undefined();
}

Napi::Value SegmentUnmap(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsArrayBuffer()) {
    throw Napi::TypeError::New(env, "buffer must be an ArrayBuffer");
  }
  Napi::ArrayBuffer buffer = info[0].As<Napi::ArrayBuffer>();
  if (buffer.IsDetached()) return Napi::Boolean::New(env, false);
  void* address = buffer.Data();
  Mapping* mapping = nullptr;
  {
    std::lock_guard<std::mutex> guard(registry_lock);
    auto found = registry.find(address);
    if (found == registry.end() || found->second->length != buffer.ByteLength()) {
      return Napi::Boolean::New(env, false);  // not a mapping of ours
    }
    mapping = found->second;
    registry.erase(found);
  }
  // detach first: from here on every view of this buffer has length 0, so no
  // JS code can reach the pages we are about to unmap
  buffer.Detach();
  std::lock_guard<std::mutex> guard(registry_lock);
  Unmap(mapping);
  return Napi::Boolean::New(env, true);
}

Napi::Value SegmentClearOnFinalize(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[0].IsArrayBuffer() || !info[2].IsBigInt()) {
    throw Napi::TypeError::New(env, "expected (buffer, byteOffset, bigint)");
  }
  Napi::ArrayBuffer buffer = info[0].As<Napi::ArrayBuffer>();
  if (buffer.IsDetached()) ThrowCode(env, "ERR_SHMQ_CLOSED", "the segment is closed");
  int64_t offset = IntegerArg(info, 1, "byteOffset", 0, INT64_MAX);
  bool lossless = false;
  uint64_t expected = info[2].As<Napi::BigInt>().Uint64Value(&lossless);
  if (!lossless) throw Napi::RangeError::New(env, "value must fit 64 bits");
  std::lock_guard<std::mutex> guard(registry_lock);
  auto found = registry.find(buffer.Data());
  if (found == registry.end()) throw Napi::TypeError::New(env, "buffer is not a mapped segment");
  if (offset % 8 != 0 || static_cast<uint64_t>(offset) + 8 > found->second->length) {
    throw Napi::RangeError::New(env, "word outside the mapping or misaligned");
  }
  found->second->clear_on_finalize.emplace_back(static_cast<size_t>(offset), expected);
  return env.Undefined();
}

static struct stat MappingStat(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsArrayBuffer()) {
    throw Napi::TypeError::New(env, "buffer must be an ArrayBuffer");
  }
  Napi::ArrayBuffer buffer = info[0].As<Napi::ArrayBuffer>();
  if (buffer.IsDetached()) ThrowCode(env, "ERR_SHMQ_CLOSED", "the segment is closed");
  std::lock_guard<std::mutex> guard(registry_lock);
  auto found = registry.find(buffer.Data());
  if (found == registry.end()) throw Napi::TypeError::New(env, "buffer is not a mapped segment");
  struct stat st;
  if (fstat(found->second->fd, &st) != 0) ThrowErrno(env, "fstat", "", errno);
  return st;
}

static std::string RoleLockAction(const Napi::CallbackInfo& info, size_t index) {
  std::string action = StringArg(info, index, "action");
  if (action != "take" && action != "release" && action != "test") {
    throw Napi::TypeError::New(info.Env(), "action must be 'take', 'release' or 'test'");
  }
  return action;
}

Napi::Value SegmentRoleLock(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[0].IsArrayBuffer()) throw Napi::TypeError::New(env, "expected (buffer, byteOffset, action)");
  Napi::ArrayBuffer buffer = info[0].As<Napi::ArrayBuffer>();
  if (buffer.IsDetached()) ThrowCode(env, "ERR_SHMQ_CLOSED", "the segment is closed");
  int64_t offset = IntegerArg(info, 1, "byteOffset", 0, INT64_MAX);
  std::string action = RoleLockAction(info, 2);
  std::lock_guard<std::mutex> guard(registry_lock);
  auto found = registry.find(buffer.Data());
  if (found == registry.end()) throw Napi::TypeError::New(env, "buffer is not a mapped segment");
  if (offset % 8 != 0 || static_cast<uint64_t>(offset) + 8 > found->second->length) {
    throw Napi::RangeError::New(env, "word outside the mapping or misaligned");
  }
  return Napi::Boolean::New(env, RoleLock(env, found->second->fd, offset, action));
}

Napi::Value SegmentSize(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(MappingStat(info).st_size));
}

Napi::Value SegmentStat(const Napi::CallbackInfo& info) {
  struct stat st = MappingStat(info);
  Napi::Object result = Napi::Object::New(info.Env());
  result.Set("size", Napi::Number::New(info.Env(), static_cast<double>(st.st_size)));
  result.Set("blocks", Napi::Number::New(info.Env(), static_cast<double>(st.st_blocks)));
  return result;
}

}  // namespace shmq
