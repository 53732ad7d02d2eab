// HOST:PORT strings and resolved socket addresses. Names are resolved once, at startup, never
// on the connect path.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace switchyard::io_real {

struct HostPort {
  std::string host;
  uint16_t port = 0;
};

// Accepts "host:port", "1.2.3.4:port" and "[v6addr]:port". Port 0 only when `allow_port_zero`
// (a listener may ask the kernel for a free port).
absl::StatusOr<HostPort> ParseHostPort(std::string_view text, bool allow_port_zero);

struct SocketAddress {
  sockaddr_storage storage{};
  socklen_t length = 0;
  std::string text;  // as configured, for logs

  int family() const { return storage.ss_family; }
  const sockaddr* get() const { return reinterpret_cast<const sockaddr*>(&storage); }
};

// Resolves with getaddrinfo and keeps the first TCP address. `passive` is for a listener
// ("0.0.0.0" and "::" are accepted as wildcards).
absl::StatusOr<SocketAddress> Resolve(std::string_view host_port, bool passive);

// Numeric "host:port" ("[v6]:port" for IPv6) of a socket address.
std::string FormatAddress(const sockaddr* address, socklen_t length);

}  // namespace switchyard::io_real
