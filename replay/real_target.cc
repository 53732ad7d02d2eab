// The poll() loop that replays sessions over real sockets (see real_target.h).
#include "replay/real_target.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/rand.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "core/base/check.h"
#include "core/base/strings.h"

namespace switchyard::replay {
namespace {

constexpr size_t kReadChunkSize = 64 << 10;
constexpr int kReadsPerWakeupMax = 16;         // then the other sessions get their turn
constexpr size_t kOutputHighWater = 16 << 20;  // stop producing sends for a session above this
constexpr int64_t kPollWaitMaxUs = 1'000'000;
constexpr size_t kScramNonceSize = 24;

Instant Now() {
  auto since = std::chrono::steady_clock::now().time_since_epoch();
  return Instant{std::chrono::duration_cast<std::chrono::microseconds>(since).count()};
}

std::string ErrnoText(int error) {
  char buffer[128];
  return std::string(strerror_r(error, buffer, sizeof(buffer)));
}

struct Address {
  sockaddr_storage storage{};
  socklen_t length = 0;
  int family = AF_INET;
};

absl::StatusOr<Address> Resolve(const HostPort& target) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  std::string port = std::to_string(target.port);
  int status = getaddrinfo(target.host.c_str(), port.c_str(), &hints, &found);
  if (status != 0 || found == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrFormat("cannot resolve target %s: %s", target.host, gai_strerror(status)));
  }
  Address address;
  std::memcpy(&address.storage, found->ai_addr, found->ai_addrlen);
  address.length = found->ai_addrlen;
  address.family = found->ai_family;
  freeaddrinfo(found);
  return address;
}

std::string RandomNonce() {
  std::string nonce(kScramNonceSize, '\0');
  // A SCRAM nonce only has to be unpredictable to a third party; OpenSSL's generator is.
  CHECK(RAND_bytes(reinterpret_cast<unsigned char*>(nonce.data()),
                   static_cast<int>(nonce.size())) == 1)
      << "RAND_bytes failed";
  return nonce;
}

// A non-blocking TCP connection with its pending output.
struct Connection {
  int fd = -1;
  bool connecting = false;
  std::string output;
  size_t output_offset = 0;
  Instant write_progress;  // when the target last took bytes (or output began waiting)

  bool has_output() const { return output_offset < output.size(); }
  void Close() {
    if (fd >= 0) ::close(fd);
    fd = -1;
    connecting = false;
  }
};

// Starts a connect; an error text when it failed at once.
std::string StartConnect(const Address& address, Connection& connection) {
  int fd = ::socket(address.family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return ErrnoText(errno);
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  connection.fd = fd;
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&address.storage), address.length) == 0) {
    return "";
  }
  if (errno == EINPROGRESS) {
    connection.connecting = true;
    return "";
  }
  std::string error = ErrnoText(errno);
  connection.Close();
  return error;
}

// Writes what it can; false when the connection failed.
bool WriteSome(Connection& connection, Instant now) {
  while (connection.has_output()) {
    ssize_t written = ::send(connection.fd, connection.output.data() + connection.output_offset,
                             connection.output.size() - connection.output_offset, MSG_NOSIGNAL);
    if (written < 0) {
      if (errno == EINTR) continue;
      return errno == EAGAIN || errno == EWOULDBLOCK;
    }
    connection.output_offset += static_cast<size_t>(written);
    connection.write_progress = now;
  }
  connection.output.clear();
  connection.output_offset = 0;
  return true;
}

struct Active {
  std::unique_ptr<SessionReplayer> replayer;
  Connection connection;
};

struct CancelConnection {
  Connection connection;
  Instant deadline;
};

class Driver {
 public:
  Driver(const Capture& capture, const RealTargetOptions& options, const Address& address,
         ReplayReport& report)
      : capture_(capture), options_(options), address_(address), report_(report) {}

  void Run();

 private:
  void Plan();
  void StartDue(Instant now);
  void Drain(Active& active, Instant now);
  void Apply(Active& active, ReplayAction action, Instant now);
  void StartCancel(const pg::BackendKeyData& key, Instant now);
  void Tick(Instant now);
  void Poll(Instant now);
  void OnActiveEvents(Active& active, short revents, Instant now);
  void ReadFrom(Active& active, Instant now);
  void OnCancelEvents(CancelConnection& cancel, short revents, Instant now);
  int PollTimeoutMs(Instant now) const;
  void Reap();

  const Capture& capture_;
  const RealTargetOptions& options_;
  const Address& address_;
  ReplayReport& report_;
  std::vector<SessionPlan> plans_;
  std::optional<Pacer> pacer_;
  Instant start_;
  std::vector<size_t> order_;  // sessions to replay, by start time
  size_t next_ = 0;            // next of order_ to start
  std::vector<std::unique_ptr<Active>> active_;
  std::vector<CancelConnection> cancels_;
  std::string read_buffer_ = std::string(kReadChunkSize, '\0');
};

