// The untyped startup family: StartupMessage, SSLRequest, GSSENCRequest and CancelRequest, and
// the dispatch between them on the code that follows the length word.
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "core/protocol/messages.h"
#include "core/protocol/wire.h"

namespace switchyard::pg {
namespace {

constexpr uint32_t kProtocolMajorSupported = 3;

uint32_t ProtocolMajor(int32_t protocol) { return static_cast<uint32_t>(protocol) >> 16; }
uint32_t ProtocolMinor(int32_t protocol) { return static_cast<uint32_t>(protocol) & 0xffff; }

// SSLRequest and GSSENCRequest: nothing but their code.
absl::Status DecodeCodeOnly(std::string_view payload, int32_t expected, const char* message) {
  wire::Reader reader(payload, message);
  int32_t code = reader.Int32("request code");
  if (reader.ok() && code != expected) {
    reader.Fail(absl::StrFormat("request code %d is not %d", code, expected));
  }
  return reader.Finish();
}

std::string EncodeCodeOnly(int32_t code) {
  wire::Writer writer(0);
  writer.Int32(code);
  return std::move(writer).Finish();
}

}  // namespace

std::string StartupMessage::Encode() const {
  wire::Writer writer(kType);
  writer.Int32(protocol);
  for (const auto& [name, value] : parameters) {
    // An empty name is the list terminator on the wire.
    SWITCHYARD_WIRE_CHECK(!name.empty());
    writer.CString(name);
    writer.CString(value);
  }
  writer.Byte(0);
  return std::move(writer).Finish();
}

absl::StatusOr<StartupMessage> StartupMessage::Decode(std::string_view payload) {
  wire::Reader reader(payload, "StartupMessage");
  StartupMessage message;
  message.protocol = reader.Int32("protocol version");
  if (!reader.ok()) return reader.status();
  if (ProtocolMajor(message.protocol) != kProtocolMajorSupported) {
    return absl::InvalidArgumentError(absl::StrFormat("unsupported frontend protocol %u.%u",
                                                      ProtocolMajor(message.protocol),
                                                      ProtocolMinor(message.protocol)));
  }
  // Pairs until an empty name, which must be the last byte (as PostgreSQL's
  // "expected terminator as last byte"). A missing "user" is the session's to report.
  while (reader.ok()) {
    if (reader.remaining() == 0) {
      reader.Fail("missing final terminator");
      break;
    }
    std::string name = reader.CString("parameter name");
    if (!reader.ok() || name.empty()) break;
    std::string value = reader.CString("parameter value");
    if (reader.ok()) message.parameters.emplace_back(std::move(name), std::move(value));
  }
  return wire::Finish(reader, std::move(message));
}

const std::string* StartupMessage::Find(std::string_view name) const {
  for (const auto& [key, value] : parameters) {
    if (key == name) return &value;
  }
  return nullptr;
}

std::string SslRequest::Encode() const { return EncodeCodeOnly(kSslRequestCode); }

absl::StatusOr<SslRequest> SslRequest::Decode(std::string_view payload) {
  absl::Status status = DecodeCodeOnly(payload, kSslRequestCode, "SSLRequest");
  if (!status.ok()) return status;
  return SslRequest{};
}

std::string GssEncRequest::Encode() const { return EncodeCodeOnly(kGssEncRequestCode); }

absl::StatusOr<GssEncRequest> GssEncRequest::Decode(std::string_view payload) {
  absl::Status status = DecodeCodeOnly(payload, kGssEncRequestCode, "GSSENCRequest");
  if (!status.ok()) return status;
  return GssEncRequest{};
}

std::string CancelRequest::Encode() const {
  wire::Writer writer(kType);
  writer.Int32(kCancelRequestCode);
  writer.Int32(pid);
  writer.Int32(secret);
  return std::move(writer).Finish();
}

absl::StatusOr<CancelRequest> CancelRequest::Decode(std::string_view payload) {
  wire::Reader reader(payload, "CancelRequest");
  int32_t code = reader.Int32("request code");
  if (reader.ok() && code != kCancelRequestCode) {
    reader.Fail(absl::StrFormat("request code %d is not %d", code, kCancelRequestCode));
  }
  CancelRequest message;
  message.pid = reader.Int32("process id");
  message.secret = reader.Int32("secret key");
  return wire::Finish(reader, message);
}

absl::StatusOr<StartupPacket> DecodeStartupPacket(std::string_view payload) {
  if (payload.size() < 4) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "startup packet payload of %zu bytes has no protocol code", payload.size()));
  }
  const int32_t code = static_cast<int32_t>(wire::LoadBigEndian32(payload.data()));
  switch (code) {
    case kSslRequestCode:
      return SslRequest::Decode(payload);
    case kGssEncRequestCode:
      return GssEncRequest::Decode(payload);
    case kCancelRequestCode:
      return CancelRequest::Decode(payload);
    default:
      // StartupMessage::Decode refuses every protocol but 3.x, naming the version.
      return StartupMessage::Decode(payload);
  }
}

}  // namespace switchyard::pg
