// The production Environment: connection ids from an atomic counter, randomness from OpenSSL.
#pragma once

#include <atomic>
#include <cstdint>

#include "core/io.h"

namespace switchyard::io_real {

class RealEnvironment final : public Environment {
 public:
  // Thread-safe: workers and the listener draw ids concurrently.
  ConnId NewConnId() override;
  // Cryptographic (RAND_bytes); aborts if OpenSSL cannot supply randomness, because a cancel
  // secret or SCRAM nonce from a broken generator would be a security hole.
  void RandomBytes(char* out, size_t n) override;

 private:
  // The low 32 bits are the index and the high 32 bits count wrap-arounds; the generation is
  // that count plus one, so it is never 0 (0 marks an invalid ConnId).
  std::atomic<uint64_t> next_{0};
};

}  // namespace switchyard::io_real
