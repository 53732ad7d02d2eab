// Test support for history_test.cc: statement builders (what the classifier would say), a
// server connection that runs replay plans, and an independent model of a PostgreSQL session
// (whole-state snapshots per transaction and per named savepoint) to check SessionHistory against.
#pragma once

#include <algorithm>
#include <map>
#include <ostream>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "core/route/statement.h"
#include "core/session/history.h"

namespace switchyard::testing {

using route::QueryInfo;
using route::SessionEffect;
using route::StatementInfo;
using route::TxnControl;
using EffectKind = SessionEffect::Kind;

// ---- Statement builders: what the classifier would say.
inline StatementInfo Effect(EffectKind kind, std::string name = "", std::string value = "") {
  StatementInfo s;
  s.effects.push_back(SessionEffect{kind, std::move(name), std::move(value)});
  return s;
}
inline StatementInfo Set(std::string name, std::string value) {
  return Effect(EffectKind::kSet, std::move(name), std::move(value));
}
inline StatementInfo SetLocal(std::string name, std::string value) {
  StatementInfo s = Set(std::move(name), std::move(value));
  s.transaction_local = true;
  return s;
}
inline StatementInfo Reset(std::string name) { return Effect(EffectKind::kReset, std::move(name)); }
inline StatementInfo Txn(TxnControl txn) {
  StatementInfo s;
  s.txn = txn;
  return s;
}
inline StatementInfo Select() { return StatementInfo{.read_only = true}; }
inline StatementInfo Prepare(const std::string& name) {
  return Effect(EffectKind::kPrepare, name, "PREPARE " + name + " AS SELECT 1");
}
inline QueryInfo Q(std::vector<StatementInfo> statements) {
  return QueryInfo{.statements = std::move(statements)};
}

// ---- A server connection that runs a replay plan the way PostgreSQL would.
struct Observed {
  std::map<std::string, std::string> settings;
  std::map<std::string, std::string> prepared;  // name -> "sql:<text>" or "proto:<query>"
  std::set<std::string> listens;
  friend bool operator==(const Observed&, const Observed&) = default;
};

inline std::string Unquote(std::string_view quoted) {
  std::string name;
  for (size_t i = 1; i + 1 < quoted.size(); ++i) {
    name.push_back(quoted[i]);
    if (quoted[i] == '"') ++i;
  }
  return name;
}

// Applies one replay statement; false where PostgreSQL would answer with an error.
inline bool ApplyStatement(const std::string& sql, Observed* server) {
  std::string_view s = sql;
  auto starts = [&](std::string_view prefix) { return s.substr(0, prefix.size()) == prefix; };
  if (starts("SET ")) {
    size_t to = s.find(" TO ");
    if (to == std::string_view::npos) return false;
    server->settings[std::string(s.substr(4, to - 4))] = std::string(s.substr(to + 4));
  } else if (starts("RESET ")) {
    server->settings.erase(std::string(s.substr(6)));
  } else if (s == "DEALLOCATE ALL") {
    server->prepared.clear();
  } else if (starts("DEALLOCATE \"")) {
    if (server->prepared.erase(Unquote(s.substr(11))) == 0) return false;
  } else if (starts("PREPARE ")) {
    std::string name(s.substr(8, s.find(' ', 8) - 8));
    if (!server->prepared.emplace(name, "sql:" + sql).second) return false;
  } else if (s == "UNLISTEN *") {
    server->listens.clear();
  } else if (starts("UNLISTEN \"")) {
    server->listens.erase(Unquote(s.substr(9)));
  } else if (starts("LISTEN \"")) {
    server->listens.insert(Unquote(s.substr(7)));
  } else {
    return false;
  }
  return true;
}

inline bool ApplyPlan(const ReplayPlan& plan, Observed* server) {
  for (const std::string& statement : plan.statements) {
    if (!ApplyStatement(statement, server)) return false;
  }
  for (const ParseRequest& parse : plan.parses) {
    if (!server->prepared.emplace(parse.name, "proto:" + parse.query).second) return false;
  }
  return true;
}

// ---- The model. A statement of the generated workloads:
enum class Op {
  kSet,
  kSetLocal,
  kReset,
  kResetAll,
  kBegin,
  kCommit,
  kRollback,
  kSavepoint,
  kRelease,
  kRollbackTo,
  kPrepare,
  kDeallocate,
  kDeallocateAll,
  kListen,
  kUnlisten,
  kUnlistenAll,
  kDiscardAll,
  kSelect,
  kFail,
  kEmpty
};
struct Stmt {
  Op op = Op::kSelect;
  int a = 0;  // parameter, statement, channel or savepoint index
  int b = 0;  // value index
};
inline std::ostream& operator<<(std::ostream& os, Op op) {
  static constexpr const char* kNames[] = {
      "SET",        "SET LOCAL",   "RESET",          "RESET ALL", "BEGIN",
      "COMMIT",     "ROLLBACK",    "SAVEPOINT",      "RELEASE",   "ROLLBACK TO",
      "PREPARE",    "DEALLOCATE",  "DEALLOCATE ALL", "LISTEN",    "UNLISTEN",
      "UNLISTEN *", "DISCARD ALL", "SELECT",         "FAIL",      "EMPTY"};
  return os << kNames[static_cast<int>(op)];
}
inline const std::vector<std::string> kParams = {"search_path", "work_mem", "role", "a.x",
                                                 "transaction_isolation"};
inline const std::vector<std::string> kValues = {"'x'", "42", "s, \"T\"", "DEFAULT"};
inline const std::vector<std::string> kStatementNames = {"p0", "p1", "s0"};
inline const std::vector<std::string> kChannels = {"c0", "c1"};
inline const std::vector<std::string> kSavepointNames = {"sa",
                                                         "sb"};  // the model's; not the history's

inline StatementInfo InfoOf(const Stmt& s) {
  const std::string& param = kParams[s.a % kParams.size()];
  const std::string& statement = kStatementNames[s.a % kStatementNames.size()];
  const std::string& channel = kChannels[s.a % kChannels.size()];
  switch (s.op) {
    case Op::kSet:
      return Set(param, kValues[s.b]);
    case Op::kSetLocal:
      return SetLocal(param, kValues[s.b]);
    case Op::kReset:
      return Reset(param);
    case Op::kResetAll:
      return Effect(EffectKind::kResetAll);
    case Op::kBegin:
      return Txn(TxnControl::kBegin);
    case Op::kCommit:
      return Txn(TxnControl::kCommit);
    case Op::kRollback:
      return Txn(TxnControl::kRollback);
    case Op::kSavepoint:
      return Txn(TxnControl::kSavepoint);
    case Op::kRelease:
      return Txn(TxnControl::kRelease);
    case Op::kRollbackTo:
      return Txn(TxnControl::kRollbackTo);
    case Op::kPrepare:
      return Effect(EffectKind::kPrepare, statement,
                    "PREPARE " + statement + " AS SELECT " + std::to_string(s.b));
    case Op::kDeallocate:
      return Effect(EffectKind::kDeallocate, statement);
    case Op::kDeallocateAll:
      return Effect(EffectKind::kDeallocateAll);
    case Op::kListen:
      return Effect(EffectKind::kListen, channel);
    case Op::kUnlisten:
      return Effect(EffectKind::kUnlisten, channel);
    case Op::kUnlistenAll:
      return Effect(EffectKind::kUnlistenAll);
    case Op::kDiscardAll:
      return Effect(EffectKind::kDiscardAll);
    case Op::kSelect:
    case Op::kFail:
    case Op::kEmpty:
      return Select();
  }
  return Select();
}

// PostgreSQL's session, as whole-state snapshots: what is committed, what the open transaction
// sees, and a snapshot per named savepoint.
class Model {
 public:
  struct State {
    std::map<std::string, std::string> settings;
    std::set<std::string> listens;
  };
  // Runs a statement; false means ErrorResponse. `alone` = nothing ran before it in its Query
  // string or Sync batch (DISCARD ALL refuses to run otherwise).
  bool Execute(const Stmt& s, bool alone) {
    if (s.op == Op::kEmpty) return true;  // EmptyQueryResponse, even in a failed transaction
    const bool exits = s.op == Op::kCommit || s.op == Op::kRollback || s.op == Op::kRollbackTo;
    if (mode_ == kFailed && !exits) return false;
    const bool was_idle = mode_ == kIdle;
    if (was_idle) mode_ = kImplicit;
    if (!Run(s, alone && was_idle)) {
      Fail();
      return false;
    }
    return true;
  }
  bool Parse(const std::string& name, const std::string& query) {
    if (mode_ == kFailed || prepared_.contains(name)) {
      Fail();
      return false;
    }
    prepared_[name] = "proto:" + query;
    return true;
  }
  void Close(const std::string& name) { prepared_.erase(name); }
  // End of a Query string or Sync: ReadyForQuery's status.
  char End() {
    if (mode_ == kImplicit) Commit();
    return mode_ == kIdle ? 'I' : mode_ == kBlock ? 'T' : 'E';
  }
  bool idle() const { return mode_ == kIdle; }
  bool ambiguous() const { return ambiguous_; }
  Observed Committed() const {
    return Observed{committed_.settings, prepared_, committed_.listens};
  }

