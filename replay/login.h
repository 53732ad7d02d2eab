// The replay's login to a target server, as a message-in, bytes-out state machine: the startup
// packet, then trust, cleartext, MD5 or SCRAM-SHA-256 with the password from the command line
// (the captured exchange cannot be replayed), then the server's parameters and backend key until
// its first ReadyForQuery. Built on core/protocol and core/auth; no sockets.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "core/auth/scram.h"
#include "core/protocol/messages.h"

namespace switchyard::replay {

struct LoginSettings {
  std::string user;
  std::string database;
  std::optional<std::string> password;
  pg::Parameters parameters;  // further startup parameters (user and database are added)
};

class LoginClient {
 public:
  // `scram_nonce`: random bytes for a SCRAM exchange (at least 18).
  LoginClient(LoginSettings settings, std::string scram_nonce);
  ~LoginClient();

  // The StartupMessage to send first.
  std::string StartupPacket() const;

  // Takes one server message (a whole typed message); returns what to send in answer (maybe
  // nothing). An error ends the login: the server refused it (the status carries its message and
  // SQLSTATE), asked for a method this client cannot do, or broke the protocol.
  absl::StatusOr<std::string> OnMessage(std::string_view message);

  bool done() const { return done_; }
  // The backend key from BackendKeyData, for CancelRequests.
  const std::optional<pg::BackendKeyData>& key() const { return key_; }
  // The SQLSTATE of a refusal by the server, "" otherwise.
  const std::string& sqlstate() const { return sqlstate_; }

 private:
  absl::StatusOr<std::string> OnAuthentication(std::string_view payload);
  absl::StatusOr<std::string> StartSasl(const pg::Authentication& request);
  absl::StatusOr<std::string> Password() const;

  LoginSettings settings_;
  std::string scram_nonce_;
  std::unique_ptr<auth::ScramClient> scram_;
  std::optional<pg::BackendKeyData> key_;
  std::string sqlstate_;
  bool authenticated_ = false;
  bool done_ = false;
};

}  // namespace switchyard::replay