void Driver::Plan() {
  plans_.reserve(capture_.sessions.size());
  for (size_t i = 0; i < capture_.sessions.size(); ++i) {
    const CapturedSession& session = capture_.sessions[i];
    plans_.push_back(PlanSession(session, options_.pacing));
    if (plans_.back().replay) {
      order_.push_back(i);
    } else {
      report_.AddSessionSkipped(session.login_failed ? "its login failed in the capture"
                                                     : "outside --from/--to");
    }
  }
  std::stable_sort(order_.begin(), order_.end(), [this](size_t a, size_t b) {
    return plans_[a].start_time_us < plans_[b].start_time_us;
  });
  pacer_.emplace(options_.pacing, ScheduledTimes(capture_, plans_));
}

void Driver::Run() {
  Plan();
  start_ = Now();
  while (true) {
    Instant now = Now();
    StartDue(now);
    Tick(now);
    Reap();
    if (next_ == order_.size() && active_.empty() && cancels_.empty()) return;
    Poll(now);
  }
}

void Driver::StartDue(Instant now) {
  while (next_ < order_.size() && active_.size() < options_.sessions_max) {
    size_t index = order_[next_];
    if (now < start_ + pacer_->DueOffsetUs(plans_[index].start_time_us)) break;
    auto active = std::make_unique<Active>();
    active->replayer = std::make_unique<SessionReplayer>(capture_.sessions[index], plans_[index],
                                                         options_.settings, *pacer_, start_,
                                                         RandomNonce(), report_);
    active->replayer->Start(now);
    Drain(*active, now);
    active_.push_back(std::move(active));
    ++next_;
  }
}

void Driver::Tick(Instant now) {
  for (auto& active : active_) {
    Connection& connection = active->connection;
    if (connection.has_output() &&
        now.us - connection.write_progress.us >= options_.settings.stall_timeout_us) {
      active->replayer->OnWriteStalled(now);
    } else if (connection.output.size() < kOutputHighWater) {
      active->replayer->OnTime(now);
    }
    Drain(*active, now);
  }
  for (CancelConnection& cancel : cancels_) {
    if (now >= cancel.deadline) cancel.connection.Close();
  }
}

void Driver::Drain(Active& active, Instant now) {
  while (std::optional<ReplayAction> action = active.replayer->PollAction()) {
    Apply(active, std::move(*action), now);
  }
}

void Driver::Apply(Active& active, ReplayAction action, Instant now) {
  Connection& connection = active.connection;
  switch (action.kind) {
    case ReplayAction::Kind::kConnect: {
      std::string error = StartConnect(address_, connection);
      if (!error.empty()) {
        active.replayer->OnConnectFailed(now, error);
      } else if (!connection.connecting) {
        active.replayer->OnConnected(now);
      }
      return;
    }
    case ReplayAction::Kind::kSend:
      if (!connection.has_output()) connection.write_progress = now;
      connection.output += action.bytes;
      if (connection.fd >= 0 && !connection.connecting && !WriteSome(connection, now)) {
        connection.Close();
        active.replayer->OnClosed(now, "write failed");
      }
      return;
    case ReplayAction::Kind::kCancel:
      StartCancel(action.key, now);
      return;
    case ReplayAction::Kind::kClose:
      // Best effort for a final Terminate; the session is over either way.
      if (connection.fd >= 0 && !connection.connecting) WriteSome(connection, now);
      connection.Close();
      return;
  }
}

void Driver::StartCancel(const pg::BackendKeyData& key, Instant now) {
  CancelConnection cancel;
  cancel.deadline = now + options_.settings.stall_timeout_us;
  cancel.connection.output = pg::CancelRequest{.pid = key.pid, .secret = key.secret}.Encode();
  if (!StartConnect(address_, cancel.connection).empty()) return;
  if (!cancel.connection.connecting) {
    WriteSome(cancel.connection, now);
    if (!cancel.connection.has_output()) cancel.connection.Close();
  }
  if (cancel.connection.fd >= 0) cancels_.push_back(std::move(cancel));
}

int Driver::PollTimeoutMs(Instant now) const {
  int64_t wait_us = kPollWaitMaxUs;
  auto consider = [&](Instant deadline) { wait_us = std::min(wait_us, deadline.us - now.us); };
  for (const auto& active : active_) {
    // Above the high-water mark the session waits for the socket, not for its deadlines.
    std::optional<Instant> deadline = active->replayer->NextDeadline();
    if (deadline.has_value() && active->connection.output.size() < kOutputHighWater) {
      consider(*deadline);
    }
    if (active->connection.has_output()) {
      consider(active->connection.write_progress + options_.settings.stall_timeout_us);
    }
  }
  if (next_ < order_.size() && active_.size() < options_.sessions_max) {
    consider(start_ + pacer_->DueOffsetUs(plans_[order_[next_]].start_time_us));
  }
  for (const CancelConnection& cancel : cancels_) consider(cancel.deadline);
  // Round up, so the loop does not spin through the last partial millisecond.
  return static_cast<int>(std::max<int64_t>(0, (wait_us + 999) / 1000));
}

