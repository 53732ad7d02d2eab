// Little-endian field reader and writer for trace headers and records. Private to core/trace.
// The reader remembers its first failure and returns zero values after it, so a decoder reads
// straight through and checks once; every length and count is checked against the bytes left
// before anything is allocated for it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "core/base/check.h"

namespace switchyard::trace::bytes {

class Writer {
 public:
  explicit Writer(std::string& out) : out_(out) {}

  void U8(uint8_t value) { out_.push_back(static_cast<char>(value)); }
  void U16(uint16_t value) { Little(value, 2); }
  void U32(uint32_t value) { Little(value, 4); }
  void U64(uint64_t value) { Little(value, 8); }
  void I32(int32_t value) { U32(static_cast<uint32_t>(value)); }
  void I64(int64_t value) { U64(static_cast<uint64_t>(value)); }
  void Raw(std::string_view data) { out_.append(data); }
  // A u32 length, then the bytes.
  void String(std::string_view text) {
    U32(Count(text.size()));
    out_.append(text);
  }
  // A u32 count word; the caller checked the size against the record bound already.
  static uint32_t Count(size_t count) {
    CHECK_LE(count, size_t{std::numeric_limits<uint32_t>::max()});
    return static_cast<uint32_t>(count);
  }

 private:
  void Little(uint64_t value, int size) {
    for (int i = 0; i < size; ++i) out_.push_back(static_cast<char>(value >> (8 * i)));
  }

  std::string& out_;
};

inline uint32_t LoadU32(std::string_view data, size_t at) {
  uint32_t value = 0;
  for (size_t i = 0; i < 4; ++i) value |= uint32_t{static_cast<uint8_t>(data[at + i])} << (8 * i);
  return value;
}

inline void StoreU32(std::string& data, size_t at, uint32_t value) {
  for (size_t i = 0; i < 4; ++i) data[at + i] = static_cast<char>(value >> (8 * i));
}

class Reader {
 public:
  // `what` names the structure in errors ("session-open record").
  Reader(std::string_view data, std::string_view what) : data_(data), what_(what) {}

  bool ok() const { return status_.ok(); }
  size_t remaining() const { return data_.size() - position_; }

  std::string_view Take(size_t size, const char* field) {
    if (!ok()) return {};
    if (size > remaining()) {
      Fail(absl::StrFormat("%s needs %zu bytes, %zu left", field, size, remaining()));
      return {};
    }
    std::string_view taken = data_.substr(position_, size);
    position_ += size;
    return taken;
  }
  uint8_t U8(const char* field) { return static_cast<uint8_t>(Little(1, field)); }
  uint16_t U16(const char* field) { return static_cast<uint16_t>(Little(2, field)); }
  uint32_t U32(const char* field) { return static_cast<uint32_t>(Little(4, field)); }
  uint64_t U64(const char* field) { return Little(8, field); }
  int32_t I32(const char* field) { return static_cast<int32_t>(U32(field)); }
  int64_t I64(const char* field) { return static_cast<int64_t>(U64(field)); }
  // A u32 length, then that many bytes: the length is checked against what is left first.
  std::string String(const char* field) {
    const uint32_t size = U32(field);
    return std::string(Take(size, field));
  }
  std::string_view Rest() { return Take(remaining(), "rest"); }

  // Reads a u32 count and refuses it unless `count` items of at least `item_size_min` bytes
  // each fit in what is left: a corrupted count must not reserve gigabytes.
  uint32_t Count(size_t item_size_min, const char* field) {
    const uint32_t count = U32(field);
    if (ok() && uint64_t{count} * item_size_min > remaining()) {
      Fail(absl::StrFormat("%s count %u needs at least %u bytes, %zu left", field, count,
                           uint64_t{count} * item_size_min, remaining()));
      return 0;
    }
    return count;
  }

  void Fail(const std::string& why) {
    if (!ok()) return;
    status_ = absl::DataLossError(
        absl::StrFormat("malformed %s: %s (at body offset %zu)", what_, why, position_));
  }

  // The structure must end exactly where its last field did.
  absl::Status Finish() {
    if (ok() && remaining() != 0) Fail(absl::StrFormat("%zu trailing bytes", remaining()));
    return status_;
  }

 private:
  uint64_t Little(size_t size, const char* field) {
    std::string_view taken = Take(size, field);
    uint64_t value = 0;
    for (size_t i = 0; i < taken.size(); ++i) {
      value |= uint64_t{static_cast<uint8_t>(taken[i])} << (8 * i);
    }
    return value;
  }

  std::string_view data_;
  std::string_view what_;
  size_t position_ = 0;
  absl::Status status_;
};

}  // namespace switchyard::trace::bytes
