// The simulated nodes' functions that see the node or the session (pg_sleep, the recovery and
// LSN functions, current_setting/set_config, pg_notify, backend signals), and SET/RESET/SHOW.
#include <utility>

#include "absl/strings/str_format.h"
#include "core/base/check.h"
#include "sim/pg_exec_internal.h"
#include "sim/text.h"

namespace switchyard::sim::internal {
namespace {

SqlError Error(std::string sqlstate, std::string message, std::string hint = "") {
  return SqlError{
      .sqlstate = std::move(sqlstate), .message = std::move(message), .hint = std::move(hint)};
}

SqlError Unrecognized(std::string_view name) {
  return Error("42704",
               absl::StrFormat("unrecognized configuration parameter \"%s\"", GucKey(name)));
}

bool SingleStatementOutsideBlock(const Session& session) {
  return !session.tx || (!session.tx->explicit_block && !session.tx->multi);
}

// SET, RESET and set_config for one parameter, including those that live in the transaction.
std::optional<SqlError> SetParameter(NodeState& node, Session& session, std::string_view name,
                                     const std::optional<std::string>& value, bool local,
                                     std::vector<std::string>* notices) {
  const std::string key = GucKey(name);
  if (key == "transaction_read_only" || key == "transaction_isolation") {
    if (!value || !session.tx) return std::nullopt;
    if (key == "transaction_isolation") {
      const std::string level = ToLower(*value);
      if (level != "serializable" && level != "repeatable read" && level != "read committed" &&
          level != "read uncommitted") {
        return Error("22023",
                     absl::StrFormat(
                         "invalid value for parameter \"transaction_isolation\": \"%s\"", *value));
      }
      session.tx->isolation = level;
      return std::nullopt;
    }
    Gucs probe;
    if (std::optional<SqlError> error = probe.Set("default_transaction_read_only", value, false)) {
      return Error("22023", "parameter \"transaction_read_only\" requires a Boolean value");
    }
    const bool read_only = probe.Get("default_transaction_read_only") == "on";
    if (!read_only && node.in_recovery) {
      return Error("0A000", "cannot set transaction read-write mode during recovery");
    }
    session.tx->read_only = read_only;
    return std::nullopt;
  }
  if ((key == "session_authorization" || key == "role") && value && !node.options.users.empty() &&
      !node.options.users.contains(*value)) {
    return Error("42704", absl::StrFormat("role \"%s\" does not exist", *value));
  }
  if (local && SingleStatementOutsideBlock(session)) {
    notices->push_back(EncodeSqlError(
        "WARNING", Error("25P01", "SET LOCAL can only be used in transaction blocks"), 'N'));
  }
  return session.gucs.Set(key, value, local);
}

// pg_walfile_name(lsn): the WAL segment file holding `lsn` on the current timeline, named as
// PostgreSQL names it with 16 MiB segments. Like PostgreSQL it takes the segment of the byte
// before `lsn` (XLByteToPrevSeg), so an LSN on a segment boundary names the segment it ends.
std::optional<SqlError> WalFileName(const NodeState& node, const std::vector<Datum>& args,
                                    Datum* out) {
  if (node.in_recovery) {
    return Error("55000", "recovery is in progress",
                 "pg_walfile_name() cannot be executed during recovery.");
  }
  absl::StatusOr<uint64_t> lsn = ParseLsn(*args[0].value);
  if (!lsn.ok()) {
    return Error("22P02",
                 absl::StrFormat("invalid input syntax for type pg_lsn: \"%s\"", *args[0].value));
  }
  constexpr uint64_t kSegmentSize = uint64_t{16} << 20;
  const uint64_t segment = *lsn == 0 ? 0 : (*lsn - 1) / kSegmentSize;
  constexpr uint64_t kSegmentsPerId = (uint64_t{1} << 32) / kSegmentSize;
  out->value = absl::StrFormat("%08X%08X%08X", static_cast<uint32_t>(node.timeline),
                               static_cast<uint32_t>(segment / kSegmentsPerId),
                               static_cast<uint32_t>(segment % kSegmentsPerId));
  return std::nullopt;
}

}  // namespace

// ReportParameters recomputes the GUC_REPORT values only when the session's parameters or the
// node's recovery state changed: a reported parameter must depend on nothing else here.
std::optional<std::string> ShowValue(const NodeState& node, const Session& session,
                                     std::string_view name) {
  const GucDefinition* guc = FindGuc(name);
  const std::string_view key = guc != nullptr ? guc->name : std::string_view();
  if (key == "transaction_read_only") {
    const bool read_only =
        node.in_recovery || (session.tx && session.tx->read_only) ||
        (!session.tx && session.gucs.Get("default_transaction_read_only") == "on");
    return read_only ? "on" : "off";
  }
  if (key == "transaction_isolation") {
    if (session.tx) return session.tx->isolation;
    return session.gucs.Get("default_transaction_isolation");
  }
  if (key == "in_hot_standby") return node.in_recovery ? "on" : "off";
  return session.gucs.Get(name);
}

ExecResult RunSet(NodeState& node, Session& session, const SetStmt& stmt,
                  std::vector<std::string>* notices) {
  ExecResult result;
  std::optional<SqlError> error;
  switch (stmt.kind) {
    case SetStmt::Kind::kSet:
      result.tag = "SET";
      error = SetParameter(node, session, stmt.name, stmt.value, stmt.local, notices);
      break;
    case SetStmt::Kind::kReset:
      result.tag = "RESET";
      error = SetParameter(node, session, stmt.name, std::nullopt, false, notices);
      break;
    case SetStmt::Kind::kResetAll:
      result.tag = "RESET";
      session.gucs.ResetAll();
      break;
    case SetStmt::Kind::kShow: {
      std::optional<std::string> value = ShowValue(node, session, stmt.name);
      if (!value) {
        error = Unrecognized(stmt.name);
        break;
      }
      result.tag = "SHOW";
      result.returns_rows = true;
      result.columns.push_back(Column{.name = Gucs::DisplayName(stmt.name), .type = kTextOid});
      result.rows.push_back(Row{std::move(*value)});
      break;
    }
  }
  if (error) {
    ExecResult failed;
    failed.error = std::move(error);
    return failed;
  }
  return result;
}

std::optional<SqlError> SessionFunctions::Call(std::string_view name,
                                               const std::vector<Datum>& args, Datum* out) {
  auto text = [&](size_t i) -> std::string { return args[i].value.value_or(""); };
  auto any_null = [&] {
    for (const Datum& arg : args) {
      if (!arg.value) return true;
    }
    return false;
  };
  // Strict functions return NULL on a NULL argument without running.
  const bool strict = name != "set_config" && name != "pg_notify";
  if (strict && any_null()) {
    out->value.reset();
    return std::nullopt;
  }
  if (name == "pg_sleep") {
    double seconds = 0;
    if (!ParseDouble(text(0), &seconds)) {
      return Error("22P02", absl::StrFormat(
                                "invalid input syntax for type double precision: \"%s\"", text(0)));
    }
    const double us = seconds * 1e6;
    *sleep_us_ += us <= 0                                  ? 0
                  : us >= static_cast<double>(kSleepUsMax) ? kSleepUsMax
                                                           : static_cast<int64_t>(us);
    out->value = "";
  } else if (name.find("wal") != std::string_view::npos || name == "pg_is_in_recovery") {
    return Wal(name, args, out);
  } else if (name == "pg_backend_pid") {
    out->value = std::to_string(session_.pid);
  } else if (name == "current_setting") {
    std::optional<std::string> value = ShowValue(node_, session_, text(0));
    if (!value && !(args.size() > 1 && text(1) == "t")) return Unrecognized(text(0));
    out->value = std::move(value);
  } else if (name == "set_config") {
    if (!args[0].value) return Error("22004", "SET requires parameter name");
    if (std::optional<SqlError> error =
            SetParameter(node_, session_, text(0), args[1].value, text(2) == "t", notices_)) {
      return error;
    }
    out->value = ShowValue(node_, session_, text(0));
  } else if (name == "version") {
    out->value =
        absl::StrFormat("PostgreSQL %s on x86_64-pc-linux-gnu, compiled by switchyard-sim, 64-bit",
                        node_.options.server_version);
  } else if (name == "current_database") {
    out->value = session_.database;
  } else if (name == "current_user" || name == "session_user") {
    const std::string role = session_.gucs.Get("role").value_or("none");
    out->value = name == "current_user" && role != "none"
                     ? role
                     : session_.gucs.Get("session_authorization").value_or(session_.user);
  } else if (name == "pg_notify") {
    if (std::optional<SqlError> error = QueueNotify(node_, session_, text(0), text(1))) {
      return error;
    }
    out->value = "";
  } else if (name == "pg_cancel_backend" || name == "pg_terminate_backend") {
    return Signal(name, args, out);
  } else {
    return Error("42883", absl::StrFormat("function %s() does not exist", name));
  }
  return std::nullopt;
}

std::optional<SqlError> SessionFunctions::Wal(std::string_view name, const std::vector<Datum>& args,
                                              Datum* out) {
  if (name == "pg_is_in_recovery") {
    out->value = node_.in_recovery ? "t" : "f";
  } else if (name.starts_with("pg_current_wal_")) {
    if (node_.in_recovery) {
      return Error("55000", "recovery is in progress",
                   "WAL control functions cannot be executed during recovery.");
    }
    out->value = FormatLsn(node_.store.lsn());
  } else if (name == "pg_walfile_name") {
    return WalFileName(node_, args, out);
  } else if (name == "pg_last_wal_replay_lsn" || name == "pg_last_wal_receive_lsn") {
    if (node_.replay_lsn) {
      out->value = FormatLsn(*node_.replay_lsn);
    } else {
      out->value.reset();
    }
  } else {
    CHECK_EQ(name, "pg_wal_lsn_diff");
    absl::StatusOr<uint64_t> a = ParseLsn(*args[0].value);
    absl::StatusOr<uint64_t> b = ParseLsn(*args[1].value);
    if (!a.ok() || !b.ok()) {
      return Error("22P02", absl::StrFormat("invalid input syntax for type pg_lsn: \"%s\"",
                                            a.ok() ? *args[1].value : *args[0].value));
    }
    out->value = std::to_string(static_cast<int64_t>(*a - *b));
  }
  return std::nullopt;
}

std::optional<SqlError> SessionFunctions::Signal(std::string_view name,
                                                 const std::vector<Datum>& args, Datum* out) {
  int64_t pid = 0;
  if (!ParseInt64(*args[0].value, &pid)) {
    return Error("22P02",
                 absl::StrFormat("invalid input syntax for type integer: \"%s\"", *args[0].value));
  }
  auto found = node_.pid_to_session.find(static_cast<int32_t>(pid));
  if (found == node_.pid_to_session.end() || !node_.sessions.contains(found->second)) {
    notices_->push_back(EncodeSqlError(
        "WARNING",
        Error("01000", absl::StrFormat("PID %d is not a PostgreSQL backend process", pid)), 'N'));
    out->value = "f";
    return std::nullopt;
  }
  out->value = "t";
  Session& target = node_.sessions.at(found->second);
  const bool terminate = name == "pg_terminate_backend";
  if (&target == &session_) {
    *self_signal_ = terminate ? SelfSignal::kTerminate : SelfSignal::kCancel;
  } else if (terminate) {
    TerminateNow(node_, target);
  } else {
    RequestCancel(node_, target);
  }
  return std::nullopt;
}

}  // namespace switchyard::sim::internal
