// The whole-run hash (DESIGN.md section 7, "proof of determinism"): every event the network
// and the driver record is folded, in a canonical encoding, into one 64-bit hash. Two runs of one
// seed must end with the same value, in one process or in two, on any platform.
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <optional>
#include <string_view>

#include "core/base/types.h"
#include "io_sim/prng.h"

namespace switchyard::io_sim {

class RunHash {
 public:
  // One event: its kind, when it happened, its integer fields, and optionally the bytes it carried.
  // Integers are one 64-bit word each and strings have their length first, so two different
  // events never encode to the same word sequence.
  void Record(std::string_view kind, Instant at, std::initializer_list<int64_t> fields,
              std::string_view bytes = {}) {
    AddString(kind);
    AddWord(static_cast<uint64_t>(at.us));
    AddWord(fields.size());
    for (int64_t field : fields) AddWord(static_cast<uint64_t>(field));
    AddString(bytes);
    Flush();
    ++events_;
  }

  uint64_t value() const { return hash_; }
  uint64_t events() const { return events_; }

  // The 64x64 -> 128-bit product, folded to 64 bits (high half xor low half): the mixing step.
  // Exact integer arithmetic, so the same on every platform; the portable branch computes the
  // same value for compilers without a 128-bit integer.
  static uint64_t FoldedMultiply(uint64_t a, uint64_t b) {
#ifdef __SIZEOF_INT128__
    const unsigned __int128 product = static_cast<unsigned __int128>(a) * b;
    return static_cast<uint64_t>(product) ^ static_cast<uint64_t>(product >> 64);
#else
    return FoldedMultiplyPortable(a, b);
#endif
  }
  static uint64_t FoldedMultiplyPortable(uint64_t a, uint64_t b) {
    const uint64_t a_lo = a & 0xffffffffULL, a_hi = a >> 32;
    const uint64_t b_lo = b & 0xffffffffULL, b_hi = b >> 32;
    const uint64_t lo_lo = a_lo * b_lo, hi_lo = a_hi * b_lo;
    const uint64_t lo_hi = a_lo * b_hi, hi_hi = a_hi * b_hi;
    const uint64_t cross = (lo_lo >> 32) + (hi_lo & 0xffffffffULL) + lo_hi;
    const uint64_t low = (cross << 32) | (lo_lo & 0xffffffffULL);
    const uint64_t high = (hi_lo >> 32) + (cross >> 32) + hi_hi;
    return low ^ high;
  }

 private:
  // Odd constants with well-spread bits (wyhash's secret), so no input word multiplies the state
  // by a small or structured number.
  static constexpr uint64_t kKeyA = 0xa0761d6478bd642fULL;
  static constexpr uint64_t kKeyB = 0xe7037ed1a0b428dbULL;
  static constexpr uint64_t kKeyC = 0x8ebc6af09c88c6e3ULL;
  static constexpr uint64_t kKeyD = 0x589965cc75374cc3ULL;
  static constexpr uint64_t kOffset = 0xcbf29ce484222325ULL;
  // Payloads at least this long are hashed four blocks at a time (every delivered byte is hashed,
  // and swarm runs carry values of several kilobytes).
  static constexpr size_t kLanesBytesMin = 64;

  // Bytes as a little-endian word whatever the host's byte order, so a hash is the same
  // everywhere. `n` is at most 8; missing bytes are zero (the length was hashed before them).
  static uint64_t LoadLittleEndian(const char* p, size_t n) {
    uint64_t word = 0;
    std::memcpy(&word, p, n);
    if constexpr (std::endian::native == std::endian::big) word = __builtin_bswap64(word);
    return word;
  }

  // Two words per multiply. The state is in the first factor, so every block depends on all
  // before it, and it is added back, so a block that makes the second factor zero does not wipe
  // what came before. The fold spreads each input bit over the whole result.
  static uint64_t MixBlock(uint64_t state, uint64_t a, uint64_t b) {
    return state + FoldedMultiply(state ^ a ^ kKeyA, b ^ kKeyB);
  }
  void AddWord(uint64_t word) {
    if (pending_) {
      hash_ = MixBlock(hash_, *pending_, word);
      pending_.reset();
    } else {
      pending_ = word;
    }
  }
  // Ends a word sequence of odd length with a zero word. Where that happens depends only on the
  // lengths already hashed, so the encoding stays unambiguous.
  void Flush() {
    if (pending_) AddWord(0);
  }

  void AddString(std::string_view s) {
    AddWord(s.size());
    const char* p = s.data();
    size_t left = s.size();
    if (left >= kLanesBytesMin) {
      Flush();
      AddLanes(p, left / kLanesBytesMin);
      p += left - left % kLanesBytesMin;
      left %= kLanesBytesMin;
    }
    for (; left >= 8; p += 8, left -= 8) AddWord(LoadLittleEndian(p, 8));
    if (left > 0) AddWord(LoadLittleEndian(p, left));
  }
  // `chunks` chunks of 64 bytes in four independent chains (so the multiplies overlap), each
  // started from the state, then folded back into it in a fixed order.
  void AddLanes(const char* p, size_t chunks) {
    uint64_t lanes[4] = {hash_, hash_ ^ kKeyB, hash_ ^ kKeyC, hash_ ^ kKeyD};
    for (size_t chunk = 0; chunk < chunks; ++chunk, p += kLanesBytesMin) {
      for (int lane = 0; lane < 4; ++lane) {
        const char* block = p + 16 * lane;
        lanes[lane] = MixBlock(lanes[lane], LoadLittleEndian(block, 8),
                               LoadLittleEndian(block + 8, 8));
      }
    }
    hash_ = MixBlock(hash_, lanes[0], lanes[1]);
    hash_ = MixBlock(hash_, lanes[2], lanes[3]);
  }

  uint64_t hash_ = kOffset;
  std::optional<uint64_t> pending_;  // the first word of a block not yet mixed in
  uint64_t events_ = 0;
};

}  // namespace switchyard::io_sim
