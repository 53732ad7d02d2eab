// The trace record model: the file header, the record kinds and their contents, the bounds of
// the format, and the human-readable names used by `switchyard trace show`. The byte layout is in
// docs/trace-format.md; core/trace/encoder.h and core/trace/reader.h convert to and from it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace switchyard::trace {

// ---------------------------------------------------------------- format constants

// The newest format version this build writes and reads. A reader accepts 1..kFormatVersion.
inline constexpr uint32_t kFormatVersion = 1;

// PNG-style: a high-bit byte catches 7-bit transfers, CR LF and LF catch line-ending conversion,
// 0x1A stops a DOS `type`. "SYT" is SwitchYard Trace.
inline constexpr std::string_view kMagic{"\x89SYT\r\n\x1A\n", 8};

// Magic, version word, header body size word.
inline constexpr size_t kHeaderPrefixSize = 8 + 4 + 4;
// The header body (capture start, record bound, proxy id, settings) is small; a bound keeps a
// corrupted size word from making the reader wait for or buffer gigabytes.
inline constexpr size_t kHeaderBodySizeMax = size_t{64} << 10;
// capture_start_unix_us, record_body_size_max, proxy id length word, settings count word.
inline constexpr size_t kHeaderBodySizeMin = 8 + 4 + 4 + 4;

// A record is a length word, a body, and a CRC32C.
inline constexpr size_t kRecordFramingSize = 4 + 4;
// kind, direction, flags, session, sequence, time, connection, node, backend pid.
inline constexpr size_t kRecordMetadataSize = 1 + 1 + 2 + 8 + 8 + 8 + 8 + 4 + 4;
// The hard bound on a record body, whatever a header says: a reader never buffers more for one
// record than this (PostgreSQL's own bound on a message, MaxAllocSize, is about as large).
inline constexpr size_t kRecordBodySizeMax = size_t{1} << 30;
// What a writer declares unless configured otherwise: room for a maximal protocol message
// (core/protocol's 256 MiB default bound) plus metadata.
inline constexpr size_t kRecordBodySizeMaxDefault = (size_t{256} << 20) + 4096;
static_assert(kRecordBodySizeMaxDefault <= kRecordBodySizeMax);
static_assert(kRecordMetadataSize < kRecordBodySizeMaxDefault);

// Record flags. Bits not named here are never set by a version-1 writer, and a reader refuses
// them.
inline constexpr uint16_t kFlagRedacted = 1 << 0;  // a redaction setting changed the bytes
inline constexpr uint16_t kFlagsKnown = kFlagRedacted;

// ---------------------------------------------------------------- header

using KeyValues = std::vector<std::pair<std::string, std::string>>;

struct TraceHeader {
  uint32_t version = kFormatVersion;  // set by the reader; the encoder always writes its own
  int64_t capture_start_unix_us = 0;  // wall clock when capture started
  // The largest record body in the file; the reader refuses a longer record before buffering it.
  uint32_t record_body_size_max = kRecordBodySizeMaxDefault;
  std::string proxy_id;
  KeyValues settings;  // capture settings in the writer's order: sample_rate, redact, ...
  friend bool operator==(const TraceHeader&, const TraceHeader&) = default;
};

// ---------------------------------------------------------------- records

// Values are part of the file format: never renumber.
enum class RecordKind : uint8_t {
  kMessage = 1,
  kSessionOpen = 2,
  kSessionClose = 3,
  kCancel = 4,
  kRecordsDropped = 5,
  kMarker = 6,
  kSnapshot = 7,
};
inline constexpr uint8_t kRecordKindMax = 7;

// Values are part of the file format: never renumber. kNone is for records that are not a
// message passing between two parties (a session opening, a marker, ...).
enum class Direction : uint8_t {
  kNone = 0,
  kClientToProxy = 1,
  kProxyToServer = 2,
  kServerToProxy = 3,
  kProxyToClient = 4,
};
inline constexpr uint8_t kDirectionMax = 4;

// One PostgreSQL message exactly as on the wire: type byte, length word and payload, or for the
// untyped startup family (StartupMessage, SSLRequest, CancelRequest, ...) length word and
// payload. Its length word always agrees with its size.
struct Message {
  std::string bytes;
  friend bool operator==(const Message&, const Message&) = default;
};

