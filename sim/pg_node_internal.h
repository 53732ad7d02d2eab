// The inside of a simulated PostgreSQL node: sessions, transactions, portals, row locks, and the
// functions the pg_*.cc files share. Private to sim/; PgNode (pg_node.h) is the interface.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/auth/scram.h"
#include "core/base/types.h"
#include "core/protocol/framing.h"
#include "core/protocol/messages.h"
#include "sim/kv_store.h"
#include "sim/pg_eval.h"
#include "sim/pg_gucs.h"
#include "sim/pg_node.h"
#include "sim/sql_dialect.h"

namespace switchyard::sim::internal {

// How long a lock waiter waits before it looks for a deadlock (PostgreSQL's deadlock_timeout).
inline constexpr int64_t kDeadlockTimeoutUs = 1'000'000;
// pg_sleep's longest nap, so a typo cannot schedule an event centuries away.
inline constexpr int64_t kSleepUsMax = int64_t{24} * 3600 * 1'000'000;

using Row = std::vector<Value>;
using KeySet = std::set<std::string, std::less<>>;
using WriteSet = std::map<std::string, RowChange, std::less<>>;

// What running one statement produced.
struct ExecResult {
  std::optional<SqlError> error;
  bool fatal = false;                // the session ends after the error
  std::vector<std::string> notices;  // encoded NoticeResponse messages, sent before the result
  bool returns_rows = false;
  std::vector<Column> columns;
  std::vector<Row> rows;
  std::string tag;
  bool empty = false;  // the empty query: EmptyQueryResponse
  // Control: the statement could not finish now.
  std::optional<std::string> blocked_on;  // a row lock another transaction holds
  int64_t sleep_us = 0;                   // pg_sleep: deliver the result this much later
  enum class Copy { kNone, kIn, kOut };
  Copy copy = Copy::kNone;
  bool copy_key_first = true;
};

struct PreparedStatement {
  std::shared_ptr<const Statement> statement;
  std::vector<uint32_t> param_types;  // one per $n, inferred where not given
  bool from_sql = false;              // PREPARE rather than a protocol Parse
};

struct Portal {
  std::shared_ptr<const Statement> statement;
  std::vector<uint32_t> param_types;
  std::vector<Value> params;
  std::vector<int16_t> result_formats;
  bool ran = false;  // executed once: later Executes only hand out remaining rows
  ExecResult result;
  size_t next_row = 0;
};

struct Savepoint {
  std::string name;
  WriteSet writes;
  size_t write_statements = 0;
  size_t notifies = 0;
  size_t listen_ops = 0;
  Gucs::Snapshot gucs;
  KeySet locks;
};

struct ListenOp {
  bool listen = true;
  bool all = false;  // UNLISTEN *
  std::string channel;
};

struct Transaction {
  bool explicit_block = false;  // BEGIN was run; otherwise an implicit transaction
  bool multi = false;           // an implicit block: a multi-statement Query or a pipeline
  bool failed = false;          // 'E': only ROLLBACK (TO) and COMMIT are accepted
  bool read_only = false;
  std::string isolation;
  WriteSet writes;  // this transaction's row changes, applied at commit
  std::vector<std::string> write_statements;
  std::vector<std::pair<std::string, std::string>> notifies;  // (channel, payload)
  std::vector<ListenOp> listen_ops;
  Gucs::Snapshot gucs_at_start;
  std::vector<Savepoint> savepoints;
  KeySet locks;  // row locks held until the transaction ends
  int statements = 0;
};

struct Running {
  enum class Origin { kSimple, kExtended, kCopyIn };
  enum class Phase { kQueued, kLockWait, kSleeping };
  Origin origin = Origin::kSimple;
  Phase phase = Phase::kQueued;
  std::shared_ptr<const Statement> statement;
  std::vector<uint32_t> param_types;
  std::vector<Value> params;
  std::string portal;                      // kExtended
  int32_t max_rows = 0;                    // kExtended
  std::vector<Row> copy_rows;              // kCopyIn: the rows COPY FROM received
  Instant ready_at;                        // runs no earlier (the node's slowness)
  std::optional<Instant> timeout_at;       // statement_timeout
  std::optional<Instant> lock_timeout_at;  // lock_timeout, while waiting
  Instant deadlock_check_at;
  bool deadlock_checked = false;  // looked once, as PostgreSQL's deadlock_timeout does
  std::string waiting_key;
  Instant done_at;  // kSleeping: the result goes out then
  ExecResult result;
  bool cancel_requested = false;
};

struct CopyInState {
  Running::Origin origin = Running::Origin::kSimple;  // where the COPY statement came from
  std::shared_ptr<const Statement> statement;
  std::string portal;
  bool key_first = true;
  std::string data;
};

struct Session {
  enum class Phase { kStartup, kAuthSasl, kAuthSaslContinue, kAuthMd5, kReady, kCopyIn, kDone };
  explicit Session(uint64_t session_id, size_t message_size_max)
      : id(session_id), reader(pg::Direction::kFrontend, message_size_max) {}

  uint64_t id = 0;
  Phase phase = Phase::kStartup;
  pg::FrameReader reader;
  std::string output;
  bool peer_closed = false;  // Close() was called: finish what was received, then end
  bool counted = false;      // holds a max_connections slot
  int32_t pid = 0;
  int32_t secret = 0;
  std::string user;
  std::string database;
  pg::Parameters startup_parameters;
  std::unique_ptr<auth::ScramServer> scram;
  std::string md5_salt;

