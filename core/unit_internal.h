// Unit::Impl, shared by the files that implement it (not part of the core's interface):
//   unit.cc         dispatch, the client side, flow control, timers, the drain
//   unit_server.cc  server connections: checkout, login, replay, answers, reset, loss
//   unit_route.cc   batches, classification, the routing decision, read-your-writes, the
//                   answers the proxy gives itself after a loss (DESIGN.md section 5)
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "core/capture.h"
#include "core/proxy.h"
#include "core/route/cache.h"
#include "core/route/functions.h"
#include "core/route/statement.h"
#include "core/session/client_session.h"
#include "core/session/history.h"
#include "core/session/server_session.h"

namespace switchyard {

// ChooseNode's answer while a replica choice is on its way from the services.
inline constexpr NodeId kWaitForPick{0xffffffffu};

// A short-lived connection that carries one CancelRequest to a server. It stays open after the
// request is sent: the server closes it once it has signalled the backend, and until then the
// cancel may still hit whatever that backend runs next.
struct CancelConnection {
  ConnId conn;
  pg::CancelRequest request;
  Instant deadline;
  bool sent = false;
};

// A server connection the unit holds, to one node (at most one per node).
struct ServerSlot {
  NodeId node;
  std::unique_ptr<ServerSession> session;
  uint64_t sent = 0;  // bytes handed to the driver, and how many it flushed
  uint64_t flushed = 0;
  bool read_paused = false;
  // The session state this connection has, as far as the history knows (a fresh or pooled
  // connection has none: the pool resets with DISCARD ALL).
  AppliedState applied;
  // What the replay in flight will leave it with.
  std::optional<AppliedState> replaying;
  // The replay's ReadyForQuery groups in order: "" for the settings' Query or a group of
  // Parses, a statement's name for a Parse acknowledged without a server (sent alone, so an
  // error there is told apart). With how many ReadyForQuery came, and the Parses refused.
  std::vector<std::string> replay_groups;
  size_t replay_ready_seen = 0;
  std::vector<std::string> replay_refused;
  // The replay carries the load of the function table: its group, and the rows so far.
  std::optional<size_t> functions_group;
  std::unique_ptr<route::FunctionVolatility> functions_loading;
  std::optional<Instant> reset_deadline;
  // The reset finished but a cancel for this connection is still in flight: pooling it now
  // could let that cancel hit the next client's query.
  bool release_waits_for_cancel = false;
  uint64_t Pending() const { return sent - flushed; }
};

// One routing unit of client messages: a Query, a FunctionCall, or extended-protocol messages
// up to and including their Sync (DESIGN.md section 5).
struct Batch {
  std::string bytes;
  bool complete = false;  // its Query, FunctionCall or Sync is in `bytes`
  // Flushed before its Sync: it goes to the primary and streams (bytes that come later are
  // forwarded as they arrive).
  bool streaming = false;
  bool read_only = false;  // every statement may run on a replica
  bool commit = false;     // contains a COMMIT (a loss then means 08007)
  bool opens_transaction = false;
  bool rollback = false;       // its first statement is ROLLBACK/ABORT
  bool force_primary = false;  // a replica refused it once
  bool has_effects = false;
  bool cursor_operation = false;  // FETCH / MOVE / CLOSE: it goes where the cursor is
  // The statement of each Query and each Execute, in message order (for the history).
  std::vector<route::QueryInfo> queries;
  int retries = 0;
};

// A batch sent to a server, waiting for its ReadyForQuery.
struct SentBatch {
  Batch batch;
  NodeId node;
  bool answered = false;  // some byte of its answer reached the client
  bool counted = false;   // counted by PickReplica: owes a NodeDone
  // A replica refused it (25006) or cancelled it for a recovery conflict (40001) before its
  // answer started: the rest of the answer is swallowed and it goes to the primary.
  bool refused_by_replica = false;
  // From a replica: the answer's leading ParseComplete/BindComplete/descriptions, held back
  // until the answer really starts, so a refusal or a loss before then can still be retried.
  std::string held;
};

// Calls `each(type, payload, raw)` for every complete message in `bytes`.
template <typename F>
inline void ForEachMessage(std::string_view bytes, F each) {
  while (bytes.size() >= 5) {
    const uint32_t length = (uint32_t{static_cast<uint8_t>(bytes[1])} << 24) |
                            (uint32_t{static_cast<uint8_t>(bytes[2])} << 16) |
                            (uint32_t{static_cast<uint8_t>(bytes[3])} << 8) |
                            uint32_t{static_cast<uint8_t>(bytes[4])};
    CHECK_GE(length, 4u);
    CHECK_LE(length + size_t{1}, bytes.size());
    each(bytes[0], bytes.substr(5, length - 4), bytes.substr(0, length + 1));
    bytes.remove_prefix(length + 1);
  }
  CHECK(bytes.empty()) << "a batch holds whole messages only";
}

class Unit::Impl {
 public:
  Impl(UnitId id, ConnId client, const ProxyConfig& config, Environment& env, bool admitted,
       ClusterSnapshot cluster);

