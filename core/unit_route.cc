// Unit: routing (DESIGN.md section 5). Client messages are gathered into batches (a Query, a
// FunctionCall, or extended-protocol messages up to their Sync), classified, and sent whole to
// one node; a client has one node in flight at a time. Reads may go to replicas that have
// replayed the client's own writes; everything else goes to the primary. After a lost
// connection the unit answers for the server: 08006/08007, then 25P02 until ROLLBACK.
#include <algorithm>

#include "absl/strings/ascii.h"
#include "core/base/check.h"
#include "core/base/strings.h"
#include "core/mutants.h"
#include "core/route/classifier.h"
#include "core/unit_internal.h"

namespace switchyard {
namespace {

// Past this a batch being built stops waiting for its Sync: it goes to the primary and the rest
// streams, so a huge pipeline never sits in memory.
constexpr size_t kBatchBytesMax = size_t{256} << 10;
constexpr size_t kStatementNamesMax = 10'000;

// The first NUL-terminated string of a payload starting at `pos`.
std::string_view CString(std::string_view payload, size_t* pos) {
  const size_t start = std::min(*pos, payload.size());
  const size_t end = payload.find('\0', start);
  if (end == std::string_view::npos) {
    *pos = payload.size();
    return payload.substr(start);
  }
  *pos = end + 1;
  return payload.substr(start, end - start);
}

bool IsSerializable(const std::optional<std::string>& value) {
  return value && value->find("serializable") != std::string::npos;
}

}  // namespace

// ---------------------------------------------------------------- batches

void Unit::Impl::TakeClientMessage(const pg::Frame& message) {
  const char type = message.type;
  if (discard_until_sync_) {
    // The rest of a batch whose server was lost: PostgreSQL, too, skips to the Sync.
    if (type == 'S') {
      discard_until_sync_ = false;
      client_.Forward(pg::ReadyForQuery{txn_status_}.Encode());
    }
    return;
  }
  if (type == 'd' || type == 'c' || type == 'f') {
    // COPY data goes to the COPY in flight; outside one, PostgreSQL ignores it too.
    if (!inflight_.empty()) {
      ServerSlot* slot = SlotFor(inflight_.front().node);
      if (slot && slot->session->in_copy_in()) {
        slot->session->NoteClientMessage(type, message.payload);
        slot->session->output().append(message.raw);
      }
    }
    return;
  }
  // The rest of a batch already streaming to its node.
  if (!inflight_.empty() && inflight_.back().batch.streaming && !inflight_.back().batch.complete) {
    SentBatch& sent = inflight_.back();
    ServerSlot* slot = SlotFor(sent.node);
    CHECK(slot != nullptr);
    const size_t known = sent.batch.queries.size();
    NoteExtendedMessage(message, sent.batch);
    slot->session->NoteClientMessage(type, message.payload);
    slot->session->output().append(message.raw);
    HistoryClientMessage(type, message.payload,
                         sent.batch.queries.size() > known ? &sent.batch.queries.back() : nullptr);
    if (type == 'S') sent.batch.complete = true;
    return;
  }
  Batch* target = &building_;
  if (!queue_.empty() && queue_.back().streaming && !queue_.back().complete) {
    target = &queue_.back();
  }
  switch (type) {
    case 'Q':
    case 'F': {
      Batch batch;
      batch.bytes.assign(message.raw);
      batch.complete = true;
      if (type == 'Q') {
        size_t pos = 0;
        batch.read_only = true;
        AddStatement(Classify(CString(message.payload, &pos)), batch);
      }
      queued_bytes_ += batch.bytes.size();
      queue_.push_back(std::move(batch));
      return;
    }
    case 'H':
      if (target->bytes.empty()) {
        // A Flush with nothing pending: the node in flight may have output to push.
        if (!inflight_.empty()) {
          if (ServerSlot* slot = SlotFor(inflight_.front().node)) {
            slot->session->output().append(message.raw);
          }
        }
        return;
      }
      break;
    default:
      break;
  }
  target->bytes.append(message.raw);
  queued_bytes_ += message.raw.size();
  NoteExtendedMessage(message, *target);
  if (target != &building_) {
    if (type == 'S') target->complete = true;
    return;
  }
  if (type == 'S') {
    building_.complete = true;
  } else if (type == 'H' || building_.bytes.size() > kBatchBytesMax) {
    // The client wants answers before its Sync (or sends a huge pipeline): the batch cannot
    // be seen whole, so it goes to the primary and the rest streams after it.
    building_.streaming = true;
    building_.read_only = false;
  } else {
    return;
  }
  queue_.push_back(std::move(building_));
  building_ = Batch{};
}

const route::QueryInfo& Unit::Impl::Classify(std::string_view sql) {
  if (!refused_.empty()) {
    if (auto it = refused_.find(std::string(sql)); it != refused_.end()) return it->second;
  }
  if (IsMutant(config_.mutants, Mutant::kLockingReadToReplica)) {
    // Classify the statement as if its locking clause were not there.
    std::string lowered(sql);
    absl::AsciiStrToLower(&lowered);
    for (std::string_view clause : {" for update", " for share", " for no key update"}) {
      if (size_t at = lowered.find(clause); at != std::string::npos) {
        return cache_.Classify(sql.substr(0, at), Functions());
      }
    }
  }
  return cache_.Classify(sql, Functions());
}

void Unit::Impl::AddStatement(const route::QueryInfo& info, Batch& batch) {
  batch.queries.push_back(info);
  const bool first_only =
      IsMutant(config_.mutants, Mutant::kSplitSyncBatch) && batch.queries.size() > 1;
  if (!first_only) {
    batch.read_only = batch.read_only && info.read_only && !info.primary_hint && !info.parse_error;
  }
  for (size_t i = 0; i < info.statements.size(); ++i) {
    const route::StatementInfo& statement = info.statements[i];
    switch (statement.txn) {
      case route::TxnControl::kBegin:
        batch.opens_transaction = true;
        batch.read_only = false;  // a read-write transaction runs on the primary
        break;
      case route::TxnControl::kBeginReadOnly:
        batch.opens_transaction = true;
        break;
      case route::TxnControl::kBeginSerializable:
        batch.opens_transaction = true;
        batch.read_only = false;  // SERIALIZABLE stays on the primary
        break;
      case route::TxnControl::kCommit:
      case route::TxnControl::kPrepareTransaction:
        batch.commit = true;
        break;
      case route::TxnControl::kRollback:
        if (batch.queries.size() == 1 && i == 0) batch.rollback = true;
        break;
      default:
        break;
    }
    if (!statement.effects.empty() || statement.invalidates_functions) batch.has_effects = true;
    if (statement.cursor_operation) batch.cursor_operation = true;
  }
}

void Unit::Impl::NoteExtendedMessage(const pg::Frame& message, Batch& batch) {
  if (batch.bytes.size() == message.raw.size() && !batch.streaming) batch.read_only = true;
  size_t pos = 0;
  switch (message.type) {
    case 'P': {
      const std::string name(CString(message.payload, &pos));
      const route::QueryInfo& info = Classify(CString(message.payload, &pos));
      if (name.empty() || statements_.size() < kStatementNamesMax || statements_.contains(name)) {
        statements_[name] = info;
      }
      return;
    }
    case 'B': {
      const std::string portal(CString(message.payload, &pos));
      const std::string statement(CString(message.payload, &pos));
      auto it = statements_.find(statement);
      route::QueryInfo info;  // unknown: a parse error routes to the primary
      info.parse_error = true;
      if (it != statements_.end()) info = it->second;
      if (portal.empty() || portals_.size() < kStatementNamesMax || portals_.contains(portal)) {
        portals_[portal] = std::move(info);
      }
      return;
    }
    case 'E': {
      const std::string portal(CString(message.payload, &pos));
      auto it = portals_.find(portal);
      route::QueryInfo unknown;
      unknown.parse_error = true;
      AddStatement(it != portals_.end() ? it->second : unknown, batch);
      return;
    }
    case 'C': {
      const char kind = message.payload.empty() ? 'S' : message.payload[0];
      pos = 1;
      const std::string name(CString(message.payload, &pos));
      (kind == 'S' ? statements_ : portals_).erase(name);
      return;
    }
    default:
      return;
  }
}

void Unit::Impl::HistoryClientMessage(char type, std::string_view payload,
                                      const route::QueryInfo* info) {
  size_t pos = 0;
  switch (type) {
    case 'Q':
      CHECK(info != nullptr);
      return history_.OnQuery(*info);
    case 'P': {
      const std::string_view name = CString(payload, &pos);
      const std::string_view query = CString(payload, &pos);
      auto parse = pg::Parse::Decode(payload);
      if (!parse.ok()) return history_.OnParse(name, query, {});
      return history_.OnParse(name, query, parse->parameter_types);
    }
    case 'E':
      CHECK(info != nullptr);
      return history_.OnExecute(*info);
    case 'C': {
      const char kind = payload.empty() ? 'S' : payload[0];
      pos = 1;
      return history_.OnClose(kind, CString(payload, &pos));
    }
    case 'S':
      return history_.OnSync();
    case 'F':
      return history_.OnFunctionCall();
    default:
      return;
  }
}

void Unit::Impl::HistoryServerMessage(const pg::Frame& message) {
  switch (message.type) {
    case '1':
      return history_.OnParseComplete();
    case '3':
      return history_.OnCloseComplete();
    case 'C':
    case 's':
      return history_.OnCommandComplete();
    case 'I':
      return history_.OnEmptyQueryResponse();
    case 'E':
      return history_.OnErrorResponse();
    case 'S': {
      size_t pos = 0;
      const std::string_view name = CString(message.payload, &pos);
      return history_.OnParameterStatus(name, CString(message.payload, &pos));
    }
    case 'Z': {
      auto ready = pg::ReadyForQuery::Decode(message.payload);
      return history_.OnReadyForQuery(ready.ok() ? ready->status : 'I');
    }
    default:
      return;
  }
}

// ---------------------------------------------------------------- the routing decision

std::optional<NodeId> Unit::Impl::PrimaryNode() const {
  if (!cluster_.primary) return std::nullopt;
  const NodeState& state = cluster_.nodes.at(cluster_.primary->index);
  if (!state.up || state.role != NodeRole::kPrimary) return std::nullopt;
  return cluster_.primary;
}

std::vector<NodeId> Unit::Impl::ReadableReplicas() const {
  std::vector<NodeId> nodes;
  const bool ryw = config_.read_your_writes == ReadYourWrites::kLsn &&
                   !IsMutant(config_.mutants, Mutant::kStaleReadAfterWrite);
  if (ryw && ryw_commit_at_) return nodes;  // waiting for a poll after our last write
  for (const NodeState& node : cluster_.nodes) {
    if (node.role != NodeRole::kReplica || !node.up) continue;
    if (ryw && node.lsn < ryw_min_lsn_) continue;
    const bool avoided = std::any_of(avoid_.begin(), avoid_.end(),
                                     [&](const auto& a) { return a.first == node.node; });
    if (!avoided) nodes.push_back(node.node);
  }
  return nodes;
}

bool Unit::Impl::RoutesReads() const {
  return config_.route_reads && config_.node_count > 1 &&
         std::find(config_.no_route_users.begin(), config_.no_route_users.end(), client_.user()) ==
             config_.no_route_users.end() &&
         std::find(config_.no_route_databases.begin(), config_.no_route_databases.end(),
                   client_.database()) == config_.no_route_databases.end();
}

// What ChooseNode decided: a node, wait (a replica choice is on its way), or no node at all.
std::optional<NodeId> Unit::Impl::ChooseNode(Batch& batch) {
  // State that cannot be replayed keeps the client on its node. On a replica (a WITH HOLD
  // cursor declared there, or a history that stopped tracking after a read) that holds for its
  // reads and cursor operations outside transactions only: writes cannot run there, and a
  // transaction stays whole on its node.
  if (pinned_node_ && pinned_node_ == cluster_.primary) return pinned_node_;
  if (txn_node_ && !(IsMutant(config_.mutants, Mutant::kReadInWriteTransaction) &&
                     batch.read_only && txn_status_ == 'T')) {
    return txn_node_;
  }
  if (pinned_node_ && (batch.read_only || batch.cursor_operation)) return pinned_node_;
  // A replica refused it (outside any transaction): the primary, whatever it looks like.
  if (batch.force_primary) return PrimaryNode();
  const bool may_read_replica = batch.read_only && RoutesReads() &&
                                !IsSerializable(history_.Value("default_transaction_isolation"));
  if (!may_read_replica) return PrimaryNode();
  if (pick_answered_) {
    // The services chose (or found none): use it if it is still good.
    if (picked_) {
      const std::vector<NodeId> replicas = ReadableReplicas();
      if (std::find(replicas.begin(), replicas.end(), *picked_) != replicas.end()) return picked_;
      ReleasePick();
    }
    pick_answered_ = false;
    return PrimaryNode();
  }
  std::vector<NodeId> replicas = ReadableReplicas();
  if (replicas.empty()) return PrimaryNode();
  if (!pick_pending_) {
    pick_pending_ = true;
    Request(PickReplicaRequest{std::move(replicas)});
  }
  return kWaitForPick;
}

void Unit::Impl::ReleasePick() {
  if (picked_) Request(NodeDone{*picked_});
  picked_.reset();
  pick_answered_ = false;
}

void Unit::Impl::OnReplicaChosen(Instant now, const ReplicaChosen& chosen) {
  CHECK(pick_pending_) << "a replica choice nobody asked for";
  pick_pending_ = false;
  if (!client_open_) {
    if (chosen.node) Request(NodeDone{*chosen.node});
    return;
  }
  picked_ = chosen.node;
  pick_answered_ = true;
  Dispatch(now);
}

void Unit::Impl::Dispatch(Instant now) {
  if (!client_open_ || !welcomed_ || client_.state() != ClientSession::State::kReady) return;
  while (!queue_.empty()) {
    if (!inflight_.empty() && inflight_.back().batch.streaming &&
        !inflight_.back().batch.complete) {
      return;  // a batch is still streaming: its Sync comes first
    }
    Batch& batch = queue_.front();
    if (loss_unreported_ || aborted_by_loss_) {
      if (!inflight_.empty()) return;  // answers stay in order
      Batch taken = std::move(batch);
      queue_.pop_front();
      queued_bytes_ -= std::min(queued_bytes_, taken.bytes.size());
      if (loss_unreported_) {
        loss_unreported_ = false;
        aborted_by_loss_ = true;
        txn_status_ = 'E';
        AnswerNoServer(taken, "the server connection of this transaction was lost");
      } else {
        AnswerAborted(taken);
      }
      continue;
    }
    std::optional<NodeId> node = ChooseNode(batch);
    if (node == kWaitForPick) return;
    if (!node) {
      Batch taken = std::move(batch);
      queue_.pop_front();
      queued_bytes_ -= std::min(queued_bytes_, taken.bytes.size());
      AnswerNoServer(taken, "no primary server is available");
      continue;
    }
    if (!inflight_.empty() && inflight_.front().node != *node) return;  // one node at a time
    ServerSlot* slot = SlotFor(*node);
    if (slot == nullptr && inflight_.empty() && AnswerParsesWithoutServer(batch)) {
      queue_.pop_front();
      continue;
    }
    if (slot == nullptr) {
      if (!checkout_node_) StartCheckout(*node);
      return;
    }
    const ServerSession::State state = slot->session->state();
    if (state != ServerSession::State::kReady && state != ServerSession::State::kQuery) return;
    // Reset for the pool, but a cancel may still hit it: it goes back once that is over.
    if (slot->release_waits_for_cancel) return;
    if (state == ServerSession::State::kReady && MaybeReplay(*slot)) {
      FlushServers();
      return;
    }
    Batch taken = std::move(batch);
    queue_.pop_front();
    SendBatch(now, *slot, std::move(taken));
  }
  MaybeReleaseIdle(now);
}

void Unit::Impl::SendBatch(Instant now, ServerSlot& slot, Batch batch) {
  queued_bytes_ -= std::min(queued_bytes_, batch.bytes.size());
  size_t query_index = 0;
  ForEachMessage(batch.bytes, [&](char type, std::string_view payload, std::string_view) {
    slot.session->NoteClientMessage(type, payload);
    const route::QueryInfo* info = nullptr;
    if ((type == 'Q' || type == 'E') && query_index < batch.queries.size()) {
      info = &batch.queries[query_index++];
    }
    HistoryClientMessage(type, payload, info);
  });
  slot.session->output().append(batch.bytes);
  SentBatch sent;
  sent.node = slot.node;
  if (picked_ && *picked_ == slot.node) {
    sent.counted = true;
    picked_.reset();
    pick_answered_ = false;
  } else if (pick_answered_) {
    ReleasePick();
  }
  if (!cluster_.primary || *cluster_.primary != slot.node) ++counters_.replica_reads;
  if (!batch.read_only) txn_wrote_ = true;
  sent.batch = std::move(batch);
  inflight_.push_back(std::move(sent));
  if (slot.Pending() + slot.session->output().size() > config_.client_output_high_bytes) {
    // The server is not taking our bytes: stop reading the client until it does.
    client_read_paused_ = true;
  }
  (void)now;
}

void Unit::Impl::RetryOnPrimary(Instant now) {
  constexpr size_t kRefusedMax = 256;
  SentBatch sent = std::move(inflight_.front());
  inflight_.pop_front();
  if (sent.counted) Request(NodeDone{sent.node});
  if (ServerSlot* slot = SlotFor(sent.node)) history_.MarkApplied(&slot->applied);
  // The statements' classification becomes "write" (DESIGN.md section 5).
  ForEachMessage(sent.batch.bytes, [&](char type, std::string_view payload, std::string_view) {
    if (type != 'Q' && type != 'P') return;
    size_t pos = 0;
    if (type == 'P') CString(payload, &pos);
    const std::string sql(CString(payload, &pos));
    if (refused_.size() >= kRefusedMax && !refused_.contains(sql)) return;
    route::QueryInfo info = Classify(sql);
    info.read_only = false;
    for (route::StatementInfo& statement : info.statements) statement.read_only = false;
    refused_[sql] = std::move(info);
  });
  // Re-derive the batch's statements (now writes) for the routing and the history.
  Batch rebuilt;
  rebuilt.complete = sent.batch.complete;
  rebuilt.force_primary = true;
  ForEachMessage(sent.batch.bytes, [&](char type, std::string_view payload, std::string_view raw) {
    rebuilt.bytes.append(raw);
    if (type == 'Q') {
      size_t pos = 0;
      AddStatement(Classify(CString(payload, &pos)), rebuilt);
    } else {
      NoteExtendedMessage(pg::Frame{type, payload, raw}, rebuilt);
    }
  });
  rebuilt.read_only = false;
  queued_bytes_ += rebuilt.bytes.size();
  queue_.push_front(std::move(rebuilt));
  Dispatch(now);
}

void Unit::Impl::FinishBatch(Instant now, char status) {
  CHECK(!inflight_.empty());
  SentBatch sent = std::move(inflight_.front());
  inflight_.pop_front();
  if (sent.counted) Request(NodeDone{sent.node});
  if (ServerSlot* slot = SlotFor(sent.node)) history_.MarkApplied(&slot->applied);
  txn_status_ = status;
  if (status == 'I') {
    txn_node_.reset();
    if (txn_wrote_ && config_.read_your_writes == ReadYourWrites::kLsn) {
      // Our write committed: replicas qualify again once a poll of the primary that began
      // after now has told us how far they must have replayed.
      ryw_commit_at_ = now;
    }
    txn_wrote_ = false;
  } else {
    txn_node_ = sent.node;
  }
  if (history_.pinned()) {
    if (!pinned_node_) pinned_node_ = sent.node;
  } else {
    pinned_node_.reset();
  }
  for (const route::QueryInfo& query : sent.batch.queries) {
    for (const route::StatementInfo& statement : query.statements) {
      if (statement.invalidates_functions) FunctionsChangedHere();
    }
  }
  Dispatch(now);
}

// ---------------------------------------------------------------- the cluster view

void Unit::Impl::OnNodeStateChanged(Instant now, const ClusterSnapshot& snapshot) {
  const bool new_primary = snapshot.primary_generation != cluster_.primary_generation;
  cluster_ = snapshot;
  if (new_primary && snapshot.primary) {
    // Watermarks of another primary's WAL mean nothing here. While there is no primary at all
    // they stay: a replica must still have replayed this client's writes. A write committed
    // after the poll that named this primary began (the same node, back) still waits.
    ryw_min_lsn_ = snapshot.primary_lsn;
    if (ryw_commit_at_ && snapshot.primary_poll_began > *ryw_commit_at_) ryw_commit_at_.reset();
  } else if (!snapshot.primary) {
    ryw_min_lsn_ = std::max(ryw_min_lsn_, snapshot.primary_lsn);
  } else if (ryw_commit_at_ && snapshot.primary_poll_began > *ryw_commit_at_) {
    ryw_min_lsn_ = std::max(ryw_min_lsn_, snapshot.primary_lsn);
    ryw_commit_at_.reset();
  }
  std::erase_if(avoid_, [&](const auto& avoid) {
    const NodeState& node = cluster_.nodes.at(avoid.first.index);
    return node.up && node.polled > avoid.second;
  });
  // A node declared down (or fenced) fails over every connection to it at once.
  std::vector<ConnId> lost;
  for (const auto& slot : slots_) {
    const NodeState& node = cluster_.nodes.at(slot->node.index);
    if (!node.up || node.role == NodeRole::kFenced) lost.push_back(slot->session->conn());
  }
  for (ConnId conn : lost) {
    if (ServerSlot* slot = SlotOf(conn)) {
      if (!client_open_ && slot->session->state() == ServerSession::State::kReset) continue;
      SlotLost(now, *slot, "the health checker declared the node down", false);
    }
  }
  Dispatch(now);
}

// ---------------------------------------------------------------- answers without a server

void Unit::Impl::AnswerLoss(Instant now, bool commit_lost) {
  // A read that no byte of reached the client is tried again elsewhere, as long as every batch
  // in flight is such a read (answers stay in order).
  const bool retry_writes = IsMutant(config_.mutants, Mutant::kRetryWriteAfterLoss);
  const bool retry =
      !InTransaction() && std::all_of(inflight_.begin(), inflight_.end(), [&](const SentBatch& s) {
        return (s.batch.read_only || retry_writes) && s.batch.complete && !s.answered &&
               !s.batch.opens_transaction && s.batch.retries < 2;
      });
  std::deque<SentBatch> lost = std::move(inflight_);
  inflight_.clear();
  for (const SentBatch& sent : lost) {
    if (sent.counted) Request(NodeDone{sent.node});
  }
  if (retry) {
    for (auto it = lost.rbegin(); it != lost.rend(); ++it) {
      ++it->batch.retries;
      queued_bytes_ += it->batch.bytes.size();
      queue_.push_front(std::move(it->batch));
    }
    history_.OnServerLost();
    return;
  }
  bool first = true;
  for (SentBatch& sent : lost) {
    const bool in_transaction = InTransaction() || sent.batch.opens_transaction;
    const bool commit = first && commit_lost && sent.batch.commit;
    client_.Forward(pg::BuildError(
        "ERROR", commit ? "08007" : "08006",
        commit ? "server connection lost during COMMIT; the transaction's outcome is unknown"
               : "server connection lost during the statement"));
    if (in_transaction && !commit) {
      aborted_by_loss_ = true;
      txn_status_ = 'E';
    } else {
      txn_status_ = 'I';
    }
    if (sent.batch.complete) {
      client_.Forward(pg::ReadyForQuery{txn_status_}.Encode());
    } else {
      discard_until_sync_ = true;
    }
    first = false;
  }
  txn_node_.reset();
  if (txn_wrote_ && config_.read_your_writes == ReadYourWrites::kLsn &&
      !IsMutant(config_.mutants, Mutant::kForgetLostWrite)) {
    // A write whose answer was lost may still have committed (a COMMIT or an autocommit
    // statement the server finished before the connection went): as after a commit, replicas
    // qualify again once a poll of the primary begun after now says how far they must be.
    ryw_commit_at_ = now;
  }
  txn_wrote_ = false;
  history_.OnServerLost();
}

void Unit::Impl::AnswerNoServer(const Batch& batch, std::string_view why) {
  if (pick_answered_) ReleasePick();
  client_.Forward(pg::BuildError("ERROR", "08006", Cat("switchyard: ", why)));
  if (batch.complete) {
    client_.Forward(pg::ReadyForQuery{txn_status_}.Encode());
  } else {
    discard_until_sync_ = true;
  }
}

void Unit::Impl::AnswerAborted(const Batch& batch) {
  // PostgreSQL's answers in an aborted transaction: ROLLBACK (and COMMIT, which answers
  // ROLLBACK) ends it; everything else, ROLLBACK TO SAVEPOINT included since the savepoint was
  // on the lost connection, gets 25P02.
  const bool ends = batch.complete && (batch.rollback || batch.commit) &&
                    std::all_of(batch.queries.begin(), batch.queries.end(),
                                [](const route::QueryInfo& q) { return q.statements.size() == 1; });
  if (!ends) {
    client_.Forward(pg::BuildError(
        "ERROR", "25P02",
        "current transaction is aborted, commands ignored until end of transaction block"));
    if (batch.complete) {
      client_.Forward(pg::ReadyForQuery{'E'}.Encode());
    } else {
      discard_until_sync_ = true;
    }
    return;
  }
  aborted_by_loss_ = false;
  txn_status_ = 'I';
  ForEachMessage(batch.bytes, [&](char type, std::string_view, std::string_view) {
    switch (type) {
      case 'P':
        client_.Forward(pg::ParseComplete{}.Encode());
        break;
      case 'B':
        client_.Forward(pg::BindComplete{}.Encode());
        break;
      case 'D':
        client_.Forward(pg::NoData{}.Encode());
        break;
      case 'C':
        client_.Forward(pg::CloseComplete{}.Encode());
        break;
      case 'Q':
      case 'E':
        client_.Forward(pg::CommandComplete{"ROLLBACK"}.Encode());
        break;
      default:
        break;
    }
  });
  client_.Forward(pg::ReadyForQuery{'I'}.Encode());
}

}  // namespace switchyard
