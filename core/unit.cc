// Unit: a client session with its server sessions, driven by events (DESIGN.md sections 2-4).
// It glues ClientSession to ServerSession, asks the shared services for connections and cancel
// routing, enforces the output watermarks and the timers, and resets a server connection
// before giving it back to the pool.
#include <algorithm>
#include <deque>
#include <memory>

#include "core/base/check.h"
#include "core/base/strings.h"
#include "core/mutants.h"
#include "core/proxy.h"
#include "core/session/client_session.h"
#include "core/session/server_session.h"

namespace switchyard {
namespace {

constexpr int64_t kResetTimeoutUs = MsToUs(10'000);
constexpr size_t kScramNonceBytes = 18;
// Bytes a client may send ahead while it waits for its server connection.
constexpr size_t kClientBacklogMax = size_t{1} << 20;
constexpr NodeId kPrimary{0};

// A short-lived connection that carries one CancelRequest to a server. It stays open after the
// request is sent: the server closes it once it has signalled the backend, and until then the
// cancel may still hit whatever that backend runs next.
struct CancelConnection {
  ConnId conn;
  pg::CancelRequest request;
  Instant deadline;
  bool sent = false;
};

}  // namespace

class Unit::Impl {
 public:
  Impl(UnitId id, ConnId client, const ProxyConfig& config, Environment& env, bool admitted)
      : id_(id), config_(config), env_(env), client_(client, config, admitted) {}

  void Handle(Instant now, const Event& event);
  std::optional<Action> PollAction();
  std::optional<Instant> NextDeadline() const;
  void CheckInvariants() const;
  void BeginDrain(Instant now);
  bool Finished() const;
  std::vector<ConnId> Conns() const;
  bool WantsRead(ConnId conn) const;

 private:
  // Event handlers.
  void OnReceived(Instant now, ConnId conn, std::string_view bytes);
  void OnConnected(Instant now, ConnId conn);
  void OnConnectFailed(Instant now, ConnId conn, std::string_view why);
  void OnClosed(Instant now, ConnId conn, std::string_view why);
  void OnWritable(Instant now, ConnId conn, uint64_t flushed);
  void OnTimer(Instant now);
  void OnServiceReply(Instant now, const ServiceReply& reply);
  void OnCheckout(Instant now, const CheckoutReply& reply);
  void OnCancelDelivered(Instant now);

  // Protocol pumps: consume what the readers have assembled.
  void PumpClient(Instant now);
  void PumpClientStartup(Instant now);
  void PumpClientAuth(Instant now);
  void PumpClientSession(Instant now);
  void PumpServer(Instant now);
  void PumpServerLogin(Instant now);
  void PumpServerSession(Instant now);
  void PumpServerReset(Instant now);

  void AfterClientStep(Instant now, ClientSession::Step step);
  void ServerReady(Instant now);
  void ServerLost(Instant now, std::string_view why, bool already_closed);
  void ClientProtocolError(Instant now, const absl::Status& status);
  // The client is gone (or being closed): cancel what runs for it, reset its connection.
  void LeaveClient(Instant now);
  void CloseClient(Instant now);
  // Gives up the server connection: closes it (unless the driver already did) and frees its
  // pool slot.
  void DropServer(bool already_closed);
  void FinishReset(Instant now);
  // Called whenever a cancel connection ends: a reset server connection held back for it may
  // now go to the pool (or, if a cancel's fate is unknown, must be closed).
  void AfterCancelEnded(Instant now, bool cancel_fate_unknown);
  void StartCancel(Instant now, const ServerSession& server);
  void MaybeFinishDrain(Instant now);

  void Flush(Instant now);
  void Emit(Action action) { actions_.push_back(std::move(action)); }
  void Request(ServiceRequest request) { Emit(RequestService{std::move(request)}); }
  uint64_t ClientPending() const { return client_sent_ - client_flushed_; }
  uint64_t ServerPending() const { return server_sent_ - server_flushed_; }
  void UpdateReadPauses();
  void UpdateIdleDeadline(Instant now);
  bool IsServer(ConnId conn) const { return server_ && server_->conn() == conn; }

