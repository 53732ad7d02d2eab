// Header and record bodies, field by field, in the order docs/trace-format.md gives them. Each
// kind has a Put (encode) and a Get (decode) next to each other, so the two cannot drift apart
// unnoticed; the round-trip properties in tests/core/trace check that they agree.
#include "core/trace/codec.h"

#include <string>
#include <utility>
#include <variant>

#include "absl/strings/str_format.h"
#include "core/base/check.h"
#include "core/trace/bytes.h"

namespace switchyard::trace::codec {
namespace {

// Smallest encodings, used to bound counts before reserving: two empty strings, one empty
// prepared statement (source, two empty strings, an empty OID list).
constexpr size_t kKeyValueSizeMin = 4 + 4;
constexpr size_t kPreparedStatementSizeMin = 1 + 4 + 4 + 4;

uint32_t LoadBigEndian32(std::string_view data, size_t at) {
  uint32_t value = 0;
  for (size_t i = 0; i < 4; ++i) value = (value << 8) | static_cast<uint8_t>(data[at + i]);
  return value;
}

bool IsTransactionStatus(char status) { return status == 'I' || status == 'T' || status == 'E'; }

// ---------------------------------------------------------------- shared pieces

void PutKeyValues(bytes::Writer& writer, const KeyValues& pairs) {
  writer.U32(bytes::Writer::Count(pairs.size()));
  for (const auto& [name, value] : pairs) {
    writer.String(name);
    writer.String(value);
  }
}

KeyValues GetKeyValues(bytes::Reader& reader, const char* field) {
  KeyValues pairs;
  const uint32_t count = reader.Count(kKeyValueSizeMin, field);
  pairs.reserve(count);
  for (uint32_t i = 0; i < count && reader.ok(); ++i) {
    std::string name = reader.String(field);
    std::string value = reader.String(field);
    pairs.emplace_back(std::move(name), std::move(value));
  }
  return pairs;
}

void PutSession(bytes::Writer& writer, const SessionOpen& session) {
  writer.String(session.client_address);
  writer.String(session.user);
  writer.String(session.database);
  PutKeyValues(writer, session.startup_parameters);
}

SessionOpen GetSession(bytes::Reader& reader) {
  SessionOpen session;
  session.client_address = reader.String("client address");
  session.user = reader.String("user");
  session.database = reader.String("database");
  session.startup_parameters = GetKeyValues(reader, "startup parameter");
  return session;
}

void PutPrepared(bytes::Writer& writer, const PreparedStatement& statement) {
  writer.U8(static_cast<uint8_t>(statement.source));
  writer.String(statement.name);
  writer.String(statement.query);
  writer.U32(bytes::Writer::Count(statement.parameter_types.size()));
  for (uint32_t oid : statement.parameter_types) writer.U32(oid);
}

PreparedStatement GetPrepared(bytes::Reader& reader) {
  PreparedStatement statement;
  const uint8_t source = reader.U8("prepared statement source");
  if (source > kPreparedStatementSourceMax) {
    reader.Fail(absl::StrFormat("unknown prepared statement source %u", source));
  }
  statement.source = static_cast<PreparedStatement::Source>(source);
  statement.name = reader.String("prepared statement name");
  statement.query = reader.String("prepared statement query");
  const uint32_t count = reader.Count(4, "parameter type");
  statement.parameter_types.reserve(count);
  for (uint32_t i = 0; i < count && reader.ok(); ++i) {
    statement.parameter_types.push_back(reader.U32("parameter type"));
  }
  return statement;
}

// ---------------------------------------------------------------- one Put per kind

void Put(bytes::Writer& writer, const Message& message) {
  absl::Status valid = ValidateMessage(message.bytes);
  CHECK(valid.ok()) << "trace message record: " << valid.message();
  writer.Raw(message.bytes);
}
void Put(bytes::Writer& writer, const SessionOpen& open) { PutSession(writer, open); }
void Put(bytes::Writer& writer, const SessionClose& close) { writer.String(close.reason); }
void Put(bytes::Writer& writer, const Cancel& cancel) { writer.U8(cancel.forwarded ? 1 : 0); }
void Put(bytes::Writer& writer, const RecordsDropped& dropped) { writer.U64(dropped.count); }
void Put(bytes::Writer& writer, const Marker& marker) { writer.String(marker.text); }
void Put(bytes::Writer& writer, const Snapshot& snapshot) {
  CHECK(IsTransactionStatus(snapshot.transaction_status))
      << "snapshot transaction status " << static_cast<int>(snapshot.transaction_status);
  PutSession(writer, snapshot.session);
  writer.U8(static_cast<uint8_t>(snapshot.transaction_status));
  writer.U32(bytes::Writer::Count(snapshot.prepared_statements.size()));
  for (const PreparedStatement& statement : snapshot.prepared_statements) {
    PutPrepared(writer, statement);
  }
  PutKeyValues(writer, snapshot.settings);
}

// ---------------------------------------------------------------- one Get per kind

RecordBody GetMessage(bytes::Reader& reader) {
  Message message{std::string(reader.Rest())};
  absl::Status valid = ValidateMessage(message.bytes);
  if (!valid.ok()) reader.Fail(std::string(valid.message()));
  return message;
}

RecordBody GetCancel(bytes::Reader& reader) {
  const uint8_t forwarded = reader.U8("forwarded");
  if (forwarded > 1) reader.Fail(absl::StrFormat("forwarded is %u, not 0 or 1", forwarded));
  return Cancel{.forwarded = forwarded == 1};
}

RecordBody GetSnapshot(bytes::Reader& reader) {
  Snapshot snapshot;
  snapshot.session = GetSession(reader);
  snapshot.transaction_status = static_cast<char>(reader.U8("transaction status"));
  if (reader.ok() && !IsTransactionStatus(snapshot.transaction_status)) {
    reader.Fail(absl::StrFormat("transaction status 0x%02x is not I, T or E",
                                static_cast<uint8_t>(snapshot.transaction_status)));
  }
  const uint32_t count = reader.Count(kPreparedStatementSizeMin, "prepared statement");
  snapshot.prepared_statements.reserve(count);
  for (uint32_t i = 0; i < count && reader.ok(); ++i) {
    snapshot.prepared_statements.push_back(GetPrepared(reader));
  }
  snapshot.settings = GetKeyValues(reader, "setting");
  return snapshot;
}

RecordBody GetBody(RecordKind kind, bytes::Reader& reader) {
  switch (kind) {
    case RecordKind::kMessage:
      return GetMessage(reader);
    case RecordKind::kSessionOpen:
      return GetSession(reader);
    case RecordKind::kSessionClose:
      return SessionClose{.reason = reader.String("reason")};
    case RecordKind::kCancel:
      return GetCancel(reader);
    case RecordKind::kRecordsDropped:
      return RecordsDropped{.count = reader.U64("dropped count")};
    case RecordKind::kMarker:
      return Marker{.text = reader.String("marker text")};
    case RecordKind::kSnapshot:
      return GetSnapshot(reader);
  }
  CHECK(false) << "kind " << static_cast<int>(kind) << " was range-checked by the caller";
  return Marker{};
}

}  // namespace

absl::Status ValidateMessage(std::string_view raw) {
  if (raw.empty()) return absl::InvalidArgumentError("message is empty");
  if (raw[0] == '\0') {
    // The untyped startup family: the length word counts itself and the payload. Its first
    // byte is the length's high byte, which is 0 for every packet under 16 MiB, while no typed
    // message has type 0: that is what tells the two apart.
    if (raw.size() < 8) {
      return absl::InvalidArgumentError(
          absl::StrFormat("startup packet of %zu bytes is shorter than 8", raw.size()));
    }
    const uint32_t length = LoadBigEndian32(raw, 0);
    if (length != raw.size()) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "startup packet length word %u disagrees with its %zu bytes", length, raw.size()));
    }
    return absl::OkStatus();
  }
  if (raw.size() < 5) {
    return absl::InvalidArgumentError(
        absl::StrFormat("message of %zu bytes is shorter than its header", raw.size()));
  }
  const uint32_t length = LoadBigEndian32(raw, 1);
  if (length != raw.size() - 1) {
    return absl::InvalidArgumentError(
        absl::StrFormat("message length word %u disagrees with its %zu bytes", length, raw.size()));
  }
  return absl::OkStatus();
}

