// The driver's lifecycle and its epoll loop thread: readiness, accepting clients, timers,
// signals and the drain at shutdown. Running units is in driver_run.cc.
#include "io_real/driver.h"

#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstring>
#include <utility>

#include "absl/status/status.h"
#include "core/base/check.h"
#include "core/base/strings.h"
#include "io_real/driver_internal.h"
#include "io_real/log.h"

namespace switchyard::io_real {

Instant Now() {
  using std::chrono::duration_cast;
  using std::chrono::microseconds;
  using std::chrono::steady_clock;
  return Instant{duration_cast<microseconds>(steady_clock::now().time_since_epoch()).count()};
}

// --- Driver: forwards to DriverImpl ---

Driver::Driver(DriverConfig config, ServicesLike& services, Environment& env, UnitFactory factory)
    : impl_(std::make_unique<DriverImpl>(std::move(config), services, env, std::move(factory))) {}
Driver::~Driver() = default;
absl::Status Driver::Listen() { return impl_->Listen(); }
std::string Driver::listen_address() const { return impl_->listen_address_; }
uint16_t Driver::listen_port() const { return impl_->listen_port_; }
absl::Status Driver::Run() { return impl_->Run(); }
void Driver::Shutdown() { impl_->Shutdown(); }
DriverStats Driver::stats() const { return impl_->Stats(); }
size_t Driver::unit_count() const { return impl_->UnitCount(); }

// --- Lifecycle ---

DriverImpl::DriverImpl(DriverConfig config, ServicesLike& services, Environment& env,
                       Driver::UnitFactory factory)
    : config_(std::move(config)),
      services_(services),
      env_(env),
      factory_(std::move(factory)),
      sched_(config_.disarm_policy) {
  config_.workers = std::max(config_.workers, 1);
  epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
  CHECK(epoll_fd_ >= 0) << "epoll_create1: " << std::strerror(errno);
  wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  CHECK(wake_fd_ >= 0) << "eventfd: " << std::strerror(errno);
  epoll_event event{};
  event.events = EPOLLIN;  // level-triggered: the loop reads it empty each time
  event.data.u64 = kWakeTag;
  CHECK(::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &event) == 0) << std::strerror(errno);
}

DriverImpl::~DriverImpl() {
  CHECK(workers_.empty()) << "driver destroyed while Run() is active";
  units_.clear();
  for (auto& [conn, record] : conns_) {
    if (record->fd >= 0) ::close(record->fd);
  }
  for (int fd : {listen_fd_, signal_fd_, wake_fd_, epoll_fd_}) {
    if (fd >= 0) ::close(fd);
  }
}

absl::Status DriverImpl::Listen() {
  if (listen_fd_ >= 0) return absl::FailedPreconditionError("already listening");
  absl::StatusOr<int> fd = io_real::Listen(config_.listen, config_.listen_backlog);
  if (!fd.ok()) return fd.status();
  listen_fd_ = *fd;
  sockaddr_storage storage{};
  socklen_t length = sizeof(storage);
  ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&storage), &length);
  listen_address_ = FormatAddress(reinterpret_cast<const sockaddr*>(&storage), length);
  listen_port_ = ntohs(storage.ss_family == AF_INET6
                           ? reinterpret_cast<const sockaddr_in6*>(&storage)->sin6_port
                           : reinterpret_cast<const sockaddr_in*>(&storage)->sin_port);
  epoll_event event{};
  event.events = EPOLLIN;  // level-triggered: accept until EAGAIN, bounded per wake
  event.data.u64 = kListenerTag;
  if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, listen_fd_, &event) != 0) {
    return absl::InternalError(Cat("epoll_ctl(listener): ", ErrnoText(errno)));
  }
  Log("event=listening address=%s workers=%d", listen_address_, config_.workers);
  return absl::OkStatus();
}

