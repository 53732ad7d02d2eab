// Parsing of the PgBouncer-style users file and classification of its secrets.
#include "core/auth/users.h"

#include <map>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "core/auth/crypto.h"

namespace switchyard::auth {
namespace {

// PgBouncer's own bounds (MAX_USERNAME, MAX_PASSWORD); a SCRAM verifier is about 130 bytes.
constexpr size_t kUserNameBytesMax = 128;
constexpr size_t kPasswordBytesMax = 2048;
constexpr std::string_view kScramPrefix = "SCRAM-SHA-256$";

std::string_view StripLeadingBlanks(std::string_view text) {
  size_t start = text.find_first_not_of(" \t");
  return start == std::string_view::npos ? std::string_view() : text.substr(start);
}

// "SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>", as PostgreSQL stores it. The
// messages never quote the secret: it may be pasted into a log.
absl::StatusOr<ScramVerifier> ParseScramVerifier(std::string_view text) {
  std::vector<std::string_view> parts = internal::Split(text, '$');
  if (parts.size() != 3) {
    return absl::InvalidArgumentError(
        "malformed SCRAM-SHA-256 verifier: expected SCRAM-SHA-256$<iterations>:<salt>$"
        "<StoredKey>:<ServerKey>");
  }
  std::vector<std::string_view> head = internal::Split(parts[1], ':');
  std::vector<std::string_view> keys = internal::Split(parts[2], ':');
  if (head.size() != 2 || keys.size() != 2) {
    return absl::InvalidArgumentError("malformed SCRAM-SHA-256 verifier: missing ':'");
  }
  ScramVerifier verifier;
  std::optional<int> iterations = internal::ParsePositiveInt(head[0]);
  if (!iterations) {
    return absl::InvalidArgumentError(
        "malformed SCRAM-SHA-256 verifier: the iteration count is not a positive integer");
  }
  verifier.iterations = *iterations;
  std::optional<std::string> salt = internal::Base64Decode(head[1]);
  if (!salt || salt->empty()) {
    return absl::InvalidArgumentError("malformed SCRAM-SHA-256 verifier: bad base64 salt");
  }
  verifier.salt = *std::move(salt);
  std::optional<std::string> stored_key = internal::Base64Decode(keys[0]);
  std::optional<std::string> server_key = internal::Base64Decode(keys[1]);
  if (!stored_key || stored_key->size() != internal::kSha256Bytes || !server_key ||
      server_key->size() != internal::kSha256Bytes) {
    return absl::InvalidArgumentError(
        "malformed SCRAM-SHA-256 verifier: StoredKey and ServerKey must be base64 of 32 bytes");
  }
  verifier.stored_key = *std::move(stored_key);
  verifier.server_key = *std::move(server_key);
  return verifier;
}

// Reads a "..." field at the start of `rest` ("" inside is a literal quote) and advances `rest`
// past it. `what` names the field in errors.
absl::StatusOr<std::string> ReadQuoted(std::string_view& rest, std::string_view what) {
  if (rest.empty() || rest.front() != '"') {
    return absl::InvalidArgumentError(internal::Cat("expected the quoted ", what));
  }
  std::string value;
  size_t i = 1;
  for (;; ++i) {
    if (i >= rest.size()) {
      return absl::InvalidArgumentError(internal::Cat("unterminated quote in the ", what));
    }
    if (rest[i] == '"') {
      if (i + 1 < rest.size() && rest[i + 1] == '"') {
        value += '"';
        ++i;
        continue;
      }
      break;
    }
    if (rest[i] == '\0') {
      return absl::InvalidArgumentError(internal::Cat("NUL byte in the ", what));
    }
    value += rest[i];
  }
  rest.remove_prefix(i + 1);
  return value;
}

struct Entry {
  std::string user;
  std::string password;
};

// One non-blank, non-comment line: `"user" "password"`, anything after the password ignored.
absl::StatusOr<Entry> ParseLine(std::string_view line) {
  Entry entry;
  absl::StatusOr<std::string> user = ReadQuoted(line, "user name");
  if (!user.ok()) return user.status();
  if (user->empty()) return absl::InvalidArgumentError("empty user name");
  if (user->size() > kUserNameBytesMax) {
    return absl::InvalidArgumentError(
        internal::Cat("user name longer than ", kUserNameBytesMax, " bytes"));
  }
  line = StripLeadingBlanks(line);
  absl::StatusOr<std::string> password = ReadQuoted(line, "password after the user name");
  if (!password.ok()) return password.status();
  if (password->size() > kPasswordBytesMax) {
    return absl::InvalidArgumentError(
        internal::Cat("password longer than ", kPasswordBytesMax, " bytes"));
  }
  entry.user = *std::move(user);
  entry.password = *std::move(password);
  return entry;
}

}  // namespace

absl::StatusOr<AuthType> ParseAuthType(std::string_view name) {
  if (absl::EqualsIgnoreCase(internal::ToAbsl(name), "trust")) return AuthType::kTrust;
  if (absl::EqualsIgnoreCase(internal::ToAbsl(name), "md5")) return AuthType::kMd5;
  if (absl::EqualsIgnoreCase(internal::ToAbsl(name), "scram-sha-256"))
    return AuthType::kScramSha256;
  return absl::InvalidArgumentError(
      internal::Cat("unknown auth type \"", name, "\" (expected trust, md5 or scram-sha-256)"));
}

std::string_view AuthTypeName(AuthType type) {
  switch (type) {
    case AuthType::kTrust:
      return "trust";
    case AuthType::kMd5:
      return "md5";
    case AuthType::kScramSha256:
      return "scram-sha-256";
  }
  internal::CheckOrDie(false, "AuthTypeName: invalid AuthType");
  return "";
}

absl::StatusOr<UserSecret> ParseSecret(std::string_view password) {
  UserSecret secret;
  secret.text = std::string(password);
  // The md5 rule is PostgreSQL's: exactly "md5" + 32 lowercase hex digits.
  if (password.size() == 35 && password.substr(0, 3) == "md5" &&
      internal::IsLowerHex(password.substr(3))) {
    secret.kind = UserSecret::Kind::kMd5;
    return secret;
  }
  // PostgreSQL would take a malformed verifier for a plaintext password; that is never what the
  // operator meant, so it is an error here.
  if (password.substr(0, kScramPrefix.size()) == kScramPrefix) {
    absl::StatusOr<ScramVerifier> verifier = ParseScramVerifier(password);
    if (!verifier.ok()) return verifier.status();
    secret.kind = UserSecret::Kind::kScram;
    secret.verifier = *std::move(verifier);
    return secret;
  }
  secret.kind = UserSecret::Kind::kPlain;
  return secret;
}

absl::StatusOr<Users> ParseUsersFile(std::string_view text) {
  Users users;
  std::map<std::string, int, std::less<>> first_line;
  int line_number = 0;
  for (std::string_view line : internal::Split(text, '\n')) {
    ++line_number;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    line = StripLeadingBlanks(line);
    if (line.empty() || line.front() == ';' || line.front() == '#') continue;
    auto fail = [line_number](const absl::Status& status) {
      return absl::InvalidArgumentError(
          internal::Cat("line ", line_number, ": ", status.message()));
    };
    absl::StatusOr<Entry> entry = ParseLine(line);
    if (!entry.ok()) return fail(entry.status());
    auto [it, inserted] = first_line.emplace(entry->user, line_number);
    if (!inserted) {
      return fail(absl::InvalidArgumentError(
          internal::Cat("user \"", entry->user, "\" is already defined on line ", it->second)));
    }
    absl::StatusOr<UserSecret> secret = ParseSecret(entry->password);
    if (!secret.ok()) return fail(secret.status());
    users.emplace(entry->user, *std::move(secret));
  }
  return users;
}

}  // namespace switchyard::auth