  UnitId id_;
  const ProxyConfig& config_;
  Environment& env_;
  ClientSession client_;
  std::unique_ptr<ServerSession> server_;
  std::vector<CancelConnection> cancels_;
  std::deque<Action> actions_;

  bool started_ = false;
  bool client_open_ = true;
  bool checkout_pending_ = false;
  bool cancel_key_registered_ = false;
  bool draining_ = false;
  int32_t client_secret_ = 0;
  std::optional<Instant> auth_deadline_;
  std::optional<Instant> connect_deadline_;
  std::optional<Instant> reset_deadline_;
  // The reset finished but a cancel for this connection is still in flight: pooling it now could
  // let that cancel hit the next client's query.
  bool release_waits_for_cancel_ = false;
  uint64_t client_queries_ = 0;  // Query, Sync and FunctionCall messages from this client
  // Set while the client sits idle in session (nothing in flight), when an idle timeout is on.
  std::optional<Instant> idle_deadline_;

  uint64_t client_sent_ = 0;
  uint64_t client_flushed_ = 0;
  uint64_t server_sent_ = 0;
  uint64_t server_flushed_ = 0;
  bool server_read_paused_ = false;
  bool client_read_paused_ = false;
  bool client_backlog_paused_ = false;
  CountersDelta counters_;
};

// ---------------------------------------------------------------- dispatch

void Unit::Impl::Handle(Instant now, const Event& event) {
  if (!started_) {
    started_ = true;
    auth_deadline_ = now + MsToUs(config_.auth_timeout_ms);
    counters_.clients_accepted = 1;
  }
  std::visit(
      [&](const auto& e) {
        using E = std::decay_t<decltype(e)>;
        if constexpr (std::is_same_v<E, Accepted>) {
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
        }
      },
      event);
  Flush(now);
  UpdateReadPauses();
  UpdateIdleDeadline(now);
}

void Unit::Impl::UpdateIdleDeadline(Instant now) {
  const bool idle = client_open_ && client_.state() == ClientSession::State::kReady && server_ &&
                    server_->state() == ServerSession::State::kReady;
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
    client_sent_ += client_.output().size();
    Emit(Send{client_.conn(), std::move(client_.output())});
    client_.output().clear();
  }
  if (client_open_ && client_.state() == ClientSession::State::kClosing) {
    CloseClient(now);
  }
  if (server_ && !server_->output().empty() &&
      server_->state() != ServerSession::State::kConnecting) {
    server_sent_ += server_->output().size();
    Emit(Send{server_->conn(), std::move(server_->output())});
    server_->output().clear();
  }
}

void Unit::Impl::OnReceived(Instant now, ConnId conn, std::string_view bytes) {
  if (client_open_ && conn == client_.conn()) {
    client_.reader().Append(bytes);
    PumpClient(now);
  } else if (IsServer(conn)) {
    server_->reader().Append(bytes);
    PumpServer(now);
  }
  // Bytes on a cancel connection, or on a connection already given up, are ignored.
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
    case ClientSession::Step::kAuthenticated:
      // From here the pool's queue timeout and the connect timeout govern the wait.
      auth_deadline_.reset();
      checkout_pending_ = true;
      Request(CheckoutRequest{client_.MakePoolKey(kPrimary)});
      return;
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
  while (client_open_ && server_ && !client_read_paused_) {
    if (server_->state() != ServerSession::State::kReady &&
        server_->state() != ServerSession::State::kQuery) {
      return;
    }
    auto frame = client_.reader().Next();
    if (!frame.ok()) return ClientProtocolError(now, frame.status());
    if (!frame->has_value()) return;
    const pg::Frame& message = **frame;
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
    server_->NoteClientMessage(message.type, message.payload);
    server_->output().append(message.raw);
    if (ServerPending() + server_->output().size() > config_.client_output_high_bytes) {
      // The server is not taking our bytes: stop reading the client until it does.
      client_read_paused_ = true;
    }
  }
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
    client_sent_ += client_.output().size();
    Emit(Send{client_.conn(), std::move(client_.output())});
    client_.output().clear();
  }
  Emit(Close{client_.conn(), "client session ended"});
  client_open_ = false;
  LeaveClient(now);
}

