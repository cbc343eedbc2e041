// shmq native: CRC32C of a byte range, with the SSE4.2 crc32 instruction when
// the CPU has it. The format's checksum (lib/format/crc32c.ts) calls it for
// long messages only: below ~256 bytes its JS table beats the call's fixed cost.
#pragma once
#include <napi.h>

#include <cstddef>
#include <cstdint>

namespace shmq {

// (buffer, byteOffset, length, crc) -> CRC32C of buffer[byteOffset, byteOffset + length), continuing from crc
Napi::Value Crc32c(const Napi::CallbackInfo& info);
// whether Crc32c runs on the crc32 instruction (checked once, at load)
bool Crc32cHardware();
uint32_t Crc32cBytes(const uint8_t* data, size_t length, uint32_t crc);

}  // namespace shmq
