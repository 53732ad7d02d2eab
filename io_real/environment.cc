// Connection ids and cryptographic randomness for the production backend.
#include "io_real/environment.h"

#include <openssl/rand.h>

#include <algorithm>
#include <climits>

#include "core/base/check.h"

namespace switchyard::io_real {

ConnId RealEnvironment::NewConnId() {
  const uint64_t n = next_.fetch_add(1, std::memory_order_relaxed);
  ConnId conn{static_cast<uint32_t>(n), static_cast<uint32_t>(n >> 32) + 1};
  CHECK(conn.valid()) << "connection id space exhausted";
  return conn;
}

void RealEnvironment::RandomBytes(char* out, size_t n) {
  while (n > 0) {
    const int chunk = static_cast<int>(std::min<size_t>(n, INT_MAX));
    CHECK(RAND_bytes(reinterpret_cast<unsigned char*>(out), chunk) == 1)
        << "OpenSSL RAND_bytes failed: no cryptographic randomness";
    out += chunk;
    n -= static_cast<size_t>(chunk);
  }
}

}  // namespace switchyard::io_real
