// The statement classifier: parses with libpg_query and reads the protobuf parse tree.
#include "core/route/classifier.h"

#include <pg_query.h>
#include <pg_query/pg_query.pb-c.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/base/check.h"
#include "core/route/lexer.h"
#include "core/route/tree.h"

namespace switchyard::route {
namespace {

using Kind = SessionEffect::Kind;
using tree::Constant;

// DECLARE ... WITH HOLD (parsenodes.h CURSOR_OPT_HOLD).
constexpr int32_t kCursorOptionHold = 0x0020;

std::string Lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool StartsWith(std::string_view text, std::string_view prefix) { return text.starts_with(prefix); }

bool IsTempSchema(std::string_view schema) { return StartsWith(schema, "pg_temp"); }

bool IsTempRelation(const PgQuery__RangeVar* relation) {
  if (relation == nullptr) return false;
  return tree::View(relation->relpersistence) == "t" ||
         IsTempSchema(tree::View(relation->schemaname));
}

// Functions whose result depends on the node (or the server session) that runs them.
bool IsNodeLocalFunction(std::string_view name) {
  static constexpr std::array<std::string_view, 24> kNames = {
      "pg_backend_pid",
      "pg_blocking_pids",
      "pg_isolation_test_session_is_blocked",
      "pg_is_in_recovery",
      "currval",
      "lastval",
      "pg_postmaster_start_time",
      "pg_conf_load_time",
      "inet_server_addr",
      "inet_server_port",
      "pg_current_logfile",
      "pg_get_wal_replay_pause_state",
      "pg_is_wal_replay_paused",
      "pg_promote",
      "pg_listening_channels",
      "pg_notification_queue_usage",
      "pg_my_temp_schema",
      "pg_lock_status",
      "pg_prepared_xact",
      "pg_get_replication_slots",
      "pg_show_all_settings",
      "pg_get_backend_memory_contexts",
      "pg_cursor",
      "pg_prepared_statement"};
  static constexpr std::array<std::string_view, 9> kPrefixes = {
      "pg_last_", "pg_current_", "pg_wal",      "txid_",          "pg_xact_",
      "pg_stat_", "pg_statio_",  "pg_control_", "pg_replication_"};
  if (std::find(kNames.begin(), kNames.end(), name) != kNames.end()) return true;
  for (std::string_view prefix : kPrefixes) {
    if (StartsWith(name, prefix)) return true;
  }
  if (!StartsWith(name, "pg_")) return false;
  return name.ends_with("_lsn") || name.find("snapshot") != std::string_view::npos;
}

// Views and tables whose rows depend on the node or the server session.
bool IsNodeLocalRelation(std::string_view name) {
  static constexpr std::array<std::string_view, 9> kNames = {"pg_locks",
                                                             "pg_prepared_xacts",
                                                             "pg_replication_slots",
                                                             "pg_settings",
                                                             "pg_cursors",
                                                             "pg_prepared_statements",
                                                             "pg_backend_memory_contexts",
                                                             "pg_replication_origin_status",
                                                             "pg_shmem_allocations"};
  if (std::find(kNames.begin(), kNames.end(), name) != kNames.end()) return true;
  return StartsWith(name, "pg_stat_") || StartsWith(name, "pg_statio_");
}

// Parameters whose value says which node answers (SHOW, current_setting).
bool IsNodeLocalSetting(std::string_view name) {
  return name == "transaction_read_only" || name == "in_hot_standby" || name == "all";
}

bool IsSessionAdvisoryLock(std::string_view name) {
  return name == "pg_advisory_lock" || name == "pg_advisory_lock_shared" ||
         name == "pg_try_advisory_lock" || name == "pg_try_advisory_lock_shared";
}

// How a parameter set at session level lasts.
enum class Scope : uint8_t {
  kSession,        // until changed: a kSet / kReset
  kTransaction,    // the current transaction's characteristics: nothing lasts
  kAuthorization,  // session_authorization: pins the client
};

Scope ScopeOf(std::string_view name) {
  if (name == "transaction_isolation" || name == "transaction_read_only" ||
      name == "transaction_deferrable") {
    return Scope::kTransaction;
  }
  return name == "session_authorization" ? Scope::kAuthorization : Scope::kSession;
}

// `value` as an SQL string literal that reads back the same whatever
// standard_conforming_strings is (E'' when it holds a backslash).
std::string QuoteLiteral(std::string_view value) {
  const bool escape = value.find('\\') != std::string_view::npos;
  std::string out = escape ? "E'" : "'";
  for (char c : value) {
    if (c == '\'' || (escape && c == '\\')) out.push_back(c);
    out.push_back(c);
  }
  out.push_back('\'');
  return out;
}

SessionEffect Effect(Kind kind, std::string name = {}, std::string value = {}) {
  return SessionEffect{.kind = kind, .name = std::move(name), .value = std::move(value)};
}

bool IsFunctionObject(PgQuery__ObjectType type) {
  return type == PG_QUERY__OBJECT_TYPE__OBJECT_FUNCTION ||
         type == PG_QUERY__OBJECT_TYPE__OBJECT_PROCEDURE ||
         type == PG_QUERY__OBJECT_TYPE__OBJECT_ROUTINE ||
         type == PG_QUERY__OBJECT_TYPE__OBJECT_AGGREGATE;
}

// Dropping or renaming one of these may drop or rename functions.
bool HoldsFunctions(PgQuery__ObjectType type) {
  return IsFunctionObject(type) || type == PG_QUERY__OBJECT_TYPE__OBJECT_SCHEMA ||
         type == PG_QUERY__OBJECT_TYPE__OBJECT_EXTENSION;
}

// Classifies the statements of one parse, all located in `sql`.
class StatementClassifier {
 public:
  StatementClassifier(std::string_view sql, const FunctionVolatility& functions)
      : sql_(sql), functions_(functions) {}

