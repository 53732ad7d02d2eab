// The query protocols of a simulated node: simple Query (multi-statement, implicit blocks),
// extended Parse/Bind/Describe/Execute/Close/Sync/Flush with skip-to-Sync after an error, COPY in
// and out, and the sending of results, errors and ReadyForQuery.
#include <utility>

#include "absl/strings/str_format.h"
#include "core/base/check.h"
#include "sim/pg_exec_internal.h"

namespace switchyard::sim::internal {
namespace {

SqlError Error(std::string sqlstate, std::string message) {
  return SqlError{.sqlstate = std::move(sqlstate), .message = std::move(message)};
}

// An error in the extended protocol: everything up to the next Sync is skipped.
void ExtendedError(NodeState& node, Session& session, const SqlError& error) {
  SendError(node, session, error);
  AbortAfterError(node, session);
  session.skip_until_sync = true;
}

// Ends a simple Query early (after an error): ReadyForQuery now.
void AbortQuery(NodeState& node, Session& session) {
  session.query.clear();
  session.in_query = false;
  SendReadyForQuery(node, session);
}

int16_t FormatOf(const std::vector<int16_t>& formats, size_t column) {
  if (formats.empty()) return 0;
  return formats.size() == 1 ? formats[0] : formats[column];
}

std::string Describe(const std::vector<Column>& columns, const std::vector<int16_t>& formats) {
  pg::RowDescription description;
  for (size_t i = 0; i < columns.size(); ++i) {
    const Column& c = columns[i];
    description.fields.push_back(pg::RowDescription::Field{.name = c.name,
                                                           .table_oid = c.table_oid,
                                                           .column = c.attnum,
                                                           .type_oid = c.type,
                                                           .type_size = TypeSize(c.type),
                                                           .type_modifier = -1,
                                                           .format = FormatOf(formats, i)});
  }
  return description.Encode();
}

// Encodes rows [from, to) as DataRows in the requested formats.
std::optional<SqlError> SendRows(Session& session, const ExecResult& result, size_t from, size_t to,
                                 const std::vector<int16_t>& formats) {
  if (formats.size() > 1 && formats.size() != result.columns.size()) {
    return Error("08P01", absl::StrFormat("bind message has %d result formats but query has %d "
                                          "columns",
                                          formats.size(), result.columns.size()));
  }
  // Rows go straight into the output (values can be kilobytes); a conversion error takes back
  // what this call added, so the client sees the error and no partial result.
  const size_t mark = session.output.size();
  size_t estimate = 0;  // the DataRows' size in text format: one allocation, not a doubling series
  for (size_t r = from; r < to; ++r) {
    estimate += 7;  // type, length, column count
    for (const Value& value : result.rows[r]) estimate += 4 + (value ? value->size() : 0);
  }
  session.output.reserve(mark + estimate + 256);  // and room for CommandComplete and the rest
  for (size_t r = from; r < to; ++r) {
    pg::DataRow row;
    row.values.reserve(result.rows[r].size());
    for (size_t i = 0; i < result.rows[r].size(); ++i) {
      Value value = result.rows[r][i];
      if (FormatOf(formats, i) == 1) {
        if (std::optional<SqlError> error =
                ToBinary(result.rows[r][i], result.columns[i].type, &value)) {
          session.output.resize(mark);
          return error;
        }
      }
      row.values.push_back(std::move(value));
    }
    session.output += row.Encode();
  }
  return std::nullopt;
}

// COPY's text format: tab-separated, backslash escapes, \N for NULL.
std::string CopyLine(const Row& row) {
  std::string line;
  for (size_t i = 0; i < row.size(); ++i) {
    if (i > 0) line.push_back('\t');
    if (!row[i]) {
      line += "\\N";
      continue;
    }
    for (char c : *row[i]) {
      switch (c) {
        case '\\':
          line += "\\\\";
          break;
        case '\t':
          line += "\\t";
          break;
        case '\n':
          line += "\\n";
          break;
        case '\r':
          line += "\\r";
          break;
        default:
          line.push_back(c);
      }
    }
  }
  line.push_back('\n');
  return line;
}

std::optional<SqlError> ParseCopyField(std::string_view text, Value* out) {
  if (text == "\\N") {
    out->reset();
    return std::nullopt;
  }
  std::string value;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '\\' || i + 1 == text.size()) {
      value.push_back(text[i]);
      continue;
    }
    const char e = text[++i];
    switch (e) {
      case 't':
        value.push_back('\t');
        break;
      case 'n':
        value.push_back('\n');
        break;
      case 'r':
        value.push_back('\r');
        break;
      case 'b':
        value.push_back('\b');
        break;
      case 'f':
        value.push_back('\f');
        break;
      case 'v':
        value.push_back('\v');
        break;
      default:
        value.push_back(e);
        break;
    }
  }
  *out = std::move(value);
  return std::nullopt;
}

