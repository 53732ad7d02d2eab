// SCRAM-SHA-256 (RFC 5802/7677) as PostgreSQL speaks it, both sides, without channel binding.
// Nonces are given by the caller (from the injected random source); nothing here draws
// randomness or touches I/O.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "core/auth/users.h"

namespace switchyard::auth {

inline constexpr int kScramIterationsDefault = 4096;
inline constexpr std::string_view kScramMechanism = "SCRAM-SHA-256";

// Builds a verifier from a plaintext password (what CREATE ROLE ... PASSWORD stores).
ScramVerifier MakeVerifier(std::string_view password, std::string_view salt, int iterations);
std::string FormatVerifier(const ScramVerifier& v);

// The proxy as SCRAM server: authenticates a client against a users-file secret (plaintext or
// SCRAM verifier). Errors mean "authentication failed" (answer 28P01) or a malformed message
// (08P01); status code kUnauthenticated marks the former, kInvalidArgument the latter.
class ScramServer {
 public:
  // `nonce` is raw random bytes (>= 18); it is base64-encoded into the server nonce.
  ScramServer(ScramVerifier verifier, std::string nonce);
  // client-first-message -> server-first-message.
  absl::StatusOr<std::string> HandleClientFirst(std::string_view client_first);
  // client-final-message -> server-final-message ("v=...").
  absl::StatusOr<std::string> HandleClientFinal(std::string_view client_final);
  // After a successful exchange: the client's ClientKey, recovered from its proof. With it the
  // proxy can log in to a server whose pg_authid holds the same verifier (PgBouncer does this).
  const std::optional<std::string>& client_key() const { return client_key_; }

 private:
  ScramVerifier verifier_;
  std::string server_nonce_b64_;
  std::string client_first_bare_;
  std::string server_first_;
  std::string combined_nonce_;
  std::optional<std::string> client_key_;
};

// The proxy as SCRAM client, logging in to a server: from a plaintext password, or from a
// ClientKey recovered from the client's own exchange together with the ServerKey of the verifier.
class ScramClient {
 public:
  struct Keys {
    std::string client_key;
    std::string server_key;
  };
  ScramClient(std::string password, std::string nonce);
  ScramClient(Keys keys, std::string nonce);
  // The client-first-message (n,,n=,r=...).
  std::string ClientFirst();
  // server-first-message -> client-final-message. Fails if the server nonce does not extend ours
  // or the salt/iteration count is malformed.
  absl::StatusOr<std::string> HandleServerFirst(std::string_view server_first);
  // Verifies the server's signature; an error means the server is not who it claims to be.
  absl::Status HandleServerFinal(std::string_view server_final);

 private:
  std::optional<std::string> password_;
  std::optional<Keys> keys_;
  std::string client_nonce_b64_;
  std::string client_first_bare_;
  std::string auth_message_;
  std::string server_key_;
};

}  // namespace switchyard::auth
