// Encoders and decoders for the typed messages a PostgreSQL client sends, per PostgreSQL 15
// "Message Formats". Decoding is structural: format-code values and the relation between the
// number of format codes and of parameters are the server's to judge (it answers them with an
// ERROR, not a dropped connection), so the proxy passes them through unchanged.
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "core/protocol/messages.h"
#include "core/protocol/wire.h"

namespace switchyard::pg {
namespace {

void WriteFormats(wire::Writer& writer, const std::vector<int16_t>& formats) {
  writer.Count16(formats.size());
  for (int16_t format : formats) writer.Int16(format);
}

std::vector<int16_t> ReadFormats(wire::Reader& reader, const char* field) {
  std::vector<int16_t> formats;
  size_t count = reader.Uint16(field);
  if (!reader.CountFits(count, 2, field)) return formats;
  formats.reserve(count);
  for (size_t i = 0; i < count; ++i) formats.push_back(reader.Int16(field));
  return formats;
}

void WriteValues(wire::Writer& writer, const std::vector<std::optional<std::string>>& values) {
  writer.Count16(values.size());
  for (const std::optional<std::string>& value : values) writer.NullableBytes(value);
}

std::vector<std::optional<std::string>> ReadValues(wire::Reader& reader, const char* field) {
  std::vector<std::optional<std::string>> values;
  size_t count = reader.Uint16(field);
  // Every value has at least its length word.
  if (!reader.CountFits(count, 4, field)) return values;
  values.reserve(count);
  for (size_t i = 0; i < count && reader.ok(); ++i) values.push_back(reader.NullableBytes(field));
  return values;
}

bool IsKind(char kind) { return kind == 'S' || kind == 'P'; }

// Close and Describe share one layout.
template <typename T>
std::string EncodeKindAndName(const T& message) {
  SWITCHYARD_WIRE_CHECK(IsKind(message.kind));
  wire::Writer writer(T::kType);
  writer.Byte(static_cast<uint8_t>(message.kind));
  writer.CString(message.name);
  return std::move(writer).Finish();
}

template <typename T>
absl::StatusOr<T> DecodeKindAndName(std::string_view payload, const char* name) {
  wire::Reader reader(payload, name);
  T message;
  message.kind = static_cast<char>(reader.Byte("kind"));
  if (reader.ok() && !IsKind(message.kind)) {
    reader.Fail(absl::StrFormat("kind 0x%02x is not S or P", static_cast<uint8_t>(message.kind)));
  }
  message.name = reader.CString("name");
  return wire::Finish(reader, std::move(message));
}

// Messages that are one C string.
template <typename T>
absl::StatusOr<T> DecodeString(std::string_view payload, const char* name, std::string T::*field) {
  wire::Reader reader(payload, name);
  T message;
  message.*field = reader.CString("string");
  return wire::Finish(reader, std::move(message));
}

// Messages that are all bytes up to the end.
std::string EncodeBytes(char type, std::string_view bytes) {
  wire::Writer writer(type);
  writer.Bytes(bytes);
  return std::move(writer).Finish();
}

}  // namespace

std::string Bind::Encode() const {
  wire::Writer writer(kType);
  writer.CString(portal);
  writer.CString(statement);
  WriteFormats(writer, parameter_formats);
  WriteValues(writer, parameters);
  WriteFormats(writer, result_formats);
  return std::move(writer).Finish();
}

absl::StatusOr<Bind> Bind::Decode(std::string_view payload) {
  wire::Reader reader(payload, "Bind");
  Bind message;
  message.portal = reader.CString("portal name");
  message.statement = reader.CString("statement name");
  message.parameter_formats = ReadFormats(reader, "parameter format");
  message.parameters = ReadValues(reader, "parameter value");
  message.result_formats = ReadFormats(reader, "result format");
  return wire::Finish(reader, std::move(message));
}

std::string Close::Encode() const { return EncodeKindAndName(*this); }
absl::StatusOr<Close> Close::Decode(std::string_view payload) {
  return DecodeKindAndName<Close>(payload, "Close");
}

std::string Describe::Encode() const { return EncodeKindAndName(*this); }
absl::StatusOr<Describe> Describe::Decode(std::string_view payload) {
  return DecodeKindAndName<Describe>(payload, "Describe");
}

std::string CopyFail::Encode() const { return wire::EncodeString(kType, message); }
absl::StatusOr<CopyFail> CopyFail::Decode(std::string_view payload) {
  return DecodeString<CopyFail>(payload, "CopyFail", &CopyFail::message);
}

std::string Execute::Encode() const {
  wire::Writer writer(kType);
  writer.CString(portal);
  writer.Int32(max_rows);
  return std::move(writer).Finish();
}

absl::StatusOr<Execute> Execute::Decode(std::string_view payload) {
  wire::Reader reader(payload, "Execute");
  Execute message;
  message.portal = reader.CString("portal name");
  message.max_rows = reader.Int32("row limit");
  return wire::Finish(reader, std::move(message));
}

std::string Flush::Encode() const { return wire::EncodeEmpty(kType); }
absl::StatusOr<Flush> Flush::Decode(std::string_view payload) {
  return wire::DecodeEmpty<Flush>(payload, "Flush");
}

std::string FunctionCall::Encode() const {
  wire::Writer writer(kType);
  writer.Uint32(function_oid);
  WriteFormats(writer, argument_formats);
  WriteValues(writer, arguments);
  writer.Int16(result_format);
  return std::move(writer).Finish();
}

absl::StatusOr<FunctionCall> FunctionCall::Decode(std::string_view payload) {
  wire::Reader reader(payload, "FunctionCall");
  FunctionCall message;
  message.function_oid = reader.Uint32("function oid");
  message.argument_formats = ReadFormats(reader, "argument format");
  message.arguments = ReadValues(reader, "argument value");
  message.result_format = reader.Int16("result format");
  return wire::Finish(reader, std::move(message));
}

std::string Parse::Encode() const {
  wire::Writer writer(kType);
  writer.CString(name);
  writer.CString(query);
  writer.Count16(parameter_types.size());
  for (uint32_t oid : parameter_types) writer.Uint32(oid);
  return std::move(writer).Finish();
}

absl::StatusOr<Parse> Parse::Decode(std::string_view payload) {
  wire::Reader reader(payload, "Parse");
  Parse message;
  message.name = reader.CString("statement name");
  message.query = reader.CString("query");
  size_t count = reader.Uint16("parameter type count");
  if (reader.CountFits(count, 4, "parameter type")) {
    message.parameter_types.reserve(count);
    for (size_t i = 0; i < count; ++i) {
      message.parameter_types.push_back(reader.Uint32("parameter type"));
    }
  }
  return wire::Finish(reader, std::move(message));
}

std::string PasswordMessage::Encode() const { return wire::EncodeString(kType, password); }
absl::StatusOr<PasswordMessage> PasswordMessage::Decode(std::string_view payload) {
  return DecodeString<PasswordMessage>(payload, "PasswordMessage", &PasswordMessage::password);
}

std::string GssResponse::Encode() const { return EncodeBytes(kType, data); }
absl::StatusOr<GssResponse> GssResponse::Decode(std::string_view payload) {
  return GssResponse{.data = std::string(payload)};
}

std::string SaslInitialResponse::Encode() const {
  wire::Writer writer(kType);
  writer.CString(mechanism);
  writer.NullableBytes(data);
  return std::move(writer).Finish();
}

absl::StatusOr<SaslInitialResponse> SaslInitialResponse::Decode(std::string_view payload) {
  wire::Reader reader(payload, "SASLInitialResponse");
  SaslInitialResponse message;
  message.mechanism = reader.CString("mechanism name");
  message.data = reader.NullableBytes("initial response");
  return wire::Finish(reader, std::move(message));
}

std::string SaslResponse::Encode() const { return EncodeBytes(kType, data); }
absl::StatusOr<SaslResponse> SaslResponse::Decode(std::string_view payload) {
  return SaslResponse{.data = std::string(payload)};
}

std::string Query::Encode() const { return wire::EncodeString(kType, sql); }
absl::StatusOr<Query> Query::Decode(std::string_view payload) {
  return DecodeString<Query>(payload, "Query", &Query::sql);
}

std::string Sync::Encode() const { return wire::EncodeEmpty(kType); }
absl::StatusOr<Sync> Sync::Decode(std::string_view payload) {
  return wire::DecodeEmpty<Sync>(payload, "Sync");
}

std::string Terminate::Encode() const { return wire::EncodeEmpty(kType); }
absl::StatusOr<Terminate> Terminate::Decode(std::string_view payload) {
  return wire::DecodeEmpty<Terminate>(payload, "Terminate");
}

}  // namespace switchyard::pg
