// Always-on invariant checks: a broken promise of our own code stops the process with a message.
// Bad input from a peer is never checked this way; it is an absl::Status (STYLE.md).
#pragma once

#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>

namespace switchyard::internal {

// Collects the streamed message and aborts when destroyed.
class CheckFailure {
 public:
  CheckFailure(const char* file, int line, const char* condition) {
    stream_ << file << ":" << line << ": check failed: " << condition << " ";
  }
  [[noreturn]] ~CheckFailure() {
    std::string message = stream_.str();
    std::fprintf(stderr, "%s\n", message.c_str());
    std::fflush(stderr);
    std::abort();
  }
  std::ostream& stream() { return stream_; }

 private:
  std::ostringstream stream_;
};

// Makes `cond ? (void)0 : Voidify() & stream` a void expression.
struct Voidify {
  void operator&(std::ostream&) {}
};

}  // namespace switchyard::internal

#define CHECK(condition)                            \
  (condition) ? (void)0                             \
              : ::switchyard::internal::Voidify() & \
                    ::switchyard::internal::CheckFailure(__FILE__, __LINE__, #condition).stream()
#define CHECK_OP_(a, op, b) CHECK((a)op(b)) << "(" << (a) << " vs " << (b) << ") "
#define CHECK_EQ(a, b) CHECK_OP_(a, ==, b)
#define CHECK_NE(a, b) CHECK_OP_(a, !=, b)
#define CHECK_LE(a, b) CHECK_OP_(a, <=, b)
#define CHECK_LT(a, b) CHECK_OP_(a, <, b)
#define CHECK_GE(a, b) CHECK_OP_(a, >=, b)
#define CHECK_GT(a, b) CHECK_OP_(a, >, b)