std::optional<SqlError> ParseCopyData(std::string_view data, std::vector<Row>* rows) {
  size_t line_number = 0;
  while (!data.empty()) {
    const size_t end = data.find('\n');
    std::string_view line = data.substr(0, end);
    data = end == std::string_view::npos ? std::string_view() : data.substr(end + 1);
    ++line_number;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line == "\\.") break;
    Row row;
    size_t start = 0;
    while (true) {
      const size_t tab = line.find('\t', start);
      Value field;
      ParseCopyField(line.substr(start, tab == std::string_view::npos ? tab : tab - start), &field);
      row.push_back(std::move(field));
      if (tab == std::string_view::npos) break;
      start = tab + 1;
    }
    if (row.size() < 2) {
      return Error("22P04",
                   absl::StrFormat("missing data for column \"v\" (line %d)", line_number));
    }
    if (row.size() > 2) {
      return Error("22P04",
                   absl::StrFormat("extra data after last expected column (line %d)", line_number));
    }
    rows->push_back(std::move(row));
  }
  return std::nullopt;
}

void SendCopyOut(Session& session, const ExecResult& result) {
  session.output += pg::CopyResponse{.type = 'H', .format = 0, .column_formats = {0, 0}}.Encode();
  for (const Row& row : result.rows) session.output += pg::CopyData{.data = CopyLine(row)}.Encode();
  session.output += pg::CopyDone{}.Encode();
  session.output += pg::CommandComplete{.tag = result.tag}.Encode();
}

void EnterCopyIn(Session& session, const Running& running, const ExecResult& result) {
  session.output += pg::CopyResponse{.type = 'G', .format = 0, .column_formats = {0, 0}}.Encode();
  session.copy_in = CopyInState{.origin = running.origin,
                                .statement = running.statement,
                                .portal = running.portal,
                                .key_first = result.copy_key_first};
  session.phase = Session::Phase::kCopyIn;
}

// Sends the result of an Execute, storing it in the portal when rows remain for later.
void SendPortalResult(NodeState& node, Session& session, const Running& running,
                      ExecResult result) {
  auto portal = session.portals.find(running.portal);
  const std::vector<int16_t> formats =
      portal == session.portals.end() ? std::vector<int16_t>() : portal->second.result_formats;
  if (!result.returns_rows) {
    session.output += result.empty ? pg::EmptyQueryResponse{}.Encode()
                                   : pg::CommandComplete{.tag = result.tag}.Encode();
    if (portal != session.portals.end()) {
      portal->second.ran = true;
      portal->second.result = std::move(result);
    }
    return;
  }
  size_t end = result.rows.size();
  if (running.max_rows > 0) end = std::min(end, static_cast<size_t>(running.max_rows));
  if (std::optional<SqlError> error = SendRows(session, result, 0, end, formats)) {
    ExtendedError(node, session, *error);
    return;
  }
  if (end < result.rows.size() && portal != session.portals.end()) {
    session.output += pg::PortalSuspended{}.Encode();
  } else {
    // A SELECT's tag counts the rows of this Execute; DML ... RETURNING keeps its own tag.
    const bool select = result.tag.rfind("SELECT", 0) == 0;
    session.output +=
        pg::CommandComplete{.tag = select ? absl::StrFormat("SELECT %d", end) : result.tag}
            .Encode();
  }
  if (portal != session.portals.end()) {
    portal->second.ran = true;
    portal->second.next_row = end;
    portal->second.result = std::move(result);
  }
}

