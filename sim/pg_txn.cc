// Transactions of the simulated nodes: implicit and explicit blocks, commit (WAL record,
// LISTEN changes, NOTIFY delivery), rollback, savepoints, row locks and what a transaction sees.
#include <algorithm>
#include <utility>

#include "absl/strings/str_format.h"
#include "core/base/check.h"
#include "sim/pg_node_internal.h"

namespace switchyard::sim::internal {
namespace {

// Frees `keys` held by the session and wakes the sessions waiting for any of them.
void ReleaseLocks(NodeState& node, Session& session, const KeySet& keys) {
  for (const std::string& key : keys) {
    auto it = node.row_locks.find(key);
    CHECK(it != node.row_locks.end()) << key;
    CHECK_EQ(it->second, session.id);
    node.row_locks.erase(it);
  }
  for (auto& [id, other] : node.sessions) {
    if (other.running && other.running->phase == Running::Phase::kLockWait &&
        keys.contains(other.running->waiting_key)) {
      node.runnable.insert(id);
    }
  }
}

// What every end of a transaction does, after commit or rollback specifics.
void FinishTransaction(NodeState& node, Session& session) {
  session.gucs.EndTransaction();
  const KeySet locks = std::move(session.tx->locks);
  session.tx.reset();
  ReleaseLocks(node, session, locks);
  // Portals live no longer than their transaction.
  session.portals.clear();
}

void ApplyListenOps(NodeState& node, Session& session, const std::vector<ListenOp>& ops) {
  for (const ListenOp& op : ops) {
    if (op.all) {
      session.listens.clear();
    } else if (op.listen) {
      if (session.listens.size() < node.options.limits.listens_max) {
        session.listens.insert(op.channel);
      }
    } else {
      session.listens.erase(op.channel);
    }
  }
}

void DeliverNotifications(NodeState& node, const Session& from,
                          const std::vector<std::pair<std::string, std::string>>& notifies) {
  // PostgreSQL folds identical (channel, payload) pairs of one transaction into one event.
  std::vector<std::pair<std::string, std::string>> unique;
  for (const auto& notify : notifies) {
    if (std::find(unique.begin(), unique.end(), notify) == unique.end()) unique.push_back(notify);
  }
  for (auto& [id, target] : node.sessions) {
    if (target.phase != Session::Phase::kReady && target.phase != Session::Phase::kCopyIn) {
      continue;
    }
    bool got = false;
    for (const auto& [channel, payload] : unique) {
      if (!target.listens.contains(channel)) continue;
      if (target.notifications.size() >= node.options.limits.notifications_pending_max) {
        target.notifications.pop_front();
        ++node.counters.notifications_dropped;
      }
      target.notifications.push_back(
          pg::NotificationResponse{.pid = from.pid, .channel = channel, .payload = payload});
      got = true;
    }
    if (got && id != from.id) FlushNotificationsIfIdle(target);
  }
}

}  // namespace

void BeginImplicit(NodeState& node, Session& session, bool multi) {
  CHECK(!session.tx.has_value());
  Transaction tx;
  tx.multi = multi;
  tx.read_only = node.in_recovery || session.gucs.Get("default_transaction_read_only") == "on";
  tx.isolation = session.gucs.Get("default_transaction_isolation").value_or("read committed");
  tx.gucs_at_start = session.gucs.Save();
  session.tx = std::move(tx);
}

void CommitTransaction(NodeState& node, Session& session) {
  CHECK(session.tx.has_value());
  Transaction& tx = *session.tx;
  CHECK(!tx.failed) << "a failed transaction can only roll back";
  if (!tx.writes.empty()) {
    CHECK(!node.in_recovery) << "node " << node.options.name << " would commit a write in recovery";
    std::vector<RowChange> changes;
    changes.reserve(tx.writes.size());
    for (auto& [key, change] : tx.writes) changes.push_back(std::move(change));
    node.store.Commit(std::move(changes), std::move(tx.write_statements), node.timeline,
                      node.options.name, session.id);
    ++node.counters.commits;
  }
  ApplyListenOps(node, session, tx.listen_ops);
  const auto notifies = std::move(tx.notifies);
  FinishTransaction(node, session);
  DeliverNotifications(node, session, notifies);
}

void RollbackTransaction(NodeState& node, Session& session) {
  CHECK(session.tx.has_value());
  session.gucs.Restore(std::move(session.tx->gucs_at_start));
  ++node.counters.rollbacks;
  FinishTransaction(node, session);
}

void AbortAfterError(NodeState& node, Session& session) {
  if (!session.tx) return;
  Transaction& tx = *session.tx;
  if (!tx.explicit_block) {
    RollbackTransaction(node, session);
    return;
  }
  // PostgreSQL aborts the innermost (sub)transaction at once: its row locks are freed now, and
  // the block waits in 'E' for ROLLBACK or ROLLBACK TO SAVEPOINT.
  tx.failed = true;
  KeySet released;
  if (tx.savepoints.empty()) {
    released = std::move(tx.locks);
    tx.locks.clear();
    tx.writes.clear();
    tx.write_statements.clear();
  } else {
    const KeySet& kept = tx.savepoints.back().locks;
    for (const std::string& key : tx.locks) {
      if (!kept.contains(key)) released.insert(key);
    }
    for (const std::string& key : released) tx.locks.erase(key);
  }
  ReleaseLocks(node, session, released);
}

char TransactionStatus(const Session& session) {
  if (!session.tx) return 'I';
  if (session.tx->failed) return 'E';
  return session.tx->explicit_block ? 'T' : 'I';
}

bool ReadOnlyNow(const NodeState& node, const Session& session) {
  return node.in_recovery || (session.tx && session.tx->read_only);
}

std::optional<uint64_t> TryLock(NodeState& node, Session& session, const std::string& key) {
  CHECK(session.tx.has_value());
  auto [it, inserted] = node.row_locks.try_emplace(key, session.id);
  if (inserted) {
    session.tx->locks.insert(key);
    return std::nullopt;
  }
  if (it->second == session.id) return std::nullopt;
  return it->second;
}

std::optional<Value> Lookup(const NodeState& node, const Session& session, std::string_view key) {
  if (session.tx) {
    auto it = session.tx->writes.find(key);
    if (it != session.tx->writes.end()) {
      if (it->second.deleted) return std::nullopt;
      return it->second.value;
    }
  }
  return node.store.Get(key);
}

std::vector<std::pair<std::string, Value>> Scan(const NodeState& node, const Session& session) {
  std::vector<std::pair<std::string, Value>> rows;
  const auto& committed = node.store.rows();
  const WriteSet none;
  const WriteSet& writes = session.tx ? session.tx->writes : none;
  auto c = committed.begin();
  auto w = writes.begin();
  // Merge two key-ordered sequences; the transaction's own change wins on equal keys.
  while (c != committed.end() || w != writes.end()) {
    const bool take_write = c == committed.end() || (w != writes.end() && w->first <= c->first);
    if (take_write) {
      if (c != committed.end() && c->first == w->first) ++c;
      if (!w->second.deleted) rows.emplace_back(w->first, w->second.value);
      ++w;
    } else {
      rows.emplace_back(c->first, c->second);
      ++c;
    }
  }
  return rows;
}

bool InDeadlock(const NodeState& node, const Session& session) {
  CHECK(session.running.has_value());
  std::set<uint64_t> seen;
  const Session* current = &session;
  while (current->running && current->running->phase == Running::Phase::kLockWait) {
    auto holder = node.row_locks.find(current->running->waiting_key);
    if (holder == node.row_locks.end()) return false;
    if (holder->second == session.id) return true;
    if (!seen.insert(holder->second).second) return false;
    auto next = node.sessions.find(holder->second);
    if (next == node.sessions.end()) return false;
    current = &next->second;
  }
  return false;
}

std::optional<SqlError> DoSavepoint(NodeState& node, Session& session,
                                    const TransactionStmt& statement) {
  using Kind = TransactionStmt::Kind;
  const char* what = statement.kind == Kind::kSavepoint ? "SAVEPOINT"
                     : statement.kind == Kind::kRelease ? "RELEASE SAVEPOINT"
                                                        : "ROLLBACK TO SAVEPOINT";
  if (!session.tx || !session.tx->explicit_block) {
    return SqlError{.sqlstate = "25P01",
                    .message = absl::StrFormat("%s can only be used in transaction blocks", what)};
  }
  Transaction& tx = *session.tx;
  if (statement.kind == Kind::kSavepoint) {
    if (tx.savepoints.size() >= node.options.limits.savepoints_max) {
      return SqlError{.sqlstate = "54000", .message = "too many savepoints"};
    }
    tx.savepoints.push_back(Savepoint{.name = statement.savepoint,
                                      .writes = tx.writes,
                                      .write_statements = tx.write_statements.size(),
                                      .notifies = tx.notifies.size(),
                                      .listen_ops = tx.listen_ops.size(),
                                      .gucs = session.gucs.Save(),
                                      .locks = tx.locks});
    return std::nullopt;
  }
  auto found = std::find_if(tx.savepoints.rbegin(), tx.savepoints.rend(),
                            [&](const Savepoint& s) { return s.name == statement.savepoint; });
  if (found == tx.savepoints.rend()) {
    return SqlError{
        .sqlstate = "3B001",
        .message = absl::StrFormat("savepoint \"%s\" does not exist", statement.savepoint)};
  }
  const size_t index = static_cast<size_t>(tx.savepoints.rend() - found) - 1;
  if (statement.kind == Kind::kRelease) {
    tx.savepoints.resize(index);
    return std::nullopt;
  }
  // ROLLBACK TO: back to the savepoint's state, which stays defined; later ones go.
  Savepoint& savepoint = tx.savepoints[index];
  tx.writes = savepoint.writes;
  tx.write_statements.resize(savepoint.write_statements);
  tx.notifies.resize(savepoint.notifies);
  tx.listen_ops.resize(savepoint.listen_ops);
  session.gucs.Restore(savepoint.gucs);
  KeySet released;
  for (const std::string& key : tx.locks) {
    if (!savepoint.locks.contains(key)) released.insert(key);
  }
  for (const std::string& key : released) tx.locks.erase(key);
  tx.savepoints.resize(index + 1);
  tx.failed = false;
  ReleaseLocks(node, session, released);
  return std::nullopt;
}

}  // namespace switchyard::sim::internal
