// Names of record kinds, directions and messages, and the one-line rendering of a record.
#include "core/trace/record.h"

#include <cstdio>
#include <string>
#include <variant>

#include "absl/strings/str_format.h"
#include "core/protocol/framing.h"
#include "core/protocol/messages.h"

namespace switchyard::trace {
namespace {

// A rendered text field is cut here so one record stays one readable line.
constexpr size_t kRenderedTextSizeMax = 120;

// Quoted and C-escaped, so a newline or a NUL in captured text cannot break the line format.
std::string Quote(std::string_view text) {
  std::string out = "\"";
  const std::string_view shown = text.substr(0, kRenderedTextSizeMax);
  for (char c : shown) {
    const auto byte = static_cast<unsigned char>(c);
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (byte >= 0x20 && byte < 0x7f) {
          out.push_back(c);
        } else {
          out += absl::StrFormat("\\x%02x", byte);
        }
    }
  }
  out += "\"";
  if (shown.size() < text.size()) out += absl::StrFormat("...(%zu bytes)", text.size());
  return out;
}

bool ConcernsServer(Direction direction) {
  return direction == Direction::kProxyToServer || direction == Direction::kServerToProxy;
}

std::string Describe(const Record& record, const Message& message) {
  std::string line =
      absl::StrFormat("%s %s %zu bytes", DirectionName(record.direction),
                      MessageName(record.direction, message.bytes), message.bytes.size());
  if (ConcernsServer(record.direction)) {
    line += absl::StrFormat(" node=%u pid=%d", record.node, record.backend_pid);
  }
  return line;
}

std::string Describe(const Record&, const SessionOpen& open) {
  return absl::StrFormat("client=%s user=%s database=%s parameters=%zu", Quote(open.client_address),
                         Quote(open.user), Quote(open.database), open.startup_parameters.size());
}

std::string Describe(const Record&, const SessionClose& close) {
  return "reason=" + Quote(close.reason);
}

std::string Describe(const Record& record, const Cancel& cancel) {
  if (!cancel.forwarded) return "not-forwarded";
  return absl::StrFormat("forwarded node=%u pid=%d", record.node, record.backend_pid);
}

std::string Describe(const Record&, const RecordsDropped& dropped) {
  return absl::StrFormat("count=%u", dropped.count);
}

std::string Describe(const Record&, const Marker& marker) { return Quote(marker.text); }

std::string Describe(const Record&, const Snapshot& snapshot) {
  return absl::StrFormat("user=%s database=%s status=%c prepared=%zu settings=%zu",
                         Quote(snapshot.session.user), Quote(snapshot.session.database),
                         snapshot.transaction_status, snapshot.prepared_statements.size(),
                         snapshot.settings.size());
}

std::string_view StartupPacketName(std::string_view raw) {
  if (raw.size() < 8) return "Unknown";
  uint32_t code = 0;
  for (size_t i = 4; i < 8; ++i) code = (code << 8) | static_cast<uint8_t>(raw[i]);
  switch (static_cast<int32_t>(code)) {
    case pg::kSslRequestCode:
      return "SSLRequest";
    case pg::kGssEncRequestCode:
      return "GSSENCRequest";
    case pg::kCancelRequestCode:
      return "CancelRequest";
    default:
      // Any protocol version: a 2.0 or 3.2 startup packet is still a StartupMessage to a reader.
      return "StartupMessage";
  }
}

}  // namespace

std::string_view KindName(RecordKind kind) {
  switch (kind) {
    case RecordKind::kMessage:
      return "message";
    case RecordKind::kSessionOpen:
      return "session-open";
    case RecordKind::kSessionClose:
      return "session-close";
    case RecordKind::kCancel:
      return "cancel";
    case RecordKind::kRecordsDropped:
      return "records-dropped";
    case RecordKind::kMarker:
      return "marker";
    case RecordKind::kSnapshot:
      return "snapshot";
  }
  return "unknown";
}

std::string_view DirectionName(Direction direction) {
  switch (direction) {
    case Direction::kNone:
      return "-";
    case Direction::kClientToProxy:
      return "client->proxy";
    case Direction::kProxyToServer:
      return "proxy->server";
    case Direction::kServerToProxy:
      return "server->proxy";
    case Direction::kProxyToClient:
      return "proxy->client";
  }
  return "unknown";
}

std::string_view MessageName(Direction direction, std::string_view raw) {
  if (raw.empty()) return "Unknown";
  switch (direction) {
    case Direction::kClientToProxy:
    case Direction::kProxyToServer:
      if (raw[0] == '\0') return StartupPacketName(raw);
      return pg::TypeName(pg::Direction::kFrontend, raw[0]);
    case Direction::kServerToProxy:
    case Direction::kProxyToClient:
      return pg::TypeName(pg::Direction::kBackend, raw[0]);
    case Direction::kNone:
      break;
  }
  return "Unknown";
}

std::string FormatRecordLine(const Record& record) {
  // Integer arithmetic, so 1.000001 s never prints as 1.000000 s.
  std::string line = absl::StrFormat("%d.%06d s%u #%u ", record.time_us / 1000000,
                                     record.time_us % 1000000, record.session, record.sequence);
  if (record.kind() != RecordKind::kMessage) {
    line += KindName(record.kind());
    line += ' ';
  }
  line += std::visit([&record](const auto& body) { return Describe(record, body); }, record.body);
  if (record.redacted()) line += " redacted";
  return line;
}

}  // namespace switchyard::trace