void SendSimpleResult(Session& session, const ExecResult& result) {
  if (result.returns_rows) {
    session.output += Describe(result.columns, {});
    SendRows(session, result, 0, result.rows.size(), {});
  }
  session.output += result.empty ? pg::EmptyQueryResponse{}.Encode()
                                 : pg::CommandComplete{.tag = result.tag}.Encode();
}

}  // namespace

std::string EncodeSqlError(std::string_view severity, const SqlError& error, char type) {
  pg::ErrorFields fields;
  fields.type = type;
  fields.fields = {{'S', std::string(severity)},
                   {'V', std::string(severity)},
                   {'C', error.sqlstate},
                   {'M', error.message}};
  if (!error.detail.empty()) fields.fields.emplace_back('D', error.detail);
  if (!error.hint.empty()) fields.fields.emplace_back('H', error.hint);
  return fields.Encode();
}

void SendError(NodeState& node, Session& session, const SqlError& error) {
  ++node.counters.errors;
  session.output += EncodeSqlError("ERROR", error);
}

void SendFatal(NodeState& node, Session& session, std::string_view sqlstate,
               std::string_view message) {
  ++node.counters.errors;
  if (sqlstate == "08P01") ++node.counters.protocol_errors;
  session.output += EncodeSqlError(
      "FATAL", SqlError{.sqlstate = std::string(sqlstate), .message = std::string(message)});
  EndSession(node, session);
}

void FlushNotificationsIfIdle(Session& session) {
  if (!session.awaiting_command || session.phase != Session::Phase::kReady) return;
  while (!session.notifications.empty()) {
    session.output += session.notifications.front().Encode();
    session.notifications.pop_front();
  }
}

void SendReadyForQuery(NodeState& node, Session& session) {
  ReportParameters(node, session);
  const char status = TransactionStatus(session);
  if (status == 'I') {
    while (!session.notifications.empty()) {
      session.output += session.notifications.front().Encode();
      session.notifications.pop_front();
    }
  }
  session.output += pg::ReadyForQuery{.status = status}.Encode();
  session.awaiting_command = status == 'I';
}

void DeliverResult(NodeState& node, Session& session, Running running, ExecResult result,
                   Instant now) {
  (void)now;
  for (const std::string& notice : result.notices) session.output += notice;
  if (result.error) {
    if (result.fatal) {
      SendFatal(node, session, result.error->sqlstate, result.error->message);
      return;
    }
    if (running.origin == Running::Origin::kExtended ||
        (running.origin == Running::Origin::kCopyIn && !session.in_query)) {
      ExtendedError(node, session, *result.error);
    } else {
      SendError(node, session, *result.error);
      AbortAfterError(node, session);
      AbortQuery(node, session);
    }
    return;
  }
  if (result.copy == ExecResult::Copy::kIn) {
    EnterCopyIn(session, running, result);
  } else if (result.copy == ExecResult::Copy::kOut) {
    SendCopyOut(session, result);
  } else if (running.origin == Running::Origin::kExtended) {
    SendPortalResult(node, session, running, std::move(result));
  } else {
    SendSimpleResult(session, result);
  }
}

void RunNextQueryStatement(NodeState& node, Session& session, Instant now) {
  CHECK(session.in_query);
  if (session.query.empty()) {
    if (session.tx && !session.tx->explicit_block) CommitTransaction(node, session);
    session.in_query = false;
    SendReadyForQuery(node, session);
    return;
  }
  Running running;
  running.origin = Running::Origin::kSimple;
  running.statement = std::move(session.query.front());
  session.query.pop_front();
  if (!session.tx) BeginImplicit(node, session, session.query_multi);
  StartStatement(node, session, std::move(running), now);
}

