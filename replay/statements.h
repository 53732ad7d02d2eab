// Follows the requests a client has sent and pairs each server response with the statement it
// answers: the statement text for reports, the SQLSTATE of errors, and the time the request
// was sent and answered, for latency. Fed from the wire bytes of one connection in order;
// used alike on a capture (capture times) and on a replay (replay clock).
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace switchyard::replay {

// Names of prepared statements and portals followed per connection: more than this many are
// not tracked (their statements are reported without text).
inline constexpr size_t kTrackedNamesMax = 100'000;

struct Response {
  enum class Kind {
    kUnknown,
    kParse,
    kBind,
    kDescribe,
    kExecute,
    kClose,
    kStatement,
    kFunction,
    kSync
  };
  Kind kind = Kind::kUnknown;
  std::string text;  // the SQL statement it answers ("" when unknown)
  bool error = false;
  std::string sqlstate;  // for an error
  int64_t start_us = 0;  // when the request (or, in a multi-statement Query, the previous
                         // statement's response) was sent / completed
  int64_t end_us = 0;    // when the response ended

  // A statement whose latency is measured: Execute, a statement of a simple Query, a function.
  bool is_statement() const {
    return kind == Kind::kExecute || kind == Kind::kStatement || kind == Kind::kFunction;
  }
};

// The server messages that end a response, one per request message (or per statement of a
// simple Query): ParseComplete, BindComplete, CloseComplete, NoData, CommandComplete,
// EmptyQueryResponse, PortalSuspended, ErrorResponse, FunctionCallResponse.
bool IsResponseEnd(char type);

class StatementTracker {
 public:
  // A statement prepared before the tracking began (from a snapshot).
  void Prepare(const std::string& name, const std::string& query);
  void OnClientMessage(std::string_view message, int64_t time_us);
  // A Response when `message` ends one (IsResponseEnd), else nullopt.
  std::optional<Response> OnServerMessage(std::string_view message, int64_t time_us);

  // Query, Sync and FunctionCall messages still waiting for their ReadyForQuery.
  size_t requests_outstanding() const { return requests_outstanding_; }
  // The text of the statement the server is working on, for stall reports.
  std::string CurrentText() const;

 private:
  struct Pending {
    Response::Kind kind = Response::Kind::kUnknown;
    std::string text;
    std::vector<std::string> statements;  // of a simple Query
    size_t next = 0;                      // its statement being answered
    int64_t start_us = 0;
  };

  void Push(Response::Kind kind, std::string text, int64_t time_us);
  std::optional<Response> EndResponse(char type, std::string_view message, int64_t time_us);
  std::optional<Response> EndQueryStatement(Pending& query, Response response, char type);
  void ReadyForQuery();
  std::string Lookup(const std::map<std::string, std::string>& names,
                     const std::string& name) const;
  static void Remember(std::map<std::string, std::string>& names, std::string name,
                       std::string text);

  std::deque<Pending> pending_;
  size_t requests_outstanding_ = 0;
  std::map<std::string, std::string> statements_;  // prepared statement name -> query
  std::map<std::string, std::string> portals_;     // portal name -> query
};

// The statements of a simple Query's text, as libpg_query's scanner splits them; the whole text
// when it cannot split it.
std::vector<std::string> SplitStatements(std::string_view sql);

// libpg_query's fingerprint of a statement (hex), equal for statements that differ only in
// constants; "" when it does not parse.
std::string Fingerprint(std::string_view sql);

// The payload of a typed message (after type byte and length word); empty if too short.
std::string_view Payload(std::string_view message);

}  // namespace switchyard::replay
