// CRC32C: slicing-by-8 tables computed at compile time, and the SSE4.2 crc32 instruction behind a
// run-time CPU check. Both produce the same value for every input (tests compare them).
#include "core/trace/crc32c.h"

#include <array>
#include <cstddef>
#include <cstring>

#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
#include <nmmintrin.h>
#define SWITCHYARD_CRC32C_SSE42 1
#endif

namespace switchyard::trace {
namespace {

constexpr uint32_t kPolynomial = 0x82F63B78;  // 0x1EDC6F41 bit-reversed

using Tables = std::array<std::array<uint32_t, 256>, 8>;

// tables[0] is the classic byte-at-a-time table; tables[k][b] is the CRC of byte b followed by
// k zero bytes, which lets the loop fold eight input bytes with eight independent lookups.
constexpr Tables MakeTables() {
  Tables tables{};
  for (uint32_t byte = 0; byte < 256; ++byte) {
    uint32_t crc = byte;
    for (int bit = 0; bit < 8; ++bit) crc = (crc >> 1) ^ ((crc & 1) ? kPolynomial : 0);
    tables[0][byte] = crc;
  }
  for (size_t k = 1; k < 8; ++k) {
    for (uint32_t byte = 0; byte < 256; ++byte) {
      const uint32_t previous = tables[k - 1][byte];
      tables[k][byte] = (previous >> 8) ^ tables[0][previous & 0xFF];
    }
  }
  return tables;
}

constexpr Tables kTables = MakeTables();
static_assert(kTables[0][1] == 0xF26B8303, "CRC32C table does not match the polynomial");

uint32_t LoadLittleEndian32(const unsigned char* p) {
  return uint32_t{p[0]} | (uint32_t{p[1]} << 8) | (uint32_t{p[2]} << 16) | (uint32_t{p[3]} << 24);
}

// Works on the inverted register; callers invert on entry and exit.
uint32_t UpdatePortable(uint32_t crc, const unsigned char* p, size_t size) {
  while (size >= 8) {
    const uint32_t low = LoadLittleEndian32(p) ^ crc;
    const uint32_t high = LoadLittleEndian32(p + 4);
    crc = kTables[7][low & 0xFF] ^ kTables[6][(low >> 8) & 0xFF] ^ kTables[5][(low >> 16) & 0xFF] ^
          kTables[4][low >> 24] ^ kTables[3][high & 0xFF] ^ kTables[2][(high >> 8) & 0xFF] ^
          kTables[1][(high >> 16) & 0xFF] ^ kTables[0][high >> 24];
    p += 8;
    size -= 8;
  }
  while (size > 0) {
    crc = (crc >> 8) ^ kTables[0][(crc ^ *p) & 0xFF];
    ++p;
    --size;
  }
  return crc;
}

#ifdef SWITCHYARD_CRC32C_SSE42
// Compiled for SSE4.2 on its own, so the rest of the binary keeps the baseline x86-64 target
// and this function is only ever called after the CPU check.
__attribute__((target("sse4.2"))) uint32_t UpdateSse42(uint32_t crc, const unsigned char* p,
                                                       size_t size) {
  uint64_t wide = crc;
  while (size >= 8) {
    uint64_t word;
    std::memcpy(&word, p, sizeof(word));  // unaligned load; x86-64 is little-endian
    wide = _mm_crc32_u64(wide, word);
    p += 8;
    size -= 8;
  }
  crc = static_cast<uint32_t>(wide);
  while (size > 0) {
    crc = _mm_crc32_u8(crc, *p);
    ++p;
    --size;
  }
  return crc;
}
#endif

}  // namespace

bool Crc32cAccelerated() {
#ifdef SWITCHYARD_CRC32C_SSE42
  // Reads the CPU model the compiler runtime filled in at startup: a load and a test.
  return __builtin_cpu_supports("sse4.2");
#else
  return false;
#endif
}

uint32_t Crc32cPortable(std::string_view data, uint32_t crc) {
  const auto* p = reinterpret_cast<const unsigned char*>(data.data());
  return ~UpdatePortable(~crc, p, data.size());
}

uint32_t Crc32c(std::string_view data, uint32_t crc) {
#ifdef SWITCHYARD_CRC32C_SSE42
  if (Crc32cAccelerated()) {
    const auto* p = reinterpret_cast<const unsigned char*>(data.data());
    return ~UpdateSse42(~crc, p, data.size());
  }
#endif
  return Crc32cPortable(data, crc);
}

}  // namespace switchyard::trace
