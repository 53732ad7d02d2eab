// Lingering closes: the rest of a closed connection's output, written as the peer takes it,
// then our FIN, then the peer's, each within a deadline (see lingering.h).
#include "io_real/lingering.h"

#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "core/base/check.h"
#include "io_real/log.h"
#include "io_real/sockets.h"

namespace switchyard::io_real {
namespace {

constexpr size_t kDiscardBufferBytes = 64 * 1024;
// Read and thrown away per readiness event, so a peer that keeps sending cannot hold the owner
// thread (level-triggered: the rest is reported again).
constexpr size_t kDiscardBytesPerEventMax = 4 * kDiscardBufferBytes;
constexpr int kEventsPerPollMax = 64;

}  // namespace

LingeringSet::LingeringSet(LingeringConfig config)
    : config_(config), buffer_(new char[kDiscardBufferBytes]) {
  poll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
  CHECK(poll_fd_ >= 0) << "epoll_create1: " << std::strerror(errno);
}

LingeringSet::~LingeringSet() {
  for (const Socket& socket : offered_) ::close(socket.fd);
  for (const auto& [id, socket] : sockets_) ::close(socket.fd);
  ::close(poll_fd_);
}

bool LingeringSet::Offer(int fd, std::string out, size_t out_pos, Instant now) {
  CHECK(fd >= 0 && out_pos <= out.size());
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (count_ >= config_.sockets_max) {
      refused_.fetch_add(1, std::memory_order_relaxed);
      return false;
    }
    ++count_;
    Socket socket;
    socket.fd = fd;
    socket.out = std::move(out);
    socket.out_pos = out_pos;
    socket.deadline = now + MsToUs(config_.timeout_ms);
    offered_.push_back(std::move(socket));
  }
  closes_.fetch_add(1, std::memory_order_relaxed);
  return true;
}

LingeringCounts LingeringSet::counts() const {
  return LingeringCounts{closes_.load(std::memory_order_relaxed),
                         timeouts_.load(std::memory_order_relaxed),
                         refused_.load(std::memory_order_relaxed)};
}

void LingeringSet::Adopt(Instant now) {
  std::vector<Socket> adopted;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (offered_.empty()) return;
    adopted.swap(offered_);
  }
  for (Socket& offered : adopted) {
    const uint64_t id = ++next_id_;
    Socket& socket = sockets_.emplace(id, std::move(offered)).first->second;
    socket.due = socket.deadline;
    by_due_.emplace(socket.due, id);
    // Registered (or, with nothing left to write, shut for writing) at once: the first
    // readiness report comes straight away when the socket is already writable.
    Advance(id, socket, now);
  }
}

void LingeringSet::Poll(Instant now) {
  epoll_event events[kEventsPerPollMax];
  int count;
  do {
    count = ::epoll_wait(poll_fd_, events, kEventsPerPollMax, 0);
  } while (count < 0 && errno == EINTR);
  CHECK(count >= 0) << "epoll_wait(lingering): " << std::strerror(errno);
  for (int i = 0; i < count; ++i) Handle(events[i].data.u64, events[i].events, now);
}

void LingeringSet::Expire(Instant now) {
  while (!by_due_.empty() && by_due_.begin()->first <= now) {
    Finish(by_due_.begin()->second, End::kTimeout);
  }
}

std::optional<Instant> LingeringSet::NextDeadline() const {
  if (by_due_.empty()) return std::nullopt;
  return by_due_.begin()->first;
}

void LingeringSet::CloseAll() {
  while (!sockets_.empty()) Finish(sockets_.begin()->first, End::kTimeout);
}

void LingeringSet::Handle(uint64_t id, uint32_t events, Instant now) {
  auto it = sockets_.find(id);
  if (it == sockets_.end()) return;  // closed earlier in this batch
  Socket& socket = it->second;
  if ((events & EPOLLERR) != 0) return Finish(id, End::kPeerGone);
  const bool hang_up = (events & EPOLLHUP) != 0;
  const bool readable = (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP)) != 0;
  if (readable && !socket.read_eof && !Discard(socket)) return Finish(id, End::kPeerGone);
  if (socket.pending() && (events & EPOLLOUT) != 0 && !Write(socket)) {
    return Finish(id, End::kPeerGone);
  }
  if (!Advance(id, socket, now)) return;
  // Both directions are down (a reset, or FINs both ways): nothing more can be delivered, and a
  // hung-up descriptor would be reported again and again.
  if (hang_up) Finish(id, End::kPeerGone);
}

