// The oracles. Each keeps its own state and judges what it sees on its own; those of routing
// and failover are in oracles_cluster.h.
#include "sim/oracles.h"

#include <algorithm>
#include <deque>
#include <limits>
#include <map>
#include <utility>

#include "core/base/check.h"
#include "core/base/strings.h"
#include "sim/oracles_cluster.h"

namespace switchyard::sim {

std::string DescribeError(const ErrorInfo& error) {
  return Cat(error.severity, " ", error.sqlstate, " \"", error.message, "\"");
}

std::string DescribeAnswer(const Answer& answer) {
  std::string text = Cat("rows=", answer.rows.size());
  if (!answer.parts.empty()) text += Cat(" statements_completed=", answer.parts.size());
  if (!answer.tags.empty()) text += Cat(" tag=\"", answer.tags.back(), "\"");
  for (const ErrorInfo& error : answer.errors) text += Cat(" ", DescribeError(error));
  if (answer.status != 0) text += Cat(" status=", std::string(1, answer.status));
  return text;
}

std::string Quote(const Request& request) { return Cat("#", request.seq, " `", request.sql, "`"); }

namespace {

std::string DescribeRow(const RowState& row) {
  return row ? Cat("'", *row, "'") : std::string("no row");
}

// The proxy's own FATALs name it; a server's never do.
bool IsProxyFatal(const ErrorInfo& error) {
  return error.fatal && error.message.find("switchyard") != std::string::npos;
}

// ---------------------------------------------------------------- answers_in_order

class AnswersInOrderOracle final : public Oracle {
 public:
  using Oracle::Oracle;

  void OnRequest(const ClientInfo& client, const Request& request) override {
    auto& outstanding = outstanding_[client.Key()];
    // The workload waits for each answer; a second request in flight is a workload bug.
    CHECK(outstanding.empty()) << client.Name() << " sent #" << request.seq << " while #"
                               << outstanding.front() << " was outstanding";
    outstanding.push_back(request.seq);
  }

  void OnAnswer(const ClientInfo& client, const SessionModel&, const Request& request,
                const Answer& answer) override {
    auto& outstanding = outstanding_[client.Key()];
    if (outstanding.empty() || outstanding.front() != request.seq) {
      Report(&client, Cat("an answer for ", Quote(request), " out of order"));
    } else {
      outstanding.pop_front();
    }
    if (!answer.malformed.empty()) {
      Report(&client, Cat("the answer to ", Quote(request), " is malformed: ", answer.malformed));
    }
    // A batch completes each statement it ran, then errs at most once; a simple query completes
    // once. A lost connection may add its error after a completion or an error.
    const bool loss = answer.LossKind() != Loss::kNone;
    const bool batch = request.op == Op::kBatch;
    const size_t tags = batch ? answer.parts.size() : answer.tags.size();
    const size_t completions =
        tags + answer.errors.size() + static_cast<size_t>(answer.empty_queries);
    const bool ok = answer.errors.size() <= (loss ? 2u : 1u) && completions >= 1 &&
                    (batch || completions == 1 || (loss && completions == 2));
    if (!ok) {
      Report(&client, Cat(Quote(request), " got ", completions,
                          " completions before ReadyForQuery: ", DescribeAnswer(answer)));
    }
    if (answer.status != 'I' && answer.status != 'T' && answer.status != 'E') {
      Report(&client, Cat("ReadyForQuery with status byte ", int{answer.status}));
    }
  }

  void OnStray(const ClientInfo& client, std::string_view what) override {
    Report(&client, std::string(what));
  }

  void OnEnded(const ClientInfo& client, const SessionModel&, const Ending& ending) override {
    outstanding_.erase(client.Key());
    if (ending.how != Ending::How::kServerClosed || !ending.outstanding) return;
    // A FATAL (or an error) is an answer of sorts; silence is not.
    if (ending.trailing.errors.empty()) {
      Report(&client,
             Cat("the proxy closed the connection without answering ", Quote(*ending.outstanding)));
    }
  }

 private:
  std::map<uint64_t, std::deque<uint64_t>> outstanding_;  // seqs
};

// ---------------------------------------------------------------- model

class ModelOracle final : public Oracle {
 public:
  using Oracle::Oracle;