  void Handle(Instant now, const Event& event);
  std::optional<Action> PollAction();
  std::optional<Instant> NextDeadline() const;
  void CheckInvariants() const;
  void BeginDrain(Instant now);
  bool Finished() const;
  std::vector<ConnId> Conns() const;
  bool WantsRead(ConnId conn) const;

 private:
  // ---- unit.cc: dispatch and the client side
  void OnReceived(Instant now, ConnId conn, std::string_view bytes);
  void OnClosed(Instant now, ConnId conn, std::string_view why);
  void OnWritable(Instant now, ConnId conn, uint64_t flushed);
  void OnTimer(Instant now);
  void OnServiceReply(Instant now, const ServiceReply& reply);
  void OnCancelDelivered(Instant now);
  void PumpClient(Instant now);
  void PumpClientStartup(Instant now);
  void PumpClientAuth(Instant now);
  void PumpClientSession(Instant now);
  void AfterClientStep(Instant now, ClientSession::Step step);
  void ClientProtocolError(Instant now, const absl::Status& status);
  void CloseClient(Instant now);
  // The client is gone (or being closed): cancel what runs for it, reset its connections.
  void LeaveClient(Instant now);
  void MaybeFinishDrain(Instant now);
  void Flush(Instant now);
  void UpdateReadPauses();
  void UpdateIdleDeadline(Instant now);
  uint64_t ClientPending() const { return client_sent_ - client_flushed_; }
  void Emit(Action action) { actions_.push_back(std::move(action)); }
  void Request(ServiceRequest request) { Emit(RequestService{std::move(request)}); }

  // ---- unit_server.cc: server connections
  ServerSlot* SlotFor(NodeId node);
  ServerSlot* SlotOf(ConnId conn);
  void StartCheckout(NodeId node);
  void OnCheckout(Instant now, const CheckoutReply& reply);
  void OnConnected(Instant now, ConnId conn);
  void OnConnectFailed(Instant now, ConnId conn, std::string_view why);
  void PumpServer(Instant now, ServerSlot& slot);
  void PumpServerLogin(Instant now, ServerSlot& slot);
  void PumpServerReplay(Instant now, ServerSlot& slot);
  void PumpServerSession(Instant now, ServerSlot& slot);
  void PumpServerReset(Instant now, ServerSlot& slot);
  // A slot finished logging in (or came logged in from the pool).
  void SlotReady(Instant now, ServerSlot& slot);
  void WelcomeClient(Instant now, const ServerSlot& slot);
  // Starts the replay a slot needs before the client's next batch runs there; false when it
  // needs none.
  bool MaybeReplay(ServerSlot& slot);
  void ResetSlot(Instant now, ServerSlot& slot);
  void FinishReset(Instant now, ServerSlot& slot);
  void AfterCancelEnded(Instant now, bool cancel_fate_unknown);
  void StartCancel(Instant now, const ServerSession& server);
  // Closes the slot's connection (unless the driver already did), frees its pool slot and
  // removes it. References to the slot are invalid afterwards.
  void DropSlot(ServerSlot& slot, bool already_closed);
  // The connection of `slot` is lost (closed, FATAL, bad bytes, timed out, or its node was
  // declared down). DESIGN.md section 5, "Loss of a server connection".
  void SlotLost(Instant now, ServerSlot& slot, std::string_view why, bool already_closed);
  // Gives up a connection that was being reset for the pool (DropSlot), and lets the client's
  // queue move on.
  void DropResettingSlot(Instant now, ServerSlot& slot);
  void FlushServers();