absl::Status AppendHeaderBody(const TraceHeader& header, std::string& out) {
  if (header.record_body_size_max < kRecordMetadataSize ||
      header.record_body_size_max > kRecordBodySizeMax) {
    return absl::InvalidArgumentError(
        absl::StrFormat("trace record size bound %u is outside [%zu, %zu]",
                        header.record_body_size_max, kRecordMetadataSize, kRecordBodySizeMax));
  }
  const size_t start = out.size();
  bytes::Writer writer(out);
  writer.I64(header.capture_start_unix_us);
  writer.U32(header.record_body_size_max);
  writer.String(header.proxy_id);
  PutKeyValues(writer, header.settings);
  const size_t size = out.size() - start;
  if (size > kHeaderBodySizeMax) {
    out.resize(start);
    return absl::InvalidArgumentError(absl::StrFormat(
        "trace header of %zu bytes (proxy id and capture settings) exceeds the bound of %zu", size,
        kHeaderBodySizeMax));
  }
  return absl::OkStatus();
}

absl::StatusOr<TraceHeader> DecodeHeaderBody(uint32_t version, std::string_view body) {
  CHECK(version >= 1 && version <= kFormatVersion) << "version " << version;
  bytes::Reader reader(body, "trace file header");
  TraceHeader header;
  header.version = version;
  header.capture_start_unix_us = reader.I64("capture start");
  header.record_body_size_max = reader.U32("record size bound");
  if (reader.ok() && (header.record_body_size_max < kRecordMetadataSize ||
                      header.record_body_size_max > kRecordBodySizeMax)) {
    reader.Fail(absl::StrFormat("record size bound %u is outside [%zu, %zu]",
                                header.record_body_size_max, kRecordMetadataSize,
                                kRecordBodySizeMax));
  }
  header.proxy_id = reader.String("proxy id");
  header.settings = GetKeyValues(reader, "capture setting");
  absl::Status status = reader.Finish();
  if (!status.ok()) return status;
  return header;
}

