// Incremental framing of the PostgreSQL v3 byte stream: accepts input split at any byte and
// bounds every message before buffering it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace switchyard::pg {

// PostgreSQL's own bound on a startup packet (and Envoy's): anything larger is refused.
inline constexpr size_t kStartupPacketSizeMax = 10000;
// Default bound on one typed message, type byte and length word included.
inline constexpr size_t kMessageSizeMaxDefault = size_t{256} << 20;
// Length word plus type byte.
inline constexpr size_t kHeaderSize = 5;

// One complete typed message. The views point into the reader's buffer and stay valid until the
// next call to Append() or Next*() on that reader.
struct Frame {
  char type = 0;
  std::string_view payload;  // after the length word
  std::string_view raw;      // the whole message: type, length, payload
};

// One complete untyped packet (StartupMessage, SSLRequest, GSSENCRequest, CancelRequest),
// length word included.
struct StartupFrame {
  std::string_view raw;
  std::string_view payload;  // after the length word
};

enum class Direction { kFrontend, kBackend };

// Assembles frames from bytes. Errors (bad length, unknown type, too large) are sticky: after
// one, the stream is unusable and the caller closes the connection.
class FrameReader {
 public:
  explicit FrameReader(Direction from, size_t message_size_max = kMessageSizeMaxDefault)
      : from_(from), message_size_max_(message_size_max) {}

  void Append(std::string_view bytes);
  // The next typed message, or nullopt when more bytes are needed.
  absl::StatusOr<std::optional<Frame>> Next();
  // The next untyped startup-family packet, or nullopt when more bytes are needed.
  absl::StatusOr<std::optional<StartupFrame>> NextStartup();

  size_t buffered() const { return buffer_.size() - consumed_; }
  // The bytes not yet returned as frames; used when a stream changes hands.
  std::string_view Unconsumed() const { return std::string_view(buffer_).substr(consumed_); }

 private:
  void Compact();

  Direction from_;
  size_t message_size_max_;
  std::string buffer_;
  size_t consumed_ = 0;
  absl::Status error_;
};

// Whether `type` is a message type the given side may send in protocol v3.
bool IsKnownType(Direction from, char type);

}  // namespace switchyard::pg
