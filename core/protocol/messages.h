// Typed views and builders for every PostgreSQL v3 message (PostgreSQL 15 "Message Formats").
// Each struct has kType (0 for the untyped startup family), Encode() -> whole message bytes, and
// static Decode(payload) -> StatusOr<struct>, where payload excludes the type byte and length
// word. Decode validates every length and terminator and never reads past the payload.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "absl/status/statusor.h"
#include "core/protocol/framing.h"

namespace switchyard::pg {

inline constexpr int32_t kProtocolVersion3 = 196608;  // 3.0
inline constexpr int32_t kSslRequestCode = 80877103;
inline constexpr int32_t kGssEncRequestCode = 80877104;
inline constexpr int32_t kCancelRequestCode = 80877102;

using Parameters = std::vector<std::pair<std::string, std::string>>;

// ---------------------------------------------------------------- startup family (untyped)

struct StartupMessage {
  static constexpr char kType = 0;
  int32_t protocol = kProtocolVersion3;
  Parameters parameters;  // in the order the client sent them; "user" is required
  std::string Encode() const;
  static absl::StatusOr<StartupMessage> Decode(std::string_view payload);
  const std::string* Find(std::string_view name) const;
  friend bool operator==(const StartupMessage&, const StartupMessage&) = default;
};
struct SslRequest {
  static constexpr char kType = 0;
  std::string Encode() const;
  static absl::StatusOr<SslRequest> Decode(std::string_view payload);
  friend bool operator==(const SslRequest&, const SslRequest&) = default;
};
struct GssEncRequest {
  static constexpr char kType = 0;
  std::string Encode() const;
  static absl::StatusOr<GssEncRequest> Decode(std::string_view payload);
  friend bool operator==(const GssEncRequest&, const GssEncRequest&) = default;
};
struct CancelRequest {
  static constexpr char kType = 0;
  int32_t pid = 0;
  int32_t secret = 0;
  std::string Encode() const;
  static absl::StatusOr<CancelRequest> Decode(std::string_view payload);
  friend bool operator==(const CancelRequest&, const CancelRequest&) = default;
};
using StartupPacket = std::variant<StartupMessage, SslRequest, GssEncRequest, CancelRequest>;
// Decodes any startup-family packet from its payload (after the length word).
absl::StatusOr<StartupPacket> DecodeStartupPacket(std::string_view payload);

// ---------------------------------------------------------------- backend messages

// 'R': every Authentication* message. `code` says which; `data` is the rest of the payload
// (MD5 salt, SASL mechanism list as NUL-terminated names, SASL data, GSS data).
struct Authentication {
  static constexpr char kType = 'R';
  enum Code : int32_t {
    kOk = 0,
    kKerberosV5 = 2,
    kCleartextPassword = 3,
    kMd5Password = 5,
    kScmCredential = 6,
    kGss = 7,
    kGssContinue = 8,
    kSspi = 9,
    kSasl = 10,
    kSaslContinue = 11,
    kSaslFinal = 12,
  };
  int32_t code = kOk;
  std::string data;
  std::string Encode() const;
  static absl::StatusOr<Authentication> Decode(std::string_view payload);
  // For kSasl: the mechanism names.
  std::vector<std::string> SaslMechanisms() const;
  static Authentication Sasl(const std::vector<std::string>& mechanisms);
  friend bool operator==(const Authentication&, const Authentication&) = default;
};
struct BackendKeyData {
  static constexpr char kType = 'K';
  int32_t pid = 0;
  int32_t secret = 0;
  std::string Encode() const;
  static absl::StatusOr<BackendKeyData> Decode(std::string_view payload);
  friend bool operator==(const BackendKeyData&, const BackendKeyData&) = default;
};
struct BindComplete {
  static constexpr char kType = '2';
  std::string Encode() const;
  static absl::StatusOr<BindComplete> Decode(std::string_view payload);
  friend bool operator==(const BindComplete&, const BindComplete&) = default;
};
struct CloseComplete {
  static constexpr char kType = '3';
  std::string Encode() const;
  static absl::StatusOr<CloseComplete> Decode(std::string_view payload);
  friend bool operator==(const CloseComplete&, const CloseComplete&) = default;
};
struct CommandComplete {
  static constexpr char kType = 'C';
  std::string tag;
  std::string Encode() const;
  static absl::StatusOr<CommandComplete> Decode(std::string_view payload);
  friend bool operator==(const CommandComplete&, const CommandComplete&) = default;
};
// 'd' in both directions.
struct CopyData {
  static constexpr char kType = 'd';
  std::string data;
  std::string Encode() const;
  static absl::StatusOr<CopyData> Decode(std::string_view payload);
  friend bool operator==(const CopyData&, const CopyData&) = default;
};
// 'c' in both directions.
struct CopyDone {
  static constexpr char kType = 'c';
  std::string Encode() const;
  static absl::StatusOr<CopyDone> Decode(std::string_view payload);
  friend bool operator==(const CopyDone&, const CopyDone&) = default;
};
// 'G' CopyInResponse, 'H' CopyOutResponse, 'W' CopyBothResponse share one layout.
struct CopyResponse {
  char type = 'G';
  int8_t format = 0;
  std::vector<int16_t> column_formats;
  std::string Encode() const;
  static absl::StatusOr<CopyResponse> Decode(char type, std::string_view payload);
  friend bool operator==(const CopyResponse&, const CopyResponse&) = default;
};
struct DataRow {
  static constexpr char kType = 'D';
  std::vector<std::optional<std::string>> values;  // nullopt is SQL NULL
  std::string Encode() const;
  static absl::StatusOr<DataRow> Decode(std::string_view payload);
  friend bool operator==(const DataRow&, const DataRow&) = default;
};
struct EmptyQueryResponse {
  static constexpr char kType = 'I';
  std::string Encode() const;
  static absl::StatusOr<EmptyQueryResponse> Decode(std::string_view payload);
  friend bool operator==(const EmptyQueryResponse&, const EmptyQueryResponse&) = default;
};
// 'E' ErrorResponse and 'N' NoticeResponse: (field code, value) pairs.
struct ErrorFields {
  char type = 'E';
  std::vector<std::pair<char, std::string>> fields;
  std::string Encode() const;
  static absl::StatusOr<ErrorFields> Decode(char type, std::string_view payload);
  // The value of field `code` ('S' severity, 'V' non-localized severity, 'C' SQLSTATE,
  // 'M' message, ...), or "" when absent.
  std::string_view Field(char code) const;
  std::string_view sqlstate() const { return Field('C'); }
  std::string_view severity() const;  // 'V' if present, else 'S'
  bool IsFatal() const;               // FATAL or PANIC
  friend bool operator==(const ErrorFields&, const ErrorFields&) = default;
};
// An ErrorResponse (or NoticeResponse) with severity, SQLSTATE and message filled in.
std::string BuildError(std::string_view severity, std::string_view sqlstate,
                       std::string_view message, char type = 'E');
struct FunctionCallResponse {
  static constexpr char kType = 'V';
  std::optional<std::string> result;
  std::string Encode() const;
  static absl::StatusOr<FunctionCallResponse> Decode(std::string_view payload);
  friend bool operator==(const FunctionCallResponse&, const FunctionCallResponse&) = default;
};
struct NegotiateProtocolVersion {
  static constexpr char kType = 'v';
  int32_t newest_minor = 0;
  std::vector<std::string> unrecognized_options;
  std::string Encode() const;
  static absl::StatusOr<NegotiateProtocolVersion> Decode(std::string_view payload);
  friend bool operator==(const NegotiateProtocolVersion&,
                         const NegotiateProtocolVersion&) = default;
};
struct NoData {
  static constexpr char kType = 'n';
  std::string Encode() const;
  static absl::StatusOr<NoData> Decode(std::string_view payload);
  friend bool operator==(const NoData&, const NoData&) = default;
};
struct NotificationResponse {
  static constexpr char kType = 'A';
  int32_t pid = 0;
  std::string channel;
  std::string payload;
  std::string Encode() const;
  static absl::StatusOr<NotificationResponse> Decode(std::string_view payload);
  friend bool operator==(const NotificationResponse&, const NotificationResponse&) = default;
};
struct ParameterDescription {
  static constexpr char kType = 't';
  std::vector<uint32_t> type_oids;
  std::string Encode() const;
  static absl::StatusOr<ParameterDescription> Decode(std::string_view payload);
  friend bool operator==(const ParameterDescription&, const ParameterDescription&) = default;
};
struct ParameterStatus {
  static constexpr char kType = 'S';
  std::string name;
  std::string value;
  std::string Encode() const;
  static absl::StatusOr<ParameterStatus> Decode(std::string_view payload);
  friend bool operator==(const ParameterStatus&, const ParameterStatus&) = default;
};
struct ParseComplete {
  static constexpr char kType = '1';
  std::string Encode() const;
  static absl::StatusOr<ParseComplete> Decode(std::string_view payload);
  friend bool operator==(const ParseComplete&, const ParseComplete&) = default;
};
struct PortalSuspended {
  static constexpr char kType = 's';
  std::string Encode() const;
  static absl::StatusOr<PortalSuspended> Decode(std::string_view payload);
  friend bool operator==(const PortalSuspended&, const PortalSuspended&) = default;
};
struct ReadyForQuery {
  static constexpr char kType = 'Z';
  char status = 'I';  // 'I' idle, 'T' in transaction, 'E' failed transaction
  std::string Encode() const;
  static absl::StatusOr<ReadyForQuery> Decode(std::string_view payload);
  friend bool operator==(const ReadyForQuery&, const ReadyForQuery&) = default;
};
struct RowDescription {
  static constexpr char kType = 'T';
  struct Field {
    std::string name;
    uint32_t table_oid = 0;
    int16_t column = 0;
    uint32_t type_oid = 0;
    int16_t type_size = 0;
    int32_t type_modifier = 0;
    int16_t format = 0;
    friend bool operator==(const Field&, const Field&) = default;
  };
  std::vector<Field> fields;
  std::string Encode() const;
  static absl::StatusOr<RowDescription> Decode(std::string_view payload);
  friend bool operator==(const RowDescription&, const RowDescription&) = default;
};

// ---------------------------------------------------------------- frontend messages

struct Bind {
  static constexpr char kType = 'B';
  std::string portal;
  std::string statement;
  std::vector<int16_t> parameter_formats;
  std::vector<std::optional<std::string>> parameters;
  std::vector<int16_t> result_formats;
  std::string Encode() const;
  static absl::StatusOr<Bind> Decode(std::string_view payload);
  friend bool operator==(const Bind&, const Bind&) = default;
};
// 'C' Close and 'D' Describe: a kind ('S' statement or 'P' portal) and a name.
struct Close {
  static constexpr char kType = 'C';
  char kind = 'S';
  std::string name;
  std::string Encode() const;
  static absl::StatusOr<Close> Decode(std::string_view payload);
  friend bool operator==(const Close&, const Close&) = default;
};
struct Describe {
  static constexpr char kType = 'D';
  char kind = 'S';
  std::string name;
  std::string Encode() const;
  static absl::StatusOr<Describe> Decode(std::string_view payload);
  friend bool operator==(const Describe&, const Describe&) = default;
};
struct CopyFail {
  static constexpr char kType = 'f';
  std::string message;
  std::string Encode() const;
  static absl::StatusOr<CopyFail> Decode(std::string_view payload);
  friend bool operator==(const CopyFail&, const CopyFail&) = default;
};
struct Execute {
  static constexpr char kType = 'E';
  std::string portal;
  int32_t max_rows = 0;
  std::string Encode() const;
  static absl::StatusOr<Execute> Decode(std::string_view payload);
  friend bool operator==(const Execute&, const Execute&) = default;
};
struct Flush {
  static constexpr char kType = 'H';
  std::string Encode() const;
  static absl::StatusOr<Flush> Decode(std::string_view payload);
  friend bool operator==(const Flush&, const Flush&) = default;
};
struct FunctionCall {
  static constexpr char kType = 'F';
  uint32_t function_oid = 0;
  std::vector<int16_t> argument_formats;
  std::vector<std::optional<std::string>> arguments;
  int16_t result_format = 0;
  std::string Encode() const;
  static absl::StatusOr<FunctionCall> Decode(std::string_view payload);
  friend bool operator==(const FunctionCall&, const FunctionCall&) = default;
};
struct Parse {
  static constexpr char kType = 'P';
  std::string name;
  std::string query;
  std::vector<uint32_t> parameter_types;
  std::string Encode() const;
  static absl::StatusOr<Parse> Decode(std::string_view payload);
  friend bool operator==(const Parse&, const Parse&) = default;
};
// 'p' carries four different messages; the receiver knows from the auth exchange which.
struct PasswordMessage {
  static constexpr char kType = 'p';
  std::string password;
  std::string Encode() const;
  static absl::StatusOr<PasswordMessage> Decode(std::string_view payload);
  friend bool operator==(const PasswordMessage&, const PasswordMessage&) = default;
};
struct GssResponse {
  static constexpr char kType = 'p';
  std::string data;
  std::string Encode() const;
  static absl::StatusOr<GssResponse> Decode(std::string_view payload);
  friend bool operator==(const GssResponse&, const GssResponse&) = default;
};
struct SaslInitialResponse {
  static constexpr char kType = 'p';
  std::string mechanism;
  std::optional<std::string> data;  // length -1 on the wire is nullopt
  std::string Encode() const;
  static absl::StatusOr<SaslInitialResponse> Decode(std::string_view payload);
  friend bool operator==(const SaslInitialResponse&, const SaslInitialResponse&) = default;
};
struct SaslResponse {
  static constexpr char kType = 'p';
  std::string data;
  std::string Encode() const;
  static absl::StatusOr<SaslResponse> Decode(std::string_view payload);
  friend bool operator==(const SaslResponse&, const SaslResponse&) = default;
};
struct Query {
  static constexpr char kType = 'Q';
  std::string sql;
  std::string Encode() const;
  static absl::StatusOr<Query> Decode(std::string_view payload);
  friend bool operator==(const Query&, const Query&) = default;
};
struct Sync {
  static constexpr char kType = 'S';
  std::string Encode() const;
  static absl::StatusOr<Sync> Decode(std::string_view payload);
  friend bool operator==(const Sync&, const Sync&) = default;
};
struct Terminate {
  static constexpr char kType = 'X';
  std::string Encode() const;
  static absl::StatusOr<Terminate> Decode(std::string_view payload);
  friend bool operator==(const Terminate&, const Terminate&) = default;
};

// A human-readable name for a message type, for logs and errors ("Query", "DataRow", ...).
std::string_view TypeName(Direction from, char type);

}  // namespace switchyard::pg
