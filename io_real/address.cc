// Parsing and resolving HOST:PORT.
#include "io_real/address.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>

#include <charconv>
#include <cstring>

#include "absl/status/status.h"
#include "core/base/strings.h"

namespace switchyard::io_real {

absl::StatusOr<HostPort> ParseHostPort(std::string_view text, bool allow_port_zero) {
  const size_t colon = text.rfind(':');
  if (colon == std::string_view::npos) {
    return absl::InvalidArgumentError(Cat("'", text, "' is not HOST:PORT (the port is missing)"));
  }
  std::string_view host = text.substr(0, colon);
  std::string_view port_text = text.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  } else if (host.find(':') != std::string_view::npos) {
    return absl::InvalidArgumentError(
        Cat("'", text, "': write an IPv6 address in brackets, as [::1]:6432"));
  }
  if (host.empty()) {
    return absl::InvalidArgumentError(Cat("'", text, "' has an empty host"));
  }
  unsigned port = 0;
  auto [end, error] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (port_text.empty() || error != std::errc() || end != port_text.data() + port_text.size() ||
      port > 65535 || (port == 0 && !allow_port_zero)) {
    return absl::InvalidArgumentError(
        Cat("'", text, "' has an invalid port (want ", allow_port_zero ? "0" : "1", "-65535)"));
  }
  return HostPort{std::string(host), static_cast<uint16_t>(port)};
}

absl::StatusOr<SocketAddress> Resolve(std::string_view host_port, bool passive) {
  absl::StatusOr<HostPort> parsed = ParseHostPort(host_port, passive);
  if (!parsed.ok()) return parsed.status();
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
  addrinfo* results = nullptr;
  const std::string port = std::to_string(parsed->port);
  const int rc = ::getaddrinfo(parsed->host.c_str(), port.c_str(), &hints, &results);
  if (rc != 0) {
    return absl::InvalidArgumentError(
        Cat("cannot resolve '", parsed->host, "': ", ::gai_strerror(rc)));
  }
  SocketAddress address;
  address.text = std::string(host_port);
  for (addrinfo* ai = results; ai != nullptr; ai = ai->ai_next) {
    if ((ai->ai_family == AF_INET || ai->ai_family == AF_INET6) &&
        ai->ai_addrlen <= sizeof(address.storage)) {
      std::memcpy(&address.storage, ai->ai_addr, ai->ai_addrlen);
      address.length = ai->ai_addrlen;
      break;
    }
  }
  ::freeaddrinfo(results);
  if (address.length == 0) {
    return absl::InvalidArgumentError(Cat("'", parsed->host, "' has no IPv4 or IPv6 address"));
  }
  return address;
}

std::string FormatAddress(const sockaddr* address, socklen_t length) {
  char host[INET6_ADDRSTRLEN] = "?";
  if (address->sa_family == AF_INET && length >= sizeof(sockaddr_in)) {
    const auto* v4 = reinterpret_cast<const sockaddr_in*>(address);
    ::inet_ntop(AF_INET, &v4->sin_addr, host, sizeof(host));
    return Cat(host, ":", ntohs(v4->sin_port));
  }
  if (address->sa_family == AF_INET6 && length >= sizeof(sockaddr_in6)) {
    const auto* v6 = reinterpret_cast<const sockaddr_in6*>(address);
    ::inet_ntop(AF_INET6, &v6->sin6_addr, host, sizeof(host));
    return Cat("[", host, "]:", ntohs(v6->sin6_port));
  }
  return "unknown";
}

}  // namespace switchyard::io_real
