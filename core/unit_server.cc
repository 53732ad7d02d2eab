// Unit: its server connections, one per node at most. Checkout and login, the session-state
// replay a connection needs before the client's statements run there, the answers, the reset
// before a connection goes back to the pool, and the loss of a connection (DESIGN.md 4-5).
#include <algorithm>

#include "core/base/check.h"
#include "core/base/strings.h"
#include "core/mutants.h"
#include "core/unit_internal.h"

namespace switchyard {
namespace {

constexpr int64_t kResetTimeoutUs = MsToUs(10'000);
constexpr size_t kScramNonceBytes = 18;

// The messages that open an extended-protocol answer without saying anything about its outcome.
bool IsAnswerPreamble(char type) {
  return type == '1' || type == '2' || type == 't' || type == 'T' || type == 'n';
}

}  // namespace

ServerSlot* Unit::Impl::SlotFor(NodeId node) {
  for (const auto& slot : slots_) {
    if (slot->node == node) return slot.get();
  }
  return nullptr;
}

ServerSlot* Unit::Impl::SlotOf(ConnId conn) {
  for (const auto& slot : slots_) {
    if (slot->session->conn() == conn) return slot.get();
  }
  return nullptr;
}

void Unit::Impl::FlushServers() {
  for (const auto& slot : slots_) {
    ServerSession& server = *slot->session;
    if (server.output().empty() || server.state() == ServerSession::State::kConnecting) continue;
    TraceToServer(*slot);
    slot->sent += server.output().size();
    Emit(Send{server.conn(), std::move(server.output())});
    server.output().clear();
  }
}

// ---------------------------------------------------------------- checkout, connect, login

void Unit::Impl::StartCheckout(NodeId node) {
  CHECK(!checkout_node_) << "one checkout at a time";
  CHECK(SlotFor(node) == nullptr);
  checkout_node_ = node;
  Request(CheckoutRequest{client_.MakePoolKey(node)});
}

void Unit::Impl::OnCheckout(Instant now, const CheckoutReply& reply) {
  CHECK(checkout_node_) << "checkout reply without a request";
  const NodeId node = *checkout_node_;
  checkout_node_.reset();
  const bool wanted = client_open_ && client_.state() != ClientSession::State::kClosing;
  switch (reply.kind) {
    case CheckoutReply::Kind::kReuse: {
      CHECK(reply.connection.has_value());
      if (!wanted) {
        Request(ReleaseRequest{*reply.connection});
        return;
      }
      auto slot = std::make_unique<ServerSlot>();
      slot->node = node;
      slot->session = std::make_unique<ServerSession>(*reply.connection, config_.message_size_max);
      slots_.push_back(std::move(slot));
      SlotReady(now, *slots_.back());
      return;
    }
    case CheckoutReply::Kind::kConnect: {
      PoolKey key = client_.MakePoolKey(node);
      if (!wanted) {
        Request(ForgetRequest{key, ConnId{}});
        return;
      }
      ConnId conn = env_.NewConnId();
      auto slot = std::make_unique<ServerSlot>();
      slot->node = node;
      slot->session =
          std::make_unique<ServerSession>(conn, std::move(key), config_.message_size_max);
      slots_.push_back(std::move(slot));
      connect_deadline_ = now + MsToUs(config_.connect_timeout_ms);
      Emit(Connect{conn, node});
      return;
    }
    case CheckoutReply::Kind::kTimedOut:
    case CheckoutReply::Kind::kRefused: {
      if (!wanted) return;
      const std::string why =
          reply.kind == CheckoutReply::Kind::kTimedOut
              ? Cat("no server connection became available within ", config_.checkout_timeout_ms,
                    " ms")
              : std::string("the server connection pool cannot serve this client");
      if (!welcomed_) {
        client_.Fatal("53300", why);
        return;
      }
      // In session: the batch waiting for this node fails; the session goes on.
      if (!queue_.empty()) {
        Batch batch = std::move(queue_.front());
        queue_.pop_front();
        queued_bytes_ -= std::min(queued_bytes_, batch.bytes.size());
        AnswerNoServer(batch, why);
      }
      Dispatch(now);
      return;
    }
    case CheckoutReply::Kind::kCancelled:
      CHECK(!client_open_) << "checkout cancelled while the client still waits";
      return;
  }
}

void Unit::Impl::OnConnected(Instant now, ConnId conn) {
  ServerSlot* slot = SlotOf(conn);
  if (slot && slot->session->state() == ServerSession::State::kConnecting) {
    pg::StartupMessage startup = client_.startup();
    startup.protocol = pg::kProtocolVersion3;
    slot->session->OnConnected(startup);
    return;
  }
  auto it = std::find_if(cancels_.begin(), cancels_.end(),
                         [&](const CancelConnection& c) { return c.conn == conn; });
  if (it != cancels_.end()) {
    Emit(Send{conn, it->request.Encode()});
    it->sent = true;
    it->deadline = now + MsToUs(config_.connect_timeout_ms);
  }
}

void Unit::Impl::OnConnectFailed(Instant now, ConnId conn, std::string_view why) {
  if (std::erase_if(cancels_, [&](const CancelConnection& c) { return c.conn == conn; }) > 0) {
    return AfterCancelEnded(now, /*cancel_fate_unknown=*/false);
  }
  ServerSlot* slot = SlotOf(conn);
  if (!slot) return;
  slot->session->MarkBroken();
  SlotLost(now, *slot, Cat("could not connect to the server: ", why), /*already_closed=*/true);
}

void Unit::Impl::PumpServer(Instant now, ServerSlot& slot) {
  switch (slot.session->state()) {
    case ServerSession::State::kStartup:
    case ServerSession::State::kLogin:
      return PumpServerLogin(now, slot);
    case ServerSession::State::kReplaying:
      return PumpServerReplay(now, slot);
    case ServerSession::State::kReady:
    case ServerSession::State::kQuery:
      return PumpServerSession(now, slot);
    case ServerSession::State::kReset:
      return PumpServerReset(now, slot);
    case ServerSession::State::kConnecting:
    case ServerSession::State::kBroken:
      return;
  }
}

void Unit::Impl::PumpServerLogin(Instant now, ServerSlot& slot) {
  ServerCredentials credentials{client_.user(), client_.secret(), client_.scram_client_key()};
  ServerSession& server = *slot.session;
  while (server.state() == ServerSession::State::kStartup ||
         server.state() == ServerSession::State::kLogin) {
    auto frame = server.reader().Next();
    if (!frame.ok()) {
      return SlotLost(now, slot, Cat("bad bytes from server: ", frame.status().message()), false);
    }
    if (!frame->has_value()) return;
    std::string nonce(kScramNonceBytes, '\0');
    if ((**frame).type == 'R') env_.RandomBytes(nonce.data(), nonce.size());
    auto result = server.HandleLoginFrame(**frame, credentials, nonce);
    switch (result.step) {
      case ServerSession::LoginStep::kContinue:
        break;
      case ServerSession::LoginStep::kReady:
        return SlotReady(now, slot);
      case ServerSession::LoginStep::kFailed:
        server.MarkBroken();
        if (client_open_ && !welcomed_) {
          client_.RejectWith(result.error_for_client);
          DropSlot(slot, /*already_closed=*/false);
          Flush(now);
          CloseClient(now);
          return;
        }
        return SlotLost(now, slot, "the server refused the login", false);
    }
  }
}

void Unit::Impl::SlotReady(Instant now, ServerSlot& slot) {
  if (std::none_of(slots_.begin(), slots_.end(), [](const auto& s) {
        const ServerSession::State state = s->session->state();
        return state == ServerSession::State::kStartup || state == ServerSession::State::kLogin ||
               state == ServerSession::State::kConnecting;
      })) {
    connect_deadline_.reset();
  }
  if (!client_open_) {
    // The client left while we logged in: the fresh connection is clean, pool it.
    Request(ReleaseRequest{slot.session->ToPooled(now)});
    std::erase_if(slots_, [&](const auto& s) { return s.get() == &slot; });
    return;
  }
  if (!welcomed_) return WelcomeClient(now, slot);
  Dispatch(now);
}

void Unit::Impl::WelcomeClient(Instant now, const ServerSlot& slot) {
  welcomed_ = true;
  env_.RandomBytes(reinterpret_cast<char*>(&client_secret_), sizeof(client_secret_));
  // Session pooling without routing: the client is told the real pid of its server connection,
  // so pg_backend_pid() lookups work. Everywhere else the pid is made up. The secret is always
  // ours, so only a cancel through us matches.
  if (config_.node_count == 1 && config_.pool_mode == PoolMode::kSession) {
    client_pid_ = slot.session->backend_pid();
  } else {
    env_.RandomBytes(reinterpret_cast<char*>(&client_pid_), sizeof(client_pid_));
    client_pid_ = (client_pid_ & 0x3fffffff) | 1;
  }
  pg::Parameters parameters = slot.session->parameters();
  for (auto& [name, value] : parameters) {
    // A replica's hot-standby flag is never shown: the client talks to the cluster.
    if (name == "in_hot_standby") value = "off";
  }
  client_.Welcome(parameters, client_pid_, client_secret_, 'I');
  auth_deadline_.reset();
  Request(RegisterCancelKeyRequest{client_pid_, client_secret_});
  cancel_key_registered_ = true;
  RequestFunctions();
  if (draining_) return MaybeFinishDrain(now);
  PumpClient(now);
  MaybeReleaseIdle(now);
}

// ---------------------------------------------------------------- replay

bool Unit::Impl::MaybeReplay(ServerSlot& slot) {
  // LISTEN cannot run on a hot standby; a listening client is pinned to the primary anyway.
  const ListenReplay listens =
      cluster_.primary == slot.node ? ListenReplay::kInclude : ListenReplay::kExclude;
  const bool load_functions = functions_load_ && cluster_.primary == slot.node;
  if (!history_.NeedsReplay(slot.applied, listens) && !load_functions) return false;
  if (IsMutant(config_.mutants, Mutant::kSkipReplayAfterLoss) && lost_any_ && !load_functions) {
    history_.MarkApplied(&slot.applied);
    return false;
  }
  ReplayPlan plan = history_.Plan(slot.applied, listens);
  if (plan.empty() && !load_functions) {
    slot.applied = std::move(plan.after);
    return false;
  }
  std::string messages;
  int ready_count = 0;
  if (!plan.statements.empty()) {
    messages += pg::Query{plan.QueryText()}.Encode();
    ++ready_count;
  }
  slot.replay_groups.clear();
  slot.replay_ready_seen = 0;
  slot.replay_refused.clear();
  if (!plan.statements.empty()) slot.replay_groups.emplace_back();
  if (!plan.parses.empty()) {
    bool group_open = false;
    for (const ParseRequest& parse : plan.parses) {
      const bool unconfirmed = unconfirmed_parses_.contains(parse.name);
      if (unconfirmed && group_open) {
        messages += pg::Sync{}.Encode();
        ++ready_count;
        group_open = false;
      }
      messages += pg::Parse{parse.name, parse.query, parse.param_oids}.Encode();
      if (unconfirmed) {
        messages += pg::Sync{}.Encode();
        ++ready_count;
        slot.replay_groups.push_back(parse.name);
      } else if (!group_open) {
        slot.replay_groups.emplace_back();
        group_open = true;
      }
    }
    if (group_open) {
      messages += pg::Sync{}.Encode();
      ++ready_count;
    }
  }
  AppendFunctionsLoad(slot, messages, ready_count);
  slot.replaying = std::move(plan.after);
  slot.session->BeginReplay(std::move(messages), ready_count);
  return true;
}

void Unit::Impl::PumpServerReplay(Instant now, ServerSlot& slot) {
  ServerSession& server = *slot.session;
  while (server.state() == ServerSession::State::kReplaying) {
    auto frame = server.reader().Next();
    if (!frame.ok()) {
      return SlotLost(now, slot, Cat("bad bytes from server: ", frame.status().message()), false);
    }
    if (!frame->has_value()) return;
    TraceFromServer(slot, **frame);
    if ((**frame).type == 'E' && ForgiveReplayError(slot)) continue;
    if ((**frame).type == 'D') OnReplayRow(slot, **frame);
    if ((**frame).type == 'Z') ++slot.replay_ready_seen;
    switch (server.HandleReplayFrame(**frame)) {
      case ServerSession::ReplayStep::kContinue:
        break;
      case ServerSession::ReplayStep::kDone:
        slot.applied = std::move(*slot.replaying);
        slot.replaying.reset();
        ConfirmReplayedParses(slot);
        FinishFunctionsLoad(slot);
        Dispatch(now);
        return;
      case ServerSession::ReplayStep::kFailed:
        return SlotLost(now, slot, "the server rejected the session's state", false);
    }
  }
}

// ---------------------------------------------------------------- answers

void Unit::Impl::PumpServerSession(Instant now, ServerSlot& slot) {
  ServerSession& server = *slot.session;
  // Kept apart from the slot: FinishBatch and RetryOnPrimary may free it.
  const NodeId node = slot.node;
  while (!slot.read_paused && (server.state() == ServerSession::State::kReady ||
                               server.state() == ServerSession::State::kQuery)) {
    auto frame = server.reader().Next();
    if (!frame.ok()) {
      return SlotLost(now, slot, Cat("bad bytes from server: ", frame.status().message()), false);
    }
    if (!frame->has_value()) return;
    const pg::Frame& message = **frame;
    TraceFromServer(slot, message);
    if (!server.NoteServerMessage(message)) {
      if (message.type == 'E' && IsMutant(config_.mutants, Mutant::kForwardServerFatal)) {
        client_.Forward(message.raw);
      }
      return SlotLost(now, slot, "server ended the session", false);
    }
    const bool ours = !inflight_.empty() && inflight_.front().node == slot.node;
    if (!ours) {
      // Between statements a server may still say something of its own accord.
      if (message.type == 'N' || message.type == 'A') {
        client_.Forward(message.raw);
      } else if (message.type != 'S') {
        return SlotLost(
            now, slot,
            Cat("unexpected message '", std::string(1, message.type), "' from an idle server"),
            false);
      }
      continue;
    }
    SentBatch& sent = inflight_.front();
    HistoryServerMessage(message);
    const bool from_replica = cluster_.primary != slot.node;
    if (from_replica && !sent.answered) {
      // Only a batch that ran outside any transaction can move: inside one (a READ ONLY
      // transaction on this replica, or one this batch opens) the refusal is the client's answer,
      // as PostgreSQL would give it, and the transaction it aborted is on this connection.
      if (message.type == 'E' && !InTransaction() && !sent.batch.opens_transaction) {
        auto error = pg::ErrorFields::Decode('E', message.payload);
        if (error.ok() && (error->sqlstate() == "25006" || error->sqlstate() == "40001")) {
          sent.refused_by_replica = true;
        }
      }
      if (IsAnswerPreamble(message.type) && !sent.refused_by_replica) {
        sent.held.append(message.raw);
        continue;
      }
    }
    if (sent.refused_by_replica) {
      if (message.type == 'Z') {
        auto ready = pg::ReadyForQuery::Decode(message.payload);
        if (!ready.ok() || ready->status != 'I') {
          // The refusal left a transaction open there: the connection is not what we think.
          return SlotLost(now, slot, "a replica's refusal left a transaction open", false);
        }
        RetryOnPrimary(now);
        if (SlotFor(node) != &slot) return;
      }
      continue;
    }
    if (message.type == 'S' && message.payload.starts_with("in_hot_standby")) continue;
    if (!sent.held.empty()) {
      client_.Forward(sent.held);
      sent.held.clear();
    }
    if (!(message.type == 'Z' && IsMutant(config_.mutants, Mutant::kDropReadyForQuery) &&
          client_queries_ == 2)) {
      client_.Forward(message.raw);
      sent.answered = true;
    }
    if (message.type == 'Z') {
      auto ready = pg::ReadyForQuery::Decode(message.payload);
      FinishBatch(now, ready.ok() ? ready->status : 'I');
      if (draining_) return MaybeFinishDrain(now);
      // FinishBatch may have dispatched and changed the slots.
      if (SlotFor(node) != &slot) return;
    }
    if (ClientPending() + client_.output().size() > config_.client_output_high_bytes &&
        !IsMutant(config_.mutants, Mutant::kIgnoreWatermark)) {
      // The client is slow: leave the rest in the server's socket until it catches up.
      slot.read_paused = true;
    }
  }
}

// ---------------------------------------------------------------- reset and release

void Unit::Impl::ResetSlot(Instant now, ServerSlot& slot) {
  // Reset already, and waiting for a cancel to end before it goes back to the pool.
  if (slot.release_waits_for_cancel) return;
  ServerSession& server = *slot.session;
  switch (server.state()) {
    case ServerSession::State::kReady:
    case ServerSession::State::kQuery: {
      if (IsMutant(config_.mutants, Mutant::kLeakOnDisconnect)) {
        std::erase_if(slots_, [&](const auto& s) { return s.get() == &slot; });
        return;
      }
      if (server.ready_owed() > 0 && !server.in_copy_in()) StartCancel(now, server);
      server.BeginReset(IsMutant(config_.mutants, Mutant::kSkipDiscardAll));
      slot.reset_deadline = now + kResetTimeoutUs;
      slot.read_paused = false;
      FlushServers();
      PumpServer(now, slot);
      return;
    }
    case ServerSession::State::kReset:
      return;
    default:
      // Half-logged-in, replaying or broken: never reused.
      DropSlot(slot, /*already_closed=*/false);
      return;
  }
}

void Unit::Impl::PumpServerReset(Instant now, ServerSlot& slot) {
  ServerSession& server = *slot.session;
  if (slot.release_waits_for_cancel) {
    // Reset already; an idle backend says nothing, so any byte now is one we do not understand.
    if (!server.reader().Unconsumed().empty()) DropResettingSlot(now, slot);
    return;
  }
  while (server.state() == ServerSession::State::kReset) {
    auto frame = server.reader().Next();
    if (!frame.ok()) return DropResettingSlot(now, slot);
    if (!frame->has_value()) return;
    switch (server.HandleResetFrame(**frame)) {
      case ServerSession::ResetStep::kContinue:
        break;
      case ServerSession::ResetStep::kDone:
        return FinishReset(now, slot);
      case ServerSession::ResetStep::kFailed:
        return DropResettingSlot(now, slot);
    }
  }
}

void Unit::Impl::FinishReset(Instant now, ServerSlot& slot) {
  slot.reset_deadline.reset();
  if (!slot.session->reader().Unconsumed().empty()) {
    // Bytes after the final ReadyForQuery: the connection is not in a state we understand.
    return DropResettingSlot(now, slot);
  }
  if (!cancels_.empty()) {
    slot.release_waits_for_cancel = true;
    return;
  }
  slot.release_waits_for_cancel = false;
  Request(ReleaseRequest{slot.session->ToPooled(now)});
  std::erase_if(slots_, [&](const auto& s) { return s.get() == &slot; });
  // Transaction pooling: the client's next batch may have waited for this reset.
  if (client_open_ && welcomed_) Dispatch(now);
}

void Unit::Impl::AfterCancelEnded(Instant now, bool cancel_fate_unknown) {
  std::vector<ConnId> waiting;
  for (const auto& slot : slots_) {
    if (slot->release_waits_for_cancel) waiting.push_back(slot->session->conn());
  }
  for (ConnId conn : waiting) {
    ServerSlot* slot = SlotOf(conn);
    if (!slot) continue;
    if (cancel_fate_unknown) {
      slot->release_waits_for_cancel = false;
      DropSlot(*slot, /*already_closed=*/false);
    } else if (cancels_.empty()) {
      FinishReset(now, *slot);
    }
  }
  // Transaction pooling: the client's next batch may have waited for a connection given up here.
  if (!waiting.empty() && client_open_ && welcomed_ && !draining_) Dispatch(now);
}

void Unit::Impl::StartCancel(Instant now, const ServerSession& server) {
  ConnId conn = env_.NewConnId();
  pg::CancelRequest request{server.backend_pid(), server.backend_secret()};
  cancels_.push_back(CancelConnection{conn, request, now + MsToUs(config_.connect_timeout_ms)});
  Emit(Connect{conn, server.key().node});
}

// ---------------------------------------------------------------- loss

void Unit::Impl::DropSlot(ServerSlot& slot, bool already_closed) {
  if (!already_closed) Emit(Close{slot.session->conn(), "server connection given up"});
  Request(ForgetRequest{slot.session->key(), slot.session->conn()});
  std::erase_if(slots_, [&](const auto& s) { return s.get() == &slot; });
}

void Unit::Impl::DropResettingSlot(Instant now, ServerSlot& slot) {
  DropSlot(slot, /*already_closed=*/false);
  // Transaction pooling: the client's next batch may wait for this connection to leave.
  if (client_open_ && welcomed_ && !draining_) Dispatch(now);
}

void Unit::Impl::SlotLost(Instant now, ServerSlot& slot, std::string_view why,
                          bool already_closed) {
  ++counters_.server_losses;
  lost_any_ = true;
  const NodeId node = slot.node;
  const bool commit = slot.session->commit_in_flight();
  slot.session->MarkBroken();
  DropSlot(slot, already_closed);
  // The backlog that paused the client (SendBatch) may have been this connection's: gone with it.
  if (client_read_paused_ && std::none_of(slots_.begin(), slots_.end(), [&](const auto& s) {
        return s->Pending() > config_.client_output_low_bytes;
      })) {
    client_read_paused_ = false;
  }
  avoid_.emplace_back(node, now);
  if (!client_open_) return;
  if (!welcomed_) {
    client_.Fatal("08006", Cat("switchyard lost the server connection while logging in: ", why));
    Flush(now);
    CloseClient(now);
    return;
  }
  if (pinned_node_ == node) {
    // Temporary tables, session locks, WITH HOLD cursors or a session authorization lived
    // there: a new connection would not be this session.
    client_.Fatal("08006", Cat("terminating connection: switchyard lost the server connection "
                               "holding session state it cannot restore (",
                               why, ")"));
    Flush(now);
    CloseClient(now);
    return;
  }
  if (txn_node_ == node) {
    // The transaction's connection: whatever runs there now fails, and a client idle in the
    // transaction learns it at its next statement.
    txn_node_.reset();
    loss_unreported_ = true;
    // The transaction died with its connection: the history must not wait for its end.
    history_.OnServerLost();
  }
  const bool in_flight = !inflight_.empty() && inflight_.front().node == node;
  if (in_flight) {
    loss_unreported_ = false;
    AnswerLoss(now, commit);
  } else if (!queue_.empty() && !loss_unreported_ && ++queue_.front().retries > 2) {
    // The batch waiting for this connection was never sent: it may try again (a write too),
    // but not forever.
    Batch batch = std::move(queue_.front());
    queue_.pop_front();
    queued_bytes_ -= std::min(queued_bytes_, batch.bytes.size());
    AnswerNoServer(batch, why);
  }
  Flush(now);
  Dispatch(now);
}

}  // namespace switchyard
