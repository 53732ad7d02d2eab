// The oracles of issue 3. Each keeps its own state and judges what it sees on its own.
#include "sim/oracles.h"

#include <algorithm>
#include <deque>
#include <limits>
#include <map>
#include <utility>

#include "core/base/check.h"
#include "core/base/strings.h"

namespace switchyard::sim {
namespace {

std::string DescribeRow(const RowState& row) {
  return row ? Cat("'", *row, "'") : std::string("no row");
}

std::string DescribeError(const ErrorInfo& error) {
  return Cat(error.severity, " ", error.sqlstate, " \"", error.message, "\"");
}

std::string DescribeAnswer(const Answer& answer) {
  std::string text = Cat("rows=", answer.rows.size());
  if (!answer.tags.empty()) text += Cat(" tag=\"", answer.tags.back(), "\"");
  if (const ErrorInfo* error = answer.error()) text += Cat(" ", DescribeError(*error));
  if (answer.status != 0) text += Cat(" status=", std::string(1, answer.status));
  return text;
}

std::string Quote(const Request& request) { return Cat("#", request.seq, " `", request.sql, "`"); }

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
    const size_t completions =
        answer.tags.size() + answer.errors.size() + static_cast<size_t>(answer.empty_queries);
    if (completions != 1) {
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
  std::string Judge(const SessionModel& session, const Request& request, const Answer& answer) {
    const ErrorInfo* error = answer.error();
    // A late cancel may hit any statement of its client, even one ending a failed transaction
    // (the statement then changed nothing); the cancel oracle judges whether it was sent.
    if (error != nullptr && error->sqlstate == "57014") return "";
    if (session.status() == 'E') {
      if (request.op == Op::kCommit || request.op == Op::kRollback) {
        return Tag(answer, "ROLLBACK");
      }
      if (error == nullptr || error->sqlstate != "25P02") {
        return "a statement in a failed transaction must fail with 25P02";
      }
      return "";
    }
    if (error != nullptr) return JudgeError(session, request, answer, *error);
    switch (request.op) {
      case Op::kRead:
        return JudgeRead(session, request, answer);
      case Op::kScan:
        return JudgeScan(session, request, answer);
      case Op::kInsert:
      case Op::kUpdate:
      case Op::kDelete:
        return JudgeWrite(session, request, answer);
      case Op::kBegin:
        return Tag(answer, "BEGIN");
      case Op::kCommit:
        return JudgeCommit(session, request, answer);
      case Op::kRollback:
        return Tag(answer, "ROLLBACK");
      case Op::kSet:
      case Op::kSetLocal:
        return Tag(answer, "SET");
      case Op::kShow:
        if (answer.rows.size() != 1 || answer.rows[0].size() != 1) return "SHOW gives one value";
        return Tag(answer, "SHOW");
      case Op::kSleep:
        if (answer.rows.size() != 1) return "pg_sleep gives one row";
        return Tag(answer, "SELECT 1");
    }
    return "";
  }

  static std::string Tag(const Answer& answer, std::string_view tag) {
    if (answer.tags.size() == 1 && answer.tags[0] == tag) return "";
    return Cat("PostgreSQL completes it with \"", tag, "\"");
  }

  // The row as this session sees it somewhere in the statement's interval.
  bool Sees(const SessionModel& session, const Request& request, const Answer& answer,
            const RowState& row) const {
    auto own = session.own_writes().find(request.key);
    if (own != session.own_writes().end()) return own->second == row;
    return world_.history->Saw(request.key, request.sent_pos, answer.pos, row);
  }
  bool SeesPresence(const SessionModel& session, const Request& request, const Answer& answer,
                    bool present) const {
    auto own = session.own_writes().find(request.key);
    if (own != session.own_writes().end()) return own->second.has_value() == present;
    return world_.history->SawPresence(request.key, request.sent_pos, answer.pos, present);
  }

  std::string JudgeError(const SessionModel& session, const Request& request, const Answer& answer,
                         const ErrorInfo& error) const {
    if (request.op == Op::kInsert && error.sqlstate == "23505") {
      if (SeesPresence(session, request, answer, /*present=*/true)) return "";
      return Cat(request.key, " was never present between positions ", request.sent_pos, " and ",
                 answer.pos, ", yet the INSERT hit a duplicate key");
    }
    return Cat("PostgreSQL would not fail it with ", DescribeError(error));
  }

  std::string JudgeRead(const SessionModel& session, const Request& request,
                        const Answer& answer) const {
    if (!answer.described || answer.rows.size() > 1) return "a key lookup gives at most one row";
    if (std::string tag = Tag(answer, Cat("SELECT ", answer.rows.size())); !tag.empty()) {
      return tag;
    }
    RowState row;
    if (!answer.rows.empty()) {
      if (answer.rows[0].size() != 1 || !answer.rows[0][0]) return "v is one non-null column";
      row = answer.rows[0][0];
    }
    if (Sees(session, request, answer, row)) return "";
    return Cat("read ", DescribeRow(row), " for ", request.key,
               ", which the session never saw between positions ", request.sent_pos, " and ",
               answer.pos);
  }

  std::string JudgeScan(const SessionModel& session, const Request& request,
                        const Answer& answer) const {
    std::map<std::string, std::string> table;
    for (const auto& row : answer.rows) {
      if (row.size() != 2 || !row[0] || !row[1]) return "a scan row is (k, v), both non-null";
      if (!table.emplace(*row[0], *row[1]).second) return Cat("key ", *row[0], " twice");
    }
    if (std::string tag = Tag(answer, Cat("SELECT ", answer.rows.size())); !tag.empty()) {
      return tag;
    }
    if (world_.history->SawTable(request.sent_pos, answer.pos, table, session.own_writes())) {
      return "";
    }
    return Cat("the table was never in the scanned state between positions ", request.sent_pos,
               " and ", answer.pos);
  }

  std::string JudgeWrite(const SessionModel& session, const Request& request,
                         const Answer& answer) const {
    const int64_t affected = answer.Affected();
    if (affected != 0 && affected != 1) return "a one-key write changes zero or one row";
    const std::string verb = request.op == Op::kInsert   ? "INSERT 0 "
                             : request.op == Op::kUpdate ? "UPDATE "
                                                         : "DELETE ";
    if (std::string tag = Tag(answer, Cat(verb, affected)); !tag.empty()) return tag;
    if (request.op == Op::kInsert && affected != 1) return "an INSERT inserts or fails";
    // An INSERT needs the key absent; UPDATE and DELETE change a row only if it exists.
    const bool present = request.op == Op::kInsert ? false : affected == 1;
    if (!SeesPresence(session, request, answer, present)) {
      return Cat(request.key, " was never ", present ? "present" : "absent", " between positions ",
                 request.sent_pos, " and ", answer.pos);
    }
    if (session.status() == 'I' && affected == 1 &&
        !world_.history->FindRecord({request.sql}, request.sent_pos, answer.pos)) {
      return "an acknowledged autocommit write is not in the WAL within its interval";
    }
    return "";
  }

  std::string JudgeCommit(const SessionModel& session, const Request& request,
                          const Answer& answer) const {
    if (std::string tag = Tag(answer, "COMMIT"); !tag.empty()) return tag;
    if (session.tx_statements().empty()) return "";
    if (world_.history->FindRecord(session.tx_statements(), request.sent_pos, answer.pos)) {
      return "";
    }
    return Cat("the committed transaction is not one WAL record within its interval: ",
               JoinStatements(session.tx_statements()));
  }
};

// ---------------------------------------------------------------- no_double_write

class NoDoubleWriteOracle final : public Oracle {
 public:
  using Oracle::Oracle;