bool LingeringSet::Discard(Socket& socket) {
  size_t total = 0;
  while (total < kDiscardBytesPerEventMax) {
    const ssize_t n = ::recv(socket.fd, buffer_.get(), kDiscardBufferBytes, MSG_DONTWAIT);
    if (n > 0) {
      total += static_cast<size_t>(n);
      if (static_cast<size_t>(n) < kDiscardBufferBytes) return true;  // emptied it
      continue;
    }
    if (n == 0) {
      socket.read_eof = true;
      return true;
    }
    if (errno == EINTR) continue;
    return errno == EAGAIN || errno == EWOULDBLOCK;
  }
  return true;
}

bool LingeringSet::Write(Socket& socket) {
  while (socket.pending()) {
    const size_t left = socket.out.size() - socket.out_pos;
    const ssize_t n =
        ::send(socket.fd, socket.out.data() + socket.out_pos, left, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      socket.out_pos += static_cast<size_t>(n);
      if (static_cast<size_t>(n) < left) return true;  // the buffer is full: wait for EPOLLOUT
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
  }
  return true;
}

bool LingeringSet::Advance(uint64_t id, Socket& socket, Instant now) {
  if (!socket.pending() && !socket.write_shut) {
    // Our FIN follows the last byte; the peer now has a short while to send its own.
    ::shutdown(socket.fd, SHUT_WR);
    socket.write_shut = true;
    socket.out = std::string();
    socket.out_pos = 0;
    SetDue(id, socket, std::min(socket.deadline, now + MsToUs(config_.drain_ms)));
  }
  if (socket.write_shut && socket.read_eof) {
    Finish(id, End::kDone);
    return false;
  }
  // Level-triggered: every readiness reported is acted on above, and EPOLLOUT is asked for only
  // while output waits and EPOLLIN only until the peer's FIN, so a ready socket never spins.
  const uint32_t wanted =
      (socket.read_eof ? 0u : uint32_t{EPOLLIN | EPOLLRDHUP}) | (socket.pending() ? EPOLLOUT : 0u);
  if (wanted == socket.registered) return true;
  epoll_event event{};
  event.events = wanted;
  event.data.u64 = id;
  const int op = socket.registered == 0 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD;
  if (::epoll_ctl(poll_fd_, op, socket.fd, &event) != 0) {
    // Out of memory for the registration: give up on this socket rather than lose track of it.
    Log("event=lingering_close_failed error=%s", LogValue(ErrnoText(errno)));
    Finish(id, End::kPeerGone);
    return false;
  }
  socket.registered = wanted;
  return true;
}

void LingeringSet::SetDue(uint64_t id, Socket& socket, Instant due) {
  if (due == socket.due) return;
  by_due_.erase({socket.due, id});
  socket.due = due;
  by_due_.emplace(due, id);
}

void LingeringSet::Finish(uint64_t id, End end) {
  auto it = sockets_.find(id);
  CHECK(it != sockets_.end()) << "finishing an unknown lingering socket " << id;
  Socket& socket = it->second;
  if (end == End::kTimeout) {
    timeouts_.fetch_add(1, std::memory_order_relaxed);
    if (socket.pending()) {
      // The peer stopped reading: abort (a reset) so the kernel does not keep trying to deliver
      // the unsent bytes on its own after the close.
      const linger abort{1, 0};
      ::setsockopt(socket.fd, SOL_SOCKET, SO_LINGER, &abort, sizeof(abort));
    }
  }
  ::close(socket.fd);  // also takes it out of poll_fd_
  by_due_.erase({socket.due, id});
  sockets_.erase(it);
  std::lock_guard<std::mutex> lock(mu_);
  --count_;
}

}  // namespace switchyard::io_real