  void OnAnswer(const ClientInfo& client, const SessionModel& session, const Request& request,
                const Answer& answer) override {
    IngestWal();
    const char expected_status = session.StatusAfter(request, answer);
    if (answer.status != expected_status) {
      Report(&client, Cat(Quote(request), ": ReadyForQuery says '", std::string(1, answer.status),
                          "', PostgreSQL says '", std::string(1, expected_status), "'"));
    }
    std::string problem = Judge(session, request, answer);
    if (!problem.empty()) {
      Report(&client, Cat(Quote(request), ": ", problem, " (got ", DescribeAnswer(answer), ")"));
    }
  }

 private:
  // One statement's answer, and the history it may have seen: committed states at positions
  // [from, to] with the transaction's own writes laid over them.
  struct Seen {
    const std::map<std::string, RowState>* overlay = nullptr;
    uint64_t from = 0;
    uint64_t to = 0;
    bool described = false;
    const std::vector<std::vector<std::optional<std::string>>>* rows = nullptr;
    std::vector<std::string> tags;
  };

  // Where a read may have run: on the primary, it saw states since it was sent; on a replica,
  // any state the cluster had before the answer (read_your_writes bounds the staleness).
  uint64_t From(const Request& request) const {
    return request.replica_ok && world_.replicas > 0 ? 0 : request.sent_pos;
  }

  std::string Judge(const SessionModel& session, const Request& request, const Answer& answer) {
    const ErrorInfo* error = answer.error();
    // A late cancel may hit any statement of its client, even one ending a failed transaction
    // (the statement then changed nothing); the cancel oracle judges whether it was sent.
    if (error != nullptr && error->sqlstate == "57014") return "";
    // A lost (or never had) server connection may fail any statement; connection_loss and the
    // status byte judge what follows.
    if (answer.LossKind() != Loss::kNone) return "";
    if (session.status() == 'E') {
      if (request.op == Op::kCommit || request.op == Op::kRollback) {
        return Tag(answer.tags, "ROLLBACK");
      }
      if (error == nullptr || error->sqlstate != "25P02") {
        return "a statement in a failed transaction must fail with 25P02";
      }
      return "";
    }
    if (request.op == Op::kBatch) return JudgeBatch(request, answer);
    Seen seen{&session.own_writes(), From(request), answer.pos,
              answer.described,      &answer.rows,  answer.tags};
    if (error != nullptr) return JudgeError(seen, request, *error);
    switch (request.op) {
      case Op::kRead:
      case Op::kLockingRead:
        return JudgeRead(seen, request);
      case Op::kScan:
        return JudgeScan(seen);
      case Op::kInsert:
      case Op::kUpdate:
      case Op::kDelete:
        if (std::string problem = JudgeWrite(seen, request); !problem.empty()) return problem;
        if (session.status() == 'I' && answer.Affected() == 1 &&
            !world_.history->FindRecord({request.sql}, request.sent_pos, answer.pos)) {
          return "an acknowledged autocommit write is not in the WAL within its interval";
        }
        return "";
      case Op::kBegin:
        return Tag(answer.tags, "BEGIN");
      case Op::kCommit:
        return JudgeCommit(session, request, answer);
      case Op::kRollback:
        return Tag(answer.tags, "ROLLBACK");
      case Op::kSet:
      case Op::kSetLocal:
        return Tag(answer.tags, "SET");
      case Op::kShow:
        if (answer.rows.size() != 1 || answer.rows[0].size() != 1) return "SHOW gives one value";
        return Tag(answer.tags, "SHOW");
      case Op::kSleep:
        if (answer.rows.size() != 1) return "pg_sleep gives one row";
        return Tag(answer.tags, "SELECT 1");
      case Op::kBatch:
        break;
    }
    return "";
  }

  static std::string Tag(const std::vector<std::string>& tags, std::string_view tag) {
    if (tags.size() == 1 && tags[0] == tag) return "";
    return Cat("PostgreSQL completes it with \"", tag, "\"");
  }

