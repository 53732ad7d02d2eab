// Small value types shared by every part of the core: time, connection and node ids.
#pragma once

#include <compare>
#include <cstdint>
#include <functional>
#include <string>

#include "absl/strings/str_format.h"

namespace switchyard {

// Monotonic time as the driver saw it, in microseconds since an arbitrary origin.
// The core never reads a clock: every Instant is handed in.
struct Instant {
  int64_t us = 0;
  friend auto operator<=>(const Instant&, const Instant&) = default;
  static constexpr Instant FromMs(int64_t ms) { return Instant{ms * 1000}; }
};
inline constexpr Instant operator+(Instant t, int64_t delta_us) { return Instant{t.us + delta_us}; }
inline constexpr int64_t MsToUs(int64_t ms) { return ms * 1000; }

// A connection, as the core names it. The generation makes a reused number distinct from the
// connection that held it before.
struct ConnId {
  uint32_t index = 0;
  uint32_t generation = 0;
  bool valid() const { return generation != 0; }
  uint64_t packed() const { return (uint64_t{generation} << 32) | index; }
  static ConnId Unpack(uint64_t v) {
    return ConnId{static_cast<uint32_t>(v), static_cast<uint32_t>(v >> 32)};
  }
  friend auto operator<=>(const ConnId&, const ConnId&) = default;
  template <typename H>
  friend H AbslHashValue(H h, const ConnId& c) {
    return H::combine(std::move(h), c.index, c.generation);
  }
  template <typename Sink>
  friend void AbslStringify(Sink& sink, const ConnId& c) {
    absl::Format(&sink, "c%u.%u", c.index, c.generation);
  }
};

// A configured PostgreSQL server. Issue 2 has exactly one (the primary, index 0).
struct NodeId {
  uint32_t index = 0;
  friend auto operator<=>(const NodeId&, const NodeId&) = default;
  template <typename H>
  friend H AbslHashValue(H h, const NodeId& n) {
    return H::combine(std::move(h), n.index);
  }
};

// A scheduling unit: a client session with all of its server sessions (DESIGN.md section 3).
struct UnitId {
  uint64_t value = 0;
  bool valid() const { return value != 0; }
  friend auto operator<=>(const UnitId&, const UnitId&) = default;
  template <typename H>
  friend H AbslHashValue(H h, const UnitId& u) {
    return H::combine(std::move(h), u.value);
  }
};

}  // namespace switchyard
