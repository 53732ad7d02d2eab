// The driver's lifecycle and its loop thread: accepting clients, timers, signals and the drain
// at shutdown, plus the helpers the workers share. Running units is in driver_run.cc.
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

UnitRecord::~UnitRecord() {
  if (set_fd >= 0) ::close(set_fd);
}

// --- Driver: forwards to DriverImpl ---

Driver::Driver(DriverConfig config, ServicesLike& services, Environment& env, UnitFactory factory)
    : impl_(std::make_unique<DriverImpl>(std::move(config), services, env, std::move(factory))) {}
Driver::~Driver() = default;
absl::Status Driver::Listen() { return impl_->Listen(); }
std::string Driver::listen_address() const { return impl_->listen_address_; }
uint16_t Driver::listen_port() const { return impl_->listen_port_; }
void Driver::AddSystemUnit(std::unique_ptr<UnitLike> unit) {
  impl_->AddSystemUnit(std::move(unit));
}
absl::Status Driver::Run() { return impl_->Run(); }
void Driver::Shutdown() { impl_->Shutdown(); }
void Driver::ToggleCapture() {
  impl_->capture_toggle_requested_.store(true);
  impl_->WakeLoop();
}
CaptureStats Driver::capture_stats() const {
  return impl_->capture_ ? impl_->capture_->stats() : CaptureStats{};
}
DriverStats Driver::stats() const { return impl_->Stats(); }
size_t Driver::unit_count() const { return impl_->UnitCount(); }

// --- Lifecycle ---

DriverImpl::DriverImpl(DriverConfig config, ServicesLike& services, Environment& env,
                       Driver::UnitFactory factory)
    : config_(std::move(config)),
      services_(services),
      env_(env),
      factory_(std::move(factory)),
      sched_(config_.disarm_policy),
      lingering_(LingeringConfig{config_.lingering_timeout_ms, config_.lingering_drain_ms,
                                 config_.lingering_sockets_max}) {
  config_.workers = std::max(config_.workers, 1);
  poll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
  CHECK(poll_fd_ >= 0) << "epoll_create1: " << std::strerror(errno);
  loop_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
  CHECK(loop_fd_ >= 0) << "epoll_create1: " << std::strerror(errno);
  wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  CHECK(wake_fd_ >= 0) << "eventfd: " << std::strerror(errno);
  work_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  CHECK(work_fd_ >= 0) << "eventfd: " << std::strerror(errno);
  epoll_event event{};
  event.events = EPOLLIN;  // level-triggered: the loop reads it empty each time
  event.data.u64 = kWakeTag;
  CHECK(::epoll_ctl(loop_fd_, EPOLL_CTL_ADD, wake_fd_, &event) == 0) << std::strerror(errno);
  event.data.u64 = kLingeringTag;  // level-triggered: readable while a lingering socket is ready
  CHECK(::epoll_ctl(loop_fd_, EPOLL_CTL_ADD, lingering_.poll_fd(), &event) == 0)
      << std::strerror(errno);
  // Edge-triggered: every write is one new event, which the kernel gives to one waiting worker
  // (epoll_wait waiters are exclusive), so a wake-up never stampedes them all. The counter is
  // never read: it only ever moves by one per wake-up and cannot come near overflowing.
  event.events = EPOLLIN | EPOLLET;
  event.data.u64 = kWorkTag;
  CHECK(::epoll_ctl(poll_fd_, EPOLL_CTL_ADD, work_fd_, &event) == 0) << std::strerror(errno);
  if (!config_.capture.dir.empty()) {
    capture_ = std::make_unique<CaptureWriter>(config_.capture, [this] { WakeLoop(); });
  }
}