  // The row as the statement sees it somewhere in its interval.
  bool Sees(const Seen& seen, const std::string& key, const RowState& row) const {
    auto own = seen.overlay->find(key);
    if (own != seen.overlay->end()) return own->second == row;
    return world_.history->Saw(key, seen.from, seen.to, row);
  }
  bool SeesPresence(const Seen& seen, const std::string& key, bool present) const {
    auto own = seen.overlay->find(key);
    if (own != seen.overlay->end()) return own->second.has_value() == present;
    return world_.history->SawPresence(key, seen.from, seen.to, present);
  }

  std::string JudgeError(const Seen& seen, const Request& request, const ErrorInfo& error) const {
    if (request.op == Op::kInsert && error.sqlstate == "23505") {
      if (SeesPresence(seen, request.key, /*present=*/true)) return "";
      return Cat(request.key, " was never present between positions ", seen.from, " and ", seen.to,
                 ", yet the INSERT hit a duplicate key");
    }
    return Cat("PostgreSQL would not fail `", request.sql, "` with ", DescribeError(error));
  }

  std::string JudgeRead(const Seen& seen, const Request& request) const {
    const auto& rows = *seen.rows;
    if (!seen.described || rows.size() > 1) return "a key lookup gives at most one row";
    if (std::string tag = Tag(seen.tags, Cat("SELECT ", rows.size())); !tag.empty()) return tag;
    RowState row;
    if (!rows.empty()) {
      if (rows[0].size() != 1 || !rows[0][0]) return "v is one non-null column";
      row = rows[0][0];
    }
    if (Sees(seen, request.key, row)) return "";
    return Cat("read ", DescribeRow(row), " for ", request.key,
               ", which the session never saw between positions ", seen.from, " and ", seen.to);
  }

  std::string JudgeScan(const Seen& seen) const {
    std::map<std::string, std::string> table;
    for (const auto& row : *seen.rows) {
      if (row.size() != 2 || !row[0] || !row[1]) return "a scan row is (k, v), both non-null";
      if (!table.emplace(*row[0], *row[1]).second) return Cat("key ", *row[0], " twice");
    }
    if (std::string tag = Tag(seen.tags, Cat("SELECT ", seen.rows->size())); !tag.empty()) {
      return tag;
    }
    if (world_.history->SawTable(seen.from, seen.to, table, *seen.overlay)) return "";
    return Cat("the table was never in the scanned state between positions ", seen.from, " and ",
               seen.to);
  }

  std::string JudgeWrite(const Seen& seen, const Request& request) const {
    Answer tags;
    tags.tags = seen.tags;
    const int64_t affected = tags.Affected();
    if (affected != 0 && affected != 1) return "a one-key write changes zero or one row";
    const std::string verb = request.op == Op::kInsert   ? "INSERT 0 "
                             : request.op == Op::kUpdate ? "UPDATE "
                                                         : "DELETE ";
    if (std::string tag = Tag(seen.tags, Cat(verb, affected)); !tag.empty()) return tag;
    if (request.op == Op::kInsert && affected != 1) return "an INSERT inserts or fails";
    // An INSERT needs the key absent; UPDATE and DELETE change a row only if it exists.
    const bool present = request.op == Op::kInsert ? false : affected == 1;
    if (!SeesPresence(seen, request.key, present)) {
      return Cat(request.key, " was never ", present ? "present" : "absent", " between positions ",
                 seen.from, " and ", seen.to);
    }
    return "";
  }

  std::string JudgeCommit(const SessionModel& session, const Request& request,
                          const Answer& answer) const {
    if (std::string tag = Tag(answer.tags, "COMMIT"); !tag.empty()) return tag;
    if (session.tx_statements().empty()) return "";
    if (world_.history->FindRecord(session.tx_statements(), request.sent_pos, answer.pos)) {
      return "";
    }
    return Cat("the committed transaction is not one WAL record within its interval: ",
               JoinStatements(session.tx_statements()));
  }