  void OnAnswer(const ClientInfo& client, const SessionModel& session, const Request& request,
                const Answer& answer) override {
    if (answer.error() != nullptr) return;
    if (session.status() == 'I' && request.IsWrite() && answer.Affected() > 0) {
      Expect(client, {request.sql}, request.sent_pos, answer.pos);
    }
    if (session.status() == 'T' && request.op == Op::kCommit && !session.tx_statements().empty()) {
      Expect(client, session.tx_statements(), request.sent_pos, answer.pos);
    }
  }

  void OnEnded(const ClientInfo& client, const SessionModel& session,
               const Ending& ending) override {
    if (!ending.outstanding) return;
    const Request& request = *ending.outstanding;
    // Its fate is unknown: it may have committed, once, at any later position.
    constexpr uint64_t kNever = std::numeric_limits<uint64_t>::max();
    if (session.status() == 'I' && request.IsWrite()) {
      Expect(client, {request.sql}, request.sent_pos, kNever);
    }
    if (session.status() == 'T' && request.op == Op::kCommit && !session.tx_statements().empty()) {
      Expect(client, session.tx_statements(), request.sent_pos, kNever);
    }
  }

  void Finish() override {
    IngestWal();
    const auto& records = world_.history->records();
    for (uint64_t index = 0; index < records.size(); ++index) {
      const auto& statements = records[index].statements;
      if (statements.empty()) continue;
      auto it = expected_.find(JoinStatements(statements));
      bool explained = false;
      if (it != expected_.end()) {
        for (Item& item : it->second) {
          if (item.used || index < item.from || index >= item.to) continue;
          item.used = true;
          explained = true;
          break;
        }
      }
      if (!explained) {
        Report(nullptr, Cat("WAL record ", index, " (`", JoinStatements(statements),
                            "`) was committed, but no request explains it: a write "
                            "applied twice, or one its client saw fail"));
      }
    }
  }

