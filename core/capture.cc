// Traffic capture in the core: sampling and redaction (see capture.h).
#include "core/capture.h"

#include <cstring>
#include <utility>

#include "core/base/check.h"
#include "core/protocol/messages.h"
#include "core/route/lexer.h"
#include "core/trace/crc32c.h"

namespace switchyard {
namespace {

// SplitMix64's finalizer: every bit of the id reaches every bit of the result.
uint64_t Mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

bool FromClient(trace::Direction direction) {
  return direction == trace::Direction::kClientToProxy ||
         direction == trace::Direction::kProxyToServer;
}

// Values become empty; NULLs stay NULL, so the shape of the data is still there.
void EmptyValues(std::vector<std::optional<std::string>>& values) {
  for (std::optional<std::string>& value : values) {
    if (value) value->clear();
  }
}

// The message decoded as M, changed by `redact`, and encoded again; a message that does not
// decode keeps only its type.
template <typename M, typename F>
std::string Rewrite(char type, std::string_view payload, F redact) {
  absl::StatusOr<M> message = M::Decode(payload);
  if (!message.ok()) return std::string{type, 0, 0, 0, 4};
  redact(*message);
  return message->Encode();
}

std::string RedactErrorFields(char type, std::string_view payload) {
  absl::StatusOr<pg::ErrorFields> error = pg::ErrorFields::Decode(type, payload);
  if (!error.ok()) return std::string{type, 0, 0, 0, 4};
  for (auto& [code, value] : error->fields) {
    // Message, detail, hint, context, internal query: where a server repeats values.
    if (code == 'M' || code == 'D' || code == 'H' || code == 'W' || code == 'q') value.clear();
  }
  return error->Encode();
}

std::optional<std::string> RedactRows(char type, std::string_view payload, bool from_client) {
  if (type == 'd') return std::string{'d', 0, 0, 0, 4};
  if (type == 'D' && !from_client) {
    return Rewrite<pg::DataRow>(type, payload, [](pg::DataRow& row) { EmptyValues(row.values); });
  }
  return std::nullopt;
}

std::optional<std::string> RedactClientValues(char type, std::string_view payload) {
  switch (type) {
    case 'Q':
      return Rewrite<pg::Query>(type, payload,
                                [](pg::Query& query) { query.sql = RedactSqlLiterals(query.sql); });
    case 'P':
      return Rewrite<pg::Parse>(
          type, payload, [](pg::Parse& parse) { parse.query = RedactSqlLiterals(parse.query); });
    case 'B':
      return Rewrite<pg::Bind>(type, payload, [](pg::Bind& bind) { EmptyValues(bind.parameters); });
    case 'F':
      return Rewrite<pg::FunctionCall>(type, payload,
                                       [](pg::FunctionCall& call) { EmptyValues(call.arguments); });
    default:
      return std::nullopt;
  }
}

std::optional<std::string> RedactServerValues(char type, std::string_view payload) {
  switch (type) {
    case 'E':
    case 'N':
      return RedactErrorFields(type, payload);
    case 'A':
      return Rewrite<pg::NotificationResponse>(
          type, payload,
          [](pg::NotificationResponse& notification) { notification.payload.clear(); });
    case 'V':
      return Rewrite<pg::FunctionCallResponse>(type, payload, [](pg::FunctionCallResponse& answer) {
        if (answer.result) answer.result->clear();
      });
    default:
      return std::nullopt;
  }
}

void StoreLittle(char* at, uint64_t value, int size) {
  for (int i = 0; i < size; ++i) at[i] = static_cast<char>(value >> (8 * i));
}

}  // namespace

bool AppendMessageRecord(const trace::Record& record, std::string_view message,
                         uint32_t record_body_size_max, std::string& out) {
  // The encoder's checks, kept: a message of ours that is not well framed is our bug.
  CHECK_GE(message.size(), 5u);
  CHECK(message[0] != '\0' && record.direction != trace::Direction::kNone);
  CHECK_EQ((uint32_t{static_cast<uint8_t>(message[1])} << 24 |
            uint32_t{static_cast<uint8_t>(message[2])} << 16 |
            uint32_t{static_cast<uint8_t>(message[3])} << 8 | static_cast<uint8_t>(message[4])) +
               size_t{1},
           message.size());
  CHECK_GE(record.time_us, 0);
  const size_t body_size = trace::kRecordMetadataSize + message.size();
  if (body_size > record_body_size_max) return false;
  // docs/trace-format.md: length, metadata, message, CRC32C of length and body.
  const size_t start = out.size();
  out.resize(start + trace::kRecordFramingSize + body_size);
  char* p = out.data() + start;
  StoreLittle(p, body_size, 4);
  p[4] = static_cast<char>(trace::RecordKind::kMessage);
  p[5] = static_cast<char>(record.direction);
  StoreLittle(p + 6, record.flags, 2);
  StoreLittle(p + 8, record.session, 8);
  StoreLittle(p + 16, record.sequence, 8);
  StoreLittle(p + 24, static_cast<uint64_t>(record.time_us), 8);
  StoreLittle(p + 32, record.connection, 8);
  StoreLittle(p + 40, record.node, 4);
  StoreLittle(p + 44, static_cast<uint32_t>(record.backend_pid), 4);
  std::memcpy(p + 4 + trace::kRecordMetadataSize, message.data(), message.size());
  StoreLittle(p + 4 + body_size, trace::Crc32c(std::string_view(p, 4 + body_size)), 4);
  return true;
}

std::string_view RedactName(Redact redact) {
  switch (redact) {
    case Redact::kNone:
      return "none";
    case Redact::kRows:
      return "rows";
    case Redact::kAllValues:
      return "all-values";
  }
  return "unknown";
}

std::optional<Redact> ParseRedact(std::string_view name) {
  for (Redact redact : {Redact::kNone, Redact::kRows, Redact::kAllValues}) {
    if (RedactName(redact) == name) return redact;
  }
  return std::nullopt;
}

bool Sampled(const CaptureOptions& options, UnitId session) {
  if (options.sample_per_million >= kSampleScale) return true;
  return Mix(session.value ^ Mix(options.sample_seed)) % kSampleScale < options.sample_per_million;
}

std::optional<std::string> RedactMessage(Redact redact, trace::Direction direction,
                                         std::string_view raw) {
  if (redact == Redact::kNone || raw.size() < 5 || raw[0] == '\0') return std::nullopt;
  const char type = raw[0];
  const std::string_view payload = raw.substr(5);
  const bool from_client = FromClient(direction);
  if (std::optional<std::string> rows = RedactRows(type, payload, from_client)) return rows;
  if (redact != Redact::kAllValues) return std::nullopt;
  return from_client ? RedactClientValues(type, payload) : RedactServerValues(type, payload);
}

std::string RedactSqlLiterals(std::string_view sql) {
  std::string out;
  out.reserve(sql.size());
  for (size_t pos = 0; pos < sql.size();) {
    const route::Token token = route::NextToken(sql, pos);
    if (token.end <= pos) break;  // never happens: every token has a byte
    switch (token.kind) {
      case route::TokenKind::kString:
      case route::TokenKind::kPrefixedString:
      case route::TokenKind::kDollarString:
        out.append("''");
        break;
      case route::TokenKind::kDigits:
        out.push_back('0');
        break;
      case route::TokenKind::kUnterminated:
        break;  // an unterminated literal (or comment) may hold anything: drop it
      default:
        out.append(sql.substr(token.begin, token.end - token.begin));
        break;
    }
    pos = token.end;
  }
  return out;
}

}  // namespace switchyard