  // A Sync batch is one implicit transaction: each statement sees the batch's earlier writes;
  // the first error ends it and undoes them; otherwise they commit as one WAL record.
  std::string JudgeBatch(const Request& request, const Answer& answer) const {
    std::map<std::string, RowState> overlay;
    std::vector<std::string> writes;
    const size_t n = request.statements.size();
    const size_t answered = answer.parts.size();
    if (answered > n || (answer.errors.empty() && answered != n)) {
      return Cat(answered, " statements answered of the batch's ", n);
    }
    if (!answer.errors.empty() && answered == n) return "an error after every statement completed";
    for (size_t i = 0; i < n; ++i) {
      const Request& statement = request.statements[i];
      const bool errored = i == answered;
      if (i > answered) break;
      const Part empty;
      const Part& part = errored ? empty : answer.parts[i];
      Seen seen{&overlay, From(request), answer.pos, part.described, &part.rows, {}};
      if (!part.tag.empty()) seen.tags.push_back(part.tag);
      std::string problem = errored ? JudgeError(seen, statement, answer.errors.front())
                            : statement.IsWrite()       ? JudgeWrite(seen, statement)
                            : statement.op == Op::kScan ? JudgeScan(seen)
                                                        : JudgeRead(seen, statement);
      if (!problem.empty()) return Cat("statement ", i + 1, " of the batch: ", problem);
      if (errored) return "";
      Answer tag;
      tag.tags = seen.tags;
      if (statement.IsWrite() && tag.Affected() == 1) {
        overlay[statement.key] =
            statement.op == Op::kDelete ? RowState() : RowState(statement.value);
        writes.push_back(statement.sql);
      }
    }
    if (!writes.empty() && !world_.history->FindRecord(writes, request.sent_pos, answer.pos)) {
      return Cat("the batch's writes are not one WAL record within its interval: ",
                 JoinStatements(writes));
    }
    return "";
  }
};

// ---------------------------------------------------------------- no_double_write

class NoDoubleWriteOracle final : public Oracle {
 public:
  using Oracle::Oracle;

  void OnAnswer(const ClientInfo& client, const SessionModel& session, const Request& request,
                const Answer& answer) override {
    const Loss loss = answer.LossKind();
    if (loss == Loss::kInFlight || loss == Loss::kCommit) {
      // Lost with the statement sent: it may have committed, once, at any later position.
      return Unknown(client, session, request);
    }
    if (answer.error() != nullptr) return;
    if (session.status() == 'I' && request.IsWrite() && answer.Affected() > 0) {
      Expect(client, {request.sql}, request.sent_pos, answer.pos);
    }
    if (session.status() == 'T' && request.op == Op::kCommit && !session.tx_statements().empty()) {
      Expect(client, session.tx_statements(), request.sent_pos, answer.pos);
    }
    if (request.op == Op::kBatch && session.status() == 'I') {
      std::vector<std::string> writes;
      for (size_t i = 0; i < request.statements.size() && i < answer.parts.size(); ++i) {
        Answer part;
        part.tags.push_back(answer.parts[i].tag);
        if (request.statements[i].IsWrite() && part.Affected() > 0) {
          writes.push_back(request.statements[i].sql);
        }
      }
      if (!writes.empty()) Expect(client, writes, request.sent_pos, answer.pos);
    }
  }

  void OnEnded(const ClientInfo& client, const SessionModel& session,
               const Ending& ending) override {
    if (ending.outstanding) Unknown(client, session, *ending.outstanding);
  }

  void Finish() override {
    IngestWal();
    const auto& records = world_.history->records();
    for (uint64_t index = 0; index < records.size(); ++index) {
      const auto& statements = records[index].statements;
      if (statements.empty()) continue;
      if (!Explain(statements, index)) {
        Report(nullptr, Cat("WAL record ", index, " (`", JoinStatements(statements),
                            "`) was committed, but no request explains it: a write "
                            "applied twice, or one its client saw fail"));
      }
    }
  }

 private:
  static constexpr uint64_t kNever = std::numeric_limits<uint64_t>::max();
  struct Item {
    std::string client;
    uint64_t from = 0;
    uint64_t to = 0;
    bool used = false;
  };
  // A batch whose fate is unknown: any of its writes that found their row may have committed,
  // together, as one record.
  struct Loose {
    std::vector<std::string> statements;
    uint64_t from = 0;
    bool used = false;
  };