absl::Status DriverImpl::Run() {
  if (listen_fd_ < 0) return absl::FailedPreconditionError("Listen() must succeed before Run()");
  if (config_.handle_signals) {
    // Blocked before the workers start, so every thread inherits the mask and the signals are
    // only ever seen through the signalfd.
    ::signal(SIGPIPE, SIG_IGN);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    ::pthread_sigmask(SIG_BLOCK, &set, nullptr);
    signal_fd_ = ::signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (signal_fd_ < 0) return absl::InternalError(Cat("signalfd: ", ErrnoText(errno)));
    epoll_event event{};
    event.events = EPOLLIN;
    event.data.u64 = kSignalTag;
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, signal_fd_, &event);
  }
  for (int i = 0; i < config_.workers; ++i) workers_.emplace_back([this] { WorkerMain(); });
  LoopMain();
  return absl::OkStatus();
}

void DriverImpl::Shutdown() {
  shutdown_requested_.store(true);
  WakeLoop();
}

DriverStats DriverImpl::Stats() const {
  auto get = [](const std::atomic<uint64_t>& counter) {
    return counter.load(std::memory_order_relaxed);
  };
  return DriverStats{get(stats_.clients_accepted), get(stats_.runs),       get(stats_.reads),
                     get(stats_.writes),           get(stats_.epoll_ctls), get(stats_.epoll_waits),
                     get(stats_.loop_wakes),       get(stats_.connects),   get(stats_.closes)};
}

size_t DriverImpl::UnitCount() {
  std::lock_guard<std::mutex> lock(mu_);
  return units_.size();
}

void DriverImpl::WakeLoop() {
  const uint64_t one = 1;
  // A full counter (EAGAIN) already means "wake up".
  (void)!::write(wake_fd_, &one, sizeof(one));
  AtomicStats::Add(stats_.loop_wakes);
}

// --- The loop ---

void DriverImpl::LoopMain() {
  epoll_event events[kEpollEventsMax];
  while (true) {
    Instant now = Now();
    if (shutdown_requested_.load() && !draining_) BeginDrain(now);
    if (draining_) {
      if (UnitCount() == 0) return StopWorkersAndDropUnits(false);
      if (now >= drain_deadline_) return StopWorkersAndDropUnits(true);
    }
    const int timeout_ms = PrepareSleep(now);
    const int count = ::epoll_wait(epoll_fd_, events, kEpollEventsMax, timeout_ms);
    AtomicStats::Add(stats_.epoll_waits);
    if (count < 0) {
      CHECK(errno == EINTR) << "epoll_wait: " << std::strerror(errno);
      continue;
    }
    now = Now();
    HandleEpollBatch(events, count, now);
    if (accept_resume_ && now >= *accept_resume_ && listen_fd_ >= 0) {
      accept_resume_.reset();
      epoll_event event{};
      event.events = EPOLLIN;
      event.data.u64 = kListenerTag;
      ::epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, listen_fd_, &event);
      AcceptClients(now);
    }
    FireTimers(now);
  }
}

int DriverImpl::PrepareSleep(Instant now) {
  std::lock_guard<std::mutex> lock(mu_);
  // Drop superseded heap entries so a moved deadline does not wake the loop for nothing.
  while (!timers_.empty()) {
    const TimerEntry& top = timers_.top();
    auto it = units_.find(top.unit);
    if (it != units_.end() && it->second->deadline == top.deadline) break;
    timers_.pop();
  }
  std::optional<Instant> earliest;
  auto consider = [&](std::optional<Instant> t) {
    if (t && (!earliest || *t < *earliest)) earliest = t;
  };
  if (!timers_.empty()) consider(timers_.top().deadline);
  consider(services_deadline_);
  consider(accept_resume_);
  if (draining_) consider(drain_deadline_);
  loop_sleep_until_us_ = earliest ? earliest->us : INT64_MAX;
  if (!earliest) return -1;
  const int64_t delta_us = earliest->us - now.us;
  if (delta_us <= 0) return 0;
  return static_cast<int>(std::min<int64_t>((delta_us + 999) / 1000, INT_MAX));
}

