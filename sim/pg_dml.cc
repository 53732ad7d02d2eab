// SELECT, INSERT, UPDATE, DELETE and COPY over table kv on a simulated node. Every statement
// first takes the row locks it needs (returning `blocked_on` if another transaction holds one,
// to be run again from scratch once it is freed), then applies its changes to the transaction's
// write set, so a blocked statement never leaves half its work behind.
#include <algorithm>
#include <map>
#include <utility>

#include "absl/strings/str_format.h"
#include "sim/pg_exec_internal.h"
#include "sim/text.h"

namespace switchyard::sim::internal {
namespace {

using RowList = std::vector<std::pair<std::string, Value>>;

ExecResult Failed(std::string sqlstate, std::string message, std::string detail = "") {
  ExecResult result;
  result.error = SqlError{
      .sqlstate = std::move(sqlstate), .message = std::move(message), .detail = std::move(detail)};
  return result;
}

ExecResult Failed(SqlError error) {
  ExecResult result;
  result.error = std::move(error);
  return result;
}

std::string Shown(const Value& value) { return value ? *value : "null"; }

// Evaluates a target list against one row (or none) into `row`.
std::optional<SqlError> EvalItems(const std::vector<SelectItem>& items, const EvalContext& context,
                                  Row* row) {
  for (const SelectItem& item : items) {
    if (item.star) {
      if (!context.row) return SqlError{.sqlstate = "42601", .message = "no table for *"};
      row->emplace_back(std::string(context.row->key));
      row->push_back(*context.row->value);
      continue;
    }
    Datum datum;
    if (std::optional<SqlError> error = Eval(item.expr, context, &datum)) return error;
    row->push_back(std::move(datum.value));
  }
  return std::nullopt;
}

bool HasCount(const Expr& e) {
  if (e.kind == Expr::Kind::kFunction && e.text == "count") return true;
  return std::any_of(e.args.begin(), e.args.end(), HasCount);
}

// The rows a `WHERE k = ...` (or no WHERE) picks, in key order.
std::optional<SqlError> Candidates(const NodeState& node, const Session& session,
                                   const std::optional<Expr>& where_key, const EvalContext& context,
                                   RowList* rows) {
  if (!where_key) {
    *rows = Scan(node, session);
    return std::nullopt;
  }
  Datum key;
  if (std::optional<SqlError> error = Eval(*where_key, context, &key)) return error;
  if (!key.value) return std::nullopt;  // k = NULL matches nothing
  if (std::optional<Value> value = Lookup(node, session, *key.value)) {
    rows->emplace_back(*key.value, std::move(*value));
  }
  return std::nullopt;
}

std::optional<SqlError> CheckSizes(const NodeState& node, std::string_view key,
                                   const Value& value) {
  if (key.size() > node.options.limits.key_bytes_max) {
    return SqlError{.sqlstate = "54000",
                    .message = absl::StrFormat("index row size %d exceeds maximum %d for index "
                                               "\"kv_pkey\"",
                                               key.size(), node.options.limits.key_bytes_max)};
  }
  if (value && value->size() > node.options.limits.value_bytes_max) {
    return SqlError{.sqlstate = "54000", .message = "row is too big"};
  }
  return std::nullopt;
}

// Rows the transaction would see if `added` new keys were inserted, against limits.rows_max.
std::optional<SqlError> CheckCapacity(const NodeState& node, const Session& session, size_t added) {
  const size_t bound = node.options.limits.rows_max;
  if (node.store.rows().size() + session.tx->writes.size() + added <= bound) return std::nullopt;
  if (Scan(node, session).size() + added <= bound) return std::nullopt;
  return SqlError{.sqlstate = "53100",
                  .message = "could not extend file \"base/16384/16384\": No space left on device"};
}

// Takes the row locks on `keys` (in order); the first busy one, if any.
std::optional<std::string> LockAll(NodeState& node, Session& session,
                                   const std::vector<std::string>& keys) {
  for (const std::string& key : keys) {
    if (TryLock(node, session, key)) return key;
  }
  return std::nullopt;
}

void RecordWrite(Session& session, const Statement& statement, size_t affected) {
  if (affected > 0) session.tx->write_statements.push_back(statement.text);
}

struct Proposed {
  std::string key;
  Value value;
};

// INSERT's second half, shared with COPY FROM: conflicts, ON CONFLICT, RETURNING.
ExecResult InsertRows(NodeState& node, Session& session, const Statement& statement,
                      const std::vector<Proposed>& proposed, const InsertStmt* insert,
                      const EvalContext& context) {
  std::vector<std::string> keys;
  for (const Proposed& p : proposed) keys.push_back(p.key);
  if (std::optional<std::string> busy = LockAll(node, session, keys)) {
    ExecResult blocked;
    blocked.blocked_on = std::move(busy);
    return blocked;
  }
  using OnConflict = InsertStmt::OnConflict;
  const OnConflict on_conflict = insert ? insert->on_conflict : OnConflict::kError;
  ExecResult result;
  std::map<std::string, Value, std::less<>> written;  // by this statement
  size_t added = 0;
  for (const Proposed& p : proposed) {
    auto mine = written.find(p.key);
    std::optional<Value> existing =
        mine != written.end() ? std::optional<Value>(mine->second) : Lookup(node, session, p.key);
    Value value = p.value;
    if (existing) {
      if (on_conflict == OnConflict::kNothing) continue;
      if (on_conflict == OnConflict::kError) {
        return Failed("23505", "duplicate key value violates unique constraint \"kv_pkey\"",
                      absl::StrFormat("Key (k)=(%s) already exists.", p.key));
      }
      if (mine != written.end()) {
        return Failed("21000", "ON CONFLICT DO UPDATE command cannot affect row a second time");
      }
      EvalContext update = context;
      update.row = RowRef{p.key, &*existing};
      update.excluded = RowRef{p.key, &p.value};
      Datum datum;
      if (std::optional<SqlError> error = Eval(*insert->update_value, update, &datum)) {
        return Failed(*error);
      }
      value = std::move(datum.value);
      if (std::optional<SqlError> error = CheckSizes(node, p.key, value)) return Failed(*error);
    } else {
      ++added;
    }
    auto [it, unused] = written.insert_or_assign(p.key, std::move(value));
    if (insert && !insert->returning.empty()) {
      EvalContext row = context;
      row.row = RowRef{it->first, &it->second};
      Row out;
      if (std::optional<SqlError> error = EvalItems(insert->returning, row, &out)) {
        return Failed(*error);
      }
      result.rows.push_back(std::move(out));
    }
  }
  if (std::optional<SqlError> error = CheckCapacity(node, session, added)) return Failed(*error);
  // One per proposed row inserted or updated: a key is written at most once per statement.
  const size_t affected = written.size();
  for (auto& [key, value] : written) {
    session.tx->writes.insert_or_assign(key, RowChange{.key = key, .value = std::move(value)});
  }
  RecordWrite(session, statement, affected);
  if (insert && !insert->returning.empty()) {
    result.returns_rows = true;
    result.columns = DescribeItems(insert->returning, *context.param_types);
  }
  result.tag = absl::StrFormat("INSERT 0 %d", affected);
  return result;
}

}  // namespace

ExecResult RunSelect(NodeState& node, Session& session, const SelectStmt& stmt,
                     const EvalContext& context) {
  ExecResult result;
  result.returns_rows = true;
  result.columns = DescribeItems(stmt.items, *context.param_types);
  std::optional<int64_t> limit;
  if (stmt.limit) {
    Datum datum;
    if (std::optional<SqlError> error = Eval(*stmt.limit, context, &datum)) return Failed(*error);
    int64_t n = 0;
    if (datum.value && !ParseInt64(*datum.value, &n)) {
      return Failed("22P02",
                    absl::StrFormat("invalid input syntax for type bigint: \"%s\"", *datum.value));
    }
    if (n < 0) return Failed("2201W", "LIMIT must not be negative");
    if (datum.value) limit = n;
  }
  const bool aggregate = std::any_of(stmt.items.begin(), stmt.items.end(), [](const auto& item) {
    return !item.star && HasCount(item.expr);
  });
  RowList candidates;
  if (stmt.from_kv) {
    if (std::optional<SqlError> error =
            Candidates(node, session, stmt.where_key, context, &candidates)) {
      return Failed(*error);
    }
    if (stmt.order_desc) std::reverse(candidates.begin(), candidates.end());
  }
  if (!stmt.from_kv || aggregate) {
    EvalContext one = context;
    if (aggregate) one.count = static_cast<int64_t>(candidates.size());
    Row row;
    if (std::optional<SqlError> error = EvalItems(stmt.items, one, &row)) return Failed(*error);
    if (!limit || *limit > 0) result.rows.push_back(std::move(row));
    result.tag = absl::StrFormat("SELECT %d", result.rows.size());
    return result;
  }
  for (const auto& [key, value] : candidates) {
    if (limit && static_cast<int64_t>(result.rows.size()) >= *limit) break;
    if (stmt.for_update && TryLock(node, session, key)) {
      if (stmt.lock_wait == LockWait::kSkipLocked) continue;
      if (stmt.lock_wait == LockWait::kNoWait) {
        return Failed("55P03", "could not obtain lock on row in relation \"kv\"");
      }
      ExecResult blocked;
      blocked.blocked_on = key;
      return blocked;
    }
    EvalContext row = context;
    row.row = RowRef{key, &value};
    Row out;
    if (std::optional<SqlError> error = EvalItems(stmt.items, row, &out)) return Failed(*error);
    result.rows.push_back(std::move(out));
  }
  result.tag = absl::StrFormat("SELECT %d", result.rows.size());
  return result;
}

ExecResult RunInsert(NodeState& node, Session& session, const Statement& statement,
                     const InsertStmt& stmt, const EvalContext& context) {
  std::vector<Proposed> proposed;
  for (const std::vector<Expr>& row : stmt.rows) {
    Datum key;
    Datum value;
    if (std::optional<SqlError> error = Eval(row[0], context, &key)) return Failed(*error);
    if (std::optional<SqlError> error = Eval(row[1], context, &value)) return Failed(*error);
    if (!key.value) {
      return Failed("23502",
                    "null value in column \"k\" of relation \"kv\" violates not-null constraint",
                    absl::StrFormat("Failing row contains (null, %s).", Shown(value.value)));
    }
    if (std::optional<SqlError> error = CheckSizes(node, *key.value, value.value)) {
      return Failed(*error);
    }
    proposed.push_back(Proposed{std::move(*key.value), std::move(value.value)});
  }
  return InsertRows(node, session, statement, proposed, &stmt, context);
}

ExecResult RunUpdate(NodeState& node, Session& session, const Statement& statement,
                     const UpdateStmt& stmt, const EvalContext& context) {
  RowList rows;
  if (std::optional<SqlError> error = Candidates(node, session, stmt.where_key, context, &rows)) {
    return Failed(*error);
  }
  std::vector<std::string> keys;
  for (const auto& row : rows) keys.push_back(row.first);
  if (std::optional<std::string> busy = LockAll(node, session, keys)) {
    ExecResult blocked;
    blocked.blocked_on = std::move(busy);
    return blocked;
  }
  ExecResult result;
  std::vector<RowChange> changes;
  for (const auto& [key, old_value] : rows) {
    EvalContext row = context;
    row.row = RowRef{key, &old_value};
    Datum datum;
    if (std::optional<SqlError> error = Eval(stmt.value, row, &datum)) return Failed(*error);
    if (std::optional<SqlError> error = CheckSizes(node, key, datum.value)) return Failed(*error);
    changes.push_back(RowChange{.key = key, .value = std::move(datum.value)});
    if (!stmt.returning.empty()) {
      row.row = RowRef{key, &changes.back().value};
      Row out;
      if (std::optional<SqlError> error = EvalItems(stmt.returning, row, &out)) {
        return Failed(*error);
      }
      result.rows.push_back(std::move(out));
    }
  }
  for (RowChange& change : changes) {
    const std::string key = change.key;
    session.tx->writes.insert_or_assign(key, std::move(change));
  }
  RecordWrite(session, statement, changes.size());
  if (!stmt.returning.empty()) {
    result.returns_rows = true;
    result.columns = DescribeItems(stmt.returning, *context.param_types);
  }
  result.tag = absl::StrFormat("UPDATE %d", changes.size());
  return result;
}

ExecResult RunDelete(NodeState& node, Session& session, const Statement& statement,
                     const DeleteStmt& stmt, const EvalContext& context) {
  RowList rows;
  if (std::optional<SqlError> error = Candidates(node, session, stmt.where_key, context, &rows)) {
    return Failed(*error);
  }
  std::vector<std::string> keys;
  for (const auto& row : rows) keys.push_back(row.first);
  if (std::optional<std::string> busy = LockAll(node, session, keys)) {
    ExecResult blocked;
    blocked.blocked_on = std::move(busy);
    return blocked;
  }
  ExecResult result;
  for (const auto& [key, old_value] : rows) {
    if (!stmt.returning.empty()) {
      EvalContext row = context;
      row.row = RowRef{key, &old_value};
      Row out;
      if (std::optional<SqlError> error = EvalItems(stmt.returning, row, &out)) {
        return Failed(*error);
      }
      result.rows.push_back(std::move(out));
    }
  }
  for (const auto& [key, old_value] : rows) {
    session.tx->writes.insert_or_assign(key, RowChange{.key = key, .deleted = true});
  }
  RecordWrite(session, statement, rows.size());
  if (!stmt.returning.empty()) {
    result.returns_rows = true;
    result.columns = DescribeItems(stmt.returning, *context.param_types);
  }
  result.tag = stmt.truncate ? "TRUNCATE TABLE" : absl::StrFormat("DELETE %d", rows.size());
  return result;
}

ExecResult RunCopy(NodeState& node, Session& session, const Statement& statement,
                   const CopyStmt& stmt, const std::vector<Row>* copy_rows) {
  ExecResult result;
  result.copy_key_first = stmt.key_first;
  if (!stmt.from) {
    result.copy = ExecResult::Copy::kOut;
    for (auto& [key, value] : Scan(node, session)) {
      result.rows.push_back(stmt.key_first ? Row{key, value} : Row{value, key});
    }
    result.tag = absl::StrFormat("COPY %d", result.rows.size());
    return result;
  }
  if (copy_rows == nullptr) {
    result.copy = ExecResult::Copy::kIn;
    return result;
  }
  std::vector<Proposed> proposed;
  for (const Row& row : *copy_rows) {
    const Value& key = stmt.key_first ? row[0] : row[1];
    const Value& value = stmt.key_first ? row[1] : row[0];
    if (!key) {
      return Failed("23502",
                    "null value in column \"k\" of relation \"kv\" violates not-null constraint",
                    absl::StrFormat("Failing row contains (null, %s).", Shown(value)));
    }
    if (std::optional<SqlError> error = CheckSizes(node, *key, value)) return Failed(*error);
    proposed.push_back(Proposed{*key, value});
  }
  const std::vector<uint32_t> no_types;
  EvalContext context{.param_types = &no_types};
  result = InsertRows(node, session, statement, proposed, nullptr, context);
  if (!result.error && !result.blocked_on) {
    result.tag = absl::StrFormat("COPY %d", proposed.size());
  }
  return result;
}

}  // namespace switchyard::sim::internal