  void Unknown(const ClientInfo& client, const SessionModel& session, const Request& request) {
    if (session.status() == 'I' && request.IsWrite()) {
      Expect(client, {request.sql}, request.sent_pos, kNever);
    }
    if (session.status() == 'T' && request.op == Op::kCommit && !session.tx_statements().empty()) {
      Expect(client, session.tx_statements(), request.sent_pos, kNever);
    }
    if (request.op == Op::kBatch && session.status() == 'I' && request.BatchWrites()) {
      Loose loose{.from = request.sent_pos};
      for (const Request& statement : request.statements) {
        if (statement.IsWrite()) loose.statements.push_back(statement.sql);
      }
      loose_.push_back(std::move(loose));
    }
  }

  void Expect(const ClientInfo& client, const std::vector<std::string>& statements, uint64_t from,
              uint64_t to) {
    expected_[JoinStatements(statements)].push_back(Item{client.Name(), from, to});
  }

  bool Explain(const std::vector<std::string>& statements, uint64_t index) {
    auto it = expected_.find(JoinStatements(statements));
    if (it != expected_.end()) {
      for (Item& item : it->second) {
        if (item.used || index < item.from || index >= item.to) continue;
        item.used = true;
        return true;
      }
    }
    for (Loose& loose : loose_) {
      if (loose.used || index < loose.from) continue;
      // The record's statements must be the batch's writes, in order, some left out.
      size_t next = 0;
      for (const std::string& statement : loose.statements) {
        if (next < statements.size() && statements[next] == statement) ++next;
      }
      if (next == statements.size()) {
        loose.used = true;
        return true;
      }
    }
    return false;
  }

  std::map<std::string, std::vector<Item>> expected_;
  std::vector<Loose> loose_;
};

// ---------------------------------------------------------------- connection_loss

// DESIGN.md section 5: a lost server connection fails the statement in flight (08006, or
// 08007 for a COMMIT) and never ends the client's session; only a session pinned to the lost
// connection (the workload pins none) gets the proxy's FATAL. A server's FATAL never reaches a
// client as its own.
class ConnectionLossOracle final : public Oracle {
 public:
  using Oracle::Oracle;

  void OnAnswer(const ClientInfo& client, const SessionModel&, const Request& request,
                const Answer& answer) override {
    const Loss loss = answer.LossKind();
    if (loss == Loss::kCommit && request.op != Op::kCommit) {
      Report(&client, Cat(Quote(request), " got ", DescribeError(answer.errors.back()),
                          ", which is only for a COMMIT whose outcome is unknown"));
    }
    if (loss == Loss::kInFlight && request.op == Op::kCommit) {
      Report(&client, Cat(Quote(request), " lost its connection and got ",
                          DescribeError(answer.errors.back()), "; the rule is 08007"));
    }
    for (const ErrorInfo& error : answer.errors) {
      if (error.fatal) CheckFatal(client, error);
    }
  }

  void OnEnded(const ClientInfo& client, const SessionModel&, const Ending& ending) override {
    const std::vector<ErrorInfo>& errors = ending.trailing.errors;
    for (const ErrorInfo& error : errors) {
      if (error.fatal && ending.logged_in) CheckFatal(client, error);
    }
    if (ending.how != Ending::How::kServerClosed) return;
    const bool fatal_last = !errors.empty() && errors.back().fatal;
    if (!fatal_last) {
      Report(&client, Cat("the proxy closed the session without a FATAL (after ",
                          DescribeAnswer(ending.trailing), ")"));
      return;
    }
    if (!ending.after_fatal.empty()) {
      Report(&client, Cat("message '", ending.after_fatal, "' after the FATAL"));
    }
    // Before the client is in, the proxy may pass a server's startup error through.
    if (!ending.logged_in) return;
    if (IsProxyFatal(errors.back())) {
      Report(&client, Cat("the proxy ended the session with ", DescribeError(errors.back()),
                          ": losing a server connection must not end an unpinned session",
                          ending.outstanding ? Cat(" (", Quote(*ending.outstanding), " in flight)")
                                             : std::string()));
    }
    for (size_t i = 0; i + 1 < errors.size(); ++i) {
      if (errors[i].fatal) Report(&client, Cat("two FATALs: ", DescribeError(errors[i])));
    }
  }

