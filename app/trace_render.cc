// Readable content of trace records for `switchyard trace show`: decodes each message with
// core/protocol and says the part a person reading a capture looks for.
#include "app/trace_render.h"

#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_format.h"
#include "core/base/strings.h"
#include "core/protocol/framing.h"
#include "core/protocol/messages.h"

namespace switchyard::app {
namespace {

using trace::Direction;
using trace::Record;

std::string Undecodable(const absl::Status& status) {
  return "undecodable=" + QuoteText(AsView(status.message()));
}

// Decodes `payload` as message type M and renders it, or says why it does not decode.
template <typename M, typename Render>
std::string Decoded(std::string_view payload, Render render) {
  absl::StatusOr<M> message = M::Decode(payload);
  if (!message.ok()) return Undecodable(message.status());
  return render(*message);
}

// "[a,b,...(12 noun)]": at most kRenderedItemsMax items, then how many there were.
template <typename Item, typename RenderItem>
std::string List(const std::vector<Item>& items, RenderItem render_item, std::string_view noun) {
  std::string out = "[";
  for (size_t i = 0; i < items.size() && i < kRenderedItemsMax; ++i) {
    if (i > 0) out += ",";
    out += render_item(items[i]);
  }
  if (items.size() > kRenderedItemsMax) out += absl::StrFormat(",...(%zu %s)", items.size(), noun);
  return out + "]";
}

std::string Value(const std::optional<std::string>& value) {
  return value.has_value() ? QuoteText(*value, kRenderedValueSizeMax) : "NULL";
}

// A name in a list (a column, a SASL mechanism): cut shorter than free text.
std::string Name(const std::string& name) { return QuoteText(name, kRenderedValueSizeMax); }

std::string Oid(uint32_t oid) { return Cat(oid); }

std::string Pair(const std::pair<std::string, std::string>& pair) {
  return pair.first + "=" + QuoteText(pair.second, kRenderedValueSizeMax);
}

// Describe and Close name a prepared statement ('S') or a portal ('P').
std::string Target(char kind, const std::string& name) {
  return (kind == 'P' ? "portal=" : "statement=") + QuoteText(name);
}

std::string RenderParse(const pg::Parse& parse) {
  std::string out = "statement=" + QuoteText(parse.name) + " sql=" + QuoteText(parse.query);
  if (!parse.parameter_types.empty()) {
    out += " types=" + List(parse.parameter_types, Oid, "types");
  }
  return out;
}

std::string RenderBind(const pg::Bind& bind) {
  return absl::StrFormat("portal=%s statement=%s parameters=%s", QuoteText(bind.portal),
                         QuoteText(bind.statement), List(bind.parameters, Value, "parameters"));
}

std::string RenderExecute(const pg::Execute& execute) {
  std::string out = "portal=" + QuoteText(execute.portal);
  if (execute.max_rows != 0) out += Cat(" max_rows=", execute.max_rows);
  return out;
}

// What a client (or the proxy, towards a server) sends, by type byte.
std::string RenderFrontend(char type, std::string_view payload) {
  switch (type) {
    case pg::Query::kType:
      return Decoded<pg::Query>(payload, [](const auto& m) { return "sql=" + QuoteText(m.sql); });
    case pg::Parse::kType:
      return Decoded<pg::Parse>(payload, RenderParse);
    case pg::Bind::kType:
      return Decoded<pg::Bind>(payload, RenderBind);
    case pg::Execute::kType:
      return Decoded<pg::Execute>(payload, RenderExecute);
    case pg::Describe::kType:
      return Decoded<pg::Describe>(payload, [](const auto& m) { return Target(m.kind, m.name); });
    case pg::Close::kType:
      return Decoded<pg::Close>(payload, [](const auto& m) { return Target(m.kind, m.name); });
    case pg::CopyData::kType:
      return Decoded<pg::CopyData>(payload,
                                   [](const auto& m) { return "data=" + QuoteText(m.data); });
    case pg::CopyFail::kType:
      return Decoded<pg::CopyFail>(payload,
                                   [](const auto& m) { return "message=" + QuoteText(m.message); });
    case pg::FunctionCall::kType:
      return Decoded<pg::FunctionCall>(payload, [](const auto& m) {
        return Cat("function=", m.function_oid,
                   " arguments=", List(m.arguments, Value, "arguments"));
      });
    default:
      // Sync, Flush, Terminate and CopyDone carry nothing; 'p' carries a password or SASL/GSS
      // exchange bytes, which a trace reader has no business printing.
      return "";
  }
}

std::string RenderStartupPacket(std::string_view raw) {
  absl::StatusOr<pg::StartupPacket> packet = pg::DecodeStartupPacket(raw.substr(4));
  if (!packet.ok()) return Undecodable(packet.status());
  if (const auto* startup = std::get_if<pg::StartupMessage>(&*packet)) {
    return absl::StrFormat("protocol=%d.%d parameters=%s", startup->protocol >> 16,
                           startup->protocol & 0xffff,
                           List(startup->parameters, Pair, "parameters"));
  }
  if (const auto* cancel = std::get_if<pg::CancelRequest>(&*packet)) {
    return Cat("pid=", cancel->pid);  // never the secret
  }
  return "";
}

std::string_view AuthenticationName(int32_t code) {
  switch (code) {
    case pg::Authentication::kOk:
      return "Ok";
    case pg::Authentication::kKerberosV5:
      return "KerberosV5";
    case pg::Authentication::kCleartextPassword:
      return "CleartextPassword";
    case pg::Authentication::kMd5Password:
      return "MD5Password";
    case pg::Authentication::kScmCredential:
      return "SCMCredential";
    case pg::Authentication::kGss:
      return "GSS";
    case pg::Authentication::kGssContinue:
      return "GSSContinue";
    case pg::Authentication::kSspi:
      return "SSPI";
    case pg::Authentication::kSasl:
      return "SASL";
    case pg::Authentication::kSaslContinue:
      return "SASLContinue";
    case pg::Authentication::kSaslFinal:
      return "SASLFinal";
  }
  return "Unknown";
}

std::string RenderAuthentication(const pg::Authentication& authentication) {
  std::string out = absl::StrFormat("request=%s", AuthenticationName(authentication.code));
  // The mechanism list is public; the data of the other requests (salt, SASL exchange) is not
  // something to print.
  if (authentication.code == pg::Authentication::kSasl) {
    const std::vector<std::string> mechanisms = authentication.SaslMechanisms();
    out += " mechanisms=" + List(mechanisms, Name, "mechanisms");
  }
  return out;
}

std::string RenderError(char type, std::string_view payload) {
  absl::StatusOr<pg::ErrorFields> error = pg::ErrorFields::Decode(type, payload);
  if (!error.ok()) return Undecodable(error.status());
  return absl::StrFormat("severity=%s sqlstate=%s message=%s", error->severity(), error->sqlstate(),
                         QuoteText(error->Field('M')));
}

std::string RenderCopyResponse(char type, std::string_view payload) {
  absl::StatusOr<pg::CopyResponse> copy = pg::CopyResponse::Decode(type, payload);
  if (!copy.ok()) return Undecodable(copy.status());
  return absl::StrFormat("format=%s columns=%zu", copy->format == 0 ? "text" : "binary",
                         copy->column_formats.size());
}

std::string RenderRowDescription(const pg::RowDescription& description) {
  std::vector<std::string> names;
  for (const pg::RowDescription::Field& field : description.fields) names.push_back(field.name);
  return "columns=" + List(names, Name, "columns");
}

std::string RenderNotification(const pg::NotificationResponse& notification) {
  return absl::StrFormat("pid=%d channel=%s payload=%s", notification.pid,
                         QuoteText(notification.channel), QuoteText(notification.payload));
}

// What a server (or the proxy, towards a client) sends, by type byte.
std::string RenderBackend(char type, std::string_view payload) {
  switch (type) {
    case pg::Authentication::kType:
      return Decoded<pg::Authentication>(payload, RenderAuthentication);
    case pg::BackendKeyData::kType:
      return Decoded<pg::BackendKeyData>(payload, [](const auto& m) { return Cat("pid=", m.pid); });
    case pg::CommandComplete::kType:
      return Decoded<pg::CommandComplete>(payload,
                                          [](const auto& m) { return "tag=" + QuoteText(m.tag); });
    case pg::CopyData::kType:
      return Decoded<pg::CopyData>(payload,
                                   [](const auto& m) { return "data=" + QuoteText(m.data); });
    case 'G':
    case 'H':
    case 'W':
      return RenderCopyResponse(type, payload);
    case pg::DataRow::kType:
      return Decoded<pg::DataRow>(
          payload, [](const auto& m) { return "values=" + List(m.values, Value, "values"); });
    case 'E':
    case 'N':
      return RenderError(type, payload);
    case pg::FunctionCallResponse::kType:
      return Decoded<pg::FunctionCallResponse>(
          payload, [](const auto& m) { return "result=" + Value(m.result); });
    case pg::NotificationResponse::kType:
      return Decoded<pg::NotificationResponse>(payload, RenderNotification);
    case pg::ParameterDescription::kType:
      return Decoded<pg::ParameterDescription>(
          payload, [](const auto& m) { return "types=" + List(m.type_oids, Oid, "types"); });
    case pg::ParameterStatus::kType:
      return Decoded<pg::ParameterStatus>(payload, [](const auto& m) {
        return "name=" + QuoteText(m.name) + " value=" + QuoteText(m.value);
      });
    case pg::ReadyForQuery::kType:
      return Decoded<pg::ReadyForQuery>(payload,
                                        [](const auto& m) { return Cat("status=", m.status); });
    case pg::RowDescription::kType:
      return Decoded<pg::RowDescription>(payload, RenderRowDescription);
    default:
      return "";  // ParseComplete, BindComplete, NoData, EmptyQueryResponse, ...: the name says all
  }
}

std::string RenderMessage(Direction direction, std::string_view raw) {
  if (raw.empty()) return "";
  const bool from_client =
      direction == Direction::kClientToProxy || direction == Direction::kProxyToServer;
  if (raw[0] == '\0') return from_client ? RenderStartupPacket(raw) : "";
  // The reader has checked that the length word agrees with the size, so the payload is the
  // rest after the type byte and the length word.
  if (raw.size() < pg::kHeaderSize) return "";
  const std::string_view payload = raw.substr(pg::kHeaderSize);
  return from_client ? RenderFrontend(raw[0], payload) : RenderBackend(raw[0], payload);
}

std::string RenderSnapshot(const trace::Snapshot& snapshot) {
  const auto statement = [](const trace::PreparedStatement& prepared) {
    return QuoteText(prepared.name, kRenderedValueSizeMax) + ":" +
           QuoteText(prepared.query, kRenderedValueSizeMax);
  };
  return "statements=" + List(snapshot.prepared_statements, statement, "statements") +
         " set=" + List(snapshot.settings, Pair, "settings");
}

}  // namespace

std::string QuoteText(std::string_view text, size_t size_max) {
  const std::string_view shown = text.substr(0, size_max);
  std::string out = "\"" + absl::CHexEscape(absl::string_view(shown.data(), shown.size())) + "\"";
  if (shown.size() < text.size()) out += absl::StrFormat("...(%zu bytes)", text.size());
  return out;
}

std::string RenderRecordContent(const Record& record) {
  if (const auto* message = std::get_if<trace::Message>(&record.body)) {
    return RenderMessage(record.direction, message->bytes);
  }
  if (const auto* snapshot = std::get_if<trace::Snapshot>(&record.body)) {
    return RenderSnapshot(*snapshot);
  }
  // The other kinds say everything in FormatRecordLine already.
  return "";
}

std::string RenderRecordLine(const Record& record) {
  std::string line = trace::FormatRecordLine(record);
  const std::string content = RenderRecordContent(record);
  if (!content.empty()) line += " " + content;
  return line;
}

}  // namespace switchyard::app
