// Running statements on a simulated node: the life of a running statement (slowness, row-lock
// waits, pg_sleep, cancel and timeouts) and the meaning of every statement of the dialect.
#include <algorithm>
#include <cctype>
#include <utility>
#include <variant>

#include "absl/strings/str_format.h"
#include "core/base/check.h"
#include "sim/pg_exec_internal.h"
#include "sim/pg_node_internal.h"
#include "sim/text.h"

namespace switchyard::sim::internal {
namespace {

SqlError Error(std::string sqlstate, std::string message, std::string detail = "") {
  return SqlError{
      .sqlstate = std::move(sqlstate), .message = std::move(message), .detail = std::move(detail)};
}

ExecResult Failed(SqlError error) {
  ExecResult result;
  result.error = std::move(error);
  return result;
}

// A duration GUC in microseconds (a bare number is milliseconds, as for statement_timeout).
int64_t DurationUs(const Gucs& gucs, std::string_view name) {
  const std::string text = gucs.Get(name).value_or("0");
  size_t digits = 0;
  while (digits < text.size() && std::isdigit(static_cast<unsigned char>(text[digits]))) ++digits;
  int64_t value = 0;
  if (digits == 0 || !ParseInt64(text.substr(0, digits), &value)) return 0;
  const std::string unit = text.substr(digits);
  if (unit == "us") return value;
  if (unit == "s") return value * 1'000'000;
  if (unit == "min") return value * 60'000'000;
  if (unit == "h") return value * 3'600'000'000;
  return value * 1000;
}

ExecResult RunTransactionStmt(NodeState& node, Session& session, const TransactionStmt& stmt) {
  using Kind = TransactionStmt::Kind;
  ExecResult result;
  result.tag = stmt.tag;
  Transaction& tx = *session.tx;
  switch (stmt.kind) {
    case Kind::kBegin:
      if (tx.explicit_block) {
        result.notices.push_back(EncodeSqlError(
            "WARNING", Error("25001", "there is already a transaction in progress"), 'N'));
        return result;
      }
      tx.explicit_block = true;
      [[fallthrough]];
    case Kind::kSetTransaction:
      if (stmt.kind == Kind::kSetTransaction && !tx.explicit_block && !tx.multi) {
        result.notices.push_back(EncodeSqlError(
            "WARNING", Error("25P01", "SET TRANSACTION can only be used in transaction blocks"),
            'N'));
      }
      if (stmt.read_only == false && node.in_recovery) {
        return Failed(Error("0A000", "cannot set transaction read-write mode during recovery"));
      }
      if (stmt.read_only) tx.read_only = *stmt.read_only;
      if (!stmt.isolation.empty()) tx.isolation = stmt.isolation;
      return result;
    case Kind::kCommit:
    case Kind::kRollback:
      if (!tx.explicit_block) {
        result.notices.push_back(
            EncodeSqlError("WARNING", Error("25P01", "there is no transaction in progress"), 'N'));
      }
      if (stmt.kind == Kind::kCommit && !tx.failed) {
        CommitTransaction(node, session);
      } else {
        if (tx.failed) result.tag = "ROLLBACK";
        RollbackTransaction(node, session);
      }
      return result;
    case Kind::kSavepoint:
    case Kind::kRelease:
    case Kind::kRollbackTo:
      if (std::optional<SqlError> error = DoSavepoint(node, session, stmt)) {
        return Failed(std::move(*error));
      }
      return result;
  }
  return result;
}

ExecResult RunDiscard(Session& session, const DiscardStmt& stmt) {
  ExecResult result;
  result.tag = std::string(Statement{.node = stmt}.Verb());
  if (stmt.what != "ALL") return result;
  if (session.tx->explicit_block || session.tx->multi) {
    return Failed(Error("25001", "DISCARD ALL cannot run inside a transaction block"));
  }
  session.gucs.ResetEverything();
  for (auto it = session.prepared.begin(); it != session.prepared.end();) {
    it = it->first.empty() ? std::next(it) : session.prepared.erase(it);
  }
  session.portals.clear();
  session.tx->listen_ops.push_back(ListenOp{.listen = false, .all = true});
  return result;
}

ExecResult RunPrepare(NodeState& node, Session& session, const PrepareStmt& stmt) {
  if (const auto* invalid = std::get_if<InvalidStmt>(&stmt.body->node)) {
    return Failed(invalid->error);
  }
  if (session.prepared.contains(stmt.name)) {
    return Failed(
        Error("42P05", absl::StrFormat("prepared statement \"%s\" already exists", stmt.name)));
  }
  if (session.prepared.size() >= node.options.limits.prepared_statements_max) {
    return Failed(Error("54000", "too many prepared statements"));
  }
  session.prepared[stmt.name] =
      PreparedStatement{.statement = stmt.body,
                        .param_types = InferParamTypes(*stmt.body, stmt.param_types),
                        .from_sql = true};
  ExecResult result;
  result.tag = "PREPARE";
  return result;
}

ExecResult RunDeallocate(Session& session, const DeallocateStmt& stmt) {
  if (stmt.all) {
    // The unnamed protocol statement is not in PostgreSQL's prepared-statement table.
    for (auto it = session.prepared.begin(); it != session.prepared.end();) {
      it = it->first.empty() ? std::next(it) : session.prepared.erase(it);
    }
  } else if (stmt.name.empty() || session.prepared.erase(stmt.name) == 0) {
    return Failed(
        Error("26000", absl::StrFormat("prepared statement \"%s\" does not exist", stmt.name)));
  }
  ExecResult result;
  result.tag = stmt.all ? "DEALLOCATE ALL" : "DEALLOCATE";
  return result;
}

ExecResult RunExecute(NodeState& node, Session& session, const ExecuteStmt& stmt,
                      const EvalContext& outer, const std::vector<Row>* copy_rows, Instant now) {
  auto found = session.prepared.find(stmt.name);
  if (stmt.name.empty() || found == session.prepared.end()) {
    return Failed(
        Error("26000", absl::StrFormat("prepared statement \"%s\" does not exist", stmt.name)));
  }
  // Copied: the statement may DEALLOCATE itself... it cannot, but a PREPARE inside could grow
  // the map; keep the pieces alive independently of it.
  const PreparedStatement prepared = found->second;
  if (stmt.args.size() != prepared.param_types.size()) {
    return Failed(Error(
        "42601",
        absl::StrFormat("wrong number of parameters for prepared statement \"%s\"", stmt.name),
        absl::StrFormat("Expected %d parameters but got %d.", prepared.param_types.size(),
                        stmt.args.size())));
  }
  std::vector<Value> params(stmt.args.size());
  for (size_t i = 0; i < stmt.args.size(); ++i) {
    Datum arg;
    if (std::optional<SqlError> error = Eval(stmt.args[i], outer, &arg)) return Failed(*error);
    if (std::optional<SqlError> error =
            CastValue(arg.value, arg.type, prepared.param_types[i], &params[i])) {
      return Failed(*error);
    }
  }
  return Execute(node, session, *prepared.statement, prepared.param_types, params, copy_rows, now);
}

ExecResult RunAsync(NodeState& node, Session& session, const Statement& statement) {
  ExecResult result;
  result.tag = std::string(statement.Verb());
  Transaction& tx = *session.tx;
  if (const auto* listen = std::get_if<ListenStmt>(&statement.node)) {
    if (node.in_recovery) return Failed(Error("25006", "cannot execute LISTEN during recovery"));
    if (session.listens.size() + tx.listen_ops.size() >= node.options.limits.listens_max) {
      return Failed(Error("54000", "too many LISTEN channels"));
    }
    tx.listen_ops.push_back(ListenOp{.listen = true, .channel = listen->channel});
  } else if (const auto* unlisten = std::get_if<UnlistenStmt>(&statement.node)) {
    tx.listen_ops.push_back(
        ListenOp{.listen = false, .all = unlisten->all, .channel = unlisten->channel});
  } else if (const auto* notify = std::get_if<NotifyStmt>(&statement.node)) {
    if (std::optional<SqlError> error =
            QueueNotify(node, session, notify->channel, notify->payload)) {
      return Failed(*error);
    }
  }
  return result;
}

}  // namespace

std::optional<SqlError> QueueNotify(NodeState& node, Session& session, std::string_view channel,
                                    std::string_view payload) {
  if (node.in_recovery) return Error("25006", "cannot execute NOTIFY during recovery");
  if (channel.empty()) return Error("22023", "channel name cannot be empty");
  if (payload.size() >= kNotifyPayloadBytesMax) return Error("22023", "payload string too long");
  if (session.tx->notifies.size() >= node.options.limits.notifications_pending_max) {
    return Error("54000", "too many notifications in the NOTIFY queue");
  }
  session.tx->notifies.emplace_back(std::string(channel), std::string(payload));
  return std::nullopt;
}

ExecResult Execute(NodeState& node, Session& session, const Statement& statement,
                   const std::vector<uint32_t>& param_types, const std::vector<Value>& params,
                   const std::vector<Row>* copy_rows, Instant now) {
  CHECK(session.tx.has_value());
  if (std::optional<std::string_view> write = statement.WriteCommandName();
      write && ReadOnlyNow(node, session)) {
    ++node.counters.read_only_refusals;
    return Failed(
        Error("25006", absl::StrFormat("cannot execute %s in a read-only transaction", *write)));
  }
  if (statement.WriteCommandName() &&
      session.tx->write_statements.size() >= node.options.limits.transaction_write_statements_max) {
    return Failed(Error("54000", "too many write statements in one transaction"));
  }
  int64_t sleep_us = 0;
  std::vector<std::string> notices;
  SelfSignal self_signal = SelfSignal::kNone;
  SessionFunctions host(node, session, &sleep_us, &notices, &self_signal);
  EvalContext context{.params = &params, .param_types = &param_types, .host = &host};
  ExecResult result;
  if (const auto* s = std::get_if<SelectStmt>(&statement.node)) {
    result = RunSelect(node, session, *s, context);
  } else if (const auto* s = std::get_if<InsertStmt>(&statement.node)) {
    result = RunInsert(node, session, statement, *s, context);
  } else if (const auto* s = std::get_if<UpdateStmt>(&statement.node)) {
    result = RunUpdate(node, session, statement, *s, context);
  } else if (const auto* s = std::get_if<DeleteStmt>(&statement.node)) {
    result = RunDelete(node, session, statement, *s, context);
  } else if (const auto* s = std::get_if<CopyStmt>(&statement.node)) {
    result = RunCopy(node, session, statement, *s, copy_rows);
  } else if (std::holds_alternative<CreateTableStmt>(statement.node)) {
    result.tag = "CREATE TABLE";
    result.notices.push_back(
        EncodeSqlError("NOTICE", Error("42P07", "relation \"kv\" already exists, skipping"), 'N'));
  } else if (const auto* s = std::get_if<TransactionStmt>(&statement.node)) {
    result = RunTransactionStmt(node, session, *s);
  } else if (const auto* s = std::get_if<SetStmt>(&statement.node)) {
    result = RunSet(node, session, *s, &notices);
  } else if (const auto* s = std::get_if<DiscardStmt>(&statement.node)) {
    result = RunDiscard(session, *s);
  } else if (const auto* s = std::get_if<PrepareStmt>(&statement.node)) {
    result = RunPrepare(node, session, *s);
  } else if (const auto* s = std::get_if<ExecuteStmt>(&statement.node)) {
    return RunExecute(node, session, *s, context, copy_rows, now);
  } else if (const auto* s = std::get_if<DeallocateStmt>(&statement.node)) {
    result = RunDeallocate(session, *s);
  } else if (std::holds_alternative<ListenStmt>(statement.node) ||
             std::holds_alternative<UnlistenStmt>(statement.node) ||
             std::holds_alternative<NotifyStmt>(statement.node)) {
    result = RunAsync(node, session, statement);
  } else if (const auto* s = std::get_if<InvalidStmt>(&statement.node)) {
    result = Failed(s->error);
  } else {
    result.empty = true;
  }
  notices.insert(notices.end(), result.notices.begin(), result.notices.end());
  result.notices = std::move(notices);
  if (self_signal == SelfSignal::kTerminate) {
    result = Failed(Error("57P01", "terminating connection due to administrator command"));
    result.fatal = true;
  } else if (self_signal == SelfSignal::kCancel && !result.error) {
    result = Failed(Error("57014", "canceling statement due to user request"));
  }
  if (!result.error) result.sleep_us = std::min(sleep_us, kSleepUsMax);
  return result;
}

void StartStatement(NodeState& node, Session& session, Running running, Instant now) {
  CHECK(!session.running.has_value());
  CHECK(session.tx.has_value());
  ++node.counters.statements;
  if (session.tx->failed && !running.statement->IsTransactionExit()) {
    DeliverResult(node, session, std::move(running),
                  Failed(Error("25P02",
                               "current transaction is aborted, commands ignored until end of "
                               "transaction block")),
                  now);
    return;
  }
  ++session.tx->statements;
  running.phase = Running::Phase::kQueued;
  running.ready_at = now + node.slowness_us;
  if (const int64_t timeout_us = DurationUs(session.gucs, "statement_timeout"); timeout_us > 0) {
    running.timeout_at = now + timeout_us;
  }
  session.running = std::move(running);
  AdvanceRunning(node, session, now);
}

namespace {

bool Finish(NodeState& node, Session& session, ExecResult result, Instant now) {
  Running done = std::move(*session.running);
  session.running.reset();
  DeliverResult(node, session, std::move(done), std::move(result), now);
  return true;
}

}  // namespace

bool AdvanceRunning(NodeState& node, Session& session, Instant now) {
  CHECK(session.running.has_value());
  Running& r = *session.running;
  if (r.cancel_requested) {
    ++node.counters.cancels_applied;
    return Finish(node, session, Failed(Error("57014", "canceling statement due to user request")),
                  now);
  }
  if (r.timeout_at && now >= *r.timeout_at) {
    return Finish(node, session,
                  Failed(Error("57014", "canceling statement due to statement timeout")), now);
  }
  switch (r.phase) {
    case Running::Phase::kSleeping:
      if (now < r.done_at) return false;
      return Finish(node, session, std::move(r.result), now);
    case Running::Phase::kLockWait: {
      if (r.lock_timeout_at && now >= *r.lock_timeout_at) {
        return Finish(node, session,
                      Failed(Error("55P03", "canceling statement due to lock timeout")), now);
      }
      auto holder = node.row_locks.find(r.waiting_key);
      if (holder != node.row_locks.end() && holder->second != session.id) {
        if (!r.deadlock_checked && now >= r.deadlock_check_at) {
          r.deadlock_checked = true;
          if (InDeadlock(node, session)) {
            const auto other = node.sessions.find(holder->second);
            const int32_t other_pid = other == node.sessions.end() ? 0 : other->second.pid;
            return Finish(node, session,
                          Failed(Error("40P01", "deadlock detected",
                                       absl::StrFormat("Process %d waits for ShareLock on a row "
                                                       "of relation kv; blocked by process %d.",
                                                       session.pid, other_pid))),
                          now);
          }
        }
        return false;
      }
      break;
    }
    case Running::Phase::kQueued:
      if (now < r.ready_at) return false;
      break;
  }
  ExecResult result = Execute(node, session, *r.statement, r.param_types, r.params,
                              r.origin == Running::Origin::kCopyIn ? &r.copy_rows : nullptr, now);
  if (result.blocked_on && !result.error) {
    if (r.phase != Running::Phase::kLockWait || r.waiting_key != *result.blocked_on) {
      r.deadlock_check_at = now + kDeadlockTimeoutUs;
      r.deadlock_checked = false;
      if (const int64_t us = DurationUs(session.gucs, "lock_timeout"); us > 0) {
        r.lock_timeout_at = now + us;
      }
    }
    r.phase = Running::Phase::kLockWait;
    r.waiting_key = *result.blocked_on;
    return false;
  }
  if (result.sleep_us > 0 && !result.error) {
    r.phase = Running::Phase::kSleeping;
    r.done_at = now + result.sleep_us;
    r.result = std::move(result);
    return false;
  }
  return Finish(node, session, std::move(result), now);
}

}  // namespace switchyard::sim::internal
