// PostgreSQL's MD5 password scheme (the md5 auth method and pg_authid's "md5..." values).
#include "core/auth/md5.h"

#include <string>

#include "core/auth/crypto.h"

namespace switchyard::auth {
namespace {

constexpr std::string_view kMd5Prefix = "md5";
constexpr size_t kMd5HashLength = 35;  // "md5" + 32 hex digits

// The same rule as ParseSecret and PostgreSQL's get_password_type(): anything else, even if it
// starts with "md5", is a plaintext password.
bool IsMd5Hash(std::string_view secret) {
  return secret.size() == kMd5HashLength && secret.substr(0, kMd5Prefix.size()) == kMd5Prefix &&
         internal::IsLowerHex(secret.substr(kMd5Prefix.size()));
}

}  // namespace

std::string Md5Hash(std::string_view user, std::string_view password) {
  return internal::Cat(kMd5Prefix,
                       internal::LowerHex(internal::Md5(internal::Cat(password, user))));
}

std::string Md5Response(std::string_view user, std::string_view stored, std::string_view salt) {
  std::string inner = IsMd5Hash(stored) ? std::string(stored) : Md5Hash(user, stored);
  std::string_view inner_hex = std::string_view(inner).substr(kMd5Prefix.size());
  return internal::Cat(kMd5Prefix,
                       internal::LowerHex(internal::Md5(internal::Cat(inner_hex, salt))));
}

}  // namespace switchyard::auth