void DriverImpl::HandleEpollBatch(const epoll_event* events, int count, Instant now) {
  bool accept_ready = false;
  bool wake_ready = false;
  bool signal_ready = false;
  std::vector<ConnId> pooled;
  {
    std::lock_guard<std::mutex> lock(mu_);
    loop_sleep_until_us_ = kAwake;
    for (int i = 0; i < count; ++i) {
      const uint64_t tag = events[i].data.u64;
      const uint32_t flags = events[i].events;
      if (tag == kListenerTag) {
        accept_ready = true;
      } else if (tag == kWakeTag) {
        wake_ready = true;
      } else if (tag == kSignalTag) {
        signal_ready = true;
      } else {
        const ConnId conn = ConnId::Unpack(tag);
        const sched::Readiness readiness{
            (flags & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0,
            (flags & (EPOLLOUT | EPOLLHUP | EPOLLERR)) != 0};
        sched::Scheduler::ReadyResult result = sched_.OnReady(conn, readiness);
        ApplyAllLocked(result.wake.disarm);
        if (result.wake.queued) work_cv_.notify_one();
        if (result.kind == sched::Scheduler::ReadyResult::Kind::kPool) pooled.push_back(conn);
      }
    }
    if (config_.check_scheduler_invariants) sched_.CheckInvariants();
  }
  if (wake_ready) {
    uint64_t value;
    (void)!::read(wake_fd_, &value, sizeof(value));
  }
  if (signal_ready) ReadSignals();
  for (ConnId conn : pooled) IdleConnectionLost(now, conn);
  if (accept_ready && listen_fd_ >= 0 && !accept_resume_) AcceptClients(now);
}

void DriverImpl::IdleConnectionLost(Instant now, ConnId conn) {
  std::lock_guard<std::mutex> services_lock(services_mu_);
  ApplyOutcome(now, services_.IdleConnectionLost(now, conn), UnitId{}, nullptr);
}

void DriverImpl::ReadSignals() {
  signalfd_siginfo info;
  while (::read(signal_fd_, &info, sizeof(info)) == static_cast<ssize_t>(sizeof(info))) {
    const bool again = shutdown_requested_.exchange(true);
    Log("event=signal signal=%s action=%s", LogValue(::strsignal(info.ssi_signo)),
        again ? "stop_now" : "drain");
    // A second signal during the drain stops at once, as a second Ctrl-C is meant to.
    if (again && draining_) drain_deadline_ = Now();
  }
}

void DriverImpl::AcceptClients(Instant now) {
  for (int i = 0; i < kAcceptsPerWakeMax; ++i) {
    sockaddr_storage storage{};
    socklen_t length = sizeof(storage);
    const int fd = ::accept4(listen_fd_, reinterpret_cast<sockaddr*>(&storage), &length,
                             SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) {
      SetNoDelay(fd);
      AdmitOne(fd, FormatAddress(reinterpret_cast<const sockaddr*>(&storage), length));
      continue;
    }
    const int error = errno;
    if (error == EAGAIN || error == EWOULDBLOCK) return;
    if (error == EINTR || error == ECONNABORTED || error == EPROTO) continue;
    // Out of descriptors or memory: the pending connection stays in the backlog and the
    // level-triggered listener would spin, so stop watching it for a moment.
    Log("event=accept_paused error=%s pause_ms=%d", LogValue(ErrnoText(error)),
        kAcceptPauseUs / 1000);
    epoll_event event{};
    event.data.u64 = kListenerTag;
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, listen_fd_, &event);
    accept_resume_ = now + kAcceptPauseUs;
    return;
  }
}

