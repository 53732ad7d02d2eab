// SessionHistory: the session state a client builds up (SET, prepared statements, LISTEN) that
// must follow it to any server connection it is moved to, and the reasons it cannot be moved at
// all (DESIGN.md section 4). The unit reports every client message it forwards and every server
// reply; the history answers with what a server connection lacks (Plan).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/route/statement.h"

namespace switchyard {

struct SessionHistoryOptions {
  // Replayable entries (settings, prepared statements, channels) plus the changes and savepoints
  // of the open transaction. Past either bound the client is pinned (Pin::kOverflow).
  size_t entries_max = 1000;
  size_t bytes_max = size_t{1} << 20;
  // Forwarded client messages still waiting for their server reply (and their bytes, which count
  // against bytes_max separately). Past it the client is pinned too.
  size_t replies_max = 4096;
};

// Why a client cannot be moved to another server connection (a bit set; see pinned()).
enum class Pin : uint32_t {
  kTempTable = 1u << 0,             // CREATE TEMP ...: until DISCARD TEMP / DISCARD ALL commits
  kAdvisoryLock = 1u << 1,          // session advisory lock: until DISCARD ALL
  kWithHoldCursor = 1u << 2,        // DECLARE ... WITH HOLD: until DISCARD ALL
  kSessionAuthorization = 1u << 3,  // SET/RESET SESSION AUTHORIZATION: until DISCARD ALL
  kOverflow = 1u << 4,              // the history outgrew its bounds: for good
  kUntracked = 1u << 5,             // replies no longer match what we know was sent: for good
};
inline constexpr uint32_t kPinAll = (1u << 6) - 1;
// "temp_table,advisory_lock" for logs; "" for none.
std::string PinNames(uint32_t pins);

// A prepared statement as the client made it.
struct PreparedStatement {
  enum class Origin : uint8_t { kSql, kProtocol };
  Origin origin = Origin::kSql;
  std::string text;                  // kSql: the whole PREPARE statement; kProtocol: the query
  std::vector<uint32_t> param_oids;  // kProtocol only
  uint64_t seq = 0;                  // when it was made (orders replay; tells versions apart)
};

// What one server connection already has of this client's session state. The unit keeps one per
// server connection it uses for the client. A new connection, or one from the pool (which resets
// with DISCARD ALL), starts from AppliedState{}. It is meaningful only to the SessionHistory that
// produced it (Plan().after, Current(), MarkApplied()).
class AppliedState {
 public:
  AppliedState() = default;
  bool empty() const { return settings_.empty() && prepared_.empty() && listens_.empty(); }
  size_t settings_count() const { return settings_.size(); }
  size_t prepared_count() const { return prepared_.size(); }
  size_t listens_count() const { return listens_.size(); }
  friend bool operator==(const AppliedState&, const AppliedState&) = default;

 private:
  friend class SessionHistory;
  // The history's version() this state equals in settings and prepared statements.
  uint64_t version_ = 0;
  std::map<std::string, std::string, std::less<>> settings_;  // name -> value SQL text
  std::map<std::string, uint64_t, std::less<>> prepared_;     // name -> PreparedStatement::seq
  std::set<std::string, std::less<>> listens_;
};

// A protocol Parse the unit sends (under the client's name; renaming is the unit's business).
struct ParseRequest {
  std::string name;
  std::string query;
  std::vector<uint32_t> param_oids;
  friend bool operator==(const ParseRequest&, const ParseRequest&) = default;
};

// What to send a server connection, before the client's next statement, to give it the client's
// committed session state: first `statements` as one simple Query (QueryText()), then `parses`
// (each a Parse; one Sync after the last). Any error while replaying means the connection cannot
// serve the client. `after` is the connection's state once every reply came back.
struct ReplayPlan {
  // In order: RESETs (role first), SETs in the order the client last made them, DEALLOCATEs,
  // SQL PREPAREs in the order made, UNLISTENs, LISTENs. SETs come first because PostgreSQL
  // (9.3+) re-parses a prepared statement with the current search_path whenever it changed
  // since, so names resolve as they would on the client's old connection. Only type names in
  // `PREPARE p (type)` are resolved once; here that is with the client's current search_path.
  std::vector<std::string> statements;
  std::vector<ParseRequest> parses;  // in the order the client made them
  AppliedState after;
  bool empty() const { return statements.empty() && parses.empty(); }
  // statements as one multi-statement string. PostgreSQL runs it as one implicit transaction.
  std::string QueryText() const;
};

// LISTEN cannot run on a hot standby: replicas get everything but the channels.
enum class ListenReplay : uint8_t { kInclude, kExclude };

class SessionHistory {
 public:
  explicit SessionHistory(SessionHistoryOptions options = {});

