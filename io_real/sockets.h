// Socket set-up for the production backend: listener, outgoing connects, socket options.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "io_real/address.h"

namespace switchyard::io_real {

// Options for connections to PostgreSQL servers: keepalive and TCP_USER_TIMEOUT catch a
// black-holed server the health checker has not judged yet (DESIGN.md section 5).
struct ServerSocketOptions {
  int keepalive_idle_s = 30;
  int keepalive_interval_s = 10;
  int keepalive_count = 3;
  int user_timeout_ms = 30'000;
};

// A non-blocking listening socket (SO_REUSEADDR, close-on-exec).
absl::StatusOr<int> Listen(const SocketAddress& address, int backlog);

// The address a socket is bound to, numeric.
std::string LocalAddress(int fd);

// Turns Nagle off: the proxy writes whole messages and latency matters more than packet count.
void SetNoDelay(int fd);
void ApplyServerOptions(int fd, const ServerSocketOptions& options);

struct ConnectStart {
  int fd = -1;
  bool in_progress = false;  // connect returned EINPROGRESS: wait for EPOLLOUT
  std::string error;         // set when the connect failed at once (fd is then -1)
};
// Starts a non-blocking connect to `address`.
ConnectStart StartConnect(const SocketAddress& address, const ServerSocketOptions& options);

// SO_ERROR of a socket whose connect finished: empty when it connected.
std::string ConnectResult(int fd);

// strerror, thread-safe.
std::string ErrnoText(int error);

}  // namespace switchyard::io_real
