// ClientSession: the proxy as a PostgreSQL server to one client. It owns the client's framing,
// the startup packet, and authentication against the users file; once the client is in, the
// unit forwards its messages to a server session.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/auth/scram.h"
#include "core/auth/users.h"
#include "core/base/types.h"
#include "core/io.h"
#include "core/protocol/framing.h"
#include "core/protocol/messages.h"
#include "core/service.h"

namespace switchyard {

struct ProxyConfig;

class ClientSession {
 public:
  enum class State {
    kStartup,           // waiting for StartupMessage (SSLRequest/GSSENCRequest answered 'N')
    kAuthenticating,    // password / SASL exchange with the client
    kWaitingForServer,  // authenticated; a server connection is being checked out or logged in
    kReady,             // in session: messages flow to the server session
    kClosing,           // a final message is queued; the connection closes after it
  };

  // What the unit must do after the client session handled a packet.
  enum class Step {
    kContinue,       // nothing new
    kAuthenticated,  // the client proved who it is: check out a server connection
    kCancel,         // the packet was a CancelRequest (see cancel_key())
    kReject,         // a FATAL is queued in output(); close after it
  };

  ClientSession(ConnId conn, const ProxyConfig& config, bool admitted);

  State state() const { return state_; }
  ConnId conn() const { return conn_; }
  pg::FrameReader& reader() { return reader_; }
  std::string& output() { return output_; }
  const pg::StartupMessage& startup() const { return startup_; }
  const std::string& user() const { return user_; }
  const std::string& database() const { return database_; }
  const pg::CancelRequest& cancel_key() const { return cancel_key_; }
  // The ClientKey recovered from a SCRAM exchange, if there was one.
  const std::optional<std::string>& scram_client_key() const { return scram_client_key_; }
  const auth::UserSecret* secret() const { return secret_; }

  // Feeds the startup-phase and authentication-phase input that the reader has assembled.
  Step HandleStartupPacket(const pg::StartupFrame& packet, Environment& env);
  Step HandleAuthFrame(const pg::Frame& frame, Environment& env);

  // The pool key this client's server connections are drawn from.
  PoolKey MakePoolKey(NodeId node) const;

  // Everything a client expects between authentication and its first query: AuthenticationOk,
  // the server's ParameterStatus set, BackendKeyData and ReadyForQuery.
  void Welcome(const pg::Parameters& parameters, int32_t pid, int32_t secret, char status);

  // Queues an ErrorResponse with severity FATAL and moves to kClosing.
  void Fatal(std::string_view sqlstate, std::string_view message);
  // Queues bytes the server produced for the client as they are.
  void Forward(std::string_view bytes) { output_.append(bytes); }
  // A startup failure the server reported (its own FATAL ErrorResponse): passed through.
  void RejectWith(std::string_view error_bytes);

  void CheckInvariants() const;

 private:
  void TransitionTo(State next);
  Step Reject(std::string_view sqlstate, std::string_view message);
  Step HandleStartupMessage(pg::StartupMessage startup, Environment& env);
  Step HandlePassword(const pg::Frame& frame);
  Step HandleSasl(const pg::Frame& frame);
  Step AuthFailed();

  ConnId conn_;
  const ProxyConfig& config_;
  bool admitted_;
  State state_ = State::kStartup;
  pg::FrameReader reader_;
  std::string output_;
  pg::StartupMessage startup_;
  std::string user_;
  std::string database_;
  pg::CancelRequest cancel_key_;
  const auth::UserSecret* secret_ = nullptr;
  std::string md5_salt_;
  std::optional<auth::ScramServer> scram_;
  bool scram_first_seen_ = false;
  std::optional<std::string> scram_client_key_;
  int startup_packets_ = 0;
};

std::string_view ClientStateName(ClientSession::State state);

}  // namespace switchyard
