#include "crc32c.h"

#include <cstring>

#include "errors.h"

#if defined(__x86_64__)
#include <nmmintrin.h>
#endif

namespace shmq {

namespace {

// reflected Castagnoli polynomial, one byte at a time: the fallback without SSE4.2
struct Table {
  uint32_t entry[256];
  Table() {
    for (uint32_t n = 0; n < 256; n++) {
      uint32_t c = n;
      for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
      entry[n] = c;
    }
  }
};

const Table kTable;

uint32_t Software(const uint8_t* p, size_t n, uint32_t c) {
  while (n--) c = kTable.entry[(c ^ *p++) & 0xff] ^ (c >> 8);
  return c;
}

#if defined(__x86_64__)
// only this function is compiled for SSE4.2; it runs only after the cpu check
__attribute__((target("sse4.2"))) uint32_t Hardware(const uint8_t* p, size_t n, uint32_t c) {
  uint64_t c64 = c;
  while (n >= 8) {
    uint64_t word;
    std::memcpy(&word, p, 8);  // any alignment
    c64 = _mm_crc32_u64(c64, word);
    p += 8;
    n -= 8;
  }
  uint32_t c32 = static_cast<uint32_t>(c64);
  while (n--) c32 = _mm_crc32_u8(c32, *p++);
  return c32;
}

const bool kHardware = __builtin_cpu_supports("sse4.2");
#else
const bool kHardware = false;
#endif

}  // namespace

bool Crc32cHardware() { return kHardware; }

uint32_t Crc32cBytes(const uint8_t* data, size_t length, uint32_t crc) {
  uint32_t c = ~crc;
#if defined(__x86_64__)
  c = kHardware ? Hardware(data, length, c) : Software(data, length, c);
#else
  c = Software(data, length, c);
#endif
  return ~c;
}

Napi::Value Crc32c(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[0].IsArrayBuffer()) throw Napi::TypeError::New(env, "buffer must be an ArrayBuffer");
  Napi::ArrayBuffer buffer = info[0].As<Napi::ArrayBuffer>();
  if (buffer.IsDetached()) ThrowCode(env, "ERR_SHMQ_CLOSED", "the buffer is detached (its channel was closed)");
  size_t size = buffer.ByteLength();
  int64_t offset = IntegerArg(info, 1, "byteOffset", 0, INT64_MAX);
  int64_t length = IntegerArg(info, 2, "length", 0, INT64_MAX);
  if (static_cast<uint64_t>(offset) > size || static_cast<uint64_t>(length) > size - static_cast<uint64_t>(offset)) {
    throw Napi::RangeError::New(env, "range outside the buffer");
  }
  int64_t crc = info.Length() > 3 && !info[3].IsUndefined() ? IntegerArg(info, 3, "crc", 0, UINT32_MAX) : 0;
  const uint8_t* data = static_cast<const uint8_t*>(buffer.Data()) + offset;
  return Napi::Number::New(env, Crc32cBytes(data, static_cast<size_t>(length), static_cast<uint32_t>(crc)));
}

}  // namespace shmq
