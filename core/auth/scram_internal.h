// Private to core/auth: the SCRAM-SHA-256 message grammar (RFC 5802 section 7) and proof
// arithmetic, as free functions over whole messages. ScramServer and ScramClient are thin state
// around them. They are separate so that tests can replay the RFC 7677 example, whose user name
// is not empty and whose server nonce is not base64, which the classes never produce.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/auth/scram.h"
#include "core/auth/users.h"

namespace switchyard::auth::scram_internal {

// Bound on any one SCRAM message; real ones are under 200 bytes.
inline constexpr size_t kScramMessageBytesMax = 2048;
// Bound on the iteration count a server may ask of us as a client: PBKDF2 runs on a worker at
// about 0.6 us per iteration, so this caps one login at a few seconds. PostgreSQL's default is
// 4096; OWASP's 2023 advice for PBKDF2-HMAC-SHA256 is 600,000.
inline constexpr int kScramIterationsMax = 10'000'000;

// ClientKey and ServerKey from a password (RFC 5802 section 3).
ScramClient::Keys DeriveKeys(std::string_view password, std::string_view salt, int iterations);

struct ClientFirst {
  std::string gs2_header;  // "n,," or "y,,"
  std::string bare;        // client-first-message-bare, part of the AuthMessage
  std::string nonce;
};
absl::StatusOr<ClientFirst> ParseClientFirst(std::string_view message);

// "r=<combined nonce>,s=<salt>,i=<iterations>".
std::string FormatServerFirst(std::string_view combined_nonce, const ScramVerifier& verifier);

struct ServerStep {
  std::string server_final;  // "v=<ServerSignature>"
  std::string client_key;    // recovered from the proof
};
// Checks a client-final-message against the exchange so far. kUnauthenticated for a wrong proof,
// kInvalidArgument for anything malformed.
absl::StatusOr<ServerStep> VerifyClientFinal(const ScramVerifier& verifier,
                                             const ClientFirst& client_first,
                                             std::string_view server_first,
                                             std::string_view combined_nonce,
                                             std::string_view client_final);

struct ServerFirst {
  std::string nonce;
  std::string salt;  // raw bytes
  int iterations = 0;
};
absl::StatusOr<ServerFirst> ParseServerFirst(std::string_view message);

struct ClientStep {
  std::string client_final;
  std::string auth_message;
  std::string server_key;  // to check the server's signature with
};
// Exactly one of `password` and `keys` is set.
absl::StatusOr<ClientStep> RespondToServerFirst(const std::optional<std::string>& password,
                                                const std::optional<ScramClient::Keys>& keys,
                                                std::string_view client_first_bare,
                                                std::string_view client_nonce,
                                                std::string_view server_first);

// Checks "v=<ServerSignature>"; "e=<error>" becomes kUnauthenticated carrying the server's text.
absl::Status VerifyServerFinal(std::string_view server_key, std::string_view auth_message,
                               std::string_view server_final);

}  // namespace switchyard::auth::scram_internal
