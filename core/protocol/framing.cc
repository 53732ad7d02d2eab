// Incremental framing of the PostgreSQL v3 byte stream: bounds each message from its header,
// before its body is waited for, and hands out views into one lazily compacted buffer.
#include "core/protocol/framing.h"

#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "core/protocol/messages.h"
#include "core/protocol/wire.h"

namespace switchyard::pg {
namespace {

// After a large message the buffer would otherwise keep its peak capacity for the life of the
// connection; above this, an emptied buffer gives its memory back.
constexpr size_t kIdleCapacityMax = size_t{64} << 10;

const char* DirectionName(Direction from) {
  return from == Direction::kFrontend ? "frontend" : "backend";
}

// 'Q' for printable bytes, 0x01 otherwise.
std::string TypeByte(char type) {
  const auto byte = static_cast<unsigned char>(type);
  if (byte >= 0x20 && byte < 0x7f) return absl::StrFormat("'%c'", type);
  return absl::StrFormat("0x%02x", byte);
}

// "Query ('Q')": what a log reader needs to find the message in the protocol docs.
std::string DescribeType(Direction from, char type) {
  return absl::StrFormat("%s (%s)", TypeName(from, type), TypeByte(type));
}

}  // namespace

void FrameReader::Append(std::string_view bytes) {
  // A failed stream is never read again, so there is no point holding more of it.
  if (!error_.ok()) return;
  Compact();
  buffer_.append(bytes);
}

void FrameReader::Compact() {
  if (consumed_ == 0) return;
  if (consumed_ == buffer_.size()) {
    if (buffer_.capacity() > kIdleCapacityMax) {
      std::string().swap(buffer_);
    } else {
      buffer_.clear();
    }
    consumed_ = 0;
    return;
  }
  // Moving the tail only once the consumed prefix is at least as long as it means each byte is
  // moved at most once per byte consumed before it: amortized O(1), not a memmove per frame.
  if (consumed_ >= buffer_.size() - consumed_) {
    buffer_.erase(0, consumed_);
    consumed_ = 0;
  }
}

absl::StatusOr<std::optional<Frame>> FrameReader::Next() {
  if (!error_.ok()) return error_;
  std::string_view input = Unconsumed();
  if (input.empty()) return std::nullopt;

  // The type byte alone already tells whether the stream is garbage.
  const char type = input[0];
  if (!IsKnownType(from_, type)) {
    error_ = absl::InvalidArgumentError(
        absl::StrFormat("unknown %s message type %s", DirectionName(from_), TypeByte(type)));
    return error_;
  }
  if (input.size() < kHeaderSize) return std::nullopt;

  const uint32_t length = wire::LoadBigEndian32(input.data() + 1);
  if (length < 4 || length > wire::kLength32Max) {
    error_ = absl::InvalidArgumentError(
        absl::StrFormat("%s message has invalid length %u", DescribeType(from_, type), length));
    return error_;
  }
  const size_t total = size_t{length} + 1;
  if (total > message_size_max_) {
    error_ = absl::ResourceExhaustedError(
        absl::StrFormat("%s message length %u exceeds message_size_max %zu",
                        DescribeType(from_, type), length, message_size_max_));
    return error_;
  }
  if (input.size() < total) return std::nullopt;

  consumed_ += total;
  return Frame{.type = type,
               .payload = input.substr(kHeaderSize, length - 4),
               .raw = input.substr(0, total)};
}

absl::StatusOr<std::optional<StartupFrame>> FrameReader::NextStartup() {
  if (!error_.ok()) return error_;
  std::string_view input = Unconsumed();
  if (input.size() < 4) return std::nullopt;

  // The length word counts itself; the shortest packet (SSLRequest) also carries a 4-byte code.
  const uint32_t length = wire::LoadBigEndian32(input.data());
  if (length < 8) {
    error_ = absl::InvalidArgumentError(
        absl::StrFormat("invalid startup packet length %u (minimum 8)", length));
    return error_;
  }
  if (length > kStartupPacketSizeMax) {
    error_ = absl::ResourceExhaustedError(absl::StrFormat(
        "startup packet length %u exceeds the maximum %zu", length, kStartupPacketSizeMax));
    return error_;
  }
  if (input.size() < length) return std::nullopt;

  consumed_ += length;
  return StartupFrame{.raw = input.substr(0, length), .payload = input.substr(4, length - 4)};
}

bool IsKnownType(Direction from, char type) {
  // PostgreSQL 15 "Message Formats", protocol 3.0.
  constexpr std::string_view kFrontendTypes = "BCdcfDEHFPpQSX";
  constexpr std::string_view kBackendTypes = "RK23CdcGHWDIEVvnNAtS1sZT";
  const std::string_view types = from == Direction::kFrontend ? kFrontendTypes : kBackendTypes;
  return types.find(type) != std::string_view::npos;
}

namespace {

std::string_view FrontendTypeName(char type) {
  switch (type) {
    case 'B':
      return "Bind";
    case 'C':
      return "Close";
    case 'd':
      return "CopyData";
    case 'c':
      return "CopyDone";
    case 'f':
      return "CopyFail";
    case 'D':
      return "Describe";
    case 'E':
      return "Execute";
    case 'H':
      return "Flush";
    case 'F':
      return "FunctionCall";
    case 'P':
      return "Parse";
    // 'p' is also GSSResponse, SASLInitialResponse and SASLResponse; which one depends on the
    // authentication exchange, which the framing layer does not know.
    case 'p':
      return "PasswordMessage";
    case 'Q':
      return "Query";
    case 'S':
      return "Sync";
    case 'X':
      return "Terminate";
    default:
      return "Unknown";
  }
}

std::string_view BackendTypeName(char type) {
  switch (type) {
    case 'R':
      return "Authentication";
    case 'K':
      return "BackendKeyData";
    case '2':
      return "BindComplete";
    case '3':
      return "CloseComplete";
    case 'C':
      return "CommandComplete";
    case 'd':
      return "CopyData";
    case 'c':
      return "CopyDone";
    case 'G':
      return "CopyInResponse";
    case 'H':
      return "CopyOutResponse";
    case 'W':
      return "CopyBothResponse";
    case 'D':
      return "DataRow";
    case 'I':
      return "EmptyQueryResponse";
    case 'E':
      return "ErrorResponse";
    case 'V':
      return "FunctionCallResponse";
    case 'v':
      return "NegotiateProtocolVersion";
    case 'n':
      return "NoData";
    case 'N':
      return "NoticeResponse";
    case 'A':
      return "NotificationResponse";
    case 't':
      return "ParameterDescription";
    case 'S':
      return "ParameterStatus";
    case '1':
      return "ParseComplete";
    case 's':
      return "PortalSuspended";
    case 'Z':
      return "ReadyForQuery";
    case 'T':
      return "RowDescription";
    default:
      return "Unknown";
  }
}

}  // namespace

std::string_view TypeName(Direction from, char type) {
  return from == Direction::kFrontend ? FrontendTypeName(type) : BackendTypeName(type);
}

}  // namespace switchyard::pg