namespace {

void HandleQuery(NodeState& node, Session& session, std::string_view sql) {
  session.prepared.erase("");
  ParsedQuery parsed = ParseQuery(sql);
  if (parsed.error) {
    SendError(node, session, *parsed.error);
    AbortAfterError(node, session);
    SendReadyForQuery(node, session);
    return;
  }
  if (parsed.statements.empty()) {
    session.output += pg::EmptyQueryResponse{}.Encode();
    if (session.tx && !session.tx->explicit_block) CommitTransaction(node, session);
    SendReadyForQuery(node, session);
    return;
  }
  session.query_multi = parsed.statements.size() > 1;
  if (session.tx && !session.tx->explicit_block && session.query_multi) session.tx->multi = true;
  for (Statement& statement : parsed.statements) {
    session.query.push_back(std::make_shared<const Statement>(std::move(statement)));
  }
  session.in_query = true;
}

void HandleParse(NodeState& node, Session& session, const pg::Parse& parse) {
  ParsedQuery parsed = ParseOne(parse.query);
  if (parsed.error) return ExtendedError(node, session, *parsed.error);
  auto statement = std::make_shared<Statement>();
  if (!parsed.statements.empty()) *statement = std::move(parsed.statements[0]);
  if (session.tx && session.tx->failed && !statement->IsTransactionExit()) {
    return ExtendedError(node, session,
                         Error("25P02",
                               "current transaction is aborted, commands ignored until end of "
                               "transaction block"));
  }
  if (const auto* invalid = std::get_if<InvalidStmt>(&statement->node)) {
    return ExtendedError(node, session, invalid->error);
  }
  if (!parse.name.empty() && session.prepared.contains(parse.name)) {
    return ExtendedError(
        node, session,
        Error("42P05", absl::StrFormat("prepared statement \"%s\" already exists", parse.name)));
  }
  if (session.prepared.size() >= node.options.limits.prepared_statements_max &&
      !session.prepared.contains(parse.name)) {
    return ExtendedError(node, session, Error("54000", "too many prepared statements"));
  }
  std::vector<uint32_t> types = InferParamTypes(*statement, parse.parameter_types);
  session.prepared[parse.name] =
      PreparedStatement{.statement = std::move(statement), .param_types = std::move(types)};
  session.output += pg::ParseComplete{}.Encode();
}

std::optional<SqlError> BindParams(const pg::Bind& bind, const PreparedStatement& prepared,
                                   std::vector<Value>* params) {
  const size_t count = bind.parameters.size();
  if (count != prepared.param_types.size()) {
    return Error("08P01", absl::StrFormat("bind message supplies %d parameters, but prepared "
                                          "statement \"%s\" requires %d",
                                          count, bind.statement, prepared.param_types.size()));
  }
  if (bind.parameter_formats.size() > 1 && bind.parameter_formats.size() != count) {
    return Error("08P01", absl::StrFormat("bind message has %d parameter formats but %d "
                                          "parameters",
                                          bind.parameter_formats.size(), count));
  }
  for (size_t i = 0; i < count; ++i) {
    const std::optional<std::string>& raw = bind.parameters[i];
    Value value;
    if (raw && FormatOf(bind.parameter_formats, i) == 1) {
      std::string text;
      if (std::optional<SqlError> error = FromBinary(*raw, prepared.param_types[i], &text)) {
        return error;
      }
      value = std::move(text);
    } else if (std::optional<SqlError> error =
                   CastValue(raw, kTextOid, prepared.param_types[i], &value)) {
      return error;
    }
    params->push_back(std::move(value));
  }
  return std::nullopt;
}

void HandleBind(NodeState& node, Session& session, const pg::Bind& bind) {
  auto found = session.prepared.find(bind.statement);
  if (found == session.prepared.end()) {
    return ExtendedError(
        node, session,
        Error("26000",
              bind.statement.empty()
                  ? "unnamed prepared statement does not exist"
                  : absl::StrFormat("prepared statement \"%s\" does not exist", bind.statement)));
  }
  const PreparedStatement& prepared = found->second;
  if (session.tx && session.tx->failed && !prepared.statement->IsTransactionExit()) {
    return ExtendedError(node, session,
                         Error("25P02",
                               "current transaction is aborted, commands ignored until end of "
                               "transaction block"));
  }
  std::vector<Value> params;
  if (std::optional<SqlError> error = BindParams(bind, prepared, &params)) {
    return ExtendedError(node, session, *error);
  }
  if (!bind.portal.empty() && session.portals.contains(bind.portal)) {
    return ExtendedError(
        node, session,
        Error("42P03", absl::StrFormat("cursor \"%s\" already exists", bind.portal)));
  }
  if (session.portals.size() >= node.options.limits.portals_max &&
      !session.portals.contains(bind.portal)) {
    return ExtendedError(node, session, Error("54000", "too many portals"));
  }
  if (!session.tx) BeginImplicit(node, session, false);
  session.portals[bind.portal] = Portal{.statement = prepared.statement,
                                        .param_types = prepared.param_types,
                                        .params = std::move(params),
                                        .result_formats = bind.result_formats};
  session.output += pg::BindComplete{}.Encode();
}

// The columns a statement will return, known before it runs; nullopt if it returns none.
std::optional<std::vector<Column>> ColumnsOf(const Session& session, const Statement& statement,
                                             const std::vector<uint32_t>& types, int depth = 0) {
  if (const auto* s = std::get_if<SelectStmt>(&statement.node)) {
    return DescribeItems(s->items, types);
  }
  const std::vector<SelectItem>* returning = nullptr;
  if (const auto* s = std::get_if<InsertStmt>(&statement.node)) returning = &s->returning;
  if (const auto* s = std::get_if<UpdateStmt>(&statement.node)) returning = &s->returning;
  if (const auto* s = std::get_if<DeleteStmt>(&statement.node)) returning = &s->returning;
  if (returning && !returning->empty()) return DescribeItems(*returning, types);
  if (const auto* s = std::get_if<SetStmt>(&statement.node); s && s->kind == SetStmt::Kind::kShow) {
    return std::vector<Column>{Column{.name = Gucs::DisplayName(s->name), .type = kTextOid}};
  }
  if (const auto* s = std::get_if<ExecuteStmt>(&statement.node); s && depth == 0) {
    auto found = session.prepared.find(s->name);
    if (found == session.prepared.end()) return std::nullopt;
    return ColumnsOf(session, *found->second.statement, found->second.param_types, depth + 1);
  }
  return std::nullopt;
}

void HandleDescribe(NodeState& node, Session& session, const pg::Describe& describe) {
  if (describe.kind == 'S') {
    auto found = session.prepared.find(describe.name);
    if (found == session.prepared.end()) {
      return ExtendedError(node, session,
                           Error("26000", absl::StrFormat("prepared statement \"%s\" does "
                                                          "not exist",
                                                          describe.name)));
    }
    const PreparedStatement& prepared = found->second;
    session.output += pg::ParameterDescription{.type_oids = prepared.param_types}.Encode();
    std::optional<std::vector<Column>> columns =
        ColumnsOf(session, *prepared.statement, prepared.param_types);
    session.output += columns ? Describe(*columns, {}) : pg::NoData{}.Encode();
    return;
  }
  auto found = session.portals.find(describe.name);
  if (found == session.portals.end()) {
    return ExtendedError(
        node, session,
        Error("34000", absl::StrFormat("portal \"%s\" does not exist", describe.name)));
  }
  const Portal& portal = found->second;
  std::optional<std::vector<Column>> columns =
      ColumnsOf(session, *portal.statement, portal.param_types);
  session.output += columns ? Describe(*columns, portal.result_formats) : pg::NoData{}.Encode();
}

void HandleExecute(NodeState& node, Session& session, const pg::Execute& execute, Instant now) {
  auto found = session.portals.find(execute.portal);
  if (found == session.portals.end()) {
    return ExtendedError(
        node, session,
        Error("34000", absl::StrFormat("portal \"%s\" does not exist", execute.portal)));
  }
  Portal& portal = found->second;
  if (portal.ran) {
    // A suspended portal hands out its next rows; the statement does not run again.
    ExecResult& result = portal.result;
    const size_t from = portal.next_row;
    size_t end = result.rows.size();
    if (execute.max_rows > 0) end = std::min(end, from + static_cast<size_t>(execute.max_rows));
    if (std::optional<SqlError> error =
            SendRows(session, result, from, end, portal.result_formats)) {
      return ExtendedError(node, session, *error);
    }
    portal.next_row = end;
    session.output +=
        end < result.rows.size()
            ? pg::PortalSuspended{}.Encode()
            : pg::CommandComplete{.tag = result.returns_rows
                                             ? absl::StrFormat("SELECT %d", end - from)
                                             : result.tag}
                  .Encode();
    return;
  }
  if (!session.tx) BeginImplicit(node, session, false);
  if (!session.tx->explicit_block && session.tx->statements > 0) session.tx->multi = true;
  Running running;
  running.origin = Running::Origin::kExtended;
  running.statement = portal.statement;
  running.param_types = portal.param_types;
  running.params = portal.params;
  running.portal = execute.portal;
  running.max_rows = execute.max_rows;
  StartStatement(node, session, std::move(running), now);
}

void HandleSync(NodeState& node, Session& session) {
  session.skip_until_sync = false;
  if (session.tx && !session.tx->explicit_block) CommitTransaction(node, session);
  SendReadyForQuery(node, session);
}

// A failed COPY FROM: error, then ReadyForQuery (simple) or skip to Sync (extended).
void AbortCopyIn(NodeState& node, Session& session, const SqlError& error) {
  session.phase = Session::Phase::kReady;
  session.copy_in.reset();
  if (session.in_query) {
    SendError(node, session, error);
    AbortAfterError(node, session);
    AbortQuery(node, session);
  } else {
    ExtendedError(node, session, error);
  }
}

}  // namespace