DriverImpl::~DriverImpl() {
  CHECK(workers_.empty()) << "driver destroyed while Run() is active";
  capture_.reset();  // writes what is queued; its thread may wake the loop until then
  units_.clear();
  for (auto& [conn, record] : conns_) {
    if (record->fd >= 0) ::close(record->fd);
  }
  for (int fd : {listen_fd_, signal_fd_, wake_fd_, work_fd_, loop_fd_, poll_fd_}) {
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
  if (::epoll_ctl(loop_fd_, EPOLL_CTL_ADD, listen_fd_, &event) != 0) {
    return absl::InternalError(Cat("epoll_ctl(listener): ", ErrnoText(errno)));
  }
  Log("event=listening address=%s workers=%d", listen_address_, config_.workers);
  return absl::OkStatus();
}

void DriverImpl::AddSystemUnit(std::unique_ptr<UnitLike> unit) {
  system_units_.push_back(std::move(unit));
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
    sigaddset(&set, SIGUSR1);  // toggles capture
    ::pthread_sigmask(SIG_BLOCK, &set, nullptr);
    signal_fd_ = ::signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (signal_fd_ < 0) return absl::InternalError(Cat("signalfd: ", ErrnoText(errno)));
    epoll_event event{};
    event.events = EPOLLIN;
    event.data.u64 = kSignalTag;
    ::epoll_ctl(loop_fd_, EPOLL_CTL_ADD, signal_fd_, &event);
  }
  for (std::unique_ptr<UnitLike>& unit : system_units_) {
    auto record = std::make_unique<UnitRecord>();
    if (config_.disarm_policy == sched::DisarmPolicy::kUnitSet) {
      record->set_fd = ::epoll_create1(EPOLL_CLOEXEC);
      if (record->set_fd < 0) return absl::InternalError(Cat("epoll_create1: ", ErrnoText(errno)));
    }
    record->unit = std::move(unit);
    record->timer_due = true;
    const UnitId id{++next_unit_};
    std::lock_guard<std::mutex> lock(mu_);
    units_.emplace(id, std::move(record));
    sched_.AddUnit(id);
    WakeUnitLocked(id);
  }
  system_units_.clear();
  if (capture_ && config_.capture.start_on) StartCapture(Now());
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
  DriverStats stats;
  stats.clients_accepted = get(stats_.clients_accepted);
  stats.runs = get(stats_.runs);
  stats.reads = get(stats_.reads);
  stats.writes = get(stats_.writes);
  stats.epoll_ctls = get(stats_.epoll_ctls);
  stats.epoll_waits = get(stats_.epoll_waits);
  stats.unit_set_polls = get(stats_.unit_set_polls);
  stats.loop_wakes = get(stats_.loop_wakes);
  stats.worker_wakes = get(stats_.worker_wakes);
  stats.connects = get(stats_.connects);
  stats.closes = get(stats_.closes);
  const LingeringCounts lingering = lingering_.counts();
  stats.lingering_closes = lingering.closes;
  stats.lingering_timeouts = lingering.timeouts;
  stats.lingering_refused = lingering.refused;
  return stats;
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
      const bool drained = UnitCount() == 0;
      if (drained || now >= drain_deadline_) {
        StopWorkersAndDropUnits(/*forced=*/!drained);
        return FinishLingering();
      }
    }
    // Sockets handed over since the last pass (each hand-over wakes the loop).
    lingering_.Adopt(now);
    lingering_.Expire(now);
    const int timeout_ms = PrepareSleep(now);
    const int count = ::epoll_wait(loop_fd_, events, kEpollEventsMax, timeout_ms);
    AtomicStats::Add(stats_.epoll_waits);
    if (count < 0) {
      CHECK(errno == EINTR) << "epoll_wait: " << std::strerror(errno);
      continue;
    }
    now = Now();
    HandleEpollBatch(events, count, now);
    ServiceCapture(now);
    if (accept_resume_ && now >= *accept_resume_ && listen_fd_ >= 0) {
      accept_resume_.reset();
      epoll_event event{};
      event.events = EPOLLIN;
      event.data.u64 = kListenerTag;
      ::epoll_ctl(loop_fd_, EPOLL_CTL_MOD, listen_fd_, &event);
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
  consider(lingering_.NextDeadline());  // the loop thread's own: no lock needed
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
  bool lingering_ready = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    loop_sleep_until_us_ = kAwake;
  }
  for (int i = 0; i < count; ++i) {
    const uint64_t tag = events[i].data.u64;
    CHECK(tag == kListenerTag || tag == kWakeTag || tag == kSignalTag || tag == kLingeringTag)
        << "unexpected event in the loop's poll set: " << tag;
    lingering_ready = lingering_ready || tag == kLingeringTag;
    accept_ready = accept_ready || tag == kListenerTag;
    wake_ready = wake_ready || tag == kWakeTag;
    signal_ready = signal_ready || tag == kSignalTag;
  }
  if (wake_ready) {
    uint64_t value;
    (void)!::read(wake_fd_, &value, sizeof(value));
  }
  if (signal_ready) ReadSignals();
  if (lingering_ready) lingering_.Poll(now);
  if (accept_ready && listen_fd_ >= 0 && !accept_resume_) AcceptClients(now);
}