  Gucs gucs;
  std::map<std::string, std::string, std::less<>> reported;  // ParameterStatus last sent, by name
  // What `reported` was last brought up to date from: (gucs.version(), node.in_recovery).
  std::optional<std::pair<uint64_t, bool>> reported_from;
  std::optional<Transaction> tx;
  std::map<std::string, PreparedStatement> prepared;  // "" is the unnamed statement
  std::map<std::string, Portal> portals;              // "" is the unnamed portal
  bool skip_until_sync = false;
  std::deque<std::shared_ptr<const Statement>> query;  // rest of a simple Query
  bool in_query = false;                               // a simple Query is being run
  bool query_multi = false;                            // ... of several statements
  std::optional<Running> running;
  std::optional<CopyInState> copy_in;
  std::set<std::string> listens;
  std::deque<pg::NotificationResponse> notifications;
  bool awaiting_command = false;  // ReadyForQuery 'I' sent and nothing read since
};

struct NodeState {
  explicit NodeState(NodeOptions o);

  NodeOptions options;
  bool up = true;
  bool paused = false;
  bool in_recovery = false;
  int timeline = 1;
  std::optional<uint64_t> replay_lsn;  // set once the node has replayed WAL
  int64_t slowness_us = 0;
  KvStore store;
  std::map<uint64_t, Session> sessions;
  std::map<int32_t, uint64_t> pid_to_session;
  std::map<std::string, uint64_t, std::less<>> row_locks;  // key -> session holding it
  std::set<uint64_t> runnable;  // sessions to pump again: a lock they wait for was freed
  int32_t next_pid = 0;
  uint64_t random_counter = 0;
  std::map<std::string, auth::ScramVerifier, std::less<>> verifiers;
  NodeCounters counters;
};

// ---------------------------------------------------------------- pg_node.cc
std::string RandomBytes(NodeState& node, size_t n);
// Runs a session as far as its input and state allow.
void Pump(NodeState& node, Session& session, Instant now);
// Pumps sessions marked runnable until none are.
void RunPending(NodeState& node, Instant now);
// Ends a session: rolls back, forgets its listens and pid; it closes after its output.
void EndSession(NodeState& node, Session& session);
// pg_terminate_backend: FATAL 57P01, then the session ends.
void TerminateNow(NodeState& node, Session& session);
// A cancel for the session's running statement (acted on by the next RunPending); false if
// nothing is running.
bool RequestCancel(NodeState& node, Session& session);

// ---------------------------------------------------------------- pg_startup.cc
void HandleStartupPacket(NodeState& node, Session& session, const pg::StartupFrame& frame);
void HandleAuthMessage(NodeState& node, Session& session, const pg::Frame& frame);
// ParameterStatus for every reported parameter whose value the client has not seen yet.
void ReportParameters(NodeState& node, Session& session);

// ---------------------------------------------------------------- pg_protocol.cc
// Handles the next complete message; false when none is buffered.
bool ProcessOneMessage(NodeState& node, Session& session, Instant now);
// Starts the next statement of the simple Query being run, or ends the Query.
void RunNextQueryStatement(NodeState& node, Session& session, Instant now);
void SendError(NodeState& node, Session& session, const SqlError& error);
void SendFatal(NodeState& node, Session& session, std::string_view sqlstate,
               std::string_view message);
void SendReadyForQuery(NodeState& node, Session& session);
// A statement finished (or failed): send its result and move its Query, batch or COPY along.
void DeliverResult(NodeState& node, Session& session, Running running, ExecResult result,
                   Instant now);
// A cancel that arrives during COPY FROM STDIN: the COPY fails with 57014.
void CancelCopyIn(NodeState& node, Session& session);
// Sends pending notifications if the session is idle between transactions.
void FlushNotificationsIfIdle(Session& session);
std::string EncodeSqlError(std::string_view severity, const SqlError& error, char type = 'E');

// ---------------------------------------------------------------- pg_exec.cc
// Begins running a statement (queued behind the node's slowness) and advances it.
void StartStatement(NodeState& node, Session& session, Running running, Instant now);
// Moves the running statement on; true when it finished and was delivered.
bool AdvanceRunning(NodeState& node, Session& session, Instant now);
ExecResult Execute(NodeState& node, Session& session, const Statement& statement,
                   const std::vector<uint32_t>& param_types, const std::vector<Value>& params,
                   const std::vector<Row>* copy_rows, Instant now);

// ---------------------------------------------------------------- pg_txn.cc
void BeginImplicit(NodeState& node, Session& session, bool multi);
void CommitTransaction(NodeState& node, Session& session);
void RollbackTransaction(NodeState& node, Session& session);
// After a statement error: an explicit transaction fails ('E'), an implicit one rolls back.
void AbortAfterError(NodeState& node, Session& session);
// 'I', 'T' or 'E'.
char TransactionStatus(const Session& session);
// Takes the row lock on `key` for the session's transaction; the holder's id if another has it.
std::optional<uint64_t> TryLock(NodeState& node, Session& session, const std::string& key);
// The row as the session's transaction sees it (committed data plus its own changes).
std::optional<Value> Lookup(const NodeState& node, const Session& session, std::string_view key);
std::vector<std::pair<std::string, Value>> Scan(const NodeState& node, const Session& session);
// Whether `session`, waiting for a lock, waits (through other waiters) on itself.
bool InDeadlock(const NodeState& node, const Session& session);
std::optional<SqlError> DoSavepoint(NodeState& node, Session& session,
                                    const TransactionStmt& statement);
// Whether the transaction may still write: false on a replica or in a read-only transaction.
bool ReadOnlyNow(const NodeState& node, const Session& session);

}  // namespace switchyard::sim::internal
