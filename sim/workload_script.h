// The script of a simulated client (DESIGN.md section 7): what its sessions send next, drawn
// from the client's own decision stream. Autocommit reads and writes, read-write and read-only
// transactions (some rolled back), SET and SHOW, sleeps, scans, locking reads and
// extended-protocol Sync batches; a SET is often followed by a SHOW of it, a write by a read of
// its key. Each request says whether it may run on a replica (Request::replica_ok).
//
// Defined in this header because the simulator's build lists its runner sources by name; it is
// internal to workload.cc, which alone includes it.
#pragma once

#include <algorithm>
#include <optional>
#include <string>

#include "absl/strings/str_format.h"
#include "core/base/strings.h"
#include "io_sim/decision.h"
#include "sim/model.h"
#include "sim/workload.h"

namespace switchyard::sim {

inline std::string KeyName(int index) { return absl::StrFormat("k%02d", index); }

class Script {
 public:
  Script(const WorkloadOptions& options, uint32_t index, io_sim::DecisionSource& decisions)
      : o_(options), index_(index), d_(decisions) {}

  // A new session: draws how many requests it sends outside transactions.
  inline void BeginSession();
  // The next request of a session whose transaction status is `status` ('I', 'T' or 'E');
  // nullopt when the session is over. While winding down, a session only ends its transaction.
  inline std::optional<Request> Next(char status, bool winding_down);
  // A probe's one request (probe 0 writes).
  inline Request Probe();
  // An answer arrived, `status` being the session's before it: a SET or a write may get its
  // follow-up.
  inline void NoteAnswer(char status, const Request& request, const Answer& answer);

 private:
  // What an idle session does next, drawn by the weights.
  inline Request Idle();
  inline Request TransactionStatement();
  inline Request Write(int key_index);
  inline Request Read(int key_index, bool replica_ok);
  inline Request Exit(bool commit);
  inline Request SetRequest(bool local);
  inline Request Show(bool replica_ok);
  inline Request Batch();