void Driver::Poll(Instant now) {
  std::vector<pollfd> fds;
  for (const auto& active : active_) {
    const Connection& connection = active->connection;
    short events = POLLIN;
    if (connection.connecting || connection.has_output()) events |= POLLOUT;
    fds.push_back(pollfd{.fd = connection.fd, .events = events, .revents = 0});
  }
  for (const CancelConnection& cancel : cancels_) {
    fds.push_back(pollfd{.fd = cancel.connection.fd, .events = POLLOUT, .revents = 0});
  }
  int ready = ::poll(fds.data(), fds.size(), PollTimeoutMs(now));
  if (ready <= 0) return;  // timeout, or EINTR: the loop looks at the clock again
  Instant after = Now();
  // Handlers may close connections and start cancels (appended to cancels_), but remove
  // nothing until the next Reap(): the first entries still match `fds`.
  size_t actives = active_.size();
  size_t cancels = cancels_.size();
  for (size_t i = 0; i < actives; ++i) {
    if (fds[i].fd >= 0 && fds[i].revents != 0) OnActiveEvents(*active_[i], fds[i].revents, after);
  }
  for (size_t i = 0; i < cancels; ++i) {
    const pollfd& entry = fds[actives + i];
    if (entry.fd >= 0 && entry.revents != 0) OnCancelEvents(cancels_[i], entry.revents, after);
  }
}

void Driver::OnActiveEvents(Active& active, short revents, Instant now) {
  Connection& connection = active.connection;
  if (connection.connecting) {
    int error = 0;
    socklen_t length = sizeof(error);
    ::getsockopt(connection.fd, SOL_SOCKET, SO_ERROR, &error, &length);
    if (error != 0) {
      connection.Close();
      active.replayer->OnConnectFailed(now, ErrnoText(error));
      Drain(active, now);
      return;
    }
    if ((revents & POLLOUT) == 0) return;
    connection.connecting = false;
    active.replayer->OnConnected(now);
    Drain(active, now);
  }
  if (connection.fd >= 0 && connection.has_output() && (revents & (POLLOUT | POLLERR)) != 0) {
    if (!WriteSome(connection, now)) {
      connection.Close();
      active.replayer->OnClosed(now, "write failed");
    }
  }
  if (connection.fd >= 0 && (revents & (POLLIN | POLLHUP | POLLERR)) != 0) ReadFrom(active, now);
  Drain(active, now);
}

void Driver::ReadFrom(Active& active, Instant now) {
  Connection& connection = active.connection;
  for (int reads = 0; reads < kReadsPerWakeupMax && connection.fd >= 0; ++reads) {
    ssize_t got = ::recv(connection.fd, read_buffer_.data(), read_buffer_.size(), 0);
    if (got > 0) {
      active.replayer->OnReceived(now, std::string_view(read_buffer_.data(), got));
      Drain(active, now);
      continue;
    }
    if (got < 0 && errno == EINTR) continue;
    if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    std::string why = got == 0 ? "end of stream" : ErrnoText(errno);
    connection.Close();
    active.replayer->OnClosed(now, why);
    return;
  }
}

void Driver::OnCancelEvents(CancelConnection& cancel, short revents, Instant now) {
  Connection& connection = cancel.connection;
  if ((revents & (POLLERR | POLLHUP)) != 0) {
    connection.Close();
    return;
  }
  connection.connecting = false;
  if (!WriteSome(connection, now) || !connection.has_output()) connection.Close();
}

void Driver::Reap() {
  std::erase_if(active_, [](const std::unique_ptr<Active>& active) {
    if (!active->replayer->finished()) return false;
    active->connection.Close();
    return true;
  });
  std::erase_if(cancels_, [](const CancelConnection& cancel) { return cancel.connection.fd < 0; });
}

}  // namespace

absl::StatusOr<HostPort> ParseTarget(std::string_view text) {
  size_t colon = text.rfind(':');
  if (colon == std::string_view::npos || colon == 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("target '%s' is not HOST:PORT (or `sim`)", text));
  }
  std::string_view host = text.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  uint32_t port = 0;
  if (!absl::SimpleAtoi(absl::string_view(text.data() + colon + 1, text.size() - colon - 1),
                        &port) ||
      port == 0 || port > 65535) {
    return absl::InvalidArgumentError(absl::StrFormat("target '%s' has no valid port", text));
  }
  return HostPort{.host = std::string(host), .port = static_cast<uint16_t>(port)};
}

absl::Status ReplayAgainstServer(const Capture& capture, const RealTargetOptions& options,
                                 ReplayReport& report) {
  CHECK_GT(options.sessions_max, 0u);
  absl::StatusOr<HostPort> target = ParseTarget(options.target);
  if (!target.ok()) return target.status();
  absl::StatusOr<Address> address = Resolve(*target);
  if (!address.ok()) return address.status();
  Driver driver(capture, options, *address, report);
  driver.Run();
  return absl::OkStatus();
}

}  // namespace switchyard::replay