void DriverImpl::AdmitOne(int fd, const std::string& peer) {
  const ConnId conn = env_.NewConnId();
  bool admitted;
  {
    std::lock_guard<std::mutex> services_lock(services_mu_);
    admitted = services_.AdmitClient();
  }
  const UnitId id{++next_unit_};
  auto unit_record = std::make_unique<UnitRecord>();
  unit_record->unit = factory_(id, conn, admitted);
  unit_record->admitted = admitted;
  unit_record->inbox.push_back(Accepted{conn, peer});
  auto conn_record = std::make_unique<ConnRecord>();
  conn_record->id = conn;
  conn_record->fd = fd;
  {
    std::lock_guard<std::mutex> lock(mu_);
    units_.emplace(id, std::move(unit_record));
    conns_.emplace(conn, std::move(conn_record));
    sched_.AddUnit(id);
    sched_.AddConn(conn, sched::Owner::OfUnit(id));
    WakeUnitLocked(id);  // its first run delivers Accepted
  }
  AtomicStats::Add(stats_.clients_accepted);
  Log("event=client_accepted unit=%d conn=%s peer=%s admitted=%s", id.value, ConnText(conn),
      LogValue(peer), admitted ? "true" : "false");
}

void DriverImpl::FireTimers(Instant now) {
  bool tick = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    while (!timers_.empty() && timers_.top().deadline <= now) {
      const TimerEntry entry = timers_.top();
      timers_.pop();
      auto it = units_.find(entry.unit);
      if (it == units_.end() || it->second->deadline != entry.deadline) continue;  // superseded
      it->second->deadline.reset();
      --live_deadlines_;
      it->second->timer_due = true;
      WakeUnitLocked(entry.unit);
    }
    tick = services_deadline_ && *services_deadline_ <= now;
  }
  if (tick) {
    std::lock_guard<std::mutex> services_lock(services_mu_);
    ApplyOutcome(now, services_.Tick(now), UnitId{}, nullptr);
  }
}

void DriverImpl::BeginDrain(Instant now) {
  drain_deadline_ = now + MsToUs(config_.drain_timeout_ms);
  if (listen_fd_ >= 0) {
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, listen_fd_, nullptr);
    ::close(listen_fd_);
    listen_fd_ = -1;
  }
  accept_resume_.reset();
  std::lock_guard<std::mutex> lock(mu_);
  draining_ = true;
  std::vector<UnitId> ids;
  for (const auto& [id, record] : units_) ids.push_back(id);
  std::sort(ids.begin(), ids.end());  // oldest client first, never hash order
  for (UnitId id : ids) {
    units_.at(id)->drain_requested = true;
    WakeUnitLocked(id);
  }
  Log("event=shutdown phase=draining units=%d drain_timeout_ms=%d", ids.size(),
      config_.drain_timeout_ms);
}

void DriverImpl::StopWorkersAndDropUnits(bool forced) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  work_cv_.notify_all();
  for (std::thread& worker : workers_) worker.join();
  workers_.clear();
  // Only this thread is left. Units still here ran out of drain time; idle pooled server
  // connections are closed with them.
  const size_t units_dropped = units_.size();
  const size_t connections_closed = conns_.size();
  units_.clear();
  for (auto& [conn, record] : conns_) {
    if (record->fd >= 0) ::close(record->fd);
  }
  conns_.clear();
  const DriverStats stats = Stats();
  Log("event=shutdown phase=done forced=%s units_dropped=%d connections_closed=%d "
      "clients_accepted=%d runs=%d reads=%d writes=%d epoll_ctls=%d epoll_waits=%d",
      forced ? "true" : "false", units_dropped, connections_closed, stats.clients_accepted,
      stats.runs, stats.reads, stats.writes, stats.epoll_ctls, stats.epoll_waits);
}

// --- Shared helpers ---

