// Private to core/auth: the hashing, encoding and string helpers MD5 and SCRAM are built from,
// over OpenSSL's libcrypto. Byte strings are std::string; nothing here draws randomness.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/str_cat.h"

namespace switchyard::auth::internal {

inline constexpr size_t kSha256Bytes = 32;

// This Abseil is built with its own string_view, which std::string_view does not convert to
// implicitly; Cat() is absl::StrCat that also takes std::string_view.
inline absl::string_view ToAbsl(std::string_view s) {
  return absl::string_view(s.data(), s.size());
}
template <typename T>
const T& ToAbsl(const T& value) {
  return value;
}
template <typename... Parts>
std::string Cat(const Parts&... parts) {
  return absl::StrCat(ToAbsl(parts)...);
}

// Splits at every `separator`; n separators give n + 1 pieces (some maybe empty).
std::vector<std::string_view> Split(std::string_view text, char separator);

// Always-on check for our own invariants (caller bugs), never for peer input.
void CheckOrDie(bool condition, const char* what);

// Standard base64 alphabet with '=' padding.
std::string Base64Encode(std::string_view bytes);
// Length a multiple of 4, standard alphabet, '=' only as the final one or two characters.
// Whitespace is not skipped. Unused low bits of the last group are ignored, as PostgreSQL does.
std::optional<std::string> Base64Decode(std::string_view text);

// A positive decimal integer that fits an int: digits only, no sign, no spaces.
std::optional<int> ParsePositiveInt(std::string_view text);

std::string LowerHex(std::string_view bytes);
bool IsLowerHex(std::string_view text);

std::string Md5(std::string_view data);
std::string Sha256(std::string_view data);
std::string HmacSha256(std::string_view key, std::string_view data);
std::string Pbkdf2HmacSha256(std::string_view password, std::string_view salt, int iterations);

// a XOR b; both must have the same length.
std::string XorBytes(std::string_view a, std::string_view b);
// Compares in time independent of where the inputs differ (for proofs and signatures).
bool ConstantTimeEqual(std::string_view a, std::string_view b);

}  // namespace switchyard::auth::internal