  const WorkloadOptions& o_;
  uint32_t index_;
  io_sim::DecisionSource& d_;
  int requests_left_ = 0;
  int transaction_left_ = 0;
  int transaction_key_min_ = 0;
  bool transaction_read_only_ = false;
  // What the session sends next, whatever the script would draw (SHOW after SET...).
  std::optional<Request> follow_up_;
  uint64_t tokens_ = 0;
};

Request Script::Probe() {
  // One probe writes: after healing, the primary the proxy found must take it.
  if (index_ == 0) return Write(0);
  return Read(0, /*replica_ok=*/true);
}

void Script::BeginSession() {
  requests_left_ = static_cast<int>(
      d_.Between(o_.requests_per_session_min, o_.requests_per_session_max, "wl.requests"));
  transaction_left_ = 0;
  transaction_read_only_ = false;
  follow_up_.reset();
}

std::optional<Request> Script::Next(char status, bool winding_down) {
  const auto& o = o_;
  if (winding_down) {
    // Finish the transaction, then leave.
    if (status == 'I') return std::nullopt;
    return Exit(status == 'T' && d_.Below(100, "wl.rollback") >= o.rollback_percent);
  }
  if (status == 'E') {
    // Sometimes one more statement first: it must be refused with 25P02.
    if (d_.Chance(1, 4, "wl.after_error")) return TransactionStatement();
    return Exit(d_.Chance(1, 2, "wl.exit_kind"));
  }
  if (status == 'T') {
    if (transaction_left_ > 0) {
      --transaction_left_;
      return TransactionStatement();
    }
    return Exit(d_.Below(100, "wl.rollback") >= o.rollback_percent);
  }
  if (requests_left_ <= 0) return std::nullopt;
  --requests_left_;
  if (follow_up_) {
    Request next = std::move(*follow_up_);
    follow_up_.reset();
    return next;
  }
  return Idle();
}

Request Script::Idle() {
  const auto& o = o_;
  const uint32_t weights[] = {o.weight_read,        o.weight_write,
                              o.weight_transaction, o.weight_set,
                              o.weight_show,        o.weight_sleep,
                              o.weight_scan,        o.weight_locking_read,
                              o.weight_batch,       o.weight_read_only_transaction};
  uint64_t total = 0;
  for (uint32_t weight : weights) total += weight;
  uint64_t pick = d_.Below(std::max<uint64_t>(total, 1), "wl.kind");
  size_t kind = 0;
  while (kind + 1 < std::size(weights) && pick >= weights[kind]) pick -= weights[kind++];
  const int key = static_cast<int>(d_.Below(o.keys, "wl.key"));
  switch (kind) {
    case 0:
      return Read(key, /*replica_ok=*/true);
    case 1:
      return Write(key);
    case 2:
    case 9: {
      transaction_left_ = static_cast<int>(
          d_.Between(1, std::max(1, o.transaction_statements_max), "wl.tx_length"));
      transaction_key_min_ = 0;
      transaction_read_only_ = kind == 9;
      return Request{.op = Op::kBegin,
                     .sql = transaction_read_only_ ? "BEGIN READ ONLY" : "BEGIN",
                     .read_only = transaction_read_only_,
                     .replica_ok = transaction_read_only_};
    }
    case 3:
      return SetRequest(/*local=*/false);
    case 4:
      return Show(/*replica_ok=*/true);
    case 5: {
      const int64_t us = d_.Between(1, std::max<int64_t>(1, o.sleep_us_max), "wl.sleep");
      return Request{
          .op = Op::kSleep,
          .sql = absl::StrFormat("SELECT pg_sleep(%d.%06d)", us / 1'000'000, us % 1'000'000)};
    }
    case 6:
      return Request{.op = Op::kScan, .sql = "SELECT k, v FROM kv", .replica_ok = true};
    case 7: {
      Request read = Read(key, /*replica_ok=*/false);
      read.op = Op::kLockingRead;
      read.sql += " FOR UPDATE";
      return read;
    }
    default:
      return Batch();
  }
}

Request Script::TransactionStatement() {
  const auto& o = o_;
  // A read-only transaction may run on a replica; a read-write one, all of it, on the primary.
  const bool read_only = transaction_read_only_;
  const uint64_t pick = d_.Below(100, "wl.tx_kind");
  if (pick < 50 && !read_only) {
    // Writes and locking reads take keys in ascending order, so two transactions never wait
    // for each other in a cycle (the workload checks answers, not deadlock detection).
    const int key = static_cast<int>(d_.Between(transaction_key_min_, o.keys - 1, "wl.tx_key"));
    transaction_key_min_ = key;
    if (!d_.Chance(1, 5, "wl.tx_locking")) return Write(key);
    Request read = Read(key, /*replica_ok=*/false);
    read.op = Op::kLockingRead;
    read.sql += " FOR UPDATE";
    return read;
  }
  if (pick < 80) {
    if (read_only && d_.Chance(1, 4, "wl.tx_scan")) {
      return Request{.op = Op::kScan, .sql = "SELECT k, v FROM kv", .replica_ok = true};
    }
    return Read(static_cast<int>(d_.Below(o.keys, "wl.key")), read_only);
  }
  if (pick < 90) {
    Request set = SetRequest(/*local=*/read_only || d_.Chance(1, 2, "wl.local"));
    set.replica_ok = read_only;
    return set;
  }
  return Show(read_only);
}

Request Script::Read(int key_index, bool replica_ok) {
  const std::string key = KeyName(key_index);
  return Request{.op = Op::kRead,
                 .key = key,
                 .sql = Cat("SELECT v FROM kv WHERE k = '", key, "'"),
                 .replica_ok = replica_ok};
}

Request Script::Show(bool replica_ok) {
  const char* guc = d_.Chance(1, 2, "wl.guc") ? "search_path" : "application_name";
  return Request{.op = Op::kShow, .guc = guc, .sql = Cat("SHOW ", guc), .replica_ok = replica_ok};
}

Request Script::Write(int key_index) {
  const std::string key = KeyName(key_index);
  std::string token = Cat("t", index_, "_", ++tokens_);
  if (o_.value_bytes_max > 0) {
    // Padding after the unique part makes answers big enough for the output watermarks.
    const int64_t pad = d_.Between(0, o_.value_bytes_max, "wl.value_bytes");
    token += '-';
    token.append(static_cast<size_t>(pad), 'x');
  }
  const uint64_t pick = d_.Below(100, "wl.write_kind");
  if (pick < 35)
    return Request{.op = Op::kInsert, .key = key, .value = token, .sql = InsertSql(key, token)};
  if (pick < 85)
    return Request{.op = Op::kUpdate, .key = key, .value = token, .sql = UpdateSql(key, token)};
  return Request{.op = Op::kDelete, .key = key, .sql = DeleteSql(key)};
}

// Two to four statements in one Sync batch: only reads (it may run on a replica), or reads and
// writes (all of it on the primary), often starting with a read. Writes take keys in
// ascending order, as in transactions.
Request Script::Batch() {
  const auto& o = o_;
  Request batch{.op = Op::kBatch};
  const int n = static_cast<int>(d_.Between(2, 4, "wl.batch_length"));
  const bool writes = d_.Chance(1, 2, "wl.batch_writes");
  int key_min = 0;
  for (int i = 0; i < n; ++i) {
    const bool write = writes && (i > 0 || d_.Chance(1, 2, "wl.batch_first_write")) &&
                       (i == n - 1 || d_.Chance(1, 2, "wl.batch_write"));
    if (write) {
      key_min = static_cast<int>(d_.Between(key_min, o.keys - 1, "wl.batch_key"));
      batch.statements.push_back(Write(key_min));
    } else if (d_.Chance(1, 5, "wl.batch_scan")) {
      batch.statements.push_back(Request{.op = Op::kScan, .sql = "SELECT k, v FROM kv"});
    } else {
      batch.statements.push_back(Read(static_cast<int>(d_.Below(o.keys, "wl.key")), true));
    }
  }
  batch.replica_ok = !batch.BatchWrites();
  for (Request& statement : batch.statements) statement.replica_ok = batch.replica_ok;
  for (const Request& statement : batch.statements) {
    batch.sql += Cat(batch.sql.empty() ? "" : "; ", statement.sql);
  }
  return batch;
}

Request Script::Exit(bool commit) {
  return Request{.op = commit ? Op::kCommit : Op::kRollback,
                 .sql = commit ? "COMMIT" : "ROLLBACK",
                 .replica_ok = transaction_read_only_};
}

Request Script::SetRequest(bool local) {
  const bool path = d_.Chance(1, 2, "wl.guc");
  const std::string guc = path ? "search_path" : "application_name";
  const std::string value = Cat(path ? "s" : "a", index_, "_", ++tokens_);
  // A SET outside a transaction may be replayed on any node: where it first ran is not checked.
  return Request{.op = local ? Op::kSetLocal : Op::kSet,
                 .value = value,
                 .guc = guc,
                 .sql = Cat(local ? "SET LOCAL " : "SET ", guc, " = '", value, "'"),
                 .replica_ok = true};
}

// SHOW what a SET set, or read back what a write wrote: a SET must survive the loss of the
// server connection, and a client's reads must see its own writes.
void Script::NoteAnswer(char status, const Request& request, const Answer& answer) {
  if (status != 'I' || answer.error() != nullptr) return;
  if (!d_.Chance(o_.follow_up_percent, 100, "wl.follow_up")) return;
  if (request.op == Op::kSet) {
    follow_up_ = Request{
        .op = Op::kShow, .guc = request.guc, .sql = Cat("SHOW ", request.guc), .replica_ok = true};
  } else if (request.IsWrite()) {
    follow_up_ = Read(std::stoi(request.key.substr(1)), /*replica_ok=*/true);
  }
}

}  // namespace switchyard::sim