void DriverImpl::ApplyLocked(const sched::ArmChange& change) {
  auto it = conns_.find(change.conn);
  CHECK(it != conns_.end()) << "arming an unknown connection " << ConnText(change.conn);
  const int fd = it->second->fd;
  CHECK(fd >= 0) << "arming a connection without a socket " << ConnText(change.conn);
  epoll_event event{};
  event.data.u64 = change.conn.packed();
  event.events = EPOLLONESHOT | (change.interest.read ? EPOLLIN | EPOLLRDHUP : 0) |
                 (change.interest.write ? EPOLLOUT : 0);
  int op = EPOLL_CTL_MOD;
  if (change.op == sched::ArmChange::Op::kAdd) op = EPOLL_CTL_ADD;
  if (change.op == sched::ArmChange::Op::kDelete) op = EPOLL_CTL_DEL;
  const int rc = ::epoll_ctl(epoll_fd_, op, fd, &event);
  AtomicStats::Add(stats_.epoll_ctls);
  if (rc != 0) {
    const int error = errno;
    CHECK(error != EEXIST && error != ENOENT && error != EBADF)
        << "poll set out of step with the scheduler for " << ConnText(change.conn) << ": "
        << std::strerror(error);
    Log("event=epoll_ctl_failed conn=%s error=%s", ConnText(change.conn),
        LogValue(ErrnoText(error)));
  }
}

void DriverImpl::ApplyAllLocked(const std::vector<sched::ArmChange>& changes) {
  for (const sched::ArmChange& change : changes) ApplyLocked(change);
}

void DriverImpl::WakeUnitLocked(UnitId unit) {
  sched::Scheduler::WakeResult result = sched_.Wake(unit);
  ApplyAllLocked(result.disarm);
  if (result.queued) work_cv_.notify_one();
}

void DriverImpl::SetUnitDeadlineLocked(UnitId unit, UnitRecord& record,
                                       std::optional<Instant> deadline) {
  if (record.deadline == deadline) return;
  if (record.deadline) --live_deadlines_;
  record.deadline = deadline;
  if (!deadline) return;
  ++live_deadlines_;
  timers_.push(TimerEntry{*deadline, unit});
  if (deadline->us < loop_sleep_until_us_) WakeLoop();
  // Superseded entries are dropped lazily; rebuild when they outnumber the live ones, so the
  // heap stays bounded by the number of units.
  if (timers_.size() > 2 * live_deadlines_ + 64) {
    std::vector<TimerEntry> live;
    for (const auto& [id, r] : units_) {
      if (r->deadline) live.push_back(TimerEntry{*r->deadline, id});
    }
    timers_ = decltype(timers_)(std::greater<TimerEntry>(), std::move(live));
  }
}

bool DriverImpl::RefreshServicesDeadlineLocked(Instant now) {
  services_deadline_ = services_.NextDeadline();
  // A deadline the services left in the past would make the loop spin; look again shortly.
  if (services_deadline_ && *services_deadline_ <= now) services_deadline_ = now + 1000;
  return services_deadline_ && services_deadline_->us < loop_sleep_until_us_;
}

ConnRecord* DriverImpl::FindOwned(ConnId conn, UnitId unit) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = conns_.find(conn);
  if (it == conns_.end()) return nullptr;
  if (sched_.OwnerOf(conn) != sched::Owner::OfUnit(unit)) return nullptr;
  return it->second.get();
}

void DriverImpl::CloseConnection(ConnRecord* record) {
  std::unique_ptr<ConnRecord> owned;
  {
    std::lock_guard<std::mutex> lock(mu_);
    // Forget it first: once the descriptor is closed its number may be reused at once.
    sched_.RemoveConn(record->id);
    auto it = conns_.find(record->id);
    CHECK(it != conns_.end());
    owned = std::move(it->second);
    conns_.erase(it);
  }
  AtomicStats::Add(stats_.closes);
  if (owned->fd < 0) return;
  bool flushed = !owned->pending();
  if (!flushed && !owned->dead && !owned->connecting) {
    // One non-blocking attempt: a Close never waits for a slow peer.
    const ssize_t n = ::send(owned->fd, owned->out.data() + owned->out_pos,
                             owned->out.size() - owned->out_pos, MSG_NOSIGNAL | MSG_DONTWAIT);
    AtomicStats::Add(stats_.writes);
    flushed = n == static_cast<ssize_t>(owned->out.size() - owned->out_pos);
  }
  if (!flushed) ::shutdown(owned->fd, SHUT_RDWR);
  ::close(owned->fd);
}

