// Traffic capture in the core: sampling and redaction (see capture.h).
#include "core/capture.h"

#include <algorithm>
#include <cstring>
#include <iterator>
#include <utility>
#include <vector>

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

// The inside of a quoted token, its doubled quote characters undoubled.
std::string Unquote(std::string_view quoted, char quote) {
  std::string out;
  for (size_t i = 1; i + 1 < quoted.size(); ++i) {
    out.push_back(quoted[i]);
    if (quoted[i] == quote && quoted[i + 1] == quote) ++i;
  }
  return out;
}

// E'...': the backslash escapes of one character (\b \f \n \r \t, and \x for any other x).
// The classifier's SQL text never has octal or hex escapes: it quotes values as '...'.
std::string UnescapeE(std::string_view body) {
  std::string out;
  for (size_t i = 0; i < body.size(); ++i) {
    const char c = body[i];
    if (c == '\'' && i + 1 < body.size() && body[i + 1] == '\'') {
      out.push_back('\'');
      ++i;
      continue;
    }
    if (c != '\\' || i + 1 == body.size()) {
      out.push_back(c);
      continue;
    }
    switch (const char e = body[++i]) {
      case 'b':
        out.push_back('\b');
        break;
      case 'f':
        out.push_back('\f');
        break;
      case 'n':
        out.push_back('\n');
        break;
      case 'r':
        out.push_back('\r');
        break;
      case 't':
        out.push_back('\t');
        break;
      default:
        out.push_back(e);
        break;
    }
  }
  return out;
}

// One literal or name of a SET value list, as flatten_set_variable_args reads it.
std::string ItemText(std::string_view sql, const route::Token& token, bool* quoted) {
  const std::string_view text = sql.substr(token.begin, token.end - token.begin);
  switch (token.kind) {
    case route::TokenKind::kString:
      *quoted = true;
      return Unquote(text, '\'');
    case route::TokenKind::kQuotedIdentifier:
      *quoted = true;
      return Unquote(text, '"');
    case route::TokenKind::kPrefixedString: {
      *quoted = true;
      const size_t open = text.find('\'');
      const std::string_view body = text.substr(open + 1, text.size() - open - 2);
      return (text[0] == 'E' || text[0] == 'e') ? UnescapeE(body)
                                                : Unquote(text.substr(open), '\'');
    }
    case route::TokenKind::kDollarString: {
      *quoted = true;
      const size_t tag = text.find('$', 1) + 1;
      return std::string(text.substr(tag, text.size() - 2 * tag));
    }
    default:
      return std::string(text);
  }
}

// quote_identifier's rule: lower-case letters, digits, '_' and '$', not starting with a digit.
std::string QuoteIdentifierIfNeeded(const std::string& name) {
  bool plain = !name.empty() && !(name[0] >= '0' && name[0] <= '9') && name[0] != '$';
  for (char c : name) {
    plain = plain && ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '$');
  }
  if (plain) return name;
  std::string out = "\"";
  for (char c : name) {
    out.push_back(c);
    if (c == '"') out.push_back('"');
  }
  return out + "\"";
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

std::string SettingValue(std::string_view name, std::string_view sql) {
  // PostgreSQL's GUC_LIST_QUOTE settings: their list items are identifiers.
  static constexpr std::string_view kListQuote[] = {
      "search_path", "temp_tablespaces", "session_preload_libraries", "shared_preload_libraries",
      "local_preload_libraries"};
  const bool list_quote =
      std::find(std::begin(kListQuote), std::end(kListQuote), name) != std::end(kListQuote);
  std::vector<std::pair<std::string, bool>> items(1);  // text, quoted
  for (size_t pos = 0; pos < sql.size();) {
    const route::Token token = route::NextToken(sql, pos);
    if (token.end <= pos) break;
    pos = token.end;
    if (token.kind == route::TokenKind::kSpace || token.kind == route::TokenKind::kComment) {
      continue;
    }
    if (token.kind == route::TokenKind::kOther && sql[token.begin] == ',') {
      items.emplace_back();
      continue;
    }
    bool quoted = false;
    items.back().first += ItemText(sql, token, &quoted);
    items.back().second = items.back().second || quoted;
  }
  if (items.size() == 1) return items[0].first;
  std::string out;
  for (const auto& [text, quoted] : items) {
    if (!out.empty()) out += ", ";
    out += list_quote ? QuoteIdentifierIfNeeded(text) : text;
  }
  return out;
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