void DriverImpl::IdleConnectionLost(Instant now, ConnId conn) {
  std::lock_guard<std::mutex> services_lock(services_mu_);
  ApplyOutcome(now, services_.IdleConnectionLost(now, conn), UnitId{}, nullptr);
}

void DriverImpl::ReadSignals() {
  signalfd_siginfo info;
  while (::read(signal_fd_, &info, sizeof(info)) == static_cast<ssize_t>(sizeof(info))) {
    if (info.ssi_signo == SIGUSR1) {
      capture_toggle_requested_.store(true);  // ServiceCapture, right after this batch
      continue;
    }
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
    ::epoll_ctl(loop_fd_, EPOLL_CTL_MOD, listen_fd_, &event);
    accept_resume_ = now + kAcceptPauseUs;
    return;
  }
}

void DriverImpl::AdmitOne(int fd, const std::string& peer) {
  auto unit_record = std::make_unique<UnitRecord>();
  if (config_.disarm_policy == sched::DisarmPolicy::kUnitSet) {
    unit_record->set_fd = ::epoll_create1(EPOLL_CLOEXEC);
    if (unit_record->set_fd < 0) {
      // Out of descriptors: refused like a failed accept, before anyone counted the client.
      Log("event=client_refused peer=%s error=%s", LogValue(peer), LogValue(ErrnoText(errno)));
      ::close(fd);
      return;
    }
  }
  const ConnId conn = env_.NewConnId();
  bool admitted;
  ClusterSnapshot cluster;
  {
    std::lock_guard<std::mutex> services_lock(services_mu_);
    admitted = services_.AdmitClient();
    cluster = services_.cluster();
  }
  const UnitId id{++next_unit_};
  CHECK(id.value <= kUnitIdMax) << "unit id space exhausted";
  unit_record->unit = factory_(id, conn, admitted);
  unit_record->admitted = admitted;
  unit_record->inbox.push_back(Accepted{conn, peer});
  if (capture_on_) unit_record->inbox.push_back(CurrentCapture());
  if (cluster.nodes.size() > 1) unit_record->inbox.push_back(NodeStateChanged{std::move(cluster)});
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
    ::epoll_ctl(loop_fd_, EPOLL_CTL_DEL, listen_fd_, nullptr);
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
  WriteWorkFd();  // each worker passes the wake-up on as it leaves
  for (std::thread& worker : workers_) worker.join();
  workers_.clear();
  // Only this thread is left. Units still here ran out of drain time; idle pooled server
  // connections are closed with them.
  units_dropped_ = units_.size();
  connections_dropped_ = conns_.size();
  units_.clear();
  for (auto& [conn, record] : conns_) {
    if (record->fd >= 0) ::close(record->fd);
  }
  conns_.clear();
  forced_ = forced;
}

void DriverImpl::FinishLingering() {
  // Only this thread is left, so nothing is offered any more. What the drain's last Closes left
  // behind gets until its own deadline, but never past the drain's (nor a second signal, which
  // moves the drain deadline to now): the drain timeout bounds the whole exit.
  Instant now = Now();
  lingering_.Adopt(now);
  if (!lingering_.empty()) {
    Log("event=shutdown phase=lingering sockets=%d", lingering_.size());
  }
  epoll_event events[kEpollEventsMax];
  while (true) {
    lingering_.Expire(now);
    if (lingering_.empty() || now >= drain_deadline_) break;
    const Instant until = std::min(*lingering_.NextDeadline(), drain_deadline_);
    const int timeout_ms =
        static_cast<int>(std::min<int64_t>((until.us - now.us + 999) / 1000, INT_MAX));
    const int count = ::epoll_wait(loop_fd_, events, kEpollEventsMax, timeout_ms);
    CHECK(count >= 0 || errno == EINTR) << "epoll_wait: " << std::strerror(errno);
    now = Now();
    HandleEpollBatch(events, std::max(count, 0), now);
  }
  lingering_.CloseAll();
  if (capture_on_) StopCapture("shutdown", /*wait=*/true);
  const DriverStats stats = Stats();
  Log("event=shutdown phase=done forced=%s units_dropped=%d connections_closed=%d "
      "clients_accepted=%d runs=%d reads=%d writes=%d epoll_ctls=%d epoll_waits=%d "
      "unit_set_polls=%d loop_wakes=%d worker_wakes=%d lingering_closes=%d "
      "lingering_timeouts=%d lingering_refused=%d",
      forced_ ? "true" : "false", units_dropped_, connections_dropped_, stats.clients_accepted,
      stats.runs, stats.reads, stats.writes, stats.epoll_ctls, stats.epoll_waits,
      stats.unit_set_polls, stats.loop_wakes, stats.worker_wakes, stats.lingering_closes,
      stats.lingering_timeouts, stats.lingering_refused);
}