  // ---- Client messages, as the unit forwards them to the server (statements the unit answers
  // itself, such as an intercepted DEALLOCATE ALL, are reported with the replies it makes up).
  void OnQuery(const route::QueryInfo& info);
  // Every Parse, named or not; a named one counts once ParseComplete comes.
  void OnParse(std::string_view name, std::string_view query, std::span<const uint32_t> param_oids);
  // Execute of a portal; `info` classifies the statement the portal was bound from.
  void OnExecute(const route::QueryInfo& info);
  // Close 'S' (statement) or 'P' (portal).
  void OnClose(char kind, std::string_view name);
  void OnSync();
  void OnFunctionCall();
  // Bind, Describe and Flush need no report: their replies decide nothing here.

  // ---- Server replies to the client's own messages (not to replay or reset traffic).
  void OnParseComplete();
  void OnCloseComplete();
  void OnCommandComplete();  // CommandComplete, and PortalSuspended
  void OnEmptyQueryResponse();
  void OnErrorResponse();  // an ERROR; a FATAL is OnServerLost
  void OnReadyForQuery(char status);
  // A ParameterStatus the server sent while running the client's statements. Some settings
  // merge with the value they replace (SET datestyle TO dmy keeps the output style), so for a
  // parameter the server reports, the committed value to replay is the one it reported last.
  void OnParameterStatus(std::string_view name, std::string_view value);
  // The server connection is gone: whatever was in flight or uncommitted did not happen.
  void OnServerLost();

  // ---- What the rest of the unit asks.
  // Bit set of Pin: non-zero means the client must stay on its server connection.
  uint32_t pinned() const { return pins_; }
  bool pinned_by(Pin pin) const { return (pins_ & static_cast<uint32_t>(pin)) != 0; }
  // False once pinned by kOverflow or kUntracked: the state below is frozen from then on.
  bool tracking() const { return tracking_; }
  // The value a parameter has in the client's session now (SQL text as the client wrote it, e.g.
  // "'serializable'"), counting uncommitted SETs of the open transaction; nullopt when the client
  // never set it or reset it (then the startup or server default applies).
  std::optional<std::string> Value(std::string_view name) const;
  // The client listens on some channel (committed LISTENs).
  bool listens() const { return !listens_.empty(); }
  const PreparedStatement* Prepared(std::string_view name) const;
  // Changes whenever committed settings or prepared statements change.
  uint64_t version() const { return version_; }
  size_t entries() const;
  size_t bytes() const { return bytes_; }
  // Read-only views of the committed state, for capture snapshots (core/unit_trace.cc): the
  // settings as (name, value SQL text) in the order they were last made, and the prepared
  // statements by name.
  std::vector<std::pair<std::string, std::string>> CommittedSettings() const {
    std::vector<const std::pair<const std::string, Setting>*> sorted;
    for (const auto& entry : settings_) sorted.push_back(&entry);
    std::sort(sorted.begin(), sorted.end(),
              [](const auto* a, const auto* b) { return a->second.seq < b->second.seq; });
    std::vector<std::pair<std::string, std::string>> out;
    for (const auto* entry : sorted) out.emplace_back(entry->first, entry->second.value);
    return out;
  }
  const std::map<std::string, PreparedStatement, std::less<>>& CommittedPrepared() const {
    return prepared_;
  }

  // ---- Replay. Cheap when nothing changed: compare versions first. Only the replayable state
  // is planned; a pinned client must not be moved (its plan would lack what pinned it).
  bool NeedsReplay(const AppliedState& server, ListenReplay listens = ListenReplay::kInclude) const;
  ReplayPlan Plan(const AppliedState& server, ListenReplay listens = ListenReplay::kInclude) const;
  // The committed state, as a server that has all of it would hold it.
  AppliedState Current() const;
  // Call at each ReadyForQuery of a server connection that carried the client's own traffic
  // (having been brought up to date by Plan before it did): it now holds the committed state.
  void MarkApplied(AppliedState* server) const;

  // A prepared statement the proxy acknowledged without a server (transaction pooling) that a
  // server then refused to parse: it never existed. Erased from the committed state and from
  // `server` (the connection that refused it).
  void ForgetPrepared(std::string_view name, AppliedState* server);
  void CheckInvariants() const;

