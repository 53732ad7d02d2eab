// Listener and connect helpers: every socket is non-blocking and close-on-exec.
#include "io_real/sockets.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/status/status.h"
#include "core/base/strings.h"

namespace switchyard::io_real {
namespace {

void SetIntOption(int fd, int level, int name, int value) {
  // Best effort: an option the kernel lacks must not stop the proxy.
  (void)::setsockopt(fd, level, name, &value, sizeof(value));
}

}  // namespace

std::string ErrnoText(int error) {
  char buffer[128];
  // GNU strerror_r returns the message (possibly not in `buffer`).
  return std::string(::strerror_r(error, buffer, sizeof(buffer)));
}

absl::StatusOr<int> Listen(const SocketAddress& address, int backlog) {
  const int fd = ::socket(address.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return absl::InternalError(Cat("socket: ", ErrnoText(errno)));
  }
  SetIntOption(fd, SOL_SOCKET, SO_REUSEADDR, 1);
  if (::bind(fd, address.get(), address.length) != 0) {
    const int error = errno;
    ::close(fd);
    return absl::UnavailableError(
        Cat("cannot listen on ", address.text, ": bind: ", ErrnoText(error)));
  }
  if (::listen(fd, backlog) != 0) {
    const int error = errno;
    ::close(fd);
    return absl::UnavailableError(
        Cat("cannot listen on ", address.text, ": listen: ", ErrnoText(error)));
  }
  return fd;
}

std::string LocalAddress(int fd) {
  sockaddr_storage storage{};
  socklen_t length = sizeof(storage);
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&storage), &length) != 0) return "unknown";
  return FormatAddress(reinterpret_cast<const sockaddr*>(&storage), length);
}

void SetNoDelay(int fd) { SetIntOption(fd, IPPROTO_TCP, TCP_NODELAY, 1); }

void ApplyServerOptions(int fd, const ServerSocketOptions& options) {
  SetNoDelay(fd);
  SetIntOption(fd, SOL_SOCKET, SO_KEEPALIVE, 1);
  SetIntOption(fd, IPPROTO_TCP, TCP_KEEPIDLE, options.keepalive_idle_s);
  SetIntOption(fd, IPPROTO_TCP, TCP_KEEPINTVL, options.keepalive_interval_s);
  SetIntOption(fd, IPPROTO_TCP, TCP_KEEPCNT, options.keepalive_count);
  SetIntOption(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, options.user_timeout_ms);
}

ConnectStart StartConnect(const SocketAddress& address, const ServerSocketOptions& options) {
  ConnectStart start;
  const int fd = ::socket(address.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    start.error = Cat("socket: ", ErrnoText(errno));
    return start;
  }
  ApplyServerOptions(fd, options);
  const int rc = ::connect(fd, address.get(), address.length);
  if (rc == 0) {
    start.fd = fd;
    return start;
  }
  // After EINTR the connect carries on asynchronously, exactly as after EINPROGRESS.
  if (errno == EINPROGRESS || errno == EINTR) {
    start.fd = fd;
    start.in_progress = true;
    return start;
  }
  start.error = Cat("connect to ", address.text, ": ", ErrnoText(errno));
  ::close(fd);
  return start;
}

std::string ConnectResult(int fd) {
  int error = 0;
  socklen_t length = sizeof(error);
  if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length) != 0) error = errno;
  return error == 0 ? std::string() : ErrnoText(error);
}

}  // namespace switchyard::io_real