 private:
  void CheckFatal(const ClientInfo& client, const ErrorInfo& fatal) {
    if (!IsProxyFatal(fatal)) {
      Report(&client,
             Cat("a server's FATAL reached the client as its own: ", DescribeError(fatal)));
    }
  }
};

// ---------------------------------------------------------------- session_state

class SessionStateOracle final : public Oracle {
 public:
  using Oracle::Oracle;

  void OnWelcome(const ClientInfo& client, const Welcome& welcome) override {
    if (welcome.status != 'I') {
      Report(&client, Cat("the welcome's ReadyForQuery says '", std::string(1, welcome.status),
                          "': the pooled connection is not idle"));
    }
    for (const auto& [name, value] : welcome.parameters) {
      if (name == "application_name" && value != welcome.expected_application_name) {
        Report(&client, Cat("the welcome says application_name='", value,
                            "'; this client asked for '", welcome.expected_application_name, "'"));
      }
    }
  }

  void OnAnswer(const ClientInfo& client, const SessionModel& session, const Request& request,
                const Answer& answer) override {
    if (request.op != Op::kShow || session.status() == 'E' || answer.error() != nullptr) return;
    if (answer.rows.size() != 1 || answer.rows[0].size() != 1 || !answer.rows[0][0]) return;
    const std::string& shown = *answer.rows[0][0];
    const std::string expected = session.Show(request.guc);
    if (shown != expected) {
      Report(&client,
             Cat(Quote(request), " shows '", shown, "'; this session's value is '", expected,
                 "' (state leaked from another session, or not replayed on a new server "
                 "connection?)"));
    }
  }
};

// ---------------------------------------------------------------- cancel

class CancelOracle final : public Oracle {
 public:
  using Oracle::Oracle;

  void OnCancelSent(const ClientInfo& client, const Request&) override { ++cancels_[client.Key()]; }

  void OnAnswer(const ClientInfo& client, const SessionModel&, const Request& request,
                const Answer& answer) override {
    const ErrorInfo* error = answer.error();
    if (error == nullptr || error->sqlstate != "57014") return;
    // PostgreSQL cancels whatever runs when the cancel arrives, so a late cancel may hit the
    // client's next statement; it may never hit another client's.
    auto it = cancels_.find(client.Key());
    if (it == cancels_.end() || it->second == 0) {
      Report(&client, Cat(Quote(request), " was cancelled, but its client sent no cancel request"));
      return;
    }
    --it->second;
  }

  void OnEnded(const ClientInfo& client, const SessionModel&, const Ending&) override {
    cancels_.erase(client.Key());
  }

 private:
  std::map<uint64_t, int> cancels_;
};

// ---------------------------------------------------------------- memory

// While a client reads nothing, whatever its server sends must pile up in the proxy or in the
// two network windows; once the proxy holds its watermark's worth it must stop reading the
// server (DESIGN.md section 4), so the server cannot get more than that bound through. The
// client's server connection is the one its request in flight reached (its routing tag says
// whose it is); without a cluster to watch, the one with the pid of its BackendKeyData, which
// session pooling on a primary alone makes the server's own. Without a match there is nothing
// to measure.
class MemoryOracle final : public Oracle {
 public:
  using Oracle::Oracle;

  void OnReadingPaused(const ClientInfo& client, int32_t pid) override {
    if (world_.cluster != nullptr) {
      paused_[client.Key()] = Paused{};  // measured from when the request reaches a node
      return;
    }
    if (world_.primary == nullptr) return;
    if (std::optional<uint64_t> bytes = world_.primary->BytesWrittenByPid(pid)) {
      paused_[client.Key()] = Paused{.measured = true, .before = *bytes};
    }
  }

  void OnNodeQuery(const NodeQuery& q) override {
    std::optional<RouteTag> tag = ParseRouteTag(q.sql);
    if (!tag || world_.cluster == nullptr) return;
    const uint64_t key = ClientInfo{tag->client, tag->session}.Key();
    // In transaction pooling a paused client's connection goes on to serve others: what it
    // sends from then on is theirs, not this client's.
    const NodePeer* node = world_.cluster->nodes[q.node];
    for (auto& [client, paused] : paused_) {
      if (client != key && paused.measured && !paused.until && paused.peer == node &&
          paused.session == q.session) {
        paused.until = node->BytesWrittenBySession(q.session).value_or(paused.before);
      }
    }
    auto it = paused_.find(key);
    if (it == paused_.end() || it->second.measured) return;
    const NodePeer& peer = *world_.cluster->nodes[q.node];
    it->second = Paused{.measured = true,
                        .peer = &peer,
                        .session = q.session,
                        .before = peer.BytesWrittenBySession(q.session).value_or(0)};
  }

