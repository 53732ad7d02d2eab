// Pairs server responses with the statements they answer (see statements.h).
#include "replay/statements.h"

#include <pg_query.h>

#include <utility>

#include "absl/strings/str_format.h"
#include "core/protocol/framing.h"
#include "core/protocol/messages.h"

namespace switchyard::replay {
namespace {

using Kind = Response::Kind;

bool IsRequest(Kind kind) {
  return kind == Kind::kStatement || kind == Kind::kSync || kind == Kind::kFunction;
}

std::string_view Trim(std::string_view text) {
  size_t begin = text.find_first_not_of(" \t\r\n");
  if (begin == std::string_view::npos) return {};
  size_t end = text.find_last_not_of(" \t\r\n");
  return text.substr(begin, end - begin + 1);
}

// The response a message of type `type` ends for a request of kind `kind`: an extended-protocol
// request ends with its own completion message or an error.
bool Ends(Kind kind, char type) {
  if (type == 'E') return true;
  switch (kind) {
    case Kind::kParse:
      return type == '1';
    case Kind::kBind:
      return type == '2';
    case Kind::kDescribe:
      return type == 'n';
    case Kind::kClose:
      return type == '3';
    case Kind::kExecute:
      return type == 'C' || type == 'I' || type == 's';
    default:
      return false;
  }
}

}  // namespace

bool IsResponseEnd(char type) {
  switch (type) {
    case '1':
    case '2':
    case '3':
    case 'n':
    case 'C':
    case 'I':
    case 's':
    case 'E':
    case 'V':
      return true;
    default:
      return false;
  }
}

std::string_view Payload(std::string_view message) {
  return message.size() < pg::kHeaderSize ? std::string_view() : message.substr(pg::kHeaderSize);
}

void StatementTracker::Prepare(const std::string& name, const std::string& query) {
  Remember(statements_, name, query);
}

void StatementTracker::OnClientMessage(std::string_view message, int64_t time_us) {
  if (message.empty()) return;
  std::string_view payload = Payload(message);
  switch (message[0]) {
    case 'Q':
      if (auto query = pg::Query::Decode(payload); query.ok()) {
        Push(Kind::kStatement, query->sql, time_us);
        pending_.back().statements = SplitStatements(query->sql);
      } else {
        Push(Kind::kStatement, "", time_us);
      }
      return;
    case 'P': {
      auto parse = pg::Parse::Decode(payload);
      std::string text = parse.ok() ? parse->query : "";
      if (parse.ok()) Remember(statements_, parse->name, text);
      Push(Kind::kParse, std::move(text), time_us);
      return;
    }
    case 'B': {
      auto bind = pg::Bind::Decode(payload);
      std::string text = bind.ok() ? Lookup(statements_, bind->statement) : "";
      if (bind.ok()) Remember(portals_, bind->portal, text);
      Push(Kind::kBind, std::move(text), time_us);
      return;
    }
    case 'D': {
      auto describe = pg::Describe::Decode(payload);
      std::string text;
      if (describe.ok()) {
        text = Lookup(describe->kind == 'S' ? statements_ : portals_, describe->name);
      }
      Push(Kind::kDescribe, std::move(text), time_us);
      return;
    }
    case 'E': {
      auto execute = pg::Execute::Decode(payload);
      Push(Kind::kExecute, execute.ok() ? Lookup(portals_, execute->portal) : "", time_us);
      return;
    }
    case 'C': {
      auto close = pg::Close::Decode(payload);
      std::string text;
      if (close.ok()) {
        auto& names = close->kind == 'S' ? statements_ : portals_;
        text = Lookup(names, close->name);
        names.erase(close->name);
      }
      Push(Kind::kClose, std::move(text), time_us);
      return;
    }
    case 'S':
      Push(Kind::kSync, "", time_us);
      return;
    case 'F': {
      auto call = pg::FunctionCall::Decode(payload);
      Push(Kind::kFunction,
           call.ok() ? absl::StrFormat("function call (oid %u)", call->function_oid) : "", time_us);
      return;
    }
    default:
      return;  // Flush, copy data, Terminate: no response of their own
  }
}

std::optional<Response> StatementTracker::OnServerMessage(std::string_view message,
                                                          int64_t time_us) {
  if (message.empty()) return std::nullopt;
  char type = message[0];
  if (type == 'Z') {
    ReadyForQuery();
    return std::nullopt;
  }
  if (type == 'T' && !pending_.empty() && pending_.front().kind == Kind::kDescribe) {
    pending_.pop_front();  // a Describe answered with a row description
    return std::nullopt;
  }
  if (!IsResponseEnd(type)) return std::nullopt;
  return EndResponse(type, message, time_us);
}

std::optional<Response> StatementTracker::EndResponse(char type, std::string_view message,
                                                      int64_t time_us) {
  Response response;
  response.end_us = time_us;
  response.start_us = time_us;
  if (type == 'E') {
    response.error = true;
    auto fields = pg::ErrorFields::Decode('E', Payload(message));
    if (fields.ok()) response.sqlstate = std::string(fields->sqlstate());
  }
  if (pending_.empty()) return response;
  Pending& front = pending_.front();
  response.kind = front.kind;
  response.text = front.text;
  response.start_us = front.start_us;
  if (front.kind == Kind::kStatement) return EndQueryStatement(front, std::move(response), type);
  if (front.kind == Kind::kFunction || front.kind == Kind::kSync) return response;
  if (!Ends(front.kind, type)) response.kind = Kind::kUnknown;
  pending_.pop_front();
  if (type == 'E') {
    // After an error the server skips the extended-protocol messages up to the next Sync.
    while (!pending_.empty() && !IsRequest(pending_.front().kind)) pending_.pop_front();
  }
  return response;
}

std::optional<Response> StatementTracker::EndQueryStatement(Pending& query, Response response,
                                                            char type) {
  if (query.next < query.statements.size()) {
    response.text = query.statements[query.next];
  }
  // An error ends the whole Query; the next statement's time starts at this response.
  query.next = type == 'E' ? query.statements.size() : query.next + 1;
  query.start_us = response.end_us;
  return response;
}

void StatementTracker::ReadyForQuery() {
  while (!pending_.empty()) {
    bool request = IsRequest(pending_.front().kind);
    pending_.pop_front();
    if (request) {
      --requests_outstanding_;
      return;
    }
  }
}

std::string StatementTracker::CurrentText() const {
  for (const Pending& pending : pending_) {
    if (pending.kind == Kind::kStatement) {
      // After its last result (or an error) a Query only waits for its ReadyForQuery.
      if (pending.next < pending.statements.size()) return pending.statements[pending.next];
      continue;
    }
    if (!pending.text.empty()) return pending.text;
  }
  return "";
}

void StatementTracker::Push(Kind kind, std::string text, int64_t time_us) {
  Pending pending;
  pending.kind = kind;
  pending.text = std::move(text);
  pending.start_us = time_us;
  pending_.push_back(std::move(pending));
  if (IsRequest(kind)) ++requests_outstanding_;
}

std::string StatementTracker::Lookup(const std::map<std::string, std::string>& names,
                                     const std::string& name) const {
  auto it = names.find(name);
  return it == names.end() ? "" : it->second;
}

void StatementTracker::Remember(std::map<std::string, std::string>& names, std::string name,
                                std::string text) {
  if (names.size() >= kTrackedNamesMax && names.count(name) == 0) return;
  names[std::move(name)] = std::move(text);
}

std::vector<std::string> SplitStatements(std::string_view sql) {
  std::string text(sql);
  PgQuerySplitResult result = pg_query_split_with_scanner(text.c_str());
  std::vector<std::string> statements;
  if (result.error == nullptr) {
    for (int i = 0; i < result.n_stmts; ++i) {
      const PgQuerySplitStmt* statement = result.stmts[i];
      size_t begin = static_cast<size_t>(statement->stmt_location);
      size_t length = static_cast<size_t>(statement->stmt_len);
      if (begin > text.size()) continue;
      // A length of 0 means "to the end of the input".
      std::string_view piece =
          std::string_view(text).substr(begin, length == 0 ? text.npos : length);
      piece = Trim(piece);
      if (!piece.empty()) statements.emplace_back(piece);
    }
  }
  pg_query_free_split_result(result);
  if (statements.empty()) statements.emplace_back(Trim(sql));
  return statements;
}

std::string Fingerprint(std::string_view sql) {
  std::string text(sql);
  PgQueryFingerprintResult result = pg_query_fingerprint(text.c_str());
  std::string fingerprint;
  if (result.error == nullptr && result.fingerprint_str != nullptr) {
    fingerprint = result.fingerprint_str;
  }
  pg_query_free_fingerprint_result(result);
  return fingerprint;
}

}  // namespace switchyard::replay