void AppendRecordBody(const Record& record, std::string& out) {
  CHECK_GE(record.time_us, 0) << "trace record time is before capture start";
  CHECK_EQ(record.flags & ~kFlagsKnown, 0) << "unknown trace record flags";
  CHECK(record.kind() != RecordKind::kMessage || record.direction != Direction::kNone)
      << "a message record needs a direction";
  bytes::Writer writer(out);
  writer.U8(static_cast<uint8_t>(record.kind()));
  writer.U8(static_cast<uint8_t>(record.direction));
  writer.U16(record.flags);
  writer.U64(record.session);
  writer.U64(record.sequence);
  writer.I64(record.time_us);
  writer.U64(record.connection);
  writer.U32(record.node);
  writer.I32(record.backend_pid);
  std::visit([&writer](const auto& body) { Put(writer, body); }, record.body);
}

absl::StatusOr<Record> DecodeRecordBody(std::string_view body) {
  bytes::Reader reader(body, "trace record");
  Record record;
  const uint8_t kind = reader.U8("kind");
  const uint8_t direction = reader.U8("direction");
  record.flags = reader.U16("flags");
  record.session = reader.U64("session");
  record.sequence = reader.U64("sequence");
  record.time_us = reader.I64("time");
  record.connection = reader.U64("connection");
  record.node = reader.U32("node");
  record.backend_pid = reader.I32("backend pid");
  if (!reader.ok()) return reader.Finish();
  if (kind == 0 || kind > kRecordKindMax) reader.Fail(absl::StrFormat("unknown kind %u", kind));
  if (direction > kDirectionMax) reader.Fail(absl::StrFormat("unknown direction %u", direction));
  if ((record.flags & ~kFlagsKnown) != 0) {
    reader.Fail(absl::StrFormat("unknown flags 0x%04x", record.flags));
  }
  if (record.time_us < 0) reader.Fail(absl::StrFormat("negative time %d", record.time_us));
  if (!reader.ok()) return reader.Finish();
  record.direction = static_cast<Direction>(direction);
  const auto record_kind = static_cast<RecordKind>(kind);
  if (record_kind == RecordKind::kMessage && record.direction == Direction::kNone) {
    reader.Fail("a message record has no direction");
  }
  record.body = GetBody(record_kind, reader);
  absl::Status status = reader.Finish();
  if (!status.ok()) return status;
  return record;
}

}  // namespace switchyard::trace::codec