  // ---- unit_route.cc: batches and routing
  // Adds one client message to the batch being built; complete batches join queue_.
  void TakeClientMessage(const pg::Frame& message);
  const route::QueryInfo& Classify(std::string_view sql);
  // Adds a statement the batch runs (a Query's, an Execute's) to the batch's routing facts.
  void AddStatement(const route::QueryInfo& info, Batch& batch);
  void NoteExtendedMessage(const pg::Frame& message, Batch& batch);
  // Tells the history about one client message being sent; `info` is the next of the batch's
  // statements for a Query or an Execute.
  void HistoryClientMessage(char type, std::string_view payload, const route::QueryInfo* info);
  void HistoryServerMessage(const pg::Frame& message);
  void ReleasePick();
  const route::FunctionVolatility& Functions() const {
    static const route::FunctionVolatility builtin = route::FunctionVolatility::Builtin();
    if (functions_) return *functions_;
    return config_.functions ? *config_.functions : builtin;
  }
  // Reads may go to replicas for this client at all (replicas configured, routing on for its
  // user and database).
  bool RoutesReads() const;
  // Sends what can be sent: the queue's head goes to its node once that node's connection is
  // ready and up to date, while no other node has work in flight.
  void Dispatch(Instant now);
  // Where the batch must run; nullopt while a replica choice is pending.
  std::optional<NodeId> ChooseNode(Batch& batch);
  std::vector<NodeId> ReadableReplicas() const;
  std::optional<NodeId> PrimaryNode() const;
  void SendBatch(Instant now, ServerSlot& slot, Batch batch);
  // The server's ReadyForQuery ended the oldest batch in flight.
  void FinishBatch(Instant now, char status);
  // A replica refused the batch in flight: from now on its statements count as writes.
  void RetryOnPrimary(Instant now);
  void OnReplicaChosen(Instant now, const ReplicaChosen& chosen);
  void OnNodeStateChanged(Instant now, const ClusterSnapshot& snapshot);
  void AnswerLoss(Instant now, bool commit_lost);
  // Answers a batch without a server: the session lost its transaction's connection.
  void AnswerAborted(const Batch& batch);
  void AnswerNoServer(const Batch& batch, std::string_view why);
  bool InTransaction() const { return txn_status_ != 'I'; }

  // ---- unit_pooling.cc: transaction pooling
  // Once the client is idle outside a transaction with nothing queued and nothing that pins
  // it, its connections go back to the pool (DESIGN.md section 4).
  void MaybeReleaseIdle(Instant now);
  // A batch of named Parses and a Sync, while the client holds no connection, is acknowledged
  // without a server: the statements join the history and reach a server by replay, before the
  // batch that uses them. (A client that prepares synchronously while its other connections hold
  // the pool's server connections in open transactions, as pgbench -M prepared does, would
  // otherwise wait for a connection that only it can free.) False when the batch needs a server.
  bool AnswerParsesWithoutServer(Batch& batch);
  // The replay of `slot` met an error: true when it was a Parse acknowledged without a server,
  // which is then forgotten (the client's statement that uses it gets the server's 26000).
  bool ForgiveReplayError(ServerSlot& slot);
  void ConfirmReplayedParses(ServerSlot& slot);

  // ---- unit_functions.cc: function volatility from pg_proc, per database (DESIGN.md 5)
  // At login: ask the services for the database's table (routing clients only).
  void RequestFunctions();
  void OnFunctionsReply(const FunctionsReply& reply);
  // Asked to load the table: kLoadQuery joins the replay of the next primary connection that
  // needs one (or makes one). Returns whether it was added to `messages`.
  bool AppendFunctionsLoad(ServerSlot& slot, std::string& messages, int& ready_count);
  // A DataRow of the replay: a row of the load when it belongs to its group.
  void OnReplayRow(ServerSlot& slot, const pg::Frame& row);
  // The replay that carried the load finished: the table goes to the services and into use.
  void FinishFunctionsLoad(ServerSlot& slot);
  // CREATE/ALTER/DROP FUNCTION ran through this client: the table is stale everywhere.
  void FunctionsChangedHere();
  // The client leaves before the load it was asked for: another unit may take it at once.
  void GiveUpFunctionsLoad();

  // ---- unit_trace.cc: traffic capture (DESIGN.md section 6). Each Trace* call is one
  // predictable branch while the session is not being recorded: no allocation, no copy.
  void TraceFromClient(const pg::Frame& message) {
    if (capture_.recording) [[unlikely]]
      RecordFromClient(message);
  }
  void TraceToClient(std::string_view bytes) {
    if (capture_.recording) [[unlikely]]
      RecordMessages(trace::Direction::kProxyToClient, bytes);
  }
  void TraceToServer(const ServerSlot& slot) {
    if (capture_.recording) [[unlikely]]
      RecordToServer(slot);
  }
  void TraceFromServer(const ServerSlot& slot, const pg::Frame& message) {
    if (capture_.recording) [[unlikely]]
      RecordFromServer(slot, message);
  }
  void TraceSessionClose(std::string_view what, std::string_view why) {
    if (capture_.recording) [[unlikely]]
      RecordSessionClose(what, why);
  }
  // A CancelRequest for this session arrived (before OnCancelDelivered decides its fate).
  void TraceCancel() {
    if (capture_.recording) [[unlikely]]
      RecordCancel();
  }
  // The client logged in: the session exists, and is recorded if capture is on and samples it.
  void TraceSessionOpen();
  void OnCaptureChanged(const CaptureChanged& change);
  void RecordFromClient(const pg::Frame& message);
  void RecordToServer(const ServerSlot& slot);
  void RecordFromServer(const ServerSlot& slot, const pg::Frame& message);
  // Every message in `bytes` (whole messages only), one record each.
  void RecordMessages(trace::Direction direction, std::string_view bytes,
                      const ServerSlot* slot = nullptr);
  void RecordMessage(trace::Direction direction, std::string_view raw, const ServerSlot* slot);
  void AppendMessage(const trace::Record& metadata, std::string_view message);
  void RecordSessionClose(std::string_view what, std::string_view why);
  void RecordCancel();
  void RecordSessionOpen();
  void RecordSnapshot();
  trace::SessionOpen SessionOpenBody() const;
  // A record of this session with its metadata filled in (and the next sequence number).
  trace::Record NewRecord(trace::Direction direction, const ServerSlot* slot);
  // Encodes a record into capture_.pending.
  void EmitRecord(const trace::Record& record);
  // At the end of every Handle() and BeginDrain(): the records made, as one Trace action.
  void TraceFlush() {
    if (!capture_.pending.empty() || capture_.pending_refused > 0) [[unlikely]]
      EmitTrace();
  }
  void EmitTrace();