  void OnReadingResumed(const ClientInfo& client, int32_t pid) override {
    auto it = paused_.find(client.Key());
    if (it == paused_.end()) return;
    const Paused paused = it->second;
    paused_.erase(it);
    if (!paused.measured) return;
    std::optional<uint64_t> after = paused.until ? paused.until
                                    : paused.peer != nullptr
                                        ? paused.peer->BytesWrittenBySession(paused.session)
                                        : world_.primary->BytesWrittenByPid(pid);
    if (!after || *after < paused.before) return;
    const uint64_t through = *after - paused.before;
    if (through > world_.proxy_buffer_bytes_max) {
      Report(&client, Cat("the server sent ", through,
                          " bytes while its client read nothing; "
                          "the proxy may hold at most ",
                          world_.proxy_buffer_bytes_max, " (watermark ignored?)"));
    }
  }

  void OnEnded(const ClientInfo& client, const SessionModel&, const Ending&) override {
    paused_.erase(client.Key());
  }

 private:
  struct Paused {
    bool measured = false;
    const NodePeer* peer = nullptr;  // null: by pid on the primary
    uint64_t session = 0;
    uint64_t before = 0;  // what the server had sent on the connection
    // What it had sent when it began to serve another client (transaction pooling).
    std::optional<uint64_t> until;
  };
  std::map<uint64_t, Paused> paused_;  // by client
};

// ---------------------------------------------------------------- liveness

class LivenessOracle final : public Oracle {
 public:
  using Oracle::Oracle;

  // The proxy's sessions on one node (the health checker's aside) must all be idle; returns
  // how many there are.
  size_t CheckIdle(const NodePeer& peer) {
    const PgNode& node = peer.pg();
    size_t sessions = 0;
    for (uint64_t id : node.SessionIds()) {
      // A session whose connection the proxy closed may still finish a statement: not ours.
      if (!peer.Connected(id)) continue;
      std::optional<SessionView> view = node.InspectSession(id);
      if (!view || !view->authenticated || view->user == kHealthUser) continue;
      ++sessions;
      if (view->transaction_status != 'I' || view->running) {
        Report(nullptr, Cat("server session pid=", view->pid, " on ", node.name(), " is ",
                            view->running ? "running a statement" : "in a transaction",
                            " with no client left"));
      }
    }
    return sessions;
  }

  void OnEnded(const ClientInfo& client, const SessionModel&, const Ending& ending) override {
    if (ending.how == Ending::How::kStillOpen) {
      Report(&client,
             Cat("session stuck after faults were healed",
                 ending.outstanding ? Cat(": ", Quote(*ending.outstanding), " sent at t=",
                                          ending.outstanding->sent_at.us, "us never completed")
                                    : std::string(ending.logged_in ? "" : " (never logged in)")));
      return;
    }
    // Probes run with faults healed and need the whole pool at once.
    if (client.client >= kProbeClientBase && ending.how != Ending::How::kClientLeft) {
      const ErrorInfo* error = ending.trailing.error();
      Report(&client, Cat("a probe could not use its share of the pool (", HowName(ending.how),
                          error ? ": " + DescribeError(*error) : std::string(),
                          "): a pooled connection is unaccounted for"));
    }
  }