void CancelCopyIn(NodeState& node, Session& session) {
  CHECK(session.phase == Session::Phase::kCopyIn);
  ++node.counters.cancels_applied;
  AbortCopyIn(node, session, Error("57014", "canceling statement due to user request"));
}

namespace {

void HandleCopyMessage(NodeState& node, Session& session, const pg::Frame& frame, Instant now) {
  CopyInState& copy = *session.copy_in;
  switch (frame.type) {
    case 'd':
      if (copy.data.size() + frame.payload.size() > node.options.limits.copy_in_bytes_max) {
        return AbortCopyIn(node, session, Error("54000", "COPY data exceeds copy_in_bytes_max"));
      }
      copy.data.append(frame.payload);
      return;
    case 'c': {
      Running running;
      running.origin = Running::Origin::kCopyIn;
      running.statement = copy.statement;
      if (std::optional<SqlError> error = ParseCopyData(copy.data, &running.copy_rows)) {
        return AbortCopyIn(node, session, *error);
      }
      session.phase = Session::Phase::kReady;
      session.copy_in.reset();
      StartStatement(node, session, std::move(running), now);
      return;
    }
    case 'f': {
      absl::StatusOr<pg::CopyFail> fail = pg::CopyFail::Decode(frame.payload);
      return AbortCopyIn(node, session,
                         Error("57014", absl::StrFormat("COPY from stdin failed: %s",
                                                        fail.ok() ? fail->message : "")));
    }
    case 'H':
    case 'S':
      return;  // ignored during COPY IN, as PostgreSQL does
    default:
      return AbortCopyIn(node, session,
                         Error("08P01", absl::StrFormat("unexpected message type 0x%02X during "
                                                        "COPY from stdin",
                                                        static_cast<uint8_t>(frame.type))));
  }
}

// Decodes a frontend message of type T, or ends the session with FATAL 08P01.
template <typename T>
std::optional<T> DecodeOrFail(NodeState& node, Session& session, const pg::Frame& frame) {
  absl::StatusOr<T> message = T::Decode(frame.payload);
  if (!message.ok()) {
    SendFatal(node, session, "08P01", std::string(message.status().message()));
    return std::nullopt;
  }
  return std::move(*message);
}

void NoteQuery(NodeState& node, const Session& session, const pg::Frame& frame) {
  if (frame.type == 'Q') {
    if (auto m = pg::Query::Decode(frame.payload); m.ok())
      node.options.on_query(session.id, m->sql);
  } else if (frame.type == 'P') {
    if (auto m = pg::Parse::Decode(frame.payload); m.ok()) {
      node.options.on_query(session.id, m->query);
    }
  }
}

void HandleReadyMessage(NodeState& node, Session& session, const pg::Frame& frame, Instant now) {
  if (node.options.on_query) NoteQuery(node, session, frame);
  // After an extended-protocol error PostgreSQL drops every message until Sync, a simple Query
  // included; Terminate still ends the session.
  if (session.skip_until_sync && frame.type != 'S' && frame.type != 'X') return;
  switch (frame.type) {
    case 'Q':
      if (auto m = DecodeOrFail<pg::Query>(node, session, frame))
        HandleQuery(node, session, m->sql);
      return;
    case 'P':
      if (auto m = DecodeOrFail<pg::Parse>(node, session, frame)) HandleParse(node, session, *m);
      return;
    case 'B':
      if (auto m = DecodeOrFail<pg::Bind>(node, session, frame)) HandleBind(node, session, *m);
      return;
    case 'D':
      if (auto m = DecodeOrFail<pg::Describe>(node, session, frame)) {
        HandleDescribe(node, session, *m);
      }
      return;
    case 'E':
      if (auto m = DecodeOrFail<pg::Execute>(node, session, frame)) {
        HandleExecute(node, session, *m, now);
      }
      return;
    case 'C':
      if (auto m = DecodeOrFail<pg::Close>(node, session, frame)) {
        if (m->kind == 'S') {
          session.prepared.erase(m->name);
        } else {
          session.portals.erase(m->name);
        }
        session.output += pg::CloseComplete{}.Encode();
      }
      return;
    case 'S':
      HandleSync(node, session);
      return;
    case 'H':
    case 'd':
    case 'c':
    case 'f':
      return;  // Flush needs nothing (output is always ready); stray COPY data is dropped
    case 'F':
      SendError(node, session,
                Error("0A000", "switchyard-sim does not support the function call protocol"));
      AbortAfterError(node, session);
      SendReadyForQuery(node, session);
      return;
    case 'X':
      EndSession(node, session);
      return;
    default:
      SendFatal(node, session, "08P01",
                absl::StrFormat("invalid frontend message type %d", frame.type));
      return;
  }
}

}  // namespace

