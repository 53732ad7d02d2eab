// The simulator's reference model of what PostgreSQL answers (DESIGN.md section 7): the committed
// history of table kv as the simulated node's WAL tells it, re-executed statement by statement,
// and the per-session state (transaction status, own uncommitted writes, SET/SET LOCAL values)
// a client's statements move through. Oracles judge every answer against it.
//
// Commit order comes from the node's applied-write log, so the model never guesses how
// concurrent sessions interleaved. A statement runs at one instant between the moment its client
// sent it and the moment the answer arrived; in WAL positions (records committed so far) that is
// an interval [sent_pos, answer_pos], and an answer is right if the committed state at some
// position of that interval (overlaid with the session's own uncommitted writes) gives it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/base/types.h"
#include "sim/kv_store.h"

namespace switchyard::pg {
struct Frame;
}  // namespace switchyard::pg

namespace switchyard::sim {

// A row of kv as the model sees it: its v, or nullopt when the row does not exist. The workload
// never writes SQL NULL.
using RowState = std::optional<std::string>;

// What a workload statement does.
enum class Op : uint8_t {
  kRead,         // SELECT v FROM kv WHERE k = 'key'
  kScan,         // SELECT k, v FROM kv
  kInsert,       // INSERT INTO kv VALUES ('key', 'token')
  kUpdate,       // UPDATE kv SET v = 'token' WHERE k = 'key'
  kDelete,       // DELETE FROM kv WHERE k = 'key'
  kBegin,        // BEGIN
  kCommit,       // COMMIT
  kRollback,     // ROLLBACK
  kSet,          // SET name = 'value'
  kSetLocal,     // SET LOCAL name = 'value'
  kShow,         // SHOW name
  kSleep,        // SELECT pg_sleep(seconds)
  kLockingRead,  // SELECT v FROM kv WHERE k = 'key' FOR UPDATE: a read that must run on the primary
  kBatch,        // extended protocol: Parse/Bind/Describe/Execute per statement, then one Sync
};
std::string_view OpName(Op op);

// One request a simulated client sends: a simple-protocol Query with one statement, or (kBatch)
// an extended-protocol Sync batch of several.
struct Request {
  uint64_t seq = 0;  // 1, 2, ... within a client session
  Op op = Op::kRead;
  std::string key;         // kv key (reads and writes)
  std::string value;       // the unique token an INSERT/UPDATE writes; SET's value
  std::string guc;         // SET/SHOW parameter name
  std::string sql;         // as the node's WAL records it (without the routing tag)
  bool read_only = false;  // kBegin: BEGIN READ ONLY
  // May run on a replica (DESIGN.md section 5): a read outside a read-write transaction. False
  // for writes, locking reads, and everything in a read-write transaction or in a batch that
  // writes: those must run on the primary, so their answers are judged against the primary's
  // history without staleness.
  bool replica_ok = false;
  std::vector<Request> statements;  // kBatch: its statements, in order
  Instant sent_at;
  uint64_t sent_pos = 0;  // positions of the history (KvHistory) when it was sent
  bool cancel_sent = false;