void Unit::Impl::LeaveClient(Instant now) {
  auth_deadline_.reset();
  if (cancel_key_registered_) {
    Request(UnregisterCancelKeyRequest{server_ ? server_->backend_pid() : 0, client_secret_});
    cancel_key_registered_ = false;
  }
  if (checkout_pending_) Request(CancelCheckoutRequest{});
  Request(counters_);
  counters_ = CountersDelta{};
  if (!server_) return;
  switch (server_->state()) {
    case ServerSession::State::kReady:
    case ServerSession::State::kQuery: {
      if (IsMutant(config_.mutants, Mutant::kLeakOnDisconnect)) {
        server_.reset();
        return;
      }
      if (server_->ready_owed() > 0 && !server_->in_copy_in()) StartCancel(now, *server_);
      server_->BeginReset(IsMutant(config_.mutants, Mutant::kSkipDiscardAll));
      reset_deadline_ = now + kResetTimeoutUs;
      server_read_paused_ = false;
      Flush(now);
      PumpServer(now);
      return;
    }
    case ServerSession::State::kReset:
      return;
    default:
      // Half-logged-in or broken: never reused.
      DropServer(/*already_closed=*/false);
      return;
  }
}

// ---------------------------------------------------------------- server side

void Unit::Impl::OnConnected(Instant now, ConnId conn) {
  if (IsServer(conn) && server_->state() == ServerSession::State::kConnecting) {
    pg::StartupMessage startup = client_.startup();
    startup.protocol = pg::kProtocolVersion3;
    server_->OnConnected(startup);
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
  if (!IsServer(conn)) return;
  server_->MarkBroken();
  DropServer(/*already_closed=*/true);
  if (client_open_) {
    client_.Fatal("08006", Cat("switchyard could not connect to the server: ", why));
    Flush(now);
    CloseClient(now);
  }
}

void Unit::Impl::OnClosed(Instant now, ConnId conn, std::string_view why) {
  if (std::erase_if(cancels_, [&](const CancelConnection& c) { return c.conn == conn; }) > 0) {
    // The server closes a cancel connection once it has signalled the backend; closed before
    // the request went out, the cancel never left.
    return AfterCancelEnded(now, /*cancel_fate_unknown=*/false);
  }
  if (client_open_ && conn == client_.conn()) {
    client_open_ = false;
    LeaveClient(now);
    return;
  }
  if (IsServer(conn)) {
    server_->MarkBroken();
    ServerLost(now, Cat("server closed the connection: ", why), /*already_closed=*/true);
  }
}

void Unit::Impl::PumpServer(Instant now) {
  if (!server_) return;
  switch (server_->state()) {
    case ServerSession::State::kStartup:
    case ServerSession::State::kLogin:
      PumpServerLogin(now);
      break;
    case ServerSession::State::kReady:
    case ServerSession::State::kQuery:
      PumpServerSession(now);
      break;
    case ServerSession::State::kReset:
      PumpServerReset(now);
      break;
    case ServerSession::State::kConnecting:
    case ServerSession::State::kBroken:
      break;
  }
}

void Unit::Impl::PumpServerLogin(Instant now) {
  ServerCredentials credentials{client_.user(), client_.secret(), client_.scram_client_key()};
  while (server_ && (server_->state() == ServerSession::State::kStartup ||
                     server_->state() == ServerSession::State::kLogin)) {
    auto frame = server_->reader().Next();
    if (!frame.ok()) {
      return ServerLost(now, Cat("bad bytes from server: ", frame.status().message()), false);
    }
    if (!frame->has_value()) return;
    std::string nonce(kScramNonceBytes, '\0');
    if ((**frame).type == 'R') env_.RandomBytes(nonce.data(), nonce.size());
    auto result = server_->HandleLoginFrame(**frame, credentials, nonce);
    switch (result.step) {
      case ServerSession::LoginStep::kContinue:
        break;
      case ServerSession::LoginStep::kReady:
        ServerReady(now);
        break;
      case ServerSession::LoginStep::kFailed:
        server_->MarkBroken();
        DropServer(/*already_closed=*/false);
        if (client_open_) {
          client_.RejectWith(result.error_for_client);
          Flush(now);
          CloseClient(now);
        }
        return;
    }
  }
  PumpServer(now);
}

void Unit::Impl::ServerReady(Instant now) {
  connect_deadline_.reset();
  if (!client_open_) {
    // The client left while we logged in: the fresh connection is clean, pool it.
    Request(ReleaseRequest{server_->ToPooled(now)});
    server_.reset();
    return;
  }
  env_.RandomBytes(reinterpret_cast<char*>(&client_secret_), sizeof(client_secret_));
  // Session pooling: the client is told the real pid of its server connection, so
  // pg_backend_pid() lookups work; the secret is ours, so only a cancel through us matches.
  client_.Welcome(server_->parameters(), server_->backend_pid(), client_secret_,
                  server_->transaction_status());
  auth_deadline_.reset();
  Request(RegisterCancelKeyRequest{server_->backend_pid(), client_secret_});
  cancel_key_registered_ = true;
  if (draining_) return MaybeFinishDrain(now);
  PumpClient(now);
}

void Unit::Impl::PumpServerSession(Instant now) {
  while (server_ && !server_read_paused_ &&
         (server_->state() == ServerSession::State::kReady ||
          server_->state() == ServerSession::State::kQuery)) {
    auto frame = server_->reader().Next();
    if (!frame.ok()) {
      return ServerLost(now, Cat("bad bytes from server: ", frame.status().message()), false);
    }
    if (!frame->has_value()) return;
    const pg::Frame& message = **frame;
    if (!server_->NoteServerMessage(message)) {
      if (message.type == 'E' && IsMutant(config_.mutants, Mutant::kForwardServerFatal)) {
        client_.Forward(message.raw);
      }
      return ServerLost(now, "server ended the session", false);
    }
    if (!(message.type == 'Z' && IsMutant(config_.mutants, Mutant::kDropReadyForQuery) &&
          client_queries_ == 2)) {
      client_.Forward(message.raw);
    }
    if (message.type == 'Z' && draining_) return MaybeFinishDrain(now);
    if (ClientPending() + client_.output().size() > config_.client_output_high_bytes &&
        !IsMutant(config_.mutants, Mutant::kIgnoreWatermark)) {
      // The client is slow: leave the rest in the server's socket until it catches up.
      server_read_paused_ = true;
    }
  }
}

void Unit::Impl::PumpServerReset(Instant now) {
  if (release_waits_for_cancel_) {
    // Reset already; an idle backend says nothing, so any byte now is one we do not understand.
    if (!server_->reader().Unconsumed().empty()) DropServer(/*already_closed=*/false);
    return;
  }
  while (server_ && server_->state() == ServerSession::State::kReset) {
    auto frame = server_->reader().Next();
    if (!frame.ok() || !frame->has_value()) {
      if (!frame.ok()) DropServer(false);
      return;
    }
    switch (server_->HandleResetFrame(**frame)) {
      case ServerSession::ResetStep::kContinue:
        break;
      case ServerSession::ResetStep::kDone:
        return FinishReset(now);
      case ServerSession::ResetStep::kFailed:
        DropServer(/*already_closed=*/false);
        return;
    }
  }
}

void Unit::Impl::FinishReset(Instant now) {
  reset_deadline_.reset();
  if (!server_->reader().Unconsumed().empty()) {
    // Bytes after the final ReadyForQuery: the connection is not in a state we understand.
    DropServer(false);
    return;
  }
  if (!cancels_.empty()) {
    release_waits_for_cancel_ = true;
    return;
  }
  release_waits_for_cancel_ = false;
  Request(ReleaseRequest{server_->ToPooled(now)});
  server_.reset();
}

void Unit::Impl::AfterCancelEnded(Instant now, bool cancel_fate_unknown) {
  if (!release_waits_for_cancel_ || !server_) return;
  if (cancel_fate_unknown) {
    release_waits_for_cancel_ = false;
    DropServer(/*already_closed=*/false);
    return;
  }
  if (cancels_.empty()) FinishReset(now);
}

void Unit::Impl::ServerLost(Instant now, std::string_view why, bool already_closed) {
  ++counters_.server_losses;
  const bool in_flight =
      server_->ready_owed() > 0 || server_->in_copy_in() || server_->in_copy_out();
  const bool commit = server_->commit_in_flight();
  const bool logging_in = server_->state() == ServerSession::State::kStartup ||
                          server_->state() == ServerSession::State::kLogin;
  server_->MarkBroken();
  DropServer(already_closed);
  if (!client_open_) return;
  if (logging_in) {
    client_.Fatal("08006", Cat("switchyard lost the server connection while logging in: ", why));
  } else {
    if (in_flight) {
      // The statement's fate: unknown for a COMMIT, failed otherwise. Then the session ends,
      // because without state replay a new server connection would not be this session.
      client_.Forward(pg::BuildError("ERROR", commit ? "08007" : "08006",
                                     commit ? "server connection lost during COMMIT; the "
                                              "transaction's outcome is unknown"
                                            : "server connection lost during the statement"));
    }
    client_.Fatal("08006", Cat("terminating connection: switchyard lost the server "
                               "connection (",
                               why, ")"));
  }
  Flush(now);
  CloseClient(now);
}

void Unit::Impl::DropServer(bool already_closed) {
  CHECK(server_ != nullptr);
  if (!already_closed) Emit(Close{server_->conn(), "server connection given up"});
  Request(ForgetRequest{server_->key(), server_->conn()});
  server_.reset();
  connect_deadline_.reset();
  reset_deadline_.reset();
  release_waits_for_cancel_ = false;
  server_read_paused_ = false;
  server_sent_ = 0;
  server_flushed_ = 0;
}

void Unit::Impl::StartCancel(Instant now, const ServerSession& server) {
  ConnId conn = env_.NewConnId();
  pg::CancelRequest request{server.backend_pid(), server.backend_secret()};
  cancels_.push_back(CancelConnection{conn, request, now + MsToUs(config_.connect_timeout_ms)});
  Emit(Connect{conn, server.key().node});
}

// ---------------------------------------------------------------- services, timers, flow

void Unit::Impl::OnServiceReply(Instant now, const ServiceReply& reply) {
  if (auto* checkout = std::get_if<CheckoutReply>(&reply)) return OnCheckout(now, *checkout);
  if (std::holds_alternative<CancelDelivered>(reply)) return OnCancelDelivered(now);
}

void Unit::Impl::OnCheckout(Instant now, const CheckoutReply& reply) {
  CHECK(checkout_pending_) << "checkout reply without a request";
  checkout_pending_ = false;
  const bool wanted = client_open_ && client_.state() == ClientSession::State::kWaitingForServer;
  switch (reply.kind) {
    case CheckoutReply::Kind::kReuse:
      CHECK(reply.connection.has_value());
      if (!wanted) {
        Request(ReleaseRequest{*reply.connection});
        return;
      }
      server_ = std::make_unique<ServerSession>(*reply.connection, config_.message_size_max);
      ServerReady(now);
      return;
    case CheckoutReply::Kind::kConnect: {
      PoolKey key = client_.MakePoolKey(kPrimary);
      if (!wanted) {
        Request(ForgetRequest{key, ConnId{}});
        return;
      }
      ConnId conn = env_.NewConnId();
      server_ = std::make_unique<ServerSession>(conn, std::move(key), config_.message_size_max);
      connect_deadline_ = now + MsToUs(config_.connect_timeout_ms);
      Emit(Connect{conn, kPrimary});
      return;
    }
    case CheckoutReply::Kind::kTimedOut:
      if (wanted) {
        client_.Fatal("53300", Cat("no server connection became available within ",
                                   config_.checkout_timeout_ms, " ms"));
      }
      return;
    case CheckoutReply::Kind::kRefused:
      if (wanted) client_.Fatal("53300", "the server connection pool cannot serve this client");
      return;
    case CheckoutReply::Kind::kCancelled:
      CHECK(!client_open_) << "checkout cancelled while the client still waits";
      return;
  }
}

void Unit::Impl::OnCancelDelivered(Instant now) {
  // Forwarded only while a query is in flight, to the server connection running it.
  if (!client_open_ || !server_ || server_->state() != ServerSession::State::kQuery) return;
  StartCancel(now, *server_);
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
  if (connect_deadline_ && *connect_deadline_ <= now && server_) {
    connect_deadline_.reset();
    ServerLost(now, "timed out connecting to the server", false);
  }
  if (reset_deadline_ && *reset_deadline_ <= now && server_) {
    reset_deadline_.reset();
    DropServer(false);
  }
}

void Unit::Impl::OnWritable(Instant now, ConnId conn, uint64_t flushed) {
  if (client_open_ && conn == client_.conn()) {
    client_flushed_ += flushed;
    CHECK_LE(client_flushed_, client_sent_);
    if (server_read_paused_ && ClientPending() <= config_.client_output_low_bytes) {
      server_read_paused_ = false;
      PumpServer(now);
    }
  } else if (IsServer(conn)) {
    server_flushed_ += flushed;
    CHECK_LE(server_flushed_, server_sent_);
    if (client_read_paused_ && ServerPending() <= config_.client_output_low_bytes) {
      client_read_paused_ = false;
      PumpClient(now);
    }
  }
}

void Unit::Impl::UpdateReadPauses() {
  // Outside the session phase, a client may only send a bounded backlog ahead.
  client_backlog_paused_ = client_open_ && client_.state() != ClientSession::State::kReady &&
                           client_.reader().buffered() > kClientBacklogMax;
}

void Unit::Impl::BeginDrain(Instant now) {
  draining_ = true;
  MaybeFinishDrain(now);
  Flush(now);
}

void Unit::Impl::MaybeFinishDrain(Instant now) {
  if (!client_open_) return;
  const bool busy = client_.state() == ClientSession::State::kReady && server_ &&
                    server_->state() == ServerSession::State::kQuery;
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
  consider(reset_deadline_);
  consider(idle_deadline_);
  for (const CancelConnection& c : cancels_) consider(c.deadline);
  return next;
}

bool Unit::Impl::Finished() const {
  return started_ && !client_open_ && !server_ && cancels_.empty() && !checkout_pending_ &&
         actions_.empty();
}

std::vector<ConnId> Unit::Impl::Conns() const {
  std::vector<ConnId> conns;
  if (client_open_) conns.push_back(client_.conn());
  if (server_ && server_->state() != ServerSession::State::kBroken) {
    conns.push_back(server_->conn());
  }
  for (const CancelConnection& c : cancels_) conns.push_back(c.conn);
  return conns;
}

bool Unit::Impl::WantsRead(ConnId conn) const {
  if (client_open_ && conn == client_.conn()) {
    return !client_read_paused_ && !client_backlog_paused_;
  }
  if (IsServer(conn)) {
    if (IsMutant(config_.mutants, Mutant::kNeverRearm) && client_queries_ >= 2) return false;
    return !server_read_paused_;
  }
  return true;
}

void Unit::Impl::CheckInvariants() const {
  client_.CheckInvariants();
  if (server_) server_->CheckInvariants();
  CHECK_LE(client_flushed_, client_sent_);
  CHECK_LE(server_flushed_, server_sent_);
  if (client_open_ && client_.state() == ClientSession::State::kReady) {
    CHECK(server_ != nullptr) << "a client in session always has its server connection";
  }
  if (checkout_pending_) CHECK(server_ == nullptr);
  if (!client_open_) CHECK(!cancel_key_registered_);
}

// ---------------------------------------------------------------- Unit

Unit::Unit(UnitId id, ConnId client, const ProxyConfig& config, Environment& env, bool admitted)
    : id_(id), impl_(std::make_unique<Impl>(id, client, config, env, admitted)) {}
Unit::~Unit() = default;
void Unit::Handle(Instant now, const Event& event) { impl_->Handle(now, event); }
std::optional<Action> Unit::PollAction() { return impl_->PollAction(); }
std::optional<Instant> Unit::NextDeadline() const { return impl_->NextDeadline(); }
void Unit::CheckInvariants() const { impl_->CheckInvariants(); }
void Unit::BeginDrain(Instant now) { impl_->BeginDrain(now); }
bool Unit::Finished() const { return impl_->Finished(); }
std::vector<ConnId> Unit::Conns() const { return impl_->Conns(); }
bool Unit::WantsRead(ConnId conn) const { return impl_->WantsRead(conn); }

}  // namespace switchyard
