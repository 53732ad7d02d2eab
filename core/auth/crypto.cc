// Hashing and encoding primitives for core/auth, over OpenSSL's libcrypto.
#include "core/auth/crypto.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <array>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

namespace switchyard::auth::internal {
namespace {

constexpr std::string_view kBase64Alphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

// Maps a base64 character to its 6-bit value, or -1.
constexpr std::array<int8_t, 256> MakeBase64Values() {
  std::array<int8_t, 256> values{};
  for (int8_t& v : values) v = -1;
  for (size_t i = 0; i < kBase64Alphabet.size(); ++i) {
    values[static_cast<unsigned char>(kBase64Alphabet[i])] = static_cast<int8_t>(i);
  }
  return values;
}
constexpr std::array<int8_t, 256> kBase64Values = MakeBase64Values();

const unsigned char* Bytes(std::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

std::string Digest(const EVP_MD* md, std::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  int ok = EVP_Digest(data.data(), data.size(), out, &length, md, nullptr);
  CheckOrDie(ok == 1, "EVP_Digest failed");
  return std::string(reinterpret_cast<const char*>(out), length);
}

}  // namespace

std::vector<std::string_view> Split(std::string_view text, char separator) {
  std::vector<std::string_view> pieces;
  for (;;) {
    size_t at = text.find(separator);
    pieces.push_back(text.substr(0, at));
    if (at == std::string_view::npos) return pieces;
    text.remove_prefix(at + 1);
  }
}

void CheckOrDie(bool condition, const char* what) {
  if (condition) return;
  std::fprintf(stderr, "switchyard auth: check failed: %s\n", what);
  std::abort();
}

std::string Base64Encode(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 3 <= bytes.size(); i += 3) {
    uint32_t group = (uint32_t{Bytes(bytes)[i]} << 16) | (uint32_t{Bytes(bytes)[i + 1]} << 8) |
                     Bytes(bytes)[i + 2];
    out += kBase64Alphabet[(group >> 18) & 63];
    out += kBase64Alphabet[(group >> 12) & 63];
    out += kBase64Alphabet[(group >> 6) & 63];
    out += kBase64Alphabet[group & 63];
  }
  size_t rest = bytes.size() - i;
  if (rest > 0) {
    uint32_t group = uint32_t{Bytes(bytes)[i]} << 16;
    if (rest == 2) group |= uint32_t{Bytes(bytes)[i + 1]} << 8;
    out += kBase64Alphabet[(group >> 18) & 63];
    out += kBase64Alphabet[(group >> 12) & 63];
    out += rest == 2 ? kBase64Alphabet[(group >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

std::optional<std::string> Base64Decode(std::string_view text) {
  if (text.size() % 4 != 0) return std::nullopt;
  size_t padding = 0;
  if (!text.empty() && text.back() == '=') padding = text[text.size() - 2] == '=' ? 2 : 1;
  std::string out;
  out.reserve(text.size() / 4 * 3);
  for (size_t i = 0; i < text.size(); i += 4) {
    bool last = i + 4 == text.size();
    uint32_t group = 0;
    for (size_t j = 0; j < 4; ++j) {
      bool pad = last && j >= 4 - padding;
      int8_t value = pad ? 0 : kBase64Values[static_cast<unsigned char>(text[i + j])];
      if (value < 0) return std::nullopt;  // includes '=' anywhere but the end
      group = (group << 6) | static_cast<uint32_t>(value);
    }
    out += static_cast<char>(group >> 16);
    if (!last || padding < 2) out += static_cast<char>((group >> 8) & 0xff);
    if (!last || padding < 1) out += static_cast<char>(group & 0xff);
  }
  return out;
}

std::optional<int> ParsePositiveInt(std::string_view text) {
  if (text.empty() || text.size() > 10) return std::nullopt;
  int64_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + (c - '0');
  }
  if (value <= 0 || value > INT_MAX) return std::nullopt;
  return static_cast<int>(value);
}

std::string LowerHex(std::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out += kDigits[c >> 4];
    out += kDigits[c & 15];
  }
  return out;
}

bool IsLowerHex(std::string_view text) {
  for (char c : text) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

std::string Md5(std::string_view data) { return Digest(EVP_md5(), data); }

std::string Sha256(std::string_view data) { return Digest(EVP_sha256(), data); }

std::string HmacSha256(std::string_view key, std::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  // OpenSSL reads no key bytes for an empty key, but wants a non-null pointer.
  static constexpr unsigned char kEmpty = 0;
  const unsigned char* key_bytes = key.empty() ? &kEmpty : Bytes(key);
  unsigned char* result = HMAC(EVP_sha256(), key_bytes, static_cast<int>(key.size()), Bytes(data),
                               data.size(), out, &length);
  CheckOrDie(result != nullptr && length == kSha256Bytes, "HMAC-SHA-256 failed");
  return std::string(reinterpret_cast<const char*>(out), length);
}

std::string Pbkdf2HmacSha256(std::string_view password, std::string_view salt, int iterations) {
  CheckOrDie(iterations > 0, "PBKDF2 iteration count must be positive");
  unsigned char out[kSha256Bytes];
  int ok = PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()), Bytes(salt),
                             static_cast<int>(salt.size()), iterations, EVP_sha256(),
                             static_cast<int>(kSha256Bytes), out);
  CheckOrDie(ok == 1, "PKCS5_PBKDF2_HMAC failed");
  return std::string(reinterpret_cast<const char*>(out), kSha256Bytes);
}

std::string XorBytes(std::string_view a, std::string_view b) {
  CheckOrDie(a.size() == b.size(), "XorBytes of different lengths");
  std::string out(a.size(), '\0');
  for (size_t i = 0; i < a.size(); ++i) out[i] = static_cast<char>(a[i] ^ b[i]);
  return out;
}

bool ConstantTimeEqual(std::string_view a, std::string_view b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace switchyard::auth::internal