 private:
  enum Mode { kIdle, kImplicit, kBlock, kFailed };
  bool Run(const Stmt& s, bool alone) {
    const std::string& param = kParams[s.a % kParams.size()];
    const std::string& statement = kStatementNames[s.a % kStatementNames.size()];
    const std::string& channel = kChannels[s.a % kChannels.size()];
    const std::string& savepoint = kSavepointNames[s.a % kSavepointNames.size()];
    switch (s.op) {
      case Op::kSet:
        if (param == "transaction_isolation") return true;
        if (kValues[s.b] == "DEFAULT") {
          working_.settings.erase(param);
        } else {
          working_.settings[param] = kValues[s.b];
        }
        return true;
      case Op::kReset:
        if (param != "transaction_isolation") working_.settings.erase(param);
        return true;
      case Op::kResetAll:
        std::erase_if(working_.settings, [](const auto& e) { return e.first != "role"; });
        return true;
      case Op::kBegin:
        if (mode_ == kImplicit) mode_ = kBlock;
        return true;
      case Op::kCommit:
        if (mode_ == kFailed) {
          Abort();
        } else {
          Commit();
        }
        return true;
      case Op::kRollback:
        Abort();
        return true;
      case Op::kSavepoint:
        if (mode_ != kBlock) return false;
        savepoints_.emplace_back(savepoint, working_);
        return true;
      case Op::kRelease:
      case Op::kRollbackTo:
        return EndSavepoint(s.op, savepoint);
      case Op::kPrepare:
        if (prepared_.contains(statement)) return false;
        prepared_[statement] = "sql:" + InfoOf(s).effects[0].value;
        return true;
      case Op::kDeallocate:
        return prepared_.erase(statement) == 1;
      case Op::kDeallocateAll:
        prepared_.clear();
        return true;
      case Op::kListen:
        working_.listens.insert(channel);
        return true;
      case Op::kUnlisten:
        working_.listens.erase(channel);
        return true;
      case Op::kUnlistenAll:
        working_.listens.clear();
        return true;
      case Op::kDiscardAll:
        if (!alone) return false;
        working_ = State{};
        prepared_.clear();
        Commit();
        return true;
      case Op::kSetLocal:
      case Op::kSelect:
      case Op::kEmpty:
        return true;
      case Op::kFail:
        return false;
    }
    return false;
  }
  bool EndSavepoint(Op op, const std::string& name) {
    if (mode_ != kBlock && !(mode_ == kFailed && op == Op::kRollbackTo)) return false;
    auto it = std::find_if(savepoints_.rbegin(), savepoints_.rend(),
                           [&](const auto& sp) { return sp.first == name; });
    if (it == savepoints_.rend()) return false;
    if (savepoints_.size() > 1) ambiguous_ = true;  // the history cannot see which one
    size_t index = savepoints_.size() - 1 - (it - savepoints_.rbegin());
    if (op == Op::kRelease) {
      savepoints_.resize(index);
    } else {
      working_ = savepoints_[index].second;
      savepoints_.resize(index + 1);
      mode_ = kBlock;
    }
    return true;
  }
  void Fail() {
    if (mode_ == kBlock) mode_ = kFailed;
    if (mode_ == kImplicit) Abort();
  }
  void Commit() {
    committed_ = working_;
    savepoints_.clear();
    mode_ = kIdle;
  }
  void Abort() {
    working_ = committed_;
    savepoints_.clear();
    mode_ = kIdle;
  }

  State committed_, working_;
  std::map<std::string, std::string> prepared_;
  std::vector<std::pair<std::string, State>> savepoints_;
  Mode mode_ = kIdle;
  bool ambiguous_ = false;
};

}  // namespace switchyard::testing
