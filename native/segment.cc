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
  return WrapMapping(env, address, size, fd);
}

Napi::Value SegmentOpen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = StringArg(info, 0, "name");
  CheckSegmentName(env, name);
  std::string path = "/" + name;

  int fd = shm_open(path.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW, 0);
  if (fd < 0) ThrowErrno(env, "shm_open", name, errno);
  struct stat st;
  if (fstat(fd, &st) != 0) {
    int err = errno;
    close(fd);
    ThrowErrno(env, "fstat", name, err);
  }
  Napi::Object result = Napi::Object::New(env);
  result.Set("size", Napi::Number::New(env, static_cast<double>(st.st_size)));
  result.Set("uid", Napi::Number::New(env, st.st_uid));
  result.Set("gid", Napi::Number::New(env, st.st_gid));
  result.Set("mode", Napi::Number::New(env, st.st_mode & 07777));
  if (!S_ISREG(st.st_mode) || st.st_size <= 0 || static_cast<size_t>(st.st_size) > kMaxMappingBytes) {
    // empty: the creator has not sized it yet; too large or odd: not ours to map.
    // JS decides which error that is.
    close(fd);
    result.Set("buffer", env.Null());
    return result;
  }
  size_t size = static_cast<size_t>(st.st_size);
  void* address = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (address == MAP_FAILED) {
    int err = errno;
    close(fd);
    ThrowErrno(env, "mmap", name, err);
  }
  result.Set("buffer", WrapMapping(env, address, size, fd));
  return result;
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

Napi::Value SegmentSize(const Napi::CallbackInfo& info) {
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
  return Napi::Number::New(env, static_cast<double>(st.st_size));
}

}  // namespace shmq
