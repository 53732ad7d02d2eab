// PostgreSQL's MD5 password scheme: "md5" + hex(md5(hex(md5(password + user)) + salt)).
#pragma once

#include <string>
#include <string_view>

namespace switchyard::auth {

// "md5" + hex(md5(password + user)): what pg_authid and a users file store.
std::string Md5Hash(std::string_view user, std::string_view password);
// The PasswordMessage a client sends for salt `salt` (4 bytes). `stored` is either a plaintext
// password or an already-hashed "md5..." value.
std::string Md5Response(std::string_view user, std::string_view stored, std::string_view salt);

}  // namespace switchyard::auth