 private:
  struct Item {
    std::string client;
    uint64_t from = 0;
    uint64_t to = 0;
    bool used = false;
  };
  void Expect(const ClientInfo& client, const std::vector<std::string>& statements, uint64_t from,
              uint64_t to) {
    expected_[JoinStatements(statements)].push_back(Item{client.Name(), from, to});
  }

  std::map<std::string, std::vector<Item>> expected_;
};

// ---------------------------------------------------------------- connection_loss

class ConnectionLossOracle final : public Oracle {
 public:
  using Oracle::Oracle;

  void OnEnded(const ClientInfo& client, const SessionModel&, const Ending& ending) override {
    if (ending.how != Ending::How::kServerClosed) return;
    const std::vector<ErrorInfo>& errors = ending.trailing.errors;
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
    const ErrorInfo& fatal = errors.back();
    if (!IsProxyFatal(fatal)) {
      Report(&client,
             Cat("a server's FATAL reached the client as its own: ", DescribeError(fatal)));
    } else if (fatal.sqlstate != "08006") {
      Report(&client,
             Cat("the proxy ended the session with ", DescribeError(fatal), ", not 08006"));
    }
    // A statement whose answer had begun was running at the server, so losing the server must
    // fail it (08006/08007) before the session ends; a FATAL alone means the proxy lost track
    // of what it owed the client (a dropped ReadyForQuery, for one).
    const Answer& partial = ending.trailing;
    const bool answer_begun = partial.described || !partial.rows.empty() || !partial.tags.empty();
    const bool loss_reported = std::any_of(errors.begin(), errors.end(), [](const ErrorInfo& e) {
      return !e.fatal && (e.sqlstate == "08006" || e.sqlstate == "08007");
    });
    if (ending.outstanding && answer_begun && !loss_reported && IsProxyFatal(fatal)) {
      Report(&client, Cat("the answer to ", Quote(*ending.outstanding), " had begun (",
                          DescribeAnswer(partial), ") when the session ended with only ",
                          DescribeError(fatal), ": the statement was never failed or finished"));
    }
    for (size_t i = 0; i + 1 < errors.size(); ++i) {
      const ErrorInfo& error = errors[i];
      const bool loss = error.sqlstate == "08006" || error.sqlstate == "08007";
      if (error.fatal) {
        Report(&client, Cat("two FATALs: ", DescribeError(error)));
      } else if (loss && !ending.outstanding) {
        Report(&client, Cat(DescribeError(error), " with no request outstanding"));
      } else if (loss) {
        const bool commit = ending.outstanding->op == Op::kCommit;
        const std::string_view want = commit ? "08007" : "08006";
        if (error.sqlstate != want) {
          Report(&client, Cat(Quote(*ending.outstanding), " lost its connection and got ",
                              DescribeError(error), "; the rule is ", want));
        }
      }
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
      Report(&client, Cat(Quote(request), " shows '", shown, "'; this session's value is '",
                          expected, "' (state leaked from another session?)"));
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
// client's server connection is found by the pid of its BackendKeyData, which session pooling
// makes the server's own; without a match there is nothing to measure.
class MemoryOracle final : public Oracle {
 public:
  using Oracle::Oracle;

  void OnReadingPaused(const ClientInfo& client, int32_t pid) override {
    if (world_.primary == nullptr) return;
    if (std::optional<uint64_t> bytes = world_.primary->BytesWrittenByPid(pid)) {
      paused_[client.Key()] = *bytes;
    }
  }

  void OnReadingResumed(const ClientInfo& client, int32_t pid) override {
    auto it = paused_.find(client.Key());
    if (it == paused_.end()) return;
    const uint64_t before = it->second;
    paused_.erase(it);
    std::optional<uint64_t> after = world_.primary->BytesWrittenByPid(pid);
    if (!after || *after < before) return;
    const uint64_t through = *after - before;
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
  std::map<uint64_t, uint64_t> paused_;  // client -> server bytes when it stopped reading
};

// ---------------------------------------------------------------- liveness

class LivenessOracle final : public Oracle {
 public:
  using Oracle::Oracle;

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
    if (world_.primary == nullptr) return;
    const PgNode& node = world_.primary->pg();
    size_t sessions = 0;
    for (uint64_t id : node.SessionIds()) {
      // A session whose connection the proxy closed may still finish a statement: not ours.
      if (!world_.primary->Connected(id)) continue;
      std::optional<SessionView> view = node.InspectSession(id);
      if (!view || !view->authenticated) continue;
      ++sessions;
      if (view->transaction_status != 'I' || view->running) {
        Report(nullptr, Cat("server session pid=", view->pid, " is ",
                            view->running ? "running a statement" : "in a transaction",
                            " with no client left"));
      }
    }
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
  for (std::string& problem : world_.history->Ingest(*world_.store)) {
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
}

}  // namespace switchyard::sim