  // `begin`/`end`: the statement's bytes in `sql`.
  StatementInfo Classify(const PgQuery__Node* statement, size_t begin, size_t end);

  bool depends_on_literals() const { return depends_on_literals_; }

 private:
  // What a walk over the expressions a statement runs found.
  struct Facts {
    bool writes = false;         // data-modifying statement, row locks, SELECT INTO
    bool volatile_call = false;  // a volatile or unknown function
    bool node_local = false;     // a node-local function or relation
    bool local_set_config = false;
    std::vector<std::pair<int32_t, SessionEffect>> effects;  // with their source location
  };

  void Walk(const PgQuery__Node* node, Facts& facts);
  void VisitFunction(const PgQuery__FuncCall& call, Facts& facts);
  void VisitSetConfig(const PgQuery__FuncCall& call, Facts& facts);
  void VisitCurrentSetting(const PgQuery__FuncCall& call, Facts& facts);
  static StatementInfo FromFacts(Facts facts);
  StatementInfo Run(const PgQuery__Node* statement, bool runs_as_query);

  StatementInfo ClassifySet(const PgQuery__VariableSetStmt& set, size_t end);
  void AddCharacteristic(const PgQuery__DefElem& option, StatementInfo& info);
  std::string SetValue(const PgQuery__VariableSetStmt& set, size_t end) const;
  static StatementInfo ClassifyTransaction(const PgQuery__TransactionStmt& statement);
  StatementInfo ClassifyExplain(const PgQuery__ExplainStmt& explain, size_t begin, size_t end);
  StatementInfo ClassifyCursor(const PgQuery__Node* statement);
  StatementInfo ClassifySessionCommand(const PgQuery__Node* statement, size_t begin, size_t end);
  static StatementInfo ClassifyDefinition(const PgQuery__Node* statement);

  Constant ReadConstant(const PgQuery__Node* node) {
    depends_on_literals_ = true;
    return tree::ConstantOf(node);
  }

