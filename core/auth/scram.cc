// SCRAM-SHA-256 (RFC 5802/7677) as PostgreSQL speaks it: verifiers, the server side and the client
// side, without channel binding.
#include "core/auth/scram.h"

#include <utility>
#include <vector>

#include "core/auth/crypto.h"
#include "core/auth/scram_internal.h"

namespace switchyard::auth {
namespace scram_internal {
namespace {

using internal::Base64Decode;
using internal::Base64Encode;
using internal::HmacSha256;
using internal::kSha256Bytes;
using internal::Sha256;

// Served nonces are at least this many random bytes (PostgreSQL uses 18).
constexpr size_t kServerNonceBytesMin = 18;
// base64("n,,"): the channel-binding attribute of a client that sent the "n,," GS2 header.
constexpr std::string_view kNoChannelBinding = "biws";

struct Attribute {
  char name = 0;
  std::string_view value;
};

absl::Status Malformed(std::string_view message_name, std::string_view why) {
  return absl::InvalidArgumentError(internal::Cat("malformed SCRAM ", message_name, ": ", why));
}

// Splits "a=x,b=y,..." into attributes, each "<letter>=<value>". Values may not contain ','.
absl::StatusOr<std::vector<Attribute>> SplitAttributes(std::string_view text,
                                                       std::string_view message_name) {
  if (text.size() > kScramMessageBytesMax) return Malformed(message_name, "too long");
  std::vector<Attribute> attributes;
  for (std::string_view piece : internal::Split(text, ',')) {
    bool letter = !piece.empty() &&
                  ((piece[0] >= 'a' && piece[0] <= 'z') || (piece[0] >= 'A' && piece[0] <= 'Z'));
    if (!letter || piece.size() < 2 || piece[1] != '=') {
      return Malformed(message_name, "expected attributes of the form <letter>=<value>");
    }
    attributes.push_back(Attribute{piece[0], piece.substr(2)});
  }
  return attributes;
}

// RFC 5802: a nonce is printable ASCII except ','.
bool IsValidNonce(std::string_view nonce) {
  if (nonce.empty()) return false;
  for (char c : nonce) {
    if (c < 0x21 || c > 0x7e || c == ',') return false;
  }
  return true;
}

std::string ClientProof(std::string_view client_key, std::string_view auth_message) {
  std::string client_signature = HmacSha256(Sha256(client_key), auth_message);
  return internal::XorBytes(client_key, client_signature);
}

std::string AuthMessage(std::string_view client_first_bare, std::string_view server_first,
                        std::string_view client_final_without_proof) {
  return internal::Cat(client_first_bare, ",", server_first, ",", client_final_without_proof);
}

}  // namespace

ScramClient::Keys DeriveKeys(std::string_view password, std::string_view salt, int iterations) {
  // PostgreSQL runs the password through SASLprep (RFC 4013) first. We use it as-is, which gives
  // the same bytes for ASCII passwords, for bytes that are not UTF-8, and for UTF-8 that SASLprep
  // leaves alone or rejects (PostgreSQL then also uses the raw bytes). docs/authentication.md
  // names the passwords that differ.
  std::string salted_password = internal::Pbkdf2HmacSha256(password, salt, iterations);
  return ScramClient::Keys{HmacSha256(salted_password, "Client Key"),
                           HmacSha256(salted_password, "Server Key")};
}

absl::StatusOr<ClientFirst> ParseClientFirst(std::string_view message) {
  constexpr std::string_view kName = "client-first-message";
  if (message.substr(0, 2) == "p=") {
    return absl::InvalidArgumentError(
        "client requested channel binding (SCRAM-SHA-256-PLUS), which this proxy does not offer");
  }
  if (message.size() < 3 || (message[0] != 'n' && message[0] != 'y') || message[1] != ',') {
    return Malformed(kName, "expected the GS2 header \"n,,\"");
  }
  if (message.substr(2, 2) == "a=") {
    return absl::InvalidArgumentError("SCRAM authorization identities (a=) are not supported");
  }
  if (message[2] != ',') return Malformed(kName, "expected the GS2 header \"n,,\"");
  ClientFirst first;
  first.gs2_header = std::string(message.substr(0, 3));
  first.bare = std::string(message.substr(3));
  absl::StatusOr<std::vector<Attribute>> attributes = SplitAttributes(first.bare, kName);
  if (!attributes.ok()) return attributes.status();
  if ((*attributes)[0].name == 'm') {
    return absl::InvalidArgumentError("client requires an unsupported SCRAM extension (m=)");
  }
  // The user name (usually empty from PostgreSQL clients) is ignored: the startup packet names
  // the user, as in PostgreSQL.
  if (attributes->size() < 2 || (*attributes)[0].name != 'n' || (*attributes)[1].name != 'r') {
    return Malformed(kName, "expected n=<user>,r=<nonce>");
  }
  if (!IsValidNonce((*attributes)[1].value)) return Malformed(kName, "invalid nonce");
  first.nonce = std::string((*attributes)[1].value);
  return first;
}

std::string FormatServerFirst(std::string_view combined_nonce, const ScramVerifier& verifier) {
  return internal::Cat("r=", combined_nonce, ",s=", Base64Encode(verifier.salt),
                       ",i=", verifier.iterations);
}

absl::StatusOr<ServerStep> VerifyClientFinal(const ScramVerifier& verifier,
                                             const ClientFirst& client_first,
                                             std::string_view server_first,
                                             std::string_view combined_nonce,
                                             std::string_view client_final) {
  constexpr std::string_view kName = "client-final-message";
  absl::StatusOr<std::vector<Attribute>> attributes = SplitAttributes(client_final, kName);
  if (!attributes.ok()) return attributes.status();
  const std::vector<Attribute>& a = *attributes;
  if (a.size() < 3 || a[0].name != 'c' || a[1].name != 'r' || a.back().name != 'p') {
    return Malformed(kName, "expected c=<binding>,r=<nonce>,...,p=<proof>");
  }
  // c= must repeat the GS2 header, so a "n,," or "y,," cannot be altered in flight.
  std::optional<std::string> binding = Base64Decode(a[0].value);
  if (!binding || *binding != client_first.gs2_header) {
    return Malformed(kName, "channel binding does not match the GS2 header");
  }
  if (a[1].value != combined_nonce) return Malformed(kName, "nonce mismatch");
  std::optional<std::string> proof = Base64Decode(a.back().value);
  if (!proof || proof->size() != kSha256Bytes) {
    return Malformed(kName, "the proof is not base64 of 32 bytes");
  }
  std::string_view without_proof = client_final.substr(0, client_final.rfind(','));
  std::string auth_message = AuthMessage(client_first.bare, server_first, without_proof);
  std::string client_key =
      internal::XorBytes(*proof, HmacSha256(verifier.stored_key, auth_message));
  if (!internal::ConstantTimeEqual(Sha256(client_key), verifier.stored_key)) {
    return absl::UnauthenticatedError("password authentication failed");
  }
  return ServerStep{
      internal::Cat("v=", Base64Encode(HmacSha256(verifier.server_key, auth_message))),
      std::move(client_key)};
}

absl::StatusOr<ServerFirst> ParseServerFirst(std::string_view message) {
  constexpr std::string_view kName = "server-first-message";
  absl::StatusOr<std::vector<Attribute>> attributes = SplitAttributes(message, kName);
  if (!attributes.ok()) return attributes.status();
  const std::vector<Attribute>& a = *attributes;
  if (a[0].name == 'm') {
    return absl::InvalidArgumentError("server requires an unsupported SCRAM extension (m=)");
  }
  if (a.size() < 3 || a[0].name != 'r' || a[1].name != 's' || a[2].name != 'i') {
    return Malformed(kName, "expected r=<nonce>,s=<salt>,i=<iterations>");
  }
  if (!IsValidNonce(a[0].value)) return Malformed(kName, "invalid nonce");
  ServerFirst first;
  first.nonce = std::string(a[0].value);
  std::optional<std::string> salt = Base64Decode(a[1].value);
  if (!salt || salt->empty()) return Malformed(kName, "the salt is not base64");
  first.salt = *std::move(salt);
  std::optional<int> iterations = internal::ParsePositiveInt(a[2].value);
  if (!iterations || *iterations > kScramIterationsMax) {
    return Malformed(kName, internal::Cat("the iteration count is not an integer from 1 to ",
                                          kScramIterationsMax));
  }
  first.iterations = *iterations;
  return first;
}

absl::StatusOr<ClientStep> RespondToServerFirst(const std::optional<std::string>& password,
                                                const std::optional<ScramClient::Keys>& keys,
                                                std::string_view client_first_bare,
                                                std::string_view client_nonce,
                                                std::string_view server_first) {
  internal::CheckOrDie(password.has_value() != keys.has_value(),
                       "SCRAM client needs exactly one of password and keys");
  absl::StatusOr<ServerFirst> first = ParseServerFirst(server_first);
  if (!first.ok()) return first.status();
  // The server must extend our nonce, or it could replay an old exchange at us.
  if (first->nonce.size() <= client_nonce.size() ||
      first->nonce.substr(0, client_nonce.size()) != client_nonce) {
    return Malformed("server-first-message", "the server nonce does not extend the client nonce");
  }
  ScramClient::Keys derived =
      password ? DeriveKeys(*password, first->salt, first->iterations) : *keys;
  std::string without_proof = internal::Cat("c=", kNoChannelBinding, ",r=", first->nonce);
  ClientStep step;
  step.auth_message = AuthMessage(client_first_bare, server_first, without_proof);
  step.client_final = internal::Cat(
      without_proof, ",p=", Base64Encode(ClientProof(derived.client_key, step.auth_message)));
  step.server_key = std::move(derived.server_key);
  return step;
}

absl::Status VerifyServerFinal(std::string_view server_key, std::string_view auth_message,
                               std::string_view server_final) {
  constexpr std::string_view kName = "server-final-message";
  absl::StatusOr<std::vector<Attribute>> attributes = SplitAttributes(server_final, kName);
  if (!attributes.ok()) return attributes.status();
  const Attribute& first = (*attributes)[0];
  if (first.name == 'e') {
    return absl::UnauthenticatedError(
        internal::Cat("server rejected SCRAM authentication: ", first.value));
  }
  if (first.name != 'v') return Malformed(kName, "expected v=<signature> or e=<error>");
  std::optional<std::string> signature = Base64Decode(first.value);
  if (!signature || signature->size() != kSha256Bytes) {
    return Malformed(kName, "the signature is not base64 of 32 bytes");
  }
  if (!internal::ConstantTimeEqual(*signature, HmacSha256(server_key, auth_message))) {
    return absl::UnauthenticatedError(
        "invalid SCRAM server signature: the server does not hold this user's verifier");
  }
  return absl::OkStatus();
}

}  // namespace scram_internal

using internal::CheckOrDie;

namespace {

absl::Status OutOfTurn(std::string_view message_name) {
  return absl::InvalidArgumentError(internal::Cat("unexpected SCRAM ", message_name));
}

}  // namespace

ScramVerifier MakeVerifier(std::string_view password, std::string_view salt, int iterations) {
  CheckOrDie(iterations > 0, "MakeVerifier: iteration count must be positive");
  CheckOrDie(!salt.empty(), "MakeVerifier: empty salt");
  ScramClient::Keys keys = scram_internal::DeriveKeys(password, salt, iterations);
  return ScramVerifier{iterations, std::string(salt), internal::Sha256(keys.client_key),
                       std::move(keys.server_key)};
}

std::string FormatVerifier(const ScramVerifier& v) {
  return internal::Cat(kScramMechanism, "$", v.iterations, ":", internal::Base64Encode(v.salt), "$",
                       internal::Base64Encode(v.stored_key), ":",
                       internal::Base64Encode(v.server_key));
}

ScramServer::ScramServer(ScramVerifier verifier, std::string nonce)
    : verifier_(std::move(verifier)), server_nonce_b64_(internal::Base64Encode(nonce)) {
  CheckOrDie(nonce.size() >= scram_internal::kServerNonceBytesMin, "ScramServer: nonce too short");
  CheckOrDie(verifier_.iterations > 0 && !verifier_.salt.empty(), "ScramServer: bad verifier");
  CheckOrDie(verifier_.stored_key.size() == internal::kSha256Bytes &&
                 verifier_.server_key.size() == internal::kSha256Bytes,
             "ScramServer: verifier keys must be 32 bytes");
}

absl::StatusOr<std::string> ScramServer::HandleClientFirst(std::string_view client_first) {
  // The order of messages is the peer's doing, so a message out of turn is its error, not ours.
  if (!server_first_.empty()) return OutOfTurn("client-first-message");
  absl::StatusOr<scram_internal::ClientFirst> first =
      scram_internal::ParseClientFirst(client_first);
  if (!first.ok()) return first.status();
  // Kept whole, GS2 header included: the client-final's c= must repeat the header, and the
  // class has no member of its own for it. The bare part is re-split from it.
  client_first_bare_ = std::string(client_first);
  combined_nonce_ = internal::Cat(first->nonce, server_nonce_b64_);
  server_first_ = scram_internal::FormatServerFirst(combined_nonce_, verifier_);
  return server_first_;
}

absl::StatusOr<std::string> ScramServer::HandleClientFinal(std::string_view client_final) {
  // An empty combined nonce after the server-first marks a spent exchange: one proof each.
  if (server_first_.empty() || combined_nonce_.empty() || client_key_.has_value()) {
    return OutOfTurn("client-final-message");
  }
  absl::StatusOr<scram_internal::ClientFirst> first =
      scram_internal::ParseClientFirst(client_first_bare_);
  CheckOrDie(first.ok(), "ScramServer: stored client-first no longer parses");
  absl::StatusOr<scram_internal::ServerStep> step = scram_internal::VerifyClientFinal(
      verifier_, *first, server_first_, combined_nonce_, client_final);
  if (!step.ok()) {
    combined_nonce_.clear();
    return step.status();
  }
  client_key_ = std::move(step->client_key);
  return std::move(step->server_final);
}

ScramClient::ScramClient(std::string password, std::string nonce)
    : password_(std::move(password)), client_nonce_b64_(internal::Base64Encode(nonce)) {
  CheckOrDie(!nonce.empty(), "ScramClient: empty nonce");
}

ScramClient::ScramClient(Keys keys, std::string nonce)
    : keys_(std::move(keys)), client_nonce_b64_(internal::Base64Encode(nonce)) {
  CheckOrDie(!nonce.empty(), "ScramClient: empty nonce");
  CheckOrDie(keys_->client_key.size() == internal::kSha256Bytes &&
                 keys_->server_key.size() == internal::kSha256Bytes,
             "ScramClient: keys must be 32 bytes");
}

std::string ScramClient::ClientFirst() {
  // An empty user name, as libpq sends: the server takes the user from the startup packet.
  client_first_bare_ = internal::Cat("n=,r=", client_nonce_b64_);
  return internal::Cat("n,,", client_first_bare_);
}

absl::StatusOr<std::string> ScramClient::HandleServerFirst(std::string_view server_first) {
  if (client_first_bare_.empty() || !auth_message_.empty()) {
    return OutOfTurn("server-first-message");
  }
  absl::StatusOr<scram_internal::ClientStep> step = scram_internal::RespondToServerFirst(
      password_, keys_, client_first_bare_, client_nonce_b64_, server_first);
  if (!step.ok()) return step.status();
  auth_message_ = std::move(step->auth_message);
  server_key_ = std::move(step->server_key);
  return std::move(step->client_final);
}

absl::Status ScramClient::HandleServerFinal(std::string_view server_final) {
  if (auth_message_.empty()) return OutOfTurn("server-final-message");
  return scram_internal::VerifyServerFinal(server_key_, auth_message_, server_final);
}

}  // namespace switchyard::auth