 private:
  // Where the client's transaction stands, mirroring PostgreSQL's transaction block states.
  enum class Block : uint8_t {
    kIdle,      // no transaction
    kImplicit,  // statements of one Query string or one Sync batch, outside BEGIN
    kExplicit,  // after BEGIN
    kFailed,    // after an error inside BEGIN: only ROLLBACK [TO] / COMMIT get through
  };
  // A change to the transactional part of the state (settings, channels, the temp-table pin),
  // kept until its transaction ends.
  struct Change {
    enum class Kind : uint8_t {
      kSet,
      kReset,
      kResetAll,
      kDiscardAll,
      kListen,
      kUnlisten,
      kUnlistenAll,
      kUnpinTemp
    };
    Kind kind = Kind::kSet;
    std::string name;
    std::string value;
  };
  struct Setting {
    std::string value;
    uint64_t seq = 0;
  };
  // A forwarded client message waiting for its server reply.
  struct Expect {
    enum class Kind : uint8_t { kStatement, kQueryEnd, kParse, kClose, kSync };
    Kind kind = Kind::kStatement;
    bool from_query = false;  // part of a simple Query or FunctionCall, not of a Sync batch
    bool unknown = false;     // kStatement the classifier could not make out
    bool transaction_local = false;
    bool close_statement = false;  // kClose 'S'
    route::TxnControl txn = route::TxnControl::kNone;
    std::vector<route::SessionEffect> effects;
    std::string name;                  // kParse, kClose
    std::string query;                 // kParse
    std::vector<uint32_t> param_oids;  // kParse
  };

  static Expect StatementExpect(const route::StatementInfo& statement, bool from_query);
  static size_t Bytes(const Expect& expect);
  void Enqueue(Expect expect);
  bool FrontIs(Expect::Kind kind) const;
  Expect PopFront();
  void StopTracking(Pin reason);
  void CheckBounds();

  void ApplyStatement(const Expect& statement);
  void ApplyEffect(const route::SessionEffect& effect, bool transaction_local);
  void ApplyTxnControl(route::TxnControl txn);
  void ApplyError(route::TxnControl failed);
  // False for names that are never recorded (pinning or ignoring them instead).
  bool Recordable(const std::string& name);
  void RecordSet(const std::string& name, const std::string& value);
  void RecordReset(const std::string& name);
  void DiscardAll();
  void Release();
  void RollbackTo();
  void Commit();
  void Rollback();
  void ApplyCommitted(const Change& change);

  void PushChange(Change change);
  void TruncateChanges(size_t size);
  void PutSetting(const std::string& name, const std::string& value);
  void EraseSetting(std::string_view name);
  void PutPrepared(const std::string& name, PreparedStatement statement);
  void ErasePrepared(std::string_view name);
  void ClearPrepared();
  void PutListen(const std::string& channel);
  void EraseListen(std::string_view channel);
  void ClearListens();

  void PlanSettings(const AppliedState& server, std::vector<std::string>* statements) const;
  void PlanPrepared(const AppliedState& server, ReplayPlan* plan) const;
  void PlanListens(const AppliedState& server, std::vector<std::string>* statements) const;
  size_t RecountBytes() const;

  SessionHistoryOptions options_;
  bool tracking_ = true;
  uint32_t pins_ = 0;
  uint64_t version_ = 0;  // also the clock that hands out Setting/PreparedStatement seqs

  // Committed state.
  std::map<std::string, Setting, std::less<>> settings_;
  std::map<std::string, PreparedStatement, std::less<>> prepared_;
  std::set<std::string, std::less<>> listens_;

  // The open transaction.
  Block block_ = Block::kIdle;
  std::vector<Change> changes_;
  // changes_.size() at each SAVEPOINT that may still be open, oldest first. statement.h carries
  // no savepoint name, so with more than one open the target of RELEASE / ROLLBACK TO is unknown:
  // the stack is kept as a superset of PostgreSQL's (RELEASE pops only the newest), and a
  // ROLLBACK TO whose candidates would undo different changes makes the transaction uncertain.
  std::vector<size_t> savepoints_;
  bool uncertain_ = false;  // committing it stops tracking
  bool temp_pinned_in_transaction_ = false;

  // Replies owed, in the order the server sends them.
  std::deque<Expect> queue_;
  size_t queued_bytes_ = 0;
  // An error in a Sync batch whose Sync has not been sent yet: the server ignores everything
  // until that Sync.
  bool discard_until_sync_ = false;

  size_t bytes_ = 0;  // of settings_, prepared_, listens_ and changes_
  // Reported values (lower-cased names) since the last ReadyForQuery that left the session
  // idle; bounded by the few parameters PostgreSQL reports.
  std::map<std::string, std::string, std::less<>> reported_;
};

}  // namespace switchyard