  UnitId id_;
  const ProxyConfig& config_;
  Environment& env_;
  ClientSession client_;
  ClusterSnapshot cluster_;
  SessionHistory history_;
  // Per client, so it needs no lock: small (a session repeats a few statements).
  route::ClassificationCache cache_{route::ClassificationCacheOptions{
      .entries_max = 256, .statement_bytes_max = 16 << 10, .bytes_max = size_t{1} << 20}};
  std::vector<std::unique_ptr<ServerSlot>> slots_;
  std::vector<CancelConnection> cancels_;
  std::deque<Action> actions_;

  // Batches: the one being built, the complete ones not sent yet, the ones in flight (all on
  // one node).
  Batch building_;
  std::deque<Batch> queue_;
  std::deque<SentBatch> inflight_;
  // Bytes of queue_ and building_: bounded, the client is paused above it.
  size_t queued_bytes_ = 0;
  // After a loss, what the client still sends of the lost batch is dropped up to its Sync.
  bool discard_until_sync_ = false;
  // The client's prepared statements and portals, classified (bounded; "" is the unnamed one).
  absl::flat_hash_map<std::string, route::QueryInfo> statements_;
  absl::flat_hash_map<std::string, route::QueryInfo> portals_;
  // Statement texts a replica refused: classified as writes from then on (bounded).
  absl::flat_hash_map<std::string, route::QueryInfo> refused_;

  // The transaction as the client sees it (its last ReadyForQuery), and the node it runs on.
  char txn_status_ = 'I';
  std::optional<NodeId> txn_node_;
  // The transaction's connection was lost: answer 25P02 until ROLLBACK (DESIGN.md 5).
  bool aborted_by_loss_ = false;
  // Lost while idle in a transaction: the next statement gets 08006 first.
  bool loss_unreported_ = false;
  // The node whose connection holds state that cannot be replayed.
  std::optional<NodeId> pinned_node_;
  // This database's function volatility as last loaded from pg_proc (null: config_'s or the
  // built-in table), and whether this unit was asked to load it.
  std::shared_ptr<const route::FunctionVolatility> functions_;
  bool functions_load_ = false;
  // Prepared statements acknowledged without a server (transaction pooling) that no server has
  // parsed yet (bounded by kUnconfirmedParsesMax).
  absl::flat_hash_set<std::string> unconfirmed_parses_;

  // Read-your-writes (DESIGN.md 5): replicas must have replayed this far.
  uint64_t ryw_min_lsn_ = 0;
  // A write committed at this time: no replica qualifies until a poll of the primary that began
  // after it gives the LSN to wait for.
  std::optional<Instant> ryw_commit_at_;
  bool pick_pending_ = false;
  bool pick_answered_ = false;
  std::optional<NodeId> picked_;
  // The transaction (or autocommit statement) in flight wrote: its commit moves the watermark.
  bool txn_wrote_ = false;
  bool lost_any_ = false;  // some server connection of this client was lost
  // Nodes whose connection was lost, with when: not chosen again until a poll after that.
  std::vector<std::pair<NodeId, Instant>> avoid_;

  bool started_ = false;
  bool client_open_ = true;
  std::optional<NodeId> checkout_node_;  // a checkout for this node is outstanding
  bool welcomed_ = false;
  bool cancel_key_registered_ = false;
  int32_t client_pid_ = 0;
  bool draining_ = false;
  int32_t client_secret_ = 0;
  std::optional<Instant> auth_deadline_;
  std::optional<Instant> connect_deadline_;
  uint64_t client_queries_ = 0;  // Query, Sync and FunctionCall messages from this client
  std::optional<Instant> idle_deadline_;

  uint64_t client_sent_ = 0;
  uint64_t client_flushed_ = 0;
  bool client_read_paused_ = false;
  bool client_backlog_paused_ = false;
  CountersDelta counters_;
  UnitCapture capture_;
};

}  // namespace switchyard
