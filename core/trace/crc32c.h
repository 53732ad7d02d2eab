// CRC32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum of every trace header and
// record: table-driven slicing-by-8 everywhere, the SSE4.2 instruction where the CPU has it.
#pragma once

#include <cstdint>
#include <string_view>

namespace switchyard::trace {

// The CRC32C of `data`, continuing from `crc` (the CRC32C of the bytes before it, 0 for none):
// Crc32c(b, Crc32c(a)) == Crc32c(a + b). Crc32c("123456789") == 0xE3069283.
uint32_t Crc32c(std::string_view data, uint32_t crc = 0);

// The same function computed only with tables, on any CPU.
uint32_t Crc32cPortable(std::string_view data, uint32_t crc = 0);

// Whether Crc32c() uses the SSE4.2 crc32 instruction on this CPU (checked at run time: a binary
// built on a new machine must still be right on an x86-64 without SSE4.2).
bool Crc32cAccelerated();

}  // namespace switchyard::trace