void DriverImpl::ApplyOutcome(Instant now, Services::Outcome outcome, UnitId self,
                              std::vector<ServiceReply>* self_replies) {
  std::vector<Services::Delivery> orphans;
  bool wake_loop = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (ConnId conn : outcome.now_idle) {
      CHECK(sched_.HasConn(conn)) << "the pool took an unknown connection " << ConnText(conn);
      if (auto change = sched_.SetOwner(conn, sched::Owner::Pool())) ApplyLocked(*change);
      // A read or a hang-up on an idle pooled connection means it went stale.
      if (auto change = sched_.ArmPooled(conn, sched::Interest{true, false})) {
        ApplyLocked(*change);
      }
    }
    for (Services::Delivery& delivery : outcome.deliveries) {
      if (delivery.unit != self && !units_.contains(delivery.unit)) {
        orphans.push_back(std::move(delivery));
      } else {
        DeliverLocked(std::move(delivery), self, self_replies);
      }
    }
    wake_loop = RefreshServicesDeadlineLocked(now);
  }
  for (ConnId conn : outcome.close) ClosePooled(conn);
  for (Services::Delivery& orphan : orphans) DropOrphan(now, std::move(orphan));
  if (wake_loop) WakeLoop();
}

void DriverImpl::DeliverLocked(Services::Delivery delivery, UnitId self,
                               std::vector<ServiceReply>* self_replies) {
  auto* checkout = std::get_if<CheckoutReply>(&delivery.reply);
  if (checkout != nullptr && checkout->kind == CheckoutReply::Kind::kReuse) {
    CHECK(checkout->connection.has_value()) << "kReuse without a connection";
    const ConnId conn = checkout->connection->conn;
    CHECK(sched_.HasConn(conn)) << "the pool handed out an unknown connection";
    // The new owner holds it before it runs with the reply.
    auto change = sched_.SetOwner(conn, sched::Owner::OfUnit(delivery.unit));
    if (change) ApplyLocked(*change);
    conns_.at(conn)->in_transit = delivery.unit != self;
  }
  if (delivery.unit == self) {
    CHECK(self_replies != nullptr);
    self_replies->push_back(std::move(delivery.reply));
    return;
  }
  units_.at(delivery.unit)->inbox.push_back(ServiceReplied{std::move(delivery.reply)});
  WakeUnitLocked(delivery.unit);
}

void DriverImpl::ClosePooled(ConnId conn) {
  ConnRecord* record = nullptr;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = conns_.find(conn);
    if (it == conns_.end()) return;
    CHECK(sched_.OwnerOf(conn) == sched::Owner::Pool())
        << "the pool closed a connection a unit owns: " << ConnText(conn);
    record = it->second.get();
  }
  CloseConnection(record);
}

void DriverImpl::DropOrphan(Instant now, Services::Delivery orphan) {
  // The unit left before its reply: give a handed-out connection back so its slot is freed.
  Log("event=delivery_to_gone_unit unit=%d", orphan.unit.value);
  auto* checkout = std::get_if<CheckoutReply>(&orphan.reply);
  if (checkout == nullptr || checkout->kind != CheckoutReply::Kind::kReuse) return;
  const PooledConnection& connection = *checkout->connection;
  ConnRecord* record = nullptr;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = conns_.find(connection.conn);
    if (it != conns_.end()) record = it->second.get();
  }
  if (record != nullptr) CloseConnection(record);
  ApplyOutcome(now,
               services_.Handle(now, orphan.unit, ForgetRequest{connection.key, connection.conn}),
               UnitId{}, nullptr);
}

}  // namespace switchyard::io_real
