// Byte-level reader and writer for PostgreSQL v3 payloads (network byte order). Private to
// core/protocol: the Reader turns every short or malformed field into one InvalidArgument status,
// the Writer treats unencodable input as a bug of ours and stops the process.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_format.h"

namespace switchyard::pg::wire {

[[noreturn]] inline void CheckFailed(const char* file, int line, const char* condition) {
  std::fprintf(stderr, "%s:%d: check failed: %s\n", file, line, condition);
  std::abort();
}

// Always on, also in release builds: a message we cannot encode faithfully is our own bug, and
// sending it anyway would desynchronize the peer.
#define SWITCHYARD_WIRE_CHECK(condition)                                   \
  do {                                                                     \
    if (!(condition)) {                                                    \
      ::switchyard::pg::wire::CheckFailed(__FILE__, __LINE__, #condition); \
    }                                                                      \
  } while (false)

// Largest count an Int16 count field carries. PostgreSQL and libpq both read counts as
// unsigned (pq_getmsgint(msg, 2)), so 65535 parameters is legal on the wire.
inline constexpr size_t kCount16Max = std::numeric_limits<uint16_t>::max();
// Largest value of a length word, which is a signed Int32 on the wire.
inline constexpr size_t kLength32Max = std::numeric_limits<int32_t>::max();

inline uint32_t LoadBigEndian32(const char* bytes) {
  return (uint32_t{static_cast<uint8_t>(bytes[0])} << 24) |
         (uint32_t{static_cast<uint8_t>(bytes[1])} << 16) |
         (uint32_t{static_cast<uint8_t>(bytes[2])} << 8) | uint32_t{static_cast<uint8_t>(bytes[3])};
}

// Reads fields from one payload. The first failure is remembered and every later read returns
// a zero value, so a decoder reads straight through and checks once at the end; loops over
// counts also stop as soon as ok() turns false.
class Reader {
 public:
  // `message` names the message in errors ("DataRow").
  Reader(std::string_view data, const char* message) : data_(data), message_(message) {}

  bool ok() const { return status_.ok(); }
  const absl::Status& status() const { return status_; }
  size_t remaining() const { return data_.size() - position_; }

  std::string_view Take(size_t size, const char* field) {
    if (!ok()) return {};
    if (size > remaining()) {
      Fail(absl::StrFormat("%s needs %zu bytes, %zu left", field, size, remaining()));
      return {};
    }
    std::string_view bytes = data_.substr(position_, size);
    position_ += size;
    return bytes;
  }
  uint8_t Byte(const char* field) {
    std::string_view bytes = Take(1, field);
    return bytes.empty() ? 0 : static_cast<uint8_t>(bytes[0]);
  }
  uint16_t Uint16(const char* field) {
    std::string_view bytes = Take(2, field);
    if (bytes.size() != 2) return 0;
    return static_cast<uint16_t>((static_cast<uint8_t>(bytes[0]) << 8) |
                                 static_cast<uint8_t>(bytes[1]));
  }
  int16_t Int16(const char* field) { return static_cast<int16_t>(Uint16(field)); }
  uint32_t Uint32(const char* field) {
    std::string_view bytes = Take(4, field);
    return bytes.size() == 4 ? LoadBigEndian32(bytes.data()) : 0;
  }
  int32_t Int32(const char* field) { return static_cast<int32_t>(Uint32(field)); }

  // A NUL-terminated string; the terminator must lie inside the payload.
  std::string CString(const char* field) {
    if (!ok()) return {};
    std::string_view rest = data_.substr(position_);
    size_t end = rest.find('\0');
    if (end == std::string_view::npos) {
      Fail(absl::StrFormat("%s has no NUL terminator", field));
      return {};
    }
    position_ += end + 1;
    return std::string(rest.substr(0, end));
  }

  // Int32 length then that many bytes; length -1 is NULL (nullopt), any other negative length
  // is an error.
  std::optional<std::string> NullableBytes(const char* field) {
    int32_t length = Int32(field);
    if (!ok() || length == -1) return std::nullopt;
    if (length < 0) {
      Fail(absl::StrFormat("%s has negative length %d", field, length));
      return std::nullopt;
    }
    std::string_view bytes = Take(static_cast<size_t>(length), field);
    if (!ok()) return std::nullopt;
    return std::string(bytes);
  }

  // Everything left: the open-ended Byte_n at the end of some messages.
  std::string_view Rest() {
    if (!ok()) return {};
    std::string_view bytes = data_.substr(position_);
    position_ = data_.size();
    return bytes;
  }

  // Refuses a count whose items cannot fit in what is left, before anything is allocated for
  // them: a four-byte payload must not be able to ask for 65535 vectors.
  bool CountFits(size_t count, size_t item_size_min, const char* field) {
    if (!ok()) return false;
    if (count * item_size_min > remaining()) {
      Fail(absl::StrFormat("%s count %zu needs at least %zu bytes, %zu left", field, count,
                           count * item_size_min, remaining()));
      return false;
    }
    return true;
  }

  void Fail(const std::string& what) {
    if (!ok()) return;
    status_ = absl::InvalidArgumentError(
        absl::StrFormat("malformed %s: %s (at payload offset %zu)", message_, what, position_));
  }

  // The message must end exactly where its last field did.
  absl::Status Finish() {
    if (ok() && remaining() != 0) {
      Fail(absl::StrFormat("%zu trailing bytes", remaining()));
    }
    return status_;
  }

 private:
  std::string_view data_;
  const char* message_;
  size_t position_ = 0;
  absl::Status status_;
};

// Returns `value` if the reader consumed its whole payload without error.
template <typename T>
absl::StatusOr<T> Finish(Reader& reader, T value) {
  absl::Status status = reader.Finish();
  if (!status.ok()) return status;
  return value;
}

// Builds one message: type byte (none for the startup family, type 0), a length word patched in
// by Finish(), then the fields.
class Writer {
 public:
  explicit Writer(char type) {
    if (type != 0) out_.push_back(type);
    length_at_ = out_.size();
    out_.append(4, '\0');
  }

  void Byte(uint8_t value) { out_.push_back(static_cast<char>(value)); }
  void Uint16(uint16_t value) {
    Byte(static_cast<uint8_t>(value >> 8));
    Byte(static_cast<uint8_t>(value));
  }
  void Int16(int16_t value) { Uint16(static_cast<uint16_t>(value)); }
  void Uint32(uint32_t value) {
    Byte(static_cast<uint8_t>(value >> 24));
    Byte(static_cast<uint8_t>(value >> 16));
    Byte(static_cast<uint8_t>(value >> 8));
    Byte(static_cast<uint8_t>(value));
  }
  void Int32(int32_t value) { Uint32(static_cast<uint32_t>(value)); }
  void Count16(size_t count) {
    SWITCHYARD_WIRE_CHECK(count <= kCount16Max);
    Uint16(static_cast<uint16_t>(count));
  }
  void Bytes(std::string_view bytes) { out_.append(bytes); }
  // A C string cannot carry a NUL: one inside would end the field early on the peer's side.
  void CString(std::string_view text) {
    SWITCHYARD_WIRE_CHECK(text.find('\0') == std::string_view::npos);
    out_.append(text);
    out_.push_back('\0');
  }
  void NullableBytes(const std::optional<std::string>& bytes) {
    if (!bytes.has_value()) {
      Int32(-1);
      return;
    }
    SWITCHYARD_WIRE_CHECK(bytes->size() <= kLength32Max);
    Int32(static_cast<int32_t>(bytes->size()));
    Bytes(*bytes);
  }

  std::string Finish() && {
    size_t length = out_.size() - length_at_;
    SWITCHYARD_WIRE_CHECK(length <= kLength32Max);
    uint32_t word = static_cast<uint32_t>(length);
    out_[length_at_] = static_cast<char>(word >> 24);
    out_[length_at_ + 1] = static_cast<char>(word >> 16);
    out_[length_at_ + 2] = static_cast<char>(word >> 8);
    out_[length_at_ + 3] = static_cast<char>(word);
    return std::move(out_);
  }

 private:
  std::string out_;
  size_t length_at_ = 0;
};

// Messages with no body: the payload must be empty.
template <typename T>
absl::StatusOr<T> DecodeEmpty(std::string_view payload, const char* message) {
  Reader reader(payload, message);
  return Finish(reader, T{});
}

inline std::string EncodeEmpty(char type) { return Writer(type).Finish(); }

// Messages that are one C string: CommandComplete, Query, CopyFail, PasswordMessage.
inline std::string EncodeString(char type, std::string_view text) {
  Writer writer(type);
  writer.CString(text);
  return std::move(writer).Finish();
}

}  // namespace switchyard::pg::wire