// --- Shared helpers ---

void DriverImpl::ApplyLocked(const sched::ArmChange& change) {
  epoll_event event{};
  int set_fd = poll_fd_;
  int fd;
  if (!change.conn.valid()) {
    // A unit's own set, as one EPOLLONESHOT entry of the shared set: disarming it (no EPOLLIN)
    // silences all of the unit's connections at once.
    auto it = units_.find(change.set);
    CHECK(it != units_.end()) << "arming the set of an unknown unit " << change.set.value;
    fd = it->second->set_fd;
    event.data.u64 = UnitSetTag(change.set, change.arming);
    event.events = EPOLLONESHOT | (change.interest.read ? EPOLLIN : 0);
  } else {
    auto it = conns_.find(change.conn);
    CHECK(it != conns_.end()) << "arming an unknown connection " << ConnText(change.conn);
    fd = it->second->fd;
    CHECK(fd >= 0) << "arming a connection without a socket " << ConnText(change.conn);
    event.data.u64 = change.conn.packed();
    CHECK((event.data.u64 & kUnitSetTagBit) == 0) << "connection tag collides with unit tags";
    event.events =
        (change.interest.read ? EPOLLIN | EPOLLRDHUP : 0) | (change.interest.write ? EPOLLOUT : 0);
    if (change.set.valid()) {
      // Level-triggered inside the unit's set: the set's own entry is the one-shot switch.
      set_fd = units_.at(change.set)->set_fd;
    } else {
      event.events |= EPOLLONESHOT;
    }
  }
  int op = EPOLL_CTL_MOD;
  if (change.op == sched::ArmChange::Op::kAdd) op = EPOLL_CTL_ADD;
  if (change.op == sched::ArmChange::Op::kDelete) op = EPOLL_CTL_DEL;
  const int rc = ::epoll_ctl(set_fd, op, fd, &event);
  AtomicStats::Add(stats_.epoll_ctls);
  if (rc != 0) {
    const int error = errno;
    CHECK(error != EEXIST && error != ENOENT && error != EBADF)
        << "poll set out of step with the scheduler for " << ConnText(change.conn) << " (unit "
        << change.set.value << "): " << std::strerror(error);
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
  if (result.queued) NotifyWorkersLocked();
}

void DriverImpl::NotifyWorkersLocked() {
  // A worker that is not waiting checks the queue before it waits again; only a worker asleep
  // in the poll set needs the eventfd.
  if (idle_workers_ == 0 || work_wake_pending_) return;
  work_wake_pending_ = true;
  WriteWorkFd();
}

void DriverImpl::WriteWorkFd() {
  const uint64_t one = 1;
  (void)!::write(work_fd_, &one, sizeof(one));
  AtomicStats::Add(stats_.worker_wakes);
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
  int poll_set;
  {
    std::lock_guard<std::mutex> lock(mu_);
    poll_set = PollSetOfLocked(record->id);
    // Forget it first: once the descriptor is closed its number may be reused at once.
    sched_.RemoveConn(record->id);
    auto it = conns_.find(record->id);
    CHECK(it != conns_.end());
    owned = std::move(it->second);
    conns_.erase(it);
  }
  AtomicStats::Add(stats_.closes);
  if (owned->fd < 0) return;
  // A dead connection's peer is gone and a connecting one never received anything: nothing is
  // left to deliver.
  if (!owned->dead && !owned->connecting && HandToLingering(*owned, poll_set)) return;
  ::close(owned->fd);
}

int DriverImpl::PollSetOfLocked(ConnId conn) {
  // As Scheduler::SetFor: under kUnitSet a unit's connections sit in the unit's own set,
  // everything else in the shared one.
  const std::optional<sched::Owner> owner = sched_.OwnerOf(conn);
  if (!owner || owner->kind != sched::Owner::Kind::kUnit ||
      config_.disarm_policy != sched::DisarmPolicy::kUnitSet) {
    return poll_fd_;
  }
  auto it = units_.find(owner->unit);
  return it == units_.end() ? -1 : it->second->set_fd;
}

bool DriverImpl::HandToLingering(ConnRecord& record, int poll_set) {
  if (record.pending()) {
    // One attempt here first: usually the rest fits in the socket buffer, and the socket is
    // closed at once with no hand-over.
    ssize_t n;
    do {
      n = ::send(record.fd, record.out.data() + record.out_pos, record.out.size() - record.out_pos,
                 MSG_NOSIGNAL | MSG_DONTWAIT);
      AtomicStats::Add(stats_.writes);
    } while (n < 0 && errno == EINTR);
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) return false;  // the peer is gone
    if (n > 0) record.out_pos += static_cast<size_t>(n);
  }
  const bool unsent = record.pending();
  if (!unsent) {
    // Everything is written. Linux answers a close() with unread input by a reset, which can
    // destroy what the peer has not read yet; with none (or the peer's FIN) close() sends a
    // plain FIN and nothing needs to linger. Never waits: one peek.
    char byte;
    const ssize_t n = ::recv(record.fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    AtomicStats::Add(stats_.reads);
    if (n <= 0) return false;
  }
  // Closing a descriptor takes it out of every poll set; this one stays open, so its entry goes
  // explicitly (an event still in flight for it finds no connection and is ignored as stale).
  if (poll_set >= 0) {
    ::epoll_ctl(poll_set, EPOLL_CTL_DEL, record.fd, nullptr);  // ENOENT: was not registered
    AtomicStats::Add(stats_.epoll_ctls);
  }
  if (!lingering_.Offer(record.fd, std::move(record.out), record.out_pos, Now())) {
    // The set is full (counted; no log line per close when it matters most). As before
    // lingering existed: whatever the socket buffer holds may still go out.
    if (unsent) ::shutdown(record.fd, SHUT_RDWR);
    return false;
  }
  WakeLoop();  // the loop adopts it
  return true;
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
    if (outcome.cluster_changed) BroadcastClusterLocked(self);
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

void DriverImpl::BroadcastClusterLocked(UnitId self) {
  const ClusterSnapshot snapshot = services_.cluster();
  LogNodeChanges(snapshot);
  for (auto& [id, record] : units_) {
    if (id == self) continue;
    // Only the newest view matters: replace one still waiting in the inbox.
    auto waiting = std::find_if(record->inbox.begin(), record->inbox.end(), [](const Event& e) {
      return std::holds_alternative<NodeStateChanged>(e);
    });
    if (waiting != record->inbox.end()) {
      std::get<NodeStateChanged>(*waiting).snapshot = snapshot;
      continue;
    }
    record->inbox.push_back(NodeStateChanged{snapshot});
    WakeUnitLocked(id);
  }
}

void DriverImpl::LogNodeChanges(const ClusterSnapshot& snapshot) {
  static constexpr std::string_view kRoles[] = {"unknown", "primary", "replica", "fenced"};
  for (const NodeState& node : snapshot.nodes) {
    const NodeState* before = node.node.index < logged_cluster_.nodes.size()
                                  ? &logged_cluster_.nodes[node.node.index]
                                  : nullptr;
    if (before && before->role == node.role && before->up == node.up) continue;
    Log("event=node_state node=%d role=%s up=%s primary=%s", node.node.index,
        kRoles[static_cast<int>(node.role)], node.up ? "true" : "false",
        snapshot.primary ? Cat("n", snapshot.primary->index) : std::string("none"));
  }
  logged_cluster_ = snapshot;
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
