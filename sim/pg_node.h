// PgNode: one simulated PostgreSQL 15 server (primary or replica) for the deterministic
// simulator. A pure state machine: it speaks protocol v3 server-side over bytes handed in by the
// network glue, takes the time as a parameter, draws no randomness of its own, and never lets
// hash order decide anything. SQL is the dialect of sim/sql_dialect.h over sim/kv_store.h.
//
// The glue's contract: after any call, drain every session in SessionsWithOutput() with
// TakeOutput() and close those whose WantsClose() is true once their output is sent; call
// Tick(now) when NextDeadline() is reached.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "core/base/types.h"
#include "sim/kv_store.h"

namespace switchyard::sim {

enum class NodeRole { kPrimary, kReplica };
enum class NodeAuth { kTrust, kMd5, kScramSha256 };

struct NodeLimits {
  size_t max_connections = 100;  // sessions past startup; more get FATAL 53300
  size_t sessions_max = 1000;    // connections of any kind (cancel requests included)
  size_t message_size_max = size_t{1} << 20;
  // Bytes received and not yet processed (a paused node queues): past this, FATAL 53200.
  size_t pending_input_bytes_max = size_t{16} << 20;
  size_t prepared_statements_max = 1000;
  size_t portals_max = 1000;
  size_t listens_max = 1000;
  size_t savepoints_max = 1000;
  size_t notifications_pending_max = 10000;  // per session; beyond, the oldest are dropped
  size_t rows_max = 100000;                  // rows in kv; past this, 53100 (disk full)
  size_t key_bytes_max = 2048;
  size_t value_bytes_max = size_t{1} << 20;
  size_t copy_in_bytes_max = size_t{16} << 20;
  size_t transaction_write_statements_max = 100000;  // past this, 54000
  size_t wal_records_max = size_t{1} << 20;
};

struct NodeOptions {
  std::string name = "pg";
  NodeRole role = NodeRole::kPrimary;
  NodeAuth auth = NodeAuth::kTrust;
  // user -> password (nullopt: none set). Empty map: under trust every user name exists.
  std::map<std::string, std::optional<std::string>, std::less<>> users;
  // Databases that exist; empty: any name does.
  std::set<std::string, std::less<>> databases;
  // Seeds pids' secrets, SCRAM nonces and salts, MD5 salts: derived from (seed, counter).
  uint64_t seed = 0;
  // If set, every random byte comes from here instead (e.g. the simulator's decision source).
  std::function<void(char* out, size_t n)> random_bytes;
  int scram_iterations = 4096;
  std::string server_version = "15.0 (switchyard-sim)";
  int32_t first_pid = 10000;
  NodeLimits limits;
  // Called with the text of every Query and Parse message a logged-in session receives, before
  // it is processed (skipped or not): oracles that check where statements were sent watch it.
  std::function<void(uint64_t session_id, std::string_view sql)> on_query;
};

// One session, as oracles and tests see it.
struct SessionView {
  uint64_t id = 0;
  int32_t pid = 0;
  bool authenticated = false;
  std::string user;
  std::string database;
  char transaction_status = 'I';  // what ReadyForQuery would say now
  bool running = false;           // a statement is executing (sleeping, slow, or waiting)
  std::map<std::string, std::string> settings;   // session-level SETs that differ from defaults
  std::vector<std::string> prepared_statements;  // named ones, sorted
  std::vector<std::string> listens;              // sorted
};

struct NodeCounters {
  uint64_t sessions_opened = 0;
  uint64_t statements = 0;  // statements started (each of a multi-statement Query counts)
  uint64_t errors = 0;      // ErrorResponses sent, FATAL included
  uint64_t commits = 0;     // transactions committed with at least one row change
  uint64_t rollbacks = 0;
  uint64_t read_only_refusals = 0;  // 25006 for a write on a replica or read-only transaction
  uint64_t cancels_received = 0;
  uint64_t cancels_applied = 0;  // a running statement was cancelled
  uint64_t protocol_errors = 0;  // FATAL 08P01
  uint64_t notifications_dropped = 0;
};

namespace internal {
struct NodeState;
}

class PgNode {
 public:
  explicit PgNode(NodeOptions options);
  ~PgNode();
  PgNode(const PgNode&) = delete;
  PgNode& operator=(const PgNode&) = delete;

  // --- Connections (ids are the glue's; each is used once) ---
  // A TCP connection arrived. On a node that is down it is refused: WantsClose at once.
  void Open(uint64_t session_id, Instant now);
  void Receive(uint64_t session_id, std::string_view bytes, Instant now);
  // The peer closed its end. What it sent before is still processed (a statement already
  // received runs and commits, as on a real server), then the session ends.
  void Close(uint64_t session_id, Instant now);
  std::string TakeOutput(uint64_t session_id);
  // After its output: close the connection (FATAL sent, Terminate, cancel request done, node
  // down). Also true for a session id the node does not know.
  bool WantsClose(uint64_t session_id) const;
  // Sessions with output to take or a close to carry out, in id order.
  std::vector<uint64_t> SessionsWithOutput() const;
  // The next time something happens by itself (pg_sleep ends, a slow statement finishes, a lock
  // wait times out); nullopt when nothing is scheduled, or the node is paused or down.
  std::optional<Instant> NextDeadline() const;
  void Tick(Instant now);

  // --- Faults ---
  // Stops dead: every session is gone without a word (the glue resets their connections),
  // uncommitted work is lost, committed data and the WAL stay.
  void Crash();
  // Up again after Crash or Shutdown, with no sessions; role and data as they were.
  void Restart(Instant now);
  // Fast shutdown: every session gets FATAL 57P01 and the node goes down.
  void Shutdown(Instant now);
  // A paused node reads nothing and answers nothing (bytes queue up) until unpaused.
  void Pause(bool paused, Instant now);
  // Every statement takes this much longer before it runs.
  void SetSlowness(int64_t extra_us_per_statement);
  // pg_terminate_backend: FATAL 57P01 to that session, which then closes.
  void TerminateSession(uint64_t session_id, Instant now);

  // --- Roles and replication ---
  // A replica applies `upstream`'s WAL after its own position, up to `upto_lsn` (the simulator
  // chooses the lag). Fails, applying nothing, if this node is not a replica, is down or
  // paused, or diverged from the upstream's history (then RebuildAsReplicaOf).
  absl::Status ReplicateFrom(const PgNode& upstream, uint64_t upto_lsn, Instant now);
  // Replica -> primary on a new timeline (writes an end-of-recovery record).
  absl::Status Promote(Instant now);
  // Base backup of `upstream`: this node restarts (sessions gone) as its replica.
  void RebuildAsReplicaOf(const PgNode& upstream, Instant now);

  // --- Inspection, for the glue, oracles and tests ---
  const std::string& name() const;
  bool up() const;
  bool paused() const;
  bool in_recovery() const;
  int timeline() const;
  // pg_current_wal_insert_lsn() on a primary, pg_last_wal_replay_lsn() on a replica.
  uint64_t lsn() const;
  const KvStore& store() const;
  std::vector<uint64_t> SessionIds() const;
  std::optional<SessionView> InspectSession(uint64_t session_id) const;
  const NodeCounters& counters() const;
  // Always-on consistency checks of sessions, transactions, locks and the store.
  void CheckInvariants() const;

 private:
  std::unique_ptr<internal::NodeState> state_;
};

}  // namespace switchyard::sim