  bool IsWrite() const { return op == Op::kInsert || op == Op::kUpdate || op == Op::kDelete; }
  bool IsRead() const { return op == Op::kRead || op == Op::kLockingRead; }
  bool IsTransactionExit() const { return op == Op::kCommit || op == Op::kRollback; }
  // kBatch: whether any statement writes.
  bool BatchWrites() const;
};

// An ErrorResponse as a client saw it.
struct ErrorInfo {
  std::string severity;  // ERROR, FATAL, PANIC
  std::string sqlstate;
  std::string message;
  bool fatal = false;
};

// How an answer says the proxy lost (or never had) a server connection (DESIGN.md section 5).
enum class Loss : uint8_t {
  kNone,
  kNotRun,    // 08006 "switchyard: ...": no server took the statement; it did not run
  kInFlight,  // 08006: the connection was lost with the statement sent; it may have run
  kCommit,    // 08007: lost during COMMIT; the transaction's outcome is unknown
};
std::string_view LossName(Loss loss);

// One statement's answer within a Sync batch: its rows and its CommandComplete tag.
struct Part {
  bool described = false;  // RowDescription (or NoData) seen
  std::vector<std::vector<std::optional<std::string>>> rows;
  std::string tag;  // "" until its CommandComplete
};

// Everything that answered one request, up to and including its ReadyForQuery.
struct Answer {
  bool described = false;                                     // RowDescription seen
  std::vector<std::vector<std::optional<std::string>>> rows;  // DataRows, in order
  std::vector<std::string> tags;                              // CommandComplete tags, in order
  std::vector<ErrorInfo> errors;                              // ErrorResponses, in order
  int empty_queries = 0;                                      // EmptyQueryResponse
  std::vector<Part> parts;  // kBatch: one per statement answered, in order
  // A message out of place (a DataRow before RowDescription, anything after a completion...).
  std::string malformed;
  char status = 0;  // ReadyForQuery's transaction status; 0 while incomplete
  Instant at;
  uint64_t pos = 0;  // WAL records committed when it arrived

  // The rows the statement changed, from an INSERT/UPDATE/DELETE tag; -1 when there is none.
  int64_t Affected() const;
  const ErrorInfo* error() const { return errors.empty() ? nullptr : &errors.front(); }
  // Whether (and how) the last error says a server connection was lost or never had (the
  // server may have failed the statement just before).
  Loss LossKind() const;

  // Rows an answer keeps at most: more is malformed (the workload's table is never that big).
  static constexpr size_t kRowsMax = 100'000;
  // Takes one message of a query's answer other than an ErrorResponse or a notice (the caller
  // keeps those); a message out of place is noted in `malformed`. Returns ReadyForQuery's status
  // ('?' when it does not decode) once that arrives, which completes the answer.
  std::optional<char> Note(const pg::Frame& frame);
};

// A write statement as the workload spells it, parsed back from a WAL record.
struct WriteStatement {
  Op op = Op::kInsert;
  std::string key;
  std::string value;  // "" for DELETE
};
// Parses the three write forms of Op; nullopt for anything else.
std::optional<WriteStatement> ParseWriteStatement(std::string_view sql);
// The SQL of each write form (the parser's inverse).
std::string InsertSql(std::string_view key, std::string_view value);
std::string UpdateSql(std::string_view key, std::string_view value);
std::string DeleteSql(std::string_view key);

// The committed history of kv, rebuilt from the primaries' WAL and re-executed as it is read.
//
// Positions count the steps of this history, 0 being the empty table. A step is a record the
// current primary committed (or an end-of-recovery marker), or a fork: after a failover the new
// primary may lack a tail of the old primary's records (replication is asynchronous), and the
// fork step puts the rows those lost records changed back to their state at the fork point. So
// the history stays one line of states, in the order clients could see them, lost writes
// included while they were visible.
class KvHistory {
 public:
  struct Record {
    std::vector<std::string> statements;  // empty for markers and forks
    uint64_t origin_session = 0;
    uint64_t end_lsn = 0;
    int timeline = 0;
    std::map<std::string, RowState> changes;
    bool lost = false;  // a later failover dropped it
    bool fork = false;  // a fork step, not a record of any node
  };

  // Reads the records `store` (the current primary's) committed since the last call; a store
  // whose history is not an extension of the current line (a promoted replica's) forks it
  // first. Each record is re-executed against the model's table: every statement must be a
  // workload write that changed a row (an INSERT of an absent key, an UPDATE or DELETE of a
  // present one), and the record's row changes must be exactly what the statements produce.
  // A record that is not is kept for TakeProblems().
  void Ingest(const KvStore& store);
  // Descriptions of the records that Ingest() could not explain, since the last call.
  std::vector<std::string> TakeProblems();

