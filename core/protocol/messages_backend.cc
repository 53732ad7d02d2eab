// Encoders and decoders for the messages a PostgreSQL server sends (and the Copy messages both
// sides send), per PostgreSQL 15 "Message Formats".
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "core/protocol/messages.h"
#include "core/protocol/wire.h"

namespace switchyard::pg {
namespace {

// The SASL mechanism list: NUL-terminated names, then one more NUL.
absl::Status ParseSaslMechanisms(std::string_view data, std::vector<std::string>* names) {
  wire::Reader reader(data, "AuthenticationSASL");
  while (reader.ok()) {
    std::string name = reader.CString("mechanism name");
    if (!reader.ok() || name.empty()) break;
    names->push_back(std::move(name));
  }
  return reader.Finish();
}

// The data after the code has a fixed shape for every code but the ones carrying GSS or SASL
// exchange bytes.
absl::Status ValidateAuthenticationData(int32_t code, std::string_view data) {
  switch (code) {
    case Authentication::kOk:
    case Authentication::kKerberosV5:
    case Authentication::kCleartextPassword:
    case Authentication::kScmCredential:
    case Authentication::kGss:
    case Authentication::kSspi:
      if (data.empty()) return absl::OkStatus();
      return absl::InvalidArgumentError(absl::StrFormat(
          "malformed Authentication: code %d carries %zu unexpected bytes", code, data.size()));
    case Authentication::kMd5Password:
      if (data.size() == 4) return absl::OkStatus();
      return absl::InvalidArgumentError(absl::StrFormat(
          "malformed AuthenticationMD5Password: salt is %zu bytes, not 4", data.size()));
    case Authentication::kSasl: {
      std::vector<std::string> names;
      return ParseSaslMechanisms(data, &names);
    }
    case Authentication::kGssContinue:
    case Authentication::kSaslContinue:
    case Authentication::kSaslFinal:
      return absl::OkStatus();
    default:
      return absl::InvalidArgumentError(
          absl::StrFormat("malformed Authentication: unknown request code %d", code));
  }
}

}  // namespace

// ---------------------------------------------------------------- Authentication

std::string Authentication::Encode() const {
  wire::Writer writer(kType);
  writer.Int32(code);
  writer.Bytes(data);
  return std::move(writer).Finish();
}

absl::StatusOr<Authentication> Authentication::Decode(std::string_view payload) {
  wire::Reader reader(payload, "Authentication");
  Authentication message;
  message.code = reader.Int32("request code");
  message.data = std::string(reader.Rest());
  if (!reader.ok()) return reader.status();
  absl::Status status = ValidateAuthenticationData(message.code, message.data);
  if (!status.ok()) return status;
  return message;
}

std::vector<std::string> Authentication::SaslMechanisms() const {
  std::vector<std::string> names;
  if (code != kSasl || !ParseSaslMechanisms(data, &names).ok()) return {};
  return names;
}

Authentication Authentication::Sasl(const std::vector<std::string>& mechanisms) {
  Authentication message;
  message.code = kSasl;
  for (const std::string& name : mechanisms) {
    // An empty name would end the list early.
    SWITCHYARD_WIRE_CHECK(!name.empty());
    SWITCHYARD_WIRE_CHECK(name.find('\0') == std::string::npos);
    message.data += name;
    message.data.push_back('\0');
  }
  message.data.push_back('\0');
  return message;
}

// ---------------------------------------------------------------- fixed-size messages

std::string BackendKeyData::Encode() const {
  wire::Writer writer(kType);
  writer.Int32(pid);
  writer.Int32(secret);
  return std::move(writer).Finish();
}

absl::StatusOr<BackendKeyData> BackendKeyData::Decode(std::string_view payload) {
  wire::Reader reader(payload, "BackendKeyData");
  BackendKeyData message;
  message.pid = reader.Int32("process id");
  message.secret = reader.Int32("secret key");
  return wire::Finish(reader, message);
}

std::string BindComplete::Encode() const { return wire::EncodeEmpty(kType); }
absl::StatusOr<BindComplete> BindComplete::Decode(std::string_view payload) {
  return wire::DecodeEmpty<BindComplete>(payload, "BindComplete");
}

std::string CloseComplete::Encode() const { return wire::EncodeEmpty(kType); }
absl::StatusOr<CloseComplete> CloseComplete::Decode(std::string_view payload) {
  return wire::DecodeEmpty<CloseComplete>(payload, "CloseComplete");
}

std::string CopyDone::Encode() const { return wire::EncodeEmpty(kType); }
absl::StatusOr<CopyDone> CopyDone::Decode(std::string_view payload) {
  return wire::DecodeEmpty<CopyDone>(payload, "CopyDone");
}

std::string EmptyQueryResponse::Encode() const { return wire::EncodeEmpty(kType); }
absl::StatusOr<EmptyQueryResponse> EmptyQueryResponse::Decode(std::string_view payload) {
  return wire::DecodeEmpty<EmptyQueryResponse>(payload, "EmptyQueryResponse");
}

std::string NoData::Encode() const { return wire::EncodeEmpty(kType); }
absl::StatusOr<NoData> NoData::Decode(std::string_view payload) {
  return wire::DecodeEmpty<NoData>(payload, "NoData");
}

std::string ParseComplete::Encode() const { return wire::EncodeEmpty(kType); }
absl::StatusOr<ParseComplete> ParseComplete::Decode(std::string_view payload) {
  return wire::DecodeEmpty<ParseComplete>(payload, "ParseComplete");
}

std::string PortalSuspended::Encode() const { return wire::EncodeEmpty(kType); }
absl::StatusOr<PortalSuspended> PortalSuspended::Decode(std::string_view payload) {
  return wire::DecodeEmpty<PortalSuspended>(payload, "PortalSuspended");
}

std::string ReadyForQuery::Encode() const {
  SWITCHYARD_WIRE_CHECK(status == 'I' || status == 'T' || status == 'E');
  wire::Writer writer(kType);
  writer.Byte(static_cast<uint8_t>(status));
  return std::move(writer).Finish();
}

absl::StatusOr<ReadyForQuery> ReadyForQuery::Decode(std::string_view payload) {
  wire::Reader reader(payload, "ReadyForQuery");
  ReadyForQuery message;
  message.status = static_cast<char>(reader.Byte("transaction status"));
  if (reader.ok() && message.status != 'I' && message.status != 'T' && message.status != 'E') {
    reader.Fail(absl::StrFormat("transaction status 0x%02x is not I, T or E",
                                static_cast<uint8_t>(message.status)));
  }
  return wire::Finish(reader, message);
}

// ---------------------------------------------------------------- strings and bytes

std::string CommandComplete::Encode() const { return wire::EncodeString(kType, tag); }

absl::StatusOr<CommandComplete> CommandComplete::Decode(std::string_view payload) {
  wire::Reader reader(payload, "CommandComplete");
  CommandComplete message;
  message.tag = reader.CString("command tag");
  return wire::Finish(reader, std::move(message));
}

std::string CopyData::Encode() const {
  wire::Writer writer(kType);
  writer.Bytes(data);
  return std::move(writer).Finish();
}

absl::StatusOr<CopyData> CopyData::Decode(std::string_view payload) {
  return CopyData{.data = std::string(payload)};
}

std::string ParameterStatus::Encode() const {
  wire::Writer writer(kType);
  writer.CString(name);
  writer.CString(value);
  return std::move(writer).Finish();
}

absl::StatusOr<ParameterStatus> ParameterStatus::Decode(std::string_view payload) {
  wire::Reader reader(payload, "ParameterStatus");
  ParameterStatus message;
  message.name = reader.CString("parameter name");
  message.value = reader.CString("parameter value");
  return wire::Finish(reader, std::move(message));
}

std::string NotificationResponse::Encode() const {
  wire::Writer writer(kType);
  writer.Int32(pid);
  writer.CString(channel);
  writer.CString(payload);
  return std::move(writer).Finish();
}

absl::StatusOr<NotificationResponse> NotificationResponse::Decode(std::string_view payload) {
  wire::Reader reader(payload, "NotificationResponse");
  NotificationResponse message;
  message.pid = reader.Int32("process id");
  message.channel = reader.CString("channel");
  message.payload = reader.CString("payload");
  return wire::Finish(reader, std::move(message));
}

std::string FunctionCallResponse::Encode() const {
  wire::Writer writer(kType);
  writer.NullableBytes(result);
  return std::move(writer).Finish();
}

absl::StatusOr<FunctionCallResponse> FunctionCallResponse::Decode(std::string_view payload) {
  wire::Reader reader(payload, "FunctionCallResponse");
  FunctionCallResponse message;
  message.result = reader.NullableBytes("result");
  return wire::Finish(reader, std::move(message));
}

// ---------------------------------------------------------------- counted lists

std::string CopyResponse::Encode() const {
  SWITCHYARD_WIRE_CHECK(type == 'G' || type == 'H' || type == 'W');
  wire::Writer writer(type);
  writer.Byte(static_cast<uint8_t>(format));
  writer.Count16(column_formats.size());
  for (int16_t column_format : column_formats) writer.Int16(column_format);
  return std::move(writer).Finish();
}

absl::StatusOr<CopyResponse> CopyResponse::Decode(char type, std::string_view payload) {
  if (type != 'G' && type != 'H' && type != 'W') {
    return absl::InvalidArgumentError(
        absl::StrFormat("CopyResponse type 0x%02x is not G, H or W", static_cast<uint8_t>(type)));
  }
  wire::Reader reader(payload, TypeName(Direction::kBackend, type).data());
  CopyResponse message;
  message.type = type;
  message.format = static_cast<int8_t>(reader.Byte("overall format"));
  size_t count = reader.Uint16("column count");
  if (reader.CountFits(count, 2, "column format")) {
    message.column_formats.reserve(count);
    for (size_t i = 0; i < count; ++i) {
      message.column_formats.push_back(reader.Int16("column format"));
    }
  }
  return wire::Finish(reader, std::move(message));
}

std::string DataRow::Encode() const {
  wire::Writer writer(kType);
  writer.Count16(values.size());
  for (const std::optional<std::string>& value : values) writer.NullableBytes(value);
  return std::move(writer).Finish();
}

absl::StatusOr<DataRow> DataRow::Decode(std::string_view payload) {
  wire::Reader reader(payload, "DataRow");
  DataRow message;
  size_t count = reader.Uint16("column count");
  // Every column has at least its length word.
  if (reader.CountFits(count, 4, "column")) {
    message.values.reserve(count);
    for (size_t i = 0; i < count && reader.ok(); ++i) {
      message.values.push_back(reader.NullableBytes("column value"));
    }
  }
  return wire::Finish(reader, std::move(message));
}

std::string NegotiateProtocolVersion::Encode() const {
  wire::Writer writer(kType);
  writer.Int32(newest_minor);
  SWITCHYARD_WIRE_CHECK(unrecognized_options.size() <= wire::kLength32Max);
  writer.Int32(static_cast<int32_t>(unrecognized_options.size()));
  for (const std::string& option : unrecognized_options) writer.CString(option);
  return std::move(writer).Finish();
}

absl::StatusOr<NegotiateProtocolVersion> NegotiateProtocolVersion::Decode(
    std::string_view payload) {
  wire::Reader reader(payload, "NegotiateProtocolVersion");
  NegotiateProtocolVersion message;
  message.newest_minor = reader.Int32("newest minor version");
  int32_t count = reader.Int32("option count");
  if (reader.ok() && count < 0) reader.Fail(absl::StrFormat("negative option count %d", count));
  // Every option name has at least its terminator.
  if (reader.CountFits(static_cast<size_t>(count), 1, "option")) {
    message.unrecognized_options.reserve(static_cast<size_t>(count));
    for (int32_t i = 0; i < count && reader.ok(); ++i) {
      message.unrecognized_options.push_back(reader.CString("option name"));
    }
  }
  return wire::Finish(reader, std::move(message));
}

std::string ParameterDescription::Encode() const {
  wire::Writer writer(kType);
  writer.Count16(type_oids.size());
  for (uint32_t oid : type_oids) writer.Uint32(oid);
  return std::move(writer).Finish();
}

absl::StatusOr<ParameterDescription> ParameterDescription::Decode(std::string_view payload) {
  wire::Reader reader(payload, "ParameterDescription");
  ParameterDescription message;
  size_t count = reader.Uint16("parameter count");
  if (reader.CountFits(count, 4, "parameter type")) {
    message.type_oids.reserve(count);
    for (size_t i = 0; i < count; ++i) message.type_oids.push_back(reader.Uint32("type oid"));
  }
  return wire::Finish(reader, std::move(message));
}

std::string RowDescription::Encode() const {
  wire::Writer writer(kType);
  writer.Count16(fields.size());
  for (const Field& field : fields) {
    writer.CString(field.name);
    writer.Uint32(field.table_oid);
    writer.Int16(field.column);
    writer.Uint32(field.type_oid);
    writer.Int16(field.type_size);
    writer.Int32(field.type_modifier);
    writer.Int16(field.format);
  }
  return std::move(writer).Finish();
}

absl::StatusOr<RowDescription> RowDescription::Decode(std::string_view payload) {
  wire::Reader reader(payload, "RowDescription");
  RowDescription message;
  size_t count = reader.Uint16("field count");
  // A name terminator and 18 bytes of fixed fields.
  constexpr size_t kFieldSizeMin = 1 + 4 + 2 + 4 + 2 + 4 + 2;
  if (reader.CountFits(count, kFieldSizeMin, "field")) {
    message.fields.reserve(count);
    for (size_t i = 0; i < count && reader.ok(); ++i) {
      Field field;
      field.name = reader.CString("field name");
      field.table_oid = reader.Uint32("table oid");
      field.column = reader.Int16("column number");
      field.type_oid = reader.Uint32("type oid");
      field.type_size = reader.Int16("type size");
      field.type_modifier = reader.Int32("type modifier");
      field.format = reader.Int16("format code");
      message.fields.push_back(std::move(field));
    }
  }
  return wire::Finish(reader, std::move(message));
}

// ---------------------------------------------------------------- ErrorResponse / NoticeResponse

std::string ErrorFields::Encode() const {
  SWITCHYARD_WIRE_CHECK(type == 'E' || type == 'N');
  wire::Writer writer(type);
  for (const auto& [code, value] : fields) {
    // A zero code is the terminator on the wire.
    SWITCHYARD_WIRE_CHECK(code != 0);
    writer.Byte(static_cast<uint8_t>(code));
    writer.CString(value);
  }
  writer.Byte(0);
  return std::move(writer).Finish();
}

absl::StatusOr<ErrorFields> ErrorFields::Decode(char type, std::string_view payload) {
  if (type != 'E' && type != 'N') {
    return absl::InvalidArgumentError(
        absl::StrFormat("ErrorFields type 0x%02x is not E or N", static_cast<uint8_t>(type)));
  }
  wire::Reader reader(payload, type == 'E' ? "ErrorResponse" : "NoticeResponse");
  ErrorFields message;
  message.type = type;
  while (reader.ok()) {
    if (reader.remaining() == 0) {
      reader.Fail("missing final terminator");
      break;
    }
    char code = static_cast<char>(reader.Byte("field code"));
    if (code == 0) break;
    std::string value = reader.CString("field value");
    if (reader.ok()) message.fields.emplace_back(code, std::move(value));
  }
  return wire::Finish(reader, std::move(message));
}

std::string_view ErrorFields::Field(char code) const {
  for (const auto& [field_code, value] : fields) {
    if (field_code == code) return value;
  }
  return "";
}

std::string_view ErrorFields::severity() const {
  // 'V' (PostgreSQL 9.6+) is never localized, so prefer it for decisions.
  for (const auto& [code, value] : fields) {
    if (code == 'V') return value;
  }
  return Field('S');
}

bool ErrorFields::IsFatal() const {
  std::string_view level = severity();
  return level == "FATAL" || level == "PANIC";
}

namespace {

// Error texts are often formatted from what a peer sent; a NUL among those bytes must not turn
// into a crash in Encode, and in a diagnostic a replaced byte loses nothing that matters.
std::string WithoutNul(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (c == '\0') c = '?';
  }
  return out;
}

}  // namespace

std::string BuildError(std::string_view severity, std::string_view sqlstate,
                       std::string_view message, char type) {
  ErrorFields error;
  error.type = type;
  error.fields = {{'S', WithoutNul(severity)},
                  {'V', WithoutNul(severity)},
                  {'C', WithoutNul(sqlstate)},
                  {'M', WithoutNul(message)}};
  return error.Encode();
}

}  // namespace switchyard::pg