  void OnQuiescent(const Quiescence& q) override {
    if (q.units != 0) Report(nullptr, Cat(q.units, " units never retired"));
    if (q.clients_active != 0) {
      Report(nullptr, Cat("the proxy still counts ", q.clients_active, " active clients"));
    }
    std::vector<const NodePeer*> nodes;
    if (world_.cluster != nullptr) {
      nodes = world_.cluster->nodes;
    } else if (world_.primary != nullptr) {
      nodes.push_back(world_.primary);
    }
    size_t sessions = 0;
    for (const NodePeer* peer : nodes) sessions += CheckIdle(*peer);
    if (sessions > static_cast<size_t>(world_.max_server_connections)) {
      Report(nullptr, Cat(sessions, " server sessions open, over the proxy's bound of ",
                          world_.max_server_connections));
    }
  }
};

}  // namespace

// ---------------------------------------------------------------- plumbing

void Violations::Add(std::string_view oracle, Instant at, std::string client, std::string what) {
  ++count_;
  if (list_.size() >= kKeptMax) return;
  list_.push_back(Violation{std::string(oracle), at, std::move(client), std::move(what)});
}

void Oracle::Report(const ClientInfo* client, std::string what) {
  violations_.Add(name_, Now(), client ? client->Name() : "", std::move(what));
}

void Oracle::IngestWal() {
  world_.history->Ingest(*world_.store);
  for (std::string& problem : world_.history->TakeProblems()) {
    violations_.Add("model", Now(), "", std::move(problem));
  }
}

void OracleSet::OnWelcome(const ClientInfo& c, const Welcome& w) {
  for (auto& oracle : oracles_) oracle->OnWelcome(c, w);
}
void OracleSet::OnRequest(const ClientInfo& c, const Request& r) {
  for (auto& oracle : oracles_) oracle->OnRequest(c, r);
}
void OracleSet::OnAnswer(const ClientInfo& c, const SessionModel& s, const Request& r,
                         const Answer& a) {
  for (auto& oracle : oracles_) oracle->OnAnswer(c, s, r, a);
}
void OracleSet::OnCancelSent(const ClientInfo& c, const Request& r) {
  for (auto& oracle : oracles_) oracle->OnCancelSent(c, r);
}
void OracleSet::OnReadingPaused(const ClientInfo& c, int32_t pid) {
  for (auto& oracle : oracles_) oracle->OnReadingPaused(c, pid);
}
void OracleSet::OnReadingResumed(const ClientInfo& c, int32_t pid) {
  for (auto& oracle : oracles_) oracle->OnReadingResumed(c, pid);
}
void OracleSet::OnStray(const ClientInfo& c, std::string_view what) {
  for (auto& oracle : oracles_) oracle->OnStray(c, what);
}
void OracleSet::OnEnded(const ClientInfo& c, const SessionModel& s, const Ending& e) {
  for (auto& oracle : oracles_) oracle->OnEnded(c, s, e);
}
void OracleSet::OnConnect(const ClientInfo& c) {
  for (auto& oracle : oracles_) oracle->OnConnect(c);
}
void OracleSet::OnNodeQuery(const NodeQuery& q) {
  for (auto& oracle : oracles_) oracle->OnNodeQuery(q);
}
void OracleSet::OnQuiescent(const Quiescence& q) {
  for (auto& oracle : oracles_) oracle->OnQuiescent(q);
}
void OracleSet::Finish() {
  for (auto& oracle : oracles_) oracle->Finish();
}

void AddStandardOracles(OracleSet& set, World& world, Violations& violations) {
  set.Add(std::make_unique<AnswersInOrderOracle>("answers_in_order", world, violations));
  set.Add(std::make_unique<ModelOracle>("model", world, violations));
  set.Add(std::make_unique<NoDoubleWriteOracle>("no_double_write", world, violations));
  set.Add(std::make_unique<ConnectionLossOracle>("connection_loss", world, violations));
  set.Add(std::make_unique<SessionStateOracle>("session_state", world, violations));
  set.Add(std::make_unique<CancelOracle>("cancel", world, violations));
  set.Add(std::make_unique<MemoryOracle>("memory", world, violations));
  set.Add(std::make_unique<LivenessOracle>("liveness", world, violations));
  using namespace cluster_oracles;  // NOLINT(build/namespaces): the oracles defined there
  set.Add(std::make_unique<NoWriteOnReplicaOracle>("no_write_on_replica", world, violations));
  set.Add(std::make_unique<BatchOneNodeOracle>("batch_one_node", world, violations));
  set.Add(std::make_unique<ReadYourWritesOracle>("read_your_writes", world, violations));
  set.Add(std::make_unique<FencingOracle>("fencing", world, violations));
  set.Add(std::make_unique<FailoverOracle>("failover", world, violations));
}

}  // namespace switchyard::sim
