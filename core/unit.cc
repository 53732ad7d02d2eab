// Unit: a client session with its server sessions, driven by events (DESIGN.md sections 2-5).
// This file holds the dispatch, the client side, flow control, timers and the drain; the server
// connections are in unit_server.cc and the routing in unit_route.cc.
#include <algorithm>
#include <memory>

#include "core/base/check.h"
#include "core/base/strings.h"
#include "core/health_unit.h"
#include "core/mutants.h"
#include "core/unit_internal.h"

namespace switchyard {
namespace {

// Bytes a client may send ahead while it waits for its server connection.
constexpr size_t kClientBacklogMax = size_t{1} << 20;

ClusterSnapshot DefaultCluster(ClusterSnapshot cluster) {
  if (!cluster.nodes.empty()) return cluster;
  // No health checker: the configured primary alone, taken as up.
  cluster.primary = NodeId{0};
  cluster.nodes.push_back(NodeState{NodeId{0}, NodeRole::kPrimary, true, Instant{}, 0});
  return cluster;
}

}  // namespace

Unit::Impl::Impl(UnitId id, ConnId client, const ProxyConfig& config, Environment& env,
                 bool admitted, ClusterSnapshot cluster)
    : id_(id),
      config_(config),
      env_(env),
      client_(client, config, admitted),
      cluster_(DefaultCluster(std::move(cluster))),
      ryw_min_lsn_(cluster_.primary_lsn) {}

// ---------------------------------------------------------------- dispatch

void Unit::Impl::Handle(Instant now, const Event& event) {
  capture_.now = now;
  if (!started_) {
    started_ = true;
    auth_deadline_ = now + MsToUs(config_.auth_timeout_ms);
    counters_.clients_accepted = 1;
  }
  std::visit(
      [&](const auto& e) {
        using E = std::decay_t<decltype(e)>;
        if constexpr (std::is_same_v<E, Accepted>) {
          capture_.peer = e.peer;
        } else if constexpr (std::is_same_v<E, Connected>) {
          OnConnected(now, e.conn);
        } else if constexpr (std::is_same_v<E, ConnectFailed>) {
          OnConnectFailed(now, e.conn, e.why);
        } else if constexpr (std::is_same_v<E, Received>) {
          OnReceived(now, e.conn, e.bytes);
        } else if constexpr (std::is_same_v<E, Writable>) {
          OnWritable(now, e.conn, e.flushed);
        } else if constexpr (std::is_same_v<E, Closed>) {
          OnClosed(now, e.conn, e.why);
        } else if constexpr (std::is_same_v<E, TimerFired>) {
          OnTimer(now);
        } else if constexpr (std::is_same_v<E, ServiceReplied>) {
          OnServiceReply(now, e.reply);
        } else if constexpr (std::is_same_v<E, NodeStateChanged>) {
          OnNodeStateChanged(now, e.snapshot);
        } else if constexpr (std::is_same_v<E, CaptureChanged>) {
          OnCaptureChanged(e);
        }
      },
      event);
  Flush(now);
  UpdateReadPauses();
  UpdateIdleDeadline(now);
  TraceFlush();
}

void Unit::Impl::UpdateIdleDeadline(Instant now) {
  const bool idle = client_open_ && client_.state() == ClientSession::State::kReady &&
                    inflight_.empty() && queue_.empty() && building_.bytes.empty();
  if (!idle || config_.client_idle_timeout_ms <= 0) {
    idle_deadline_.reset();
  } else if (!idle_deadline_) {
    idle_deadline_ = now + MsToUs(config_.client_idle_timeout_ms);
  }
}

std::optional<Action> Unit::Impl::PollAction() {
  if (actions_.empty()) return std::nullopt;
  Action action = std::move(actions_.front());
  actions_.pop_front();
  return action;
}

void Unit::Impl::Flush(Instant now) {
  if (client_open_ && !client_.output().empty()) {
    TraceToClient(client_.output());
    client_sent_ += client_.output().size();
    Emit(Send{client_.conn(), std::move(client_.output())});
    client_.output().clear();
  }
  if (client_open_ && client_.state() == ClientSession::State::kClosing) {
    CloseClient(now);
  }
  FlushServers();
}

void Unit::Impl::OnReceived(Instant now, ConnId conn, std::string_view bytes) {
  if (client_open_ && conn == client_.conn()) {
    client_.reader().Append(bytes);
    PumpClient(now);
  } else if (ServerSlot* slot = SlotOf(conn)) {
    slot->session->reader().Append(bytes);
    PumpServer(now, *slot);
  }
  // Bytes on a cancel connection, or on a connection already given up, are ignored.
}

void Unit::Impl::OnClosed(Instant now, ConnId conn, std::string_view why) {
  if (std::erase_if(cancels_, [&](const CancelConnection& c) { return c.conn == conn; }) > 0) {
    // The server closes a cancel connection once it has signalled the backend; closed before
    // the request went out, the cancel never left.
    return AfterCancelEnded(now, /*cancel_fate_unknown=*/false);
  }
  if (client_open_ && conn == client_.conn()) {
    TraceSessionClose("client connection closed", why);
    client_open_ = false;
    LeaveClient(now);
    return;
  }
  if (ServerSlot* slot = SlotOf(conn)) {
    slot->session->MarkBroken();
    SlotLost(now, *slot, Cat("server closed the connection: ", why), /*already_closed=*/true);
  }
}

// ---------------------------------------------------------------- client side

void Unit::Impl::PumpClient(Instant now) {
  switch (client_.state()) {
    case ClientSession::State::kStartup:
      PumpClientStartup(now);
      break;
    case ClientSession::State::kAuthenticating:
      PumpClientAuth(now);
      break;
    case ClientSession::State::kWaitingForServer:
      break;  // held in the reader until ready
    case ClientSession::State::kReady:
      PumpClientSession(now);
      break;
    case ClientSession::State::kClosing:
      break;
  }
}

void Unit::Impl::PumpClientStartup(Instant now) {
  while (client_open_ && client_.state() == ClientSession::State::kStartup) {
    auto packet = client_.reader().NextStartup();
    if (!packet.ok()) return ClientProtocolError(now, packet.status());
    if (!packet->has_value()) return;
    AfterClientStep(now, client_.HandleStartupPacket(**packet, env_));
  }
  PumpClient(now);
}

void Unit::Impl::PumpClientAuth(Instant now) {
  while (client_open_ && client_.state() == ClientSession::State::kAuthenticating) {
    auto frame = client_.reader().Next();
    if (!frame.ok()) return ClientProtocolError(now, frame.status());
    if (!frame->has_value()) return;
    AfterClientStep(now, client_.HandleAuthFrame(**frame, env_));
  }
}

void Unit::Impl::AfterClientStep(Instant now, ClientSession::Step step) {
  switch (step) {
    case ClientSession::Step::kContinue:
      return;
    case ClientSession::Step::kAuthenticated: {
      // From here the pool's queue timeout and the connect timeout govern the wait. The first
      // connection goes to the primary (or, with none known, to any node that is up): its
      // ParameterStatus set is the one the client is welcomed with.
      auth_deadline_.reset();
      TraceSessionOpen();
      std::optional<NodeId> node = PrimaryNode();
      if (!node) {
        std::vector<NodeId> replicas = ReadableReplicas();
        if (!replicas.empty()) node = replicas.front();
      }
      StartCheckout(node.value_or(NodeId{0}));
      return;
    }
    case ClientSession::Step::kCancel:
      Request(CancelRequest{client_.cancel_key().pid, client_.cancel_key().secret});
      CloseClient(now);
      return;
    case ClientSession::Step::kReject:
      ++(client_.user().empty() ? counters_.protocol_errors : counters_.auth_failures);
      CloseClient(now);
      return;
  }
}

void Unit::Impl::PumpClientSession(Instant now) {
  while (client_open_ && !client_read_paused_ && client_.state() == ClientSession::State::kReady) {
    auto frame = client_.reader().Next();
    if (!frame.ok()) return ClientProtocolError(now, frame.status());
    if (!frame->has_value()) break;
    const pg::Frame& message = **frame;
    TraceFromClient(message);
    if (message.type == 'X') {
      CloseClient(now);
      return;
    }
    if (message.type == 'p') {
      return ClientProtocolError(
          now, absl::InvalidArgumentError("unexpected password message after authentication"));
    }
    if (message.type == 'Q' || message.type == 'S' || message.type == 'F') {
      ++counters_.queries;
      ++client_queries_;
    }
    TakeClientMessage(message);
  }
  Dispatch(now);
}

void Unit::Impl::ClientProtocolError(Instant now, const absl::Status& status) {
  ++counters_.protocol_errors;
  if (client_.state() != ClientSession::State::kClosing) {
    client_.Fatal("08P01", Cat("invalid message from client: ", status.message()));
  }
  Flush(now);
  CloseClient(now);
}

void Unit::Impl::CloseClient(Instant now) {
  if (!client_open_) return;
  if (!client_.output().empty()) {
    TraceToClient(client_.output());
    client_sent_ += client_.output().size();
    Emit(Send{client_.conn(), std::move(client_.output())});
    client_.output().clear();
  }
  TraceSessionClose("closed by switchyard", {});
  Emit(Close{client_.conn(), "client session ended"});
  client_open_ = false;
  LeaveClient(now);
}

void Unit::Impl::LeaveClient(Instant now) {
  auth_deadline_.reset();
  if (cancel_key_registered_) {
    Request(UnregisterCancelKeyRequest{client_pid_, client_secret_});
    cancel_key_registered_ = false;
  }
  if (checkout_node_) Request(CancelCheckoutRequest{});
  GiveUpFunctionsLoad();
  for (const SentBatch& sent : inflight_) {
    if (sent.counted) Request(NodeDone{sent.node});
  }
  if (pick_pending_ || picked_) {
    // The choice still comes (or came) and counted the node: give it back.
    if (picked_) Request(NodeDone{*picked_});
  }
  inflight_.clear();
  queue_.clear();
  building_ = Batch{};
  Request(counters_);
  counters_ = CountersDelta{};
  // Reset every connection; resetting may drop slots, so walk a copy of the connections.
  std::vector<ConnId> conns;
  for (const auto& slot : slots_) conns.push_back(slot->session->conn());
  for (ConnId conn : conns) {
    if (ServerSlot* slot = SlotOf(conn)) ResetSlot(now, *slot);
  }
}

// ---------------------------------------------------------------- timers, flow, drain

void Unit::Impl::OnServiceReply(Instant now, const ServiceReply& reply) {
  if (auto* checkout = std::get_if<CheckoutReply>(&reply)) return OnCheckout(now, *checkout);
  if (auto* chosen = std::get_if<ReplicaChosen>(&reply)) return OnReplicaChosen(now, *chosen);
  if (std::holds_alternative<CancelDelivered>(reply)) return OnCancelDelivered(now);
  if (auto* functions = std::get_if<FunctionsReply>(&reply)) return OnFunctionsReply(*functions);
}

void Unit::Impl::OnCancelDelivered(Instant now) {
  TraceCancel();
  // Forwarded only while a query is in flight, to the server connection running it.
  if (!client_open_ || inflight_.empty()) return;
  ServerSlot* slot = SlotFor(inflight_.front().node);
  if (slot && slot->session->state() == ServerSession::State::kQuery) {
    StartCancel(now, *slot->session);
  }
}

void Unit::Impl::OnTimer(Instant now) {
  bool fate_unknown = false;
  const size_t timed_out = std::erase_if(cancels_, [&](const CancelConnection& c) {
    if (c.deadline > now) return false;
    Emit(Close{c.conn, "cancel connection timed out"});
    fate_unknown = fate_unknown || c.sent;
    return true;
  });
  if (timed_out > 0) AfterCancelEnded(now, fate_unknown);
  if (auth_deadline_ && *auth_deadline_ <= now && client_open_) {
    auth_deadline_.reset();
    client_.Fatal("08006", "timeout expired while waiting for startup and authentication");
    Flush(now);
    CloseClient(now);
  }
  if (idle_deadline_ && *idle_deadline_ <= now && client_open_) {
    idle_deadline_.reset();
    client_.Fatal("57P05", "terminating connection due to idle-session timeout");
    Flush(now);
    CloseClient(now);
  }
  // Slots still connecting or logging in past the connect timeout.
  if (connect_deadline_ && *connect_deadline_ <= now) {
    connect_deadline_.reset();
    for (const auto& slot : slots_) {
      const ServerSession::State state = slot->session->state();
      if (state == ServerSession::State::kConnecting || state == ServerSession::State::kStartup ||
          state == ServerSession::State::kLogin) {
        SlotLost(now, *slot, "timed out connecting to the server", false);
        break;  // one per firing: the slot list changed; the next deadline catches the rest
      }
    }
  }
  for (const auto& slot : slots_) {
    if (slot->reset_deadline && *slot->reset_deadline <= now) {
      DropResettingSlot(now, *slot);
      break;
    }
  }
}

void Unit::Impl::OnWritable(Instant now, ConnId conn, uint64_t flushed) {
  if (client_open_ && conn == client_.conn()) {
    client_flushed_ += flushed;
    CHECK_LE(client_flushed_, client_sent_);
    if (ClientPending() > config_.client_output_low_bytes) return;
    for (const auto& slot : slots_) {
      if (slot->read_paused) {
        slot->read_paused = false;
        PumpServer(now, *slot);
        break;  // PumpServer may change slots_
      }
    }
  } else if (ServerSlot* slot = SlotOf(conn)) {
    slot->flushed += flushed;
    CHECK_LE(slot->flushed, slot->sent);
    if (client_read_paused_ && slot->Pending() <= config_.client_output_low_bytes) {
      client_read_paused_ = false;
      PumpClient(now);
    }
  }
}

void Unit::Impl::UpdateReadPauses() {
  // Outside the session phase, a client may only send a bounded backlog ahead; in it, the
  // batches waiting for a node are bounded the same way.
  client_backlog_paused_ = client_open_ && ((client_.state() != ClientSession::State::kReady &&
                                             client_.reader().buffered() > kClientBacklogMax) ||
                                            queued_bytes_ > kClientBacklogMax);
}

void Unit::Impl::BeginDrain(Instant now) {
  capture_.now = now;
  draining_ = true;
  MaybeFinishDrain(now);
  Flush(now);
  TraceFlush();
}

void Unit::Impl::MaybeFinishDrain(Instant now) {
  if (!client_open_) return;
  const bool busy =
      client_.state() == ClientSession::State::kReady && (!inflight_.empty() || !queue_.empty());
  if (busy) return;
  client_.Fatal("57P01", "terminating connection: switchyard is shutting down");
  Flush(now);
  CloseClient(now);
}

std::optional<Instant> Unit::Impl::NextDeadline() const {
  std::optional<Instant> next;
  auto consider = [&](const std::optional<Instant>& t) {
    if (t && (!next || *t < *next)) next = t;
  };
  consider(auth_deadline_);
  consider(connect_deadline_);
  consider(idle_deadline_);
  for (const auto& slot : slots_) consider(slot->reset_deadline);
  for (const CancelConnection& c : cancels_) consider(c.deadline);
  return next;
}

bool Unit::Impl::Finished() const {
  return started_ && !client_open_ && slots_.empty() && cancels_.empty() && !checkout_node_ &&
         !pick_pending_ && actions_.empty();
}

std::vector<ConnId> Unit::Impl::Conns() const {
  std::vector<ConnId> conns;
  if (client_open_) conns.push_back(client_.conn());
  for (const auto& slot : slots_) {
    if (slot->session->state() != ServerSession::State::kBroken) {
      conns.push_back(slot->session->conn());
    }
  }
  for (const CancelConnection& c : cancels_) conns.push_back(c.conn);
  return conns;
}

bool Unit::Impl::WantsRead(ConnId conn) const {
  if (client_open_ && conn == client_.conn()) {
    return !client_read_paused_ && !client_backlog_paused_;
  }
  for (const auto& slot : slots_) {
    if (slot->session->conn() != conn) continue;
    if (IsMutant(config_.mutants, Mutant::kNeverRearm) && client_queries_ >= 2) return false;
    return !slot->read_paused;
  }
  return true;
}

void Unit::Impl::CheckInvariants() const {
  client_.CheckInvariants();
  for (const auto& slot : slots_) {
    slot->session->CheckInvariants();
    CHECK_LE(slot->flushed, slot->sent);
    CHECK(slot->session->key().node == slot->node);
    for (const auto& other : slots_) {
      if (other != slot) CHECK(other->node != slot->node) << "two connections to one node";
    }
  }
  CHECK_LE(client_flushed_, client_sent_);
  for (const SentBatch& sent : inflight_) {
    CHECK(sent.node == inflight_.front().node) << "two nodes in flight at once";
  }
  if (!client_open_) {
    CHECK(!cancel_key_registered_);
    CHECK(inflight_.empty());
  }
  if (client_open_ && client_.state() == ClientSession::State::kReady) CHECK(welcomed_);
}

// ---------------------------------------------------------------- Unit

Unit::Unit(UnitId id, ConnId client, const ProxyConfig& config, Environment& env, bool admitted,
           ClusterSnapshot cluster)
    : id_(id),
      impl_(std::make_unique<Impl>(id, client, config, env, admitted, std::move(cluster))) {}

Unit::Unit(UnitId id) : id_(id) {}

std::unique_ptr<Unit> Unit::NewHealthChecker(UnitId id, const ProxyConfig& config,
                                             Environment& env) {
  std::unique_ptr<Unit> unit(new Unit(id));
  unit->health_ = std::make_unique<HealthUnit>(config, env);
  return unit;
}

Unit::~Unit() = default;
void Unit::Handle(Instant now, const Event& event) {
  health_ ? health_->Handle(now, event) : impl_->Handle(now, event);
}
std::optional<Action> Unit::PollAction() {
  return health_ ? health_->PollAction() : impl_->PollAction();
}
std::optional<Instant> Unit::NextDeadline() const {
  return health_ ? health_->NextDeadline() : impl_->NextDeadline();
}
void Unit::CheckInvariants() const {
  health_ ? health_->CheckInvariants() : impl_->CheckInvariants();
}
void Unit::BeginDrain(Instant now) { health_ ? health_->BeginDrain(now) : impl_->BeginDrain(now); }
bool Unit::Finished() const { return health_ ? health_->Finished() : impl_->Finished(); }
std::vector<ConnId> Unit::Conns() const { return health_ ? health_->Conns() : impl_->Conns(); }
bool Unit::WantsRead(ConnId conn) const { return health_ ? true : impl_->WantsRead(conn); }

}  // namespace switchyard