  std::string_view sql_;
  const FunctionVolatility& functions_;
  bool depends_on_literals_ = false;
};

void StatementClassifier::Walk(const PgQuery__Node* node, Facts& facts) {
  std::vector<const ProtobufCMessage*> stack;
  if (node != nullptr) stack.push_back(&node->base);
  while (!stack.empty()) {
    const ProtobufCMessage* message = stack.back();
    stack.pop_back();
    const ProtobufCMessageDescriptor* type = message->descriptor;
    if (type == &pg_query__func_call__descriptor) {
      VisitFunction(*reinterpret_cast<const PgQuery__FuncCall*>(message), facts);
    } else if (type == &pg_query__range_var__descriptor) {
      const auto* relation = reinterpret_cast<const PgQuery__RangeVar*>(message);
      if (IsNodeLocalRelation(tree::View(relation->relname))) facts.node_local = true;
    } else if (type == &pg_query__into_clause__descriptor) {
      facts.writes = true;
      const auto* into = reinterpret_cast<const PgQuery__IntoClause*>(message);
      if (IsTempRelation(into->rel)) {
        facts.effects.emplace_back(into->rel->location, Effect(Kind::kPinTempTable));
      }
    } else if (type == &pg_query__locking_clause__descriptor ||
               type == &pg_query__insert_stmt__descriptor ||
               type == &pg_query__update_stmt__descriptor ||
               type == &pg_query__delete_stmt__descriptor ||
               type == &pg_query__merge_stmt__descriptor) {
      facts.writes = true;
    }
    tree::PushChildren(message, stack);
  }
}

void StatementClassifier::VisitFunction(const PgQuery__FuncCall& call, Facts& facts) {
  // Volatility and node-locality go by the bare name whatever the schema (conservative); the
  // functions with session effects only when they are PostgreSQL's own.
  const std::string_view name = tree::LastName(call.funcname, call.n_funcname);
  const std::string_view schema = tree::Qualifier(call.funcname, call.n_funcname);
  const bool builtin = schema.empty() || schema == "pg_catalog";
  if (functions_.Lookup(name) == FunctionVolatility::kVolatile) facts.volatile_call = true;
  if (name == "nextval" || name == "setval") facts.volatile_call = true;
  if (IsNodeLocalFunction(name)) facts.node_local = true;
  if (!builtin) return;
  if (IsSessionAdvisoryLock(name)) {
    facts.volatile_call = true;
    facts.effects.emplace_back(call.location, Effect(Kind::kPinAdvisoryLock));
  } else if (name == "set_config") {
    facts.volatile_call = true;
    VisitSetConfig(call, facts);
  } else if (name == "current_setting") {
    VisitCurrentSetting(call, facts);
  }
}

void StatementClassifier::VisitSetConfig(const PgQuery__FuncCall& call, Facts& facts) {
  if (call.n_args != 3) return;
  const Constant name = ReadConstant(call.args[0]);
  const Constant value = ReadConstant(call.args[1]);
  const Constant local = ReadConstant(call.args[2]);
  const bool value_known =
      value.kind == Constant::Kind::kString || value.kind == Constant::Kind::kNull;
  // set_config is not strict: a NULL is_local means false.
  const std::optional<bool> is_local =
      local.kind == Constant::Kind::kNull ? std::optional<bool>(false) : tree::BooleanOf(local);
  if (name.kind != Constant::Kind::kString || !value_known || !is_local.has_value()) return;
  std::string parameter = Lower(name.text);
  const Scope scope = ScopeOf(parameter);
  if (*is_local || scope == Scope::kTransaction) {
    facts.local_set_config = true;
    return;
  }
  if (scope == Scope::kAuthorization) {
    facts.effects.emplace_back(call.location, Effect(Kind::kPinSessionAuthorization));
  } else if (value.kind == Constant::Kind::kNull) {
    // A NULL value resets the parameter (set_config_option with a NULL value).
    facts.effects.emplace_back(call.location, Effect(Kind::kReset, std::move(parameter)));
  } else {
    facts.effects.emplace_back(call.location,
                               Effect(Kind::kSet, std::move(parameter), QuoteLiteral(value.text)));
  }
}

void StatementClassifier::VisitCurrentSetting(const PgQuery__FuncCall& call, Facts& facts) {
  if (call.n_args == 0) return;
  const Constant name = ReadConstant(call.args[0]);
  // A name computed at run time could be transaction_read_only.
  if (name.kind != Constant::Kind::kString || IsNodeLocalSetting(Lower(name.text))) {
    facts.node_local = true;
  }
}

StatementInfo StatementClassifier::FromFacts(Facts facts) {
  StatementInfo info;
  info.read_only = !facts.writes && !facts.volatile_call && !facts.node_local;
  std::stable_sort(facts.effects.begin(), facts.effects.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  bool session_setting = false;
  for (auto& [location, effect] : facts.effects) {
    session_setting = session_setting || effect.kind == Kind::kSet || effect.kind == Kind::kReset;
    info.effects.push_back(std::move(effect));
  }
  // transaction_local covers every kSet of the statement, so it cannot describe a statement
  // that also sets something for the session; the local setting is then just left out.
  info.transaction_local = facts.local_set_config && !session_setting;
  return info;
}

// A statement that runs expressions: read-only when it is a query and its walk finds nothing.
StatementInfo StatementClassifier::Run(const PgQuery__Node* statement, bool runs_as_query) {
  Facts facts;
  Walk(statement, facts);
  StatementInfo info = FromFacts(std::move(facts));
  info.read_only = info.read_only && runs_as_query;
  return info;
}

StatementInfo StatementClassifier::Classify(const PgQuery__Node* statement, size_t begin,
                                            size_t end) {
  switch (statement->node_case) {
    case PG_QUERY__NODE__NODE_SELECT_STMT:
      return Run(statement, /*runs_as_query=*/true);
    case PG_QUERY__NODE__NODE_INSERT_STMT:
    case PG_QUERY__NODE__NODE_UPDATE_STMT:
    case PG_QUERY__NODE__NODE_DELETE_STMT:
    case PG_QUERY__NODE__NODE_MERGE_STMT:
    case PG_QUERY__NODE__NODE_CALL_STMT:
    case PG_QUERY__NODE__NODE_COPY_STMT:
    case PG_QUERY__NODE__NODE_EXECUTE_STMT:
    case PG_QUERY__NODE__NODE_CREATE_TABLE_AS_STMT:
      return Run(statement, /*runs_as_query=*/false);
    case PG_QUERY__NODE__NODE_EXPLAIN_STMT:
      return ClassifyExplain(*statement->explain_stmt, begin, end);
    case PG_QUERY__NODE__NODE_VARIABLE_SHOW_STMT: {
      StatementInfo info;
      info.read_only = !IsNodeLocalSetting(tree::View(statement->variable_show_stmt->name));
      return info;
    }
    case PG_QUERY__NODE__NODE_VARIABLE_SET_STMT:
      return ClassifySet(*statement->variable_set_stmt, end);
    case PG_QUERY__NODE__NODE_TRANSACTION_STMT:
      return ClassifyTransaction(*statement->transaction_stmt);
    case PG_QUERY__NODE__NODE_DECLARE_CURSOR_STMT:
    case PG_QUERY__NODE__NODE_FETCH_STMT:
    case PG_QUERY__NODE__NODE_CLOSE_PORTAL_STMT:
      return ClassifyCursor(statement);
    case PG_QUERY__NODE__NODE_PREPARE_STMT:
    case PG_QUERY__NODE__NODE_DEALLOCATE_STMT:
    case PG_QUERY__NODE__NODE_DISCARD_STMT:
    case PG_QUERY__NODE__NODE_LISTEN_STMT:
    case PG_QUERY__NODE__NODE_UNLISTEN_STMT:
      return ClassifySessionCommand(statement, begin, end);
    default:
      return ClassifyDefinition(statement);
  }
}

StatementInfo StatementClassifier::ClassifySet(const PgQuery__VariableSetStmt& set, size_t end) {
  // Every SET reads its value from the text.
  depends_on_literals_ = true;
  StatementInfo info;
  const std::string_view name = tree::View(set.name);
  switch (set.kind) {
    case PG_QUERY__VARIABLE_SET_KIND__VAR_SET_MULTI:
      if (name == "SESSION CHARACTERISTICS" && !set.is_local) {
        for (size_t i = 0; i < set.n_args; ++i) {
          if (set.args[i]->node_case == PG_QUERY__NODE__NODE_DEF_ELEM) {
            AddCharacteristic(*set.args[i]->def_elem, info);
          }
        }
      } else {  // SET TRANSACTION ..., SET TRANSACTION SNAPSHOT
        info.txn = TxnControl::kSetTransaction;
        info.transaction_local = true;
      }
      return info;
    case PG_QUERY__VARIABLE_SET_KIND__VAR_SET_CURRENT:
      return info;  // sets the parameter to the value it has
    case PG_QUERY__VARIABLE_SET_KIND__VAR_RESET_ALL:
      info.effects.push_back(Effect(Kind::kResetAll));
      return info;
    default:
      break;
  }
  const Scope scope = ScopeOf(name);
  if (scope == Scope::kTransaction) {
    info.txn = TxnControl::kSetTransaction;
    info.transaction_local = true;
  } else if (set.is_local) {
    info.transaction_local = true;
  } else if (scope == Scope::kAuthorization) {
    info.effects.push_back(Effect(Kind::kPinSessionAuthorization));
  } else if (set.kind == PG_QUERY__VARIABLE_SET_KIND__VAR_RESET) {
    info.effects.push_back(Effect(Kind::kReset, std::string(name)));
  } else if (set.kind == PG_QUERY__VARIABLE_SET_KIND__VAR_SET_DEFAULT) {
    info.effects.push_back(Effect(Kind::kSet, std::string(name), "DEFAULT"));
  } else {
    info.effects.push_back(Effect(Kind::kSet, std::string(name), SetValue(set, end)));
  }
  return info;
}

void StatementClassifier::AddCharacteristic(const PgQuery__DefElem& option, StatementInfo& info) {
  const std::string_view name = tree::View(option.defname);
  const Constant value = ReadConstant(option.arg);
  if (name == "transaction_isolation" && value.kind == Constant::Kind::kString) {
    info.effects.push_back(
        Effect(Kind::kSet, "default_transaction_isolation", QuoteLiteral(value.text)));
    return;
  }
  const std::optional<bool> on = tree::BooleanOf(value);
  if (!on.has_value()) return;
  if (name == "transaction_read_only" || name == "transaction_deferrable") {
    info.effects.push_back(
        Effect(Kind::kSet, "default_" + std::string(name), *on ? "'on'" : "'off'"));
  }
}

// The value of `SET name = value` as the source wrote it: from its first token to the end of
// the statement, which re-creates it in `SET name TO <value>`.
std::string StatementClassifier::SetValue(const PgQuery__VariableSetStmt& set, size_t end) const {
  CHECK_GT(set.n_args, 0u) << "SET " << tree::View(set.name) << " without a value";
  // SET TIME ZONE INTERVAL '...' has no `SET timezone TO` form; the parameter takes the
  // string "interval '...'" instead.
  if (tree::View(set.name) == "timezone" &&
      set.args[0]->node_case == PG_QUERY__NODE__NODE_TYPE_CAST) {
    const PgQuery__TypeCast& cast = *set.args[0]->type_cast;
    const Constant inner = tree::ConstantOf(cast.arg);
    if (cast.type_name != nullptr && inner.kind == Constant::Kind::kString &&
        tree::LastName(cast.type_name->names, cast.type_name->n_names) == "interval") {
      return QuoteLiteral("interval " + QuoteLiteral(inner.text));
    }
  }
  int32_t begin = -1;
  for (size_t i = 0; i < set.n_args; ++i) {
    const int32_t location = tree::MinLocation(set.args[i]);
    if (location >= 0 && (begin < 0 || location < begin)) begin = location;
  }
  CHECK(begin >= 0 && static_cast<size_t>(begin) < end) << "SET value location " << begin;
  return std::string(TrimStatement(sql_.substr(begin, end - begin)));
}

StatementInfo StatementClassifier::ClassifyTransaction(const PgQuery__TransactionStmt& statement) {
  StatementInfo info;
  info.read_only = true;
  switch (statement.kind) {
    case PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_BEGIN:
    case PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_START: {
      // Options are keywords (no literal), and a repeated one overrides the earlier.
      bool read_only = false;
      bool serializable = false;
      for (size_t i = 0; i < statement.n_options; ++i) {
        if (statement.options[i]->node_case != PG_QUERY__NODE__NODE_DEF_ELEM) continue;
        const PgQuery__DefElem& option = *statement.options[i]->def_elem;
        const Constant value = tree::ConstantOf(option.arg);
        const std::string_view name = tree::View(option.defname);
        if (name == "transaction_isolation") {
          serializable = Lower(value.text) == "serializable";
        } else if (name == "transaction_read_only") {
          read_only = tree::BooleanOf(value).value_or(false);
        }
      }
      info.txn = serializable ? TxnControl::kBeginSerializable
                 : read_only  ? TxnControl::kBeginReadOnly
                              : TxnControl::kBegin;
      return info;
    }
    case PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_COMMIT:
      info.txn = TxnControl::kCommit;
      return info;
    case PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_ROLLBACK:
      info.txn = TxnControl::kRollback;
      return info;
    case PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_SAVEPOINT:
      info.txn = TxnControl::kSavepoint;
      info.savepoint = tree::View(statement.savepoint_name);
      return info;
    case PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_RELEASE:
      info.txn = TxnControl::kRelease;
      info.savepoint = tree::View(statement.savepoint_name);
      return info;
    case PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_ROLLBACK_TO:
      info.txn = TxnControl::kRollbackTo;
      info.savepoint = tree::View(statement.savepoint_name);
      return info;
    case PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_PREPARE:
      info.txn = TxnControl::kPrepareTransaction;
      return info;
    default:  // COMMIT PREPARED / ROLLBACK PREPARED: a write to a prepared transaction
      info.read_only = false;
      return info;
  }
}

StatementInfo StatementClassifier::ClassifyExplain(const PgQuery__ExplainStmt& explain,
                                                   size_t begin, size_t end) {
  bool analyze = false;
  for (size_t i = 0; i < explain.n_options; ++i) {
    if (explain.options[i]->node_case != PG_QUERY__NODE__NODE_DEF_ELEM) continue;
    const PgQuery__DefElem& option = *explain.options[i]->def_elem;
    if (tree::View(option.defname) != "analyze") continue;
    // `ANALYZE` alone is true; an argument PostgreSQL would reject counts as true too.
    analyze = option.arg == nullptr || tree::BooleanOf(ReadConstant(option.arg)).value_or(true);
  }
  StatementInfo info;
  if (!analyze) {
    info.read_only = true;  // plans only: runs nothing
    return info;
  }
  if (explain.query == nullptr) return info;
  return Classify(explain.query, begin, end);
}

StatementInfo StatementClassifier::ClassifyCursor(const PgQuery__Node* statement) {
  StatementInfo info;
  switch (statement->node_case) {
    case PG_QUERY__NODE__NODE_DECLARE_CURSOR_STMT: {
      const PgQuery__DeclareCursorStmt& declare = *statement->declare_cursor_stmt;
      info = Run(declare.query, /*runs_as_query=*/true);
      if ((declare.options & kCursorOptionHold) != 0) {
        info.effects.insert(info.effects.begin(), Effect(Kind::kPinWithHoldCursor));
      } else {
        info.declares_cursor = true;
      }
      return info;
    }
    case PG_QUERY__NODE__NODE_FETCH_STMT:  // FETCH and MOVE
      info.cursor = tree::View(statement->fetch_stmt->portalname);
      break;
    default:  // CLOSE name, CLOSE ALL ("")
      info.cursor = tree::View(statement->close_portal_stmt->portalname);
      break;
  }
  info.cursor_operation = true;
  return info;
}

StatementInfo StatementClassifier::ClassifySessionCommand(const PgQuery__Node* statement,
                                                          size_t begin, size_t end) {
  StatementInfo info;
  switch (statement->node_case) {
    case PG_QUERY__NODE__NODE_PREPARE_STMT:
      depends_on_literals_ = true;  // the text is the effect
      info.effects.push_back(Effect(Kind::kPrepare,
                                    std::string(tree::View(statement->prepare_stmt->name)),
                                    std::string(TrimStatement(sql_.substr(begin, end - begin)))));
      break;
    case PG_QUERY__NODE__NODE_DEALLOCATE_STMT: {
      const std::string_view name = tree::View(statement->deallocate_stmt->name);
      info.effects.push_back(name.empty() ? Effect(Kind::kDeallocateAll)
                                          : Effect(Kind::kDeallocate, std::string(name)));
      break;
    }
    case PG_QUERY__NODE__NODE_DISCARD_STMT:
      switch (statement->discard_stmt->target) {
        case PG_QUERY__DISCARD_MODE__DISCARD_ALL:
          info.effects.push_back(Effect(Kind::kDiscardAll));
          break;
        case PG_QUERY__DISCARD_MODE__DISCARD_PLANS:
          info.effects.push_back(Effect(Kind::kDiscardPlans));
          break;
        case PG_QUERY__DISCARD_MODE__DISCARD_SEQUENCES:
          info.effects.push_back(Effect(Kind::kDiscardSequences));
          break;
        default:
          info.effects.push_back(Effect(Kind::kDiscardTemp));
          break;
      }
      break;
    case PG_QUERY__NODE__NODE_LISTEN_STMT:
      info.effects.push_back(
          Effect(Kind::kListen, std::string(tree::View(statement->listen_stmt->conditionname))));
      break;
    default: {  // UNLISTEN channel, UNLISTEN *
      const std::string_view channel = tree::View(statement->unlisten_stmt->conditionname);
      info.effects.push_back(channel.empty() ? Effect(Kind::kUnlistenAll)
                                             : Effect(Kind::kUnlisten, std::string(channel)));
      break;
    }
  }
  return info;
}

// Everything else: DDL, DML-free utility commands. None is read-only; some make temporary
// objects or change what functions exist.
StatementInfo StatementClassifier::ClassifyDefinition(const PgQuery__Node* statement) {
  StatementInfo info;
  bool temporary = false;
  switch (statement->node_case) {
    case PG_QUERY__NODE__NODE_CREATE_STMT:
      temporary = IsTempRelation(statement->create_stmt->relation);
      break;
    case PG_QUERY__NODE__NODE_VIEW_STMT:
      temporary = IsTempRelation(statement->view_stmt->view);
      break;
    case PG_QUERY__NODE__NODE_CREATE_SEQ_STMT:
      temporary = IsTempRelation(statement->create_seq_stmt->sequence);
      break;
    case PG_QUERY__NODE__NODE_COMPOSITE_TYPE_STMT:
      temporary = IsTempRelation(statement->composite_type_stmt->typevar);
      break;
    case PG_QUERY__NODE__NODE_CREATE_FUNCTION_STMT: {
      const PgQuery__CreateFunctionStmt& create = *statement->create_function_stmt;
      temporary = IsTempSchema(tree::Qualifier(create.funcname, create.n_funcname));
      info.invalidates_functions = true;
      break;
    }
    case PG_QUERY__NODE__NODE_DEFINE_STMT:
      info.invalidates_functions = IsFunctionObject(statement->define_stmt->kind);
      break;
    case PG_QUERY__NODE__NODE_DROP_STMT:
      info.invalidates_functions = HoldsFunctions(statement->drop_stmt->remove_type);
      break;
    case PG_QUERY__NODE__NODE_RENAME_STMT:
      info.invalidates_functions = HoldsFunctions(statement->rename_stmt->rename_type);
      break;
    case PG_QUERY__NODE__NODE_ALTER_OBJECT_SCHEMA_STMT:
      info.invalidates_functions = HoldsFunctions(statement->alter_object_schema_stmt->object_type);
      break;
    case PG_QUERY__NODE__NODE_ALTER_FUNCTION_STMT:
    case PG_QUERY__NODE__NODE_CREATE_EXTENSION_STMT:
    case PG_QUERY__NODE__NODE_ALTER_EXTENSION_STMT:
    case PG_QUERY__NODE__NODE_ALTER_EXTENSION_CONTENTS_STMT:
    case PG_QUERY__NODE__NODE_DROP_OWNED_STMT:
    case PG_QUERY__NODE__NODE_DO_STMT:
      info.invalidates_functions = true;
      break;
    default:
      break;
  }
  if (temporary) info.effects.push_back(Effect(Kind::kPinTempTable));
  return info;
}

// Frees libpg_query's results on every path.
struct ParseGuard {
  PgQueryProtobufParseResult parse;
  PgQuery__ParseResult* tree = nullptr;
  ~ParseGuard() {
    if (tree != nullptr) pg_query__parse_result__free_unpacked(tree, nullptr);
    pg_query_free_protobuf_parse_result(parse);
  }
};

}  // namespace

Classification ClassifyDetailed(std::string_view sql, const FunctionVolatility& functions) {
  Classification result;
  QueryInfo& info = result.info;
  info.primary_hint = HasPrimaryHint(sql);
  // PostgreSQL's Query string ends at its first NUL; the parser would see less than the server.
  if (sql.size() > kClassifyBytesMax || sql.find('\0') != std::string_view::npos ||
      NestingBound(sql) > kNestingBoundMax) {
    info.parse_error = true;
    return result;
  }
  const std::string text(sql);
  ParseGuard guard{.parse = pg_query_parse_protobuf(text.c_str())};
  if (guard.parse.error == nullptr) {
    guard.tree = pg_query__parse_result__unpack(
        nullptr, guard.parse.parse_tree.len,
        reinterpret_cast<const uint8_t*>(guard.parse.parse_tree.data));
  }
  if (guard.tree == nullptr) {
    info.parse_error = true;
    return result;
  }
  StatementClassifier classifier(sql, functions);
  for (size_t i = 0; i < guard.tree->n_stmts; ++i) {
    const PgQuery__RawStmt& raw = *guard.tree->stmts[i];
    if (raw.stmt == nullptr || raw.stmt->node_case == PG_QUERY__NODE__NODE__NOT_SET) continue;
    // stmt_len 0 means "to the end of the text".
    const size_t begin = static_cast<size_t>(std::max(raw.stmt_location, 0));
    const size_t end = raw.stmt_len > 0 ? begin + static_cast<size_t>(raw.stmt_len) : sql.size();
    CHECK(begin <= end && end <= sql.size()) << "statement at " << begin << ".." << end;
    info.statements.push_back(classifier.Classify(raw.stmt, begin, end));
  }
  info.read_only =
      !info.statements.empty() && std::all_of(info.statements.begin(), info.statements.end(),
                                              [](const StatementInfo& s) { return s.read_only; });
  result.depends_on_literals = classifier.depends_on_literals();
  return result;
}

}  // namespace switchyard::route