  uint64_t position() const { return records_.size(); }
  const std::vector<Record>& records() const { return records_; }
  uint64_t forks() const { return forks_; }
  RowState ValueAt(std::string_view key, uint64_t position) const;
  // Whether `key` held `state` at some position in [from, to].
  bool Saw(std::string_view key, uint64_t from, uint64_t to, const RowState& state) const;
  // Whether `key` existed (or not) at some position in [from, to].
  bool SawPresence(std::string_view key, uint64_t from, uint64_t to, bool present) const;
  std::map<std::string, std::string> TableAt(uint64_t position) const;
  // Whether the whole table, with `overlay` (a session's own writes) laid over it, equalled
  // `table` at some position in [from, to].
  bool SawTable(uint64_t from, uint64_t to, const std::map<std::string, std::string>& table,
                const std::map<std::string, RowState>& overlay = {}) const;
  // The first record in [from, to) holding exactly `statements`, in order.
  std::optional<uint64_t> FindRecord(const std::vector<std::string>& statements, uint64_t from,
                                     uint64_t to) const;
  // The position right after the last record of the current line whose end LSN is at most
  // `lsn`: a node that replayed up to `lsn` holds at least that state. 0 when there is none.
  uint64_t PositionOfLsn(uint64_t lsn) const;
  // The same on the line of `store` (a primary's, maybe an old one): after the last record of
  // it, up to `lsn`, that the history has.
  uint64_t PositionOfLsn(const KvStore& store, uint64_t lsn) const;
  const std::map<std::string, std::string>& table() const { return table_; }

 private:
  struct Version {
    uint64_t position = 0;  // the state holds from this position on
    RowState state;
  };
  std::string ReExecute(const WalRecord& wal);
  // The current line keeps its first `keep` records; the rest are lost.
  void Fork(size_t keep);
  void Append(Record record);

  std::vector<Record> records_;
  // The records of the current primary's WAL, as indexes into records_.
  std::vector<uint64_t> line_;
  std::map<std::string, std::string> table_;  // at position()
  std::map<std::string, std::vector<Version>, std::less<>> versions_;
  // Statements joined with '\n' -> record indexes, for FindRecord.
  std::map<std::string, std::vector<uint64_t>> by_statements_;
  std::map<std::pair<int, uint64_t>, uint64_t> by_lsn_;  // (timeline, end LSN) -> record
  std::vector<std::string> problems_;
  uint64_t forks_ = 0;
};

std::string JoinStatements(const std::vector<std::string>& statements);

// What one client session should see of its own state, as PostgreSQL keeps it.
class SessionModel {
 public:
  // `defaults`: the value each parameter the workload uses has before any SET (what RESET
  // gives back).
  explicit SessionModel(std::map<std::string, std::string> defaults)
      : defaults_(std::move(defaults)) {}

  // 'I' idle, 'T' in a transaction, 'E' in a failed transaction.
  char status() const { return status_; }
  // What SHOW name should print now.
  std::string Show(std::string_view name) const;
  // Rows this session's open transaction changed: key -> its state for this session.
  const std::map<std::string, RowState>& own_writes() const { return own_writes_; }
  // The statements of the open transaction that changed a row, in order: its WAL record.
  const std::vector<std::string>& tx_statements() const { return tx_statements_; }
  // The status ReadyForQuery must report after `request` got `answer`.
  char StatusAfter(const Request& request, const Answer& answer) const;
  // Moves the model past an answer that was judged (PostgreSQL's rules, not the answer's
  // ReadyForQuery, decide the transaction status).
  void Apply(const Request& request, const Answer& answer);

 private:
  void EndTransaction(bool commit);

  std::map<std::string, std::string> defaults_;
  char status_ = 'I';
  std::map<std::string, std::string> session_;
  std::map<std::string, std::string> local_;
  std::map<std::string, std::string> session_at_begin_;
  std::map<std::string, RowState> own_writes_;
  std::vector<std::string> tx_statements_;
};

}  // namespace switchyard::sim
