// The whole-run hash (DESIGN.md section 7, "proof of determinism"): every event the network
// and the driver record is folded, in a canonical encoding, into one 64-bit hash. Two runs of one
// seed must end with the same value, in one process or in two, on any platform.
//
// Each event becomes a sequence of 64-bit words, mixed in two at a time with a folded 64x64-bit
// multiply (wyhash's mixing step). Bytes are read as little-endian words whatever the host, and
// only fixed-width unsigned arithmetic is used, so the value depends on the events alone: not on
// the platform, the compiler or std::hash.
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <string_view>

#include "core/base/check.h"
#include "core/base/types.h"

namespace switchyard::io_sim {

class RunHash {
 public:
  // One event: its kind, when it happened, its integer fields, and optionally the bytes it
  // carried. The words: the kind's length and the field count (one word), the time, the kind's
  // bytes, the fields, the payload's length, the payload's bytes. Every variable part is
  // preceded by its length, so two different events never give the same word sequence.
  void Record(std::string_view kind, Instant at, std::initializer_list<int64_t> fields,
              std::string_view bytes = {}) {
    CHECK(kind.size() <= kCountMax && fields.size() <= kCountMax) << "run hash event too large";
    // A local copy of the state: stored through `this`, it would be written back before every
    // load of the event's bytes (a char may alias it).
    Stream stream{hash_};
    stream.Word(kind.size() | (fields.size() << 16));
    stream.Word(static_cast<uint64_t>(at.us));
    stream.Bytes(kind);
    for (int64_t field : fields) stream.Word(static_cast<uint64_t>(field));
    stream.Word(bytes.size());
    stream.Bytes(bytes);
    hash_ = stream.Finish();
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
  static constexpr uint64_t kCountMax = 0xffff;  // the kind's length and the field count
  // Odd constants with well-spread bits (wyhash's secret), so no input word multiplies the state
  // by a small or structured number.
  static constexpr uint64_t kKeyA = 0xa0761d6478bd642fULL;
  static constexpr uint64_t kKeyB = 0xe7037ed1a0b428dbULL;
  static constexpr uint64_t kKeyC = 0x8ebc6af09c88c6e3ULL;
  static constexpr uint64_t kKeyD = 0x589965cc75374cc3ULL;
  static constexpr uint64_t kOffset = 0xcbf29ce484222325ULL;
  // Payloads at least this long are hashed four blocks at a time (every delivered byte is hashed,
  // and swarm runs carry values of several kilobytes).
  static constexpr size_t kChunkBytes = 64;

  // Two words per multiply. The state is in the first factor, so every block depends on all
  // before it, and it is added back, so a block that makes the second factor zero does not wipe
  // what came before. The fold spreads each input bit over the whole result.
  static uint64_t MixBlock(uint64_t state, uint64_t a, uint64_t b) {
    return state + FoldedMultiply(state ^ a ^ kKeyA, b ^ kKeyB);
  }
  // Eight bytes as a little-endian word whatever the host's byte order.
  static uint64_t LoadWord(const char* p) {
    uint64_t word = 0;
    std::memcpy(&word, p, 8);
    if constexpr (std::endian::native == std::endian::big) word = __builtin_bswap64(word);
    return word;
  }
  // The last 1..7 bytes, the same way; missing bytes are zero (the length was hashed before).
  // Without a loop or a memcpy of variable length (a library call): two overlapping 4-byte loads
  // for 4..7 bytes, three single bytes (some the same) for 1..3.
  static uint64_t LoadTail(const char* p, size_t n) {
    if (n >= 4) return Load32(p) | (Load32(p + n - 4) << (8 * (n - 4)));
    return uint64_t{static_cast<uint8_t>(p[0])} |
           (uint64_t{static_cast<uint8_t>(p[n / 2])} << (8 * (n / 2))) |
           (uint64_t{static_cast<uint8_t>(p[n - 1])} << (8 * (n - 1)));
  }
  static uint64_t Load32(const char* p) {
    uint32_t word = 0;
    std::memcpy(&word, p, 4);
    if constexpr (std::endian::native == std::endian::big) word = __builtin_bswap32(word);
    return word;
  }

  // One event's word sequence, paired into blocks as it comes.
  struct Stream {
    uint64_t state;
    uint64_t pending = 0;  // the first word of a block not yet mixed in, when has_pending
    bool has_pending = false;

    void Word(uint64_t word) {
      if (has_pending) {
        state = MixBlock(state, pending, word);
      } else {
        pending = word;
      }
      has_pending = !has_pending;
    }
    // The bytes as words, in order. Whole blocks are mixed directly, and long runs four chains
    // at a time (so the multiplies overlap), started from the state and folded back into it.
    void Bytes(std::string_view s) {
      const char* p = s.data();
      size_t left = s.size();
      if (has_pending && left >= 8) {
        Word(LoadWord(p));
        p += 8;
        left -= 8;
      }
      if (!has_pending) {
        if (left >= kChunkBytes) {
          uint64_t lanes[4] = {state, state ^ kKeyB, state ^ kKeyC, state ^ kKeyD};
          for (; left >= kChunkBytes; p += kChunkBytes, left -= kChunkBytes) {
            for (int lane = 0; lane < 4; ++lane) {
              lanes[lane] =
                  MixBlock(lanes[lane], LoadWord(p + 16 * lane), LoadWord(p + 16 * lane + 8));
            }
          }
          state = MixBlock(state, lanes[0], lanes[1]);
          state = MixBlock(state, lanes[2], lanes[3]);
        }
        for (; left >= 16; p += 16, left -= 16)
          state = MixBlock(state, LoadWord(p), LoadWord(p + 8));
      }
      if (left >= 8) {
        Word(LoadWord(p));
        p += 8;
        left -= 8;
      }
      if (left > 0) Word(LoadTail(p, left));
    }
    // An odd-length sequence ends with a zero word. Where that happens depends only on the
    // lengths already hashed, so the encoding stays unambiguous.
    uint64_t Finish() {
      if (has_pending) Word(0);
      return state;
    }
  };

  uint64_t hash_ = kOffset;
  uint64_t events_ = 0;
};

}  // namespace switchyard::io_sim
