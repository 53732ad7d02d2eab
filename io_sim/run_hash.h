// The whole-run hash (DESIGN.md section 7, "proof of determinism"): every event the network
// and the driver record is folded, in a canonical byte encoding, into one 64-bit FNV-1a hash.
// Two runs of one seed must end with the same value, in one process or in two.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string_view>

#include "core/base/types.h"
#include "io_sim/prng.h"

namespace switchyard::io_sim {

class RunHash {
 public:
  // One event: its kind, when it happened, its integer fields, and optionally the bytes it carried.
  // Integers are encoded as 8 little-endian bytes and strings with their length first, so two
  // different events never encode to the same bytes.
  void Record(std::string_view kind, Instant at, std::initializer_list<int64_t> fields,
              std::string_view bytes = {}) {
    AddString(kind);
    AddInt(at.us);
    AddInt(static_cast<int64_t>(fields.size()));
    for (int64_t field : fields) AddInt(field);
    AddString(bytes);
    ++events_;
  }

  uint64_t value() const { return hash_; }
  uint64_t events() const { return events_; }

 private:
  void AddInt(int64_t v) {
    char bytes[8];
    const uint64_t u = static_cast<uint64_t>(v);
    for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>((u >> (8 * i)) & 0xff);
    hash_ = Fnv1a64(std::string_view(bytes, 8), hash_);
  }
  void AddString(std::string_view s) {
    AddInt(static_cast<int64_t>(s.size()));
    hash_ = Fnv1a64(s, hash_);
  }

  uint64_t hash_ = kFnvOffset;
  uint64_t events_ = 0;
};

}  // namespace switchyard::io_sim