struct SessionOpen {
  std::string client_address;  // "10.1.2.3:51234", "[::1]:40000", "unix"
  std::string user;
  std::string database;
  KeyValues startup_parameters;  // as the client sent them, user and database included
  friend bool operator==(const SessionOpen&, const SessionOpen&) = default;
};

struct SessionClose {
  std::string reason;
  friend bool operator==(const SessionClose&, const SessionClose&) = default;
};

// A CancelRequest aimed at the record's session; `forwarded` says whether the proxy passed it on
// to the server (node, backend pid) running the session's query.
struct Cancel {
  bool forwarded = false;
  friend bool operator==(const Cancel&, const Cancel&) = default;
};

// The capture queue was full and `count` records were dropped before this one.
struct RecordsDropped {
  uint64_t count = 0;
  friend bool operator==(const RecordsDropped&, const RecordsDropped&) = default;
};

// Free text an operator or the proxy put into the trace ("failover to node 2 begins").
struct Marker {
  std::string text;
  friend bool operator==(const Marker&, const Marker&) = default;
};

struct PreparedStatement {
  // Values are part of the file format.
  enum class Source : uint8_t { kProtocol = 0, kSql = 1 };  // Parse message, or SQL PREPARE
  Source source = Source::kProtocol;
  std::string name;  // as the client knows it (not the server-side rename)
  std::string query;
  std::vector<uint32_t> parameter_types;  // OIDs, 0 for unspecified
  friend bool operator==(const PreparedStatement&, const PreparedStatement&) = default;
};
inline constexpr uint8_t kPreparedStatementSourceMax = 1;

// Everything a replay needs to rebuild a live session that began before this file did: written
// when capture starts mid-session and at the start of every file.
struct Snapshot {
  SessionOpen session;
  char transaction_status = 'I';  // 'I', 'T' or 'E', as the last ReadyForQuery said
  std::vector<PreparedStatement> prepared_statements;
  KeyValues settings;  // SET values in effect (compacted: latest per name), in applied order
  friend bool operator==(const Snapshot&, const Snapshot&) = default;
};

// Alternatives in RecordKind order, so the kind is index() + 1 and can never disagree.
using RecordBody =
    std::variant<Message, SessionOpen, SessionClose, Cancel, RecordsDropped, Marker, Snapshot>;

struct Record {
  Direction direction = Direction::kNone;
  uint16_t flags = 0;
  uint64_t session = 0;     // 0 for records about no session (dropped, marker)
  uint64_t sequence = 0;    // per session, in the order the session produced its records
  int64_t time_us = 0;      // monotonic time since capture start, never negative
  uint64_t connection = 0;  // ConnId::packed() of the connection concerned, 0 for none
  uint32_t node = 0;        // server node, when a server is concerned
  int32_t backend_pid = 0;  // that server connection's real backend pid, 0 when unknown
  RecordBody body;

  RecordKind kind() const { return static_cast<RecordKind>(body.index() + 1); }
  bool redacted() const { return (flags & kFlagRedacted) != 0; }
  friend bool operator==(const Record&, const Record&) = default;
};

// ---------------------------------------------------------------- names and rendering

// "message", "session-open", ...; "unknown" for a value outside the enum.
std::string_view KindName(RecordKind kind);
// "client->proxy", "proxy->server", "server->proxy", "proxy->client", "-" for kNone.
std::string_view DirectionName(Direction direction);
// The PostgreSQL name of a raw message travelling in `direction` ("Query", "DataRow",
// "StartupMessage", "SSLRequest", ...); "Unknown" when the bytes name no message.
std::string_view MessageName(Direction direction, std::string_view raw);

// One line describing a record's metadata, in the spirit of libpq's PQtrace:
//   "12.000345 s42 #7 client->proxy Query 27 bytes"
//   "12.000400 s42 #8 proxy->server Query 27 bytes node=1 pid=4242 redacted"
//   "0.000000 s42 #0 snapshot user="app" database="shop" prepared=2 settings=1 status=I"
// Time is seconds.microseconds since capture start. Text fields are C-escaped, so the result
// never contains a newline.
std::string FormatRecordLine(const Record& record);

}  // namespace switchyard::trace
