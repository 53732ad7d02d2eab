// The PgBouncer-style users file: lines `"user" "password"`, where the password is plaintext, an
// md5 hash ("md5" + 32 hex digits) or a SCRAM-SHA-256 verifier. Parsing only; reading the file is
// the app's job.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace switchyard::auth {

// A parsed "SCRAM-SHA-256$<iter>:<salt b64>$<StoredKey b64>:<ServerKey b64>" verifier.
struct ScramVerifier {
  int iterations = 0;
  std::string salt;        // raw bytes
  std::string stored_key;  // 32 raw bytes
  std::string server_key;  // 32 raw bytes
  friend bool operator==(const ScramVerifier&, const ScramVerifier&) = default;
};

struct UserSecret {
  enum class Kind { kPlain, kMd5, kScram };
  Kind kind = Kind::kPlain;
  std::string text;                       // as written in the file
  std::optional<ScramVerifier> verifier;  // set when kind == kScram
};

enum class AuthType { kTrust, kMd5, kScramSha256 };
absl::StatusOr<AuthType> ParseAuthType(std::string_view name);  // "trust" | "md5" | "scram-sha-256"
std::string_view AuthTypeName(AuthType type);

// Ordered by user name so nothing ever depends on hash order.
using Users = std::map<std::string, UserSecret, std::less<>>;

// Errors name the line number. Blank lines and lines starting with ';' or '#' are skipped.
// A doubled quote ("") inside a quoted field is a literal quote, as in PgBouncer.
absl::StatusOr<Users> ParseUsersFile(std::string_view text);

// Classifies one password string (plain, md5 hash, or SCRAM verifier) as the users file does.
absl::StatusOr<UserSecret> ParseSecret(std::string_view password);

}  // namespace switchyard::auth