bool ProcessOneMessage(NodeState& node, Session& session, Instant now) {
  if (session.phase == Session::Phase::kDone) return false;
  if (session.phase == Session::Phase::kStartup) {
    absl::StatusOr<std::optional<pg::StartupFrame>> frame = session.reader.NextStartup();
    if (!frame.ok()) {
      SendFatal(node, session, "08P01", std::string(frame.status().message()));
      return true;
    }
    if (!frame->has_value()) return false;
    HandleStartupPacket(node, session, **frame);
    return true;
  }
  absl::StatusOr<std::optional<pg::Frame>> frame = session.reader.Next();
  if (!frame.ok()) {
    SendFatal(node, session, "08P01", std::string(frame.status().message()));
    return true;
  }
  if (!frame->has_value()) return false;
  session.awaiting_command = false;
  switch (session.phase) {
    case Session::Phase::kAuthSasl:
    case Session::Phase::kAuthSaslContinue:
    case Session::Phase::kAuthMd5:
      HandleAuthMessage(node, session, **frame);
      break;
    case Session::Phase::kCopyIn:
      HandleCopyMessage(node, session, **frame, now);
      break;
    case Session::Phase::kReady:
      HandleReadyMessage(node, session, **frame, now);
      break;
    case Session::Phase::kStartup:
    case Session::Phase::kDone:
      break;
  }
  return true;
}

}  // namespace switchyard::sim::internal
