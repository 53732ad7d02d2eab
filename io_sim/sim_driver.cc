// The simulated driver's loop side: choosing each step, accepting clients, the poll set on
// simulated readiness, timers on the virtual clock, and applying the services' outcomes the
// way io_real does. The workers' runs are in sim_run.cc.
#include "io_sim/sim_driver.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_format.h"
#include "core/base/check.h"
#include "io_sim/sim_driver_internal.h"

namespace switchyard::io_sim {

std::string SimDriverConfig::Describe() const {
  const char* policy = disarm_policy == sched::DisarmPolicy::kExplicit ? "explicit"
                       : disarm_policy == sched::DisarmPolicy::kLazy   ? "lazy"
                                                                       : "unit_set";
  return absl::StrFormat(
      "workers=%d disarm_policy=%s read_chunk_bytes=%d read_bytes_per_run_max=%d "
      "check_scheduler_invariants=%s linger_timeout_us=%d",
      workers, policy, read_chunk_bytes, read_bytes_per_run_max,
      check_scheduler_invariants ? "true" : "false", linger_timeout_us);
}

std::string_view StopName(SimDriver::Stop stop) {
  switch (stop) {
    case SimDriver::Stop::kDone:
      return "done";
    case SimDriver::Stop::kQuiescent:
      return "quiescent";
    case SimDriver::Stop::kTimeLimit:
      return "time_limit";
    case SimDriver::Stop::kStepLimit:
      return "step_limit";
  }
  return "unknown";
}

ConnId EventConn(const Event& event) {
  return std::visit(
      [](const auto& e) -> ConnId {
        using E = std::decay_t<decltype(e)>;
        if constexpr (std::is_same_v<E, TimerFired> || std::is_same_v<E, ServiceReplied> ||
                      std::is_same_v<E, NodeStateChanged> || std::is_same_v<E, CaptureChanged>) {
          return ConnId{};
        } else {
          return e.conn;
        }
      },
      event);
}

std::string_view EventName(const Event& event) {
  static constexpr std::string_view kNames[] = {
      "Accepted", "Connected",  "ConnectFailed",  "Received",         "Writable",
      "Closed",   "TimerFired", "ServiceReplied", "NodeStateChanged", "CaptureChanged"};
  static_assert(std::size(kNames) == std::variant_size_v<Event>);
  return kNames[event.index()];
}

// ---------------------------------------------------------------- SimDriver

SimDriver::SimDriver(SimDriverConfig config, Timeline& timeline, SimNetwork& network,
                     Services& services, Environment& env, DecisionSource& decisions,
                     UnitFactory factory, RunHash* hash)
    : impl_(std::make_unique<SimDriverImpl>(std::move(config), timeline, network, services, env,
                                            decisions, std::move(factory), hash)) {}
void SimDriver::AddSystemUnit(const SystemUnitFactory& make) { impl_->AddSystemUnit(make); }

SimDriver::~SimDriver() = default;

bool SimDriver::Step() { return impl_->Step(std::nullopt) == SimDriverImpl::StepResult::kProgress; }

SimDriver::Stop SimDriver::RunUntil(const std::function<bool()>& done, Instant until,
                                    uint64_t steps_max) {
  for (uint64_t steps = 0;; ++steps) {
    if (done && done()) return Stop::kDone;
    if (steps >= steps_max) return Stop::kStepLimit;
    switch (impl_->Step(until)) {
      case SimDriverImpl::StepResult::kProgress:
        break;
      case SimDriverImpl::StepResult::kQuiescent:
        return done && done() ? Stop::kDone : Stop::kQuiescent;
      case SimDriverImpl::StepResult::kTimeLimit:
        return Stop::kTimeLimit;
    }
  }
}

void SimDriver::Shutdown() { impl_->Shutdown(); }
Instant SimDriver::now() const { return impl_->now(); }
size_t SimDriver::unit_count() const { return impl_->units_.size(); }
size_t SimDriver::active_runs() const {
  return static_cast<size_t>(std::count_if(impl_->workers_.begin(), impl_->workers_.end(),
                                           [](const auto& run) { return run != nullptr; }));
}
const SimDriverStats& SimDriver::stats() const { return impl_->stats_; }
void SimDriver::set_trace(std::function<void(std::string_view)> trace) {
  impl_->trace_ = std::move(trace);
}

// ---------------------------------------------------------------- stepping

SimDriverImpl::SimDriverImpl(SimDriverConfig config, Timeline& timeline, SimNetwork& network,
                             Services& services, Environment& env, DecisionSource& decisions,
                             SimDriver::UnitFactory factory, RunHash* hash)
    : config_(std::move(config)),
      timeline_(timeline),
      network_(network),
      services_(services),
      env_(env),
      decisions_(decisions),
      factory_(std::move(factory)),
      hash_(hash),
      sched_(config_.disarm_policy) {
  CHECK(config_.workers >= 1) << "a driver needs at least one worker";
  CHECK(config_.read_chunk_bytes >= 1 && config_.read_bytes_per_run_max >= 1);
  workers_.resize(static_cast<size_t>(config_.workers));
  network_.Attach(this);
  RefreshServicesDeadline();
}

SimDriverImpl::~SimDriverImpl() {
  network_.Attach(nullptr);
  // Runs hold pointers into the unit table: they go first.
  workers_.clear();
}

SimDriverImpl::StepResult SimDriverImpl::Step(std::optional<Instant> until) {
  // What could happen at this instant, in a fixed order: the choice among them is the
  // decision source's, and the candidates' order never depends on a hash.
  struct Candidate {
    enum class Kind { kEvent, kStartRun, kWorker } kind;
    size_t slot = 0;
  };
  std::vector<Candidate> candidates;
  if (timeline_.HasDue()) candidates.push_back({Candidate::Kind::kEvent, 0});
  if (sched_.runnable_count() > 0) {
    auto idle = std::find(workers_.begin(), workers_.end(), nullptr);
    if (idle != workers_.end()) {
      candidates.push_back(
          {Candidate::Kind::kStartRun, static_cast<size_t>(idle - workers_.begin())});
    }
  }
  for (size_t slot = 0; slot < workers_.size(); ++slot) {
    if (workers_[slot] != nullptr) candidates.push_back({Candidate::Kind::kWorker, slot});
  }
  ++stats_.steps;
  if (candidates.empty()) {
    // Nothing can happen now: the clock jumps to the next event.
    const std::optional<Instant> next = timeline_.NextTime();
    if (!next) return StepResult::kQuiescent;
    if (until && *next > *until) {
      if (*until > timeline_.now()) timeline_.AdvanceTo(*until);
      return StepResult::kTimeLimit;
    }
    candidates.push_back({Candidate::Kind::kEvent, 0});
  }
  const Candidate chosen = candidates[decisions_.Pick(candidates.size(), "sched.step")];
  switch (chosen.kind) {
    case Candidate::Kind::kEvent: {
      std::optional<Timeline::Entry> entry = timeline_.PopNext();
      CHECK(entry.has_value());
      ++stats_.timeline_events;
      entry->payload();
      break;
    }
    case Candidate::Kind::kStartRun:
      StartRun(chosen.slot);
      break;
    case Candidate::Kind::kWorker:
      if (workers_[chosen.slot]->Step()) workers_[chosen.slot].reset();
      break;
  }
  return StepResult::kProgress;
}

void SimDriverImpl::StartRun(size_t slot) {
  CHECK(workers_[slot] == nullptr);
  RunInput input;
  input.run = *sched_.PopRunnable();
  input.record = &units_.at(input.run.unit);
  input.inbox.swap(input.record->inbox);
  for (const Event& event : input.inbox) {
    // This run hands the reply in, so the connection stops being in transit.
    const auto* replied = std::get_if<ServiceReplied>(&event);
    const auto* checkout = replied ? std::get_if<CheckoutReply>(&replied->reply) : nullptr;
    if (checkout != nullptr && checkout->connection.has_value()) {
      auto it = conns_.find(checkout->connection->conn);
      if (it != conns_.end()) it->second.in_transit = false;
    }
  }
  input.timer_due = std::exchange(input.record->timer_due, false);
  input.drain = input.record->drain_requested && !input.record->drain_delivered;
  input.record->drain_delivered = input.record->drain_delivered || input.drain;
  ++stats_.runs;
  Record("run",
         {static_cast<int64_t>(input.run.unit.value), static_cast<int64_t>(slot),
          static_cast<int64_t>(input.inbox.size()), static_cast<int64_t>(input.run.ready.size())});
  Tracef("run.start unit=%d worker=%d inbox=%d ready=%d", input.run.unit.value, slot,
         input.inbox.size(), input.run.ready.size());
  workers_[slot] = std::make_unique<SimRun>(*this, std::move(input));
  const size_t active = static_cast<size_t>(
      std::count_if(workers_.begin(), workers_.end(), [](const auto& r) { return r != nullptr; }));
  stats_.max_concurrent_runs = std::max<uint64_t>(stats_.max_concurrent_runs, active);
}

void SimDriverImpl::Shutdown() {
  if (draining_) return;
  draining_ = true;
  network_.SetAccepting(false);
  Record("shutdown", {static_cast<int64_t>(units_.size())});
  for (auto& [id, record] : units_) {  // std::map: oldest client first
    record.drain_requested = true;
    Wake(id);
  }
}

// ---------------------------------------------------------------- accepting

ConnId SimDriverImpl::OnAccept(LinkId link, PeerId client) {
  const ConnId conn = env_.NewConnId();
  const bool admitted = services_.AdmitClient();
  const UnitId id{++next_unit_};
  DriverUnit& record = units_[id];
  record.unit = factory_(id, conn, admitted);
  CHECK(record.unit != nullptr && record.unit->id() == id) << "the factory made a wrong unit";
  record.admitted = admitted;
  record.inbox.push_back(Accepted{conn, absl::StrFormat("client-%d:%d", client.value, link.value)});
  if (services_.cluster().nodes.size() > 1) {
    record.inbox.push_back(NodeStateChanged{services_.cluster()});
  }
  conns_.emplace(conn, DriverConn{conn});
  sched_.AddUnit(id);
  sched_.AddConn(conn, sched::Owner::OfUnit(id));
  Wake(id);  // its first run delivers Accepted
  ++stats_.clients_accepted;
  Record("accept",
         {static_cast<int64_t>(id.value), static_cast<int64_t>(conn.packed()), admitted ? 1 : 0});
  Tracef("client_accepted unit=%d conn=c%d.%d client=%d admitted=%s", id.value, conn.index,
         conn.generation, client.value, admitted ? "true" : "false");
  return conn;
}

// ---------------------------------------------------------------- the poll set

void SimDriverImpl::OnChanged(ConnId conn) { ScheduleCheck(conn); }

void SimDriverImpl::ScheduleCheck(ConnId conn) {
  // Looked at in a timeline event of its own, never inside the caller (a worker's step or a
  // network callback): readiness reaches units only through the scheduler, as epoll's does.
  if (!check_pending_.insert(conn).second) return;
  timeline_.Schedule(timeline_.now(), [this, conn] {
    check_pending_.erase(conn);
    CheckReady(conn);
  });
}

void SimDriverImpl::CheckReady(ConnId conn) {
  if (lingering_.contains(conn)) return Linger(conn, /*give_up=*/false);
  if (!sched_.HasConn(conn) || !network_.HasConn(conn)) return;
  const sched::Interest armed = sched_.ArmedOf(conn);
  if (armed.none()) return;  // not in the poll set, or disabled by its one-shot
  // What epoll reports: hang-ups and errors wake either interest (driver.cc's flag mapping).
  const bool hung_up = network_.HungUp(conn);
  const sched::Readiness readiness{hung_up || (armed.read && network_.Readable(conn)),
                                   hung_up || (armed.write && network_.Writable(conn))};
  if (!readiness.any()) return;
  sched::Scheduler::ReadyResult result = sched_.OnReady(conn, readiness);
  Record("ready", {static_cast<int64_t>(conn.packed()), readiness.readable ? 1 : 0,
                   readiness.writable ? 1 : 0, static_cast<int64_t>(result.kind)});
  ApplyChanges(result.wake.disarm);
  if (result.kind == sched::Scheduler::ReadyResult::Kind::kPool) {
    // A read or a hang-up on an idle pooled connection means it went stale.
    Tracef("idle_connection_lost conn=c%d.%d", conn.index, conn.generation);
    ApplyOutcome(services_.IdleConnectionLost(now(), conn), UnitId{}, nullptr);
  }
  if (config_.check_scheduler_invariants) sched_.CheckInvariants();
}

void SimDriverImpl::ApplyChanges(const std::vector<sched::ArmChange>& changes) {
  for (const sched::ArmChange& change : changes) Apply(change);
}

void SimDriverImpl::Apply(const sched::ArmChange& change) {
  // The scheduler's record is the poll set; arming is level-triggered, as EPOLL_CTL_ADD/MOD
  // report a descriptor that is ready already.
  if (!change.interest.none()) ScheduleCheck(change.conn);
}

void SimDriverImpl::Wake(UnitId unit) { ApplyChanges(sched_.Wake(unit).disarm); }

// ---------------------------------------------------------------- timers

void SimDriverImpl::SetUnitDeadline(UnitId unit, DriverUnit& record,
                                    std::optional<Instant> deadline) {
  if (record.deadline == deadline) return;
  if (record.timer.valid()) timeline_.Cancel(record.timer);
  record.timer = EventId{};
  record.deadline = deadline;
  if (!deadline) return;
  const Instant at = std::max(*deadline, timeline_.now());
  record.timer = timeline_.Schedule(at, [this, unit, d = *deadline] { OnUnitTimer(unit, d); });
}

void SimDriverImpl::OnUnitTimer(UnitId unit, Instant deadline) {
  auto it = units_.find(unit);
  if (it == units_.end() || it->second.deadline != deadline) return;  // superseded
  it->second.deadline.reset();
  it->second.timer = EventId{};
  it->second.timer_due = true;
  ++stats_.timers_fired;
  Record("timer", {static_cast<int64_t>(unit.value)});
  Tracef("timer unit=%d", unit.value);
  Wake(unit);
}

void SimDriverImpl::RefreshServicesDeadline() {
  std::optional<Instant> deadline = services_.NextDeadline();
  // A deadline left in the past would make the simulation spin at one instant.
  if (deadline && *deadline <= timeline_.now()) deadline = timeline_.now() + kServicesRetryUs;
  if (deadline == services_deadline_) return;
  if (services_timer_.valid()) timeline_.Cancel(services_timer_);
  services_timer_ = EventId{};
  services_deadline_ = deadline;
  if (deadline) services_timer_ = timeline_.Schedule(*deadline, [this] { OnServicesTimer(); });
}

void SimDriverImpl::OnServicesTimer() {
  services_timer_ = EventId{};
  services_deadline_.reset();
  Record("tick", {});
  ApplyOutcome(services_.Tick(now()), UnitId{}, nullptr);
}

// ---------------------------------------------------------------- the services' outcomes

void SimDriverImpl::ApplyOutcome(Services::Outcome outcome, UnitId self,
                                 std::deque<Event>* self_events) {
  for (ConnId conn : outcome.now_idle) {
    CHECK(sched_.HasConn(conn)) << "the pool took an unknown connection c" << conn.index;
    if (auto change = sched_.SetOwner(conn, sched::Owner::Pool())) Apply(*change);
    // A read or a hang-up on an idle pooled connection means it went stale.
    if (auto change = sched_.ArmPooled(conn, sched::Interest{true, false})) Apply(*change);
    Record("pooled", {static_cast<int64_t>(conn.packed())});
  }
  if (outcome.cluster_changed) BroadcastCluster(self);
  std::vector<Services::Delivery> orphans;
  for (Services::Delivery& delivery : outcome.deliveries) {
    if (delivery.unit != self && !units_.contains(delivery.unit)) {
      orphans.push_back(std::move(delivery));
    } else {
      Deliver(std::move(delivery), self, self_events);
    }
  }
  RefreshServicesDeadline();
  for (ConnId conn : outcome.close) ClosePooled(conn);
  for (Services::Delivery& orphan : orphans) DropOrphan(std::move(orphan));
}

void SimDriverImpl::BroadcastCluster(UnitId self) {
  Record("cluster", {static_cast<int64_t>(services_.cluster().version)});
  for (auto& [id, record] : units_) {  // units_ is ordered by id: never hash order
    if (id == self) continue;
    auto waiting = std::find_if(record.inbox.begin(), record.inbox.end(), [](const Event& e) {
      return std::holds_alternative<NodeStateChanged>(e);
    });
    if (waiting != record.inbox.end()) {
      std::get<NodeStateChanged>(*waiting).snapshot = services_.cluster();
      continue;
    }
    record.inbox.push_back(NodeStateChanged{services_.cluster()});
    Wake(id);
  }
}

void SimDriverImpl::AddSystemUnit(const SimDriver::SystemUnitFactory& make) {
  const UnitId id{++next_unit_};
  DriverUnit& record = units_[id];
  record.unit = make(id);
  CHECK(record.unit != nullptr && record.unit->id() == id) << "the factory made a wrong unit";
  record.timer_due = true;
  sched_.AddUnit(id);
  Wake(id);
  Record("system_unit", {static_cast<int64_t>(id.value)});
}

void SimDriverImpl::Deliver(Services::Delivery delivery, UnitId self,
                            std::deque<Event>* self_events) {
  auto* checkout = std::get_if<CheckoutReply>(&delivery.reply);
  if (checkout != nullptr && checkout->kind == CheckoutReply::Kind::kReuse) {
    CHECK(checkout->connection.has_value()) << "kReuse without a connection";
    const ConnId conn = checkout->connection->conn;
    CHECK(sched_.HasConn(conn)) << "the pool handed out an unknown connection";
    // The new owner holds it before it runs with the reply.
    if (auto change = sched_.SetOwner(conn, sched::Owner::OfUnit(delivery.unit))) Apply(*change);
    conns_.at(conn).in_transit = delivery.unit != self;
  }
  Record("reply",
         {static_cast<int64_t>(delivery.unit.value), static_cast<int64_t>(delivery.reply.index()),
          checkout ? static_cast<int64_t>(checkout->kind) : -1});
  if (delivery.unit == self) {
    CHECK(self_events != nullptr);
    self_events->push_back(ServiceReplied{std::move(delivery.reply)});
    return;
  }
  units_.at(delivery.unit).inbox.push_back(ServiceReplied{std::move(delivery.reply)});
  Wake(delivery.unit);
}

void SimDriverImpl::ClosePooled(ConnId conn) {
  if (!conns_.contains(conn)) return;
  CHECK(sched_.OwnerOf(conn) == sched::Owner::Pool())
      << "the pool closed a connection a unit owns: c" << conn.index;
  CloseConnection(conn);
}

void SimDriverImpl::DropOrphan(Services::Delivery orphan) {
  // The unit left before its reply: give a handed-out connection back so its slot is freed.
  Record("orphan", {static_cast<int64_t>(orphan.unit.value)});
  auto* checkout = std::get_if<CheckoutReply>(&orphan.reply);
  if (checkout == nullptr || checkout->kind != CheckoutReply::Kind::kReuse) return;
  const PooledConnection& connection = *checkout->connection;
  if (conns_.contains(connection.conn)) CloseConnection(connection.conn);
  ApplyOutcome(services_.Handle(now(), orphan.unit, ForgetRequest{connection.key, connection.conn}),
               UnitId{}, nullptr);
}

void SimDriverImpl::CloseConnection(ConnId conn) {
  auto it = conns_.find(conn);
  CHECK(it != conns_.end()) << "closing an unknown connection c" << conn.index;
  DriverConn record = std::move(it->second);
  conns_.erase(it);
  sched_.RemoveConn(conn);
  check_pending_.erase(conn);
  ++stats_.connections_closed;
  Record("close", {static_cast<int64_t>(conn.packed()), record.dead ? 1 : 0,
                   static_cast<int64_t>(record.out.size() - record.out_pos)});
  Tracef("close conn=c%d.%d", conn.index, conn.generation);
  if (!network_.HasConn(conn)) return;
  if (!record.pending() || record.dead || record.connecting) return network_.Close(conn);
  // Close means "after flushing what was sent": the driver finishes the writing, within a
  // deadline, so a slow client still reads the final error before the end of the stream.
  ++stats_.lingering_closes;
  LingeringConn& linger = lingering_[conn];
  linger.out = std::move(record.out);
  linger.out_pos = record.out_pos;
  linger.deadline_event = timeline_.ScheduleAfter(config_.linger_timeout_us, [this, conn] {
    lingering_.at(conn).deadline_event = EventId{};
    Linger(conn, /*give_up=*/true);
  });
  Linger(conn, /*give_up=*/false);
}

void SimDriverImpl::Linger(ConnId conn, bool give_up) {
  LingeringConn& linger = lingering_.at(conn);
  bool done = network_.HungUp(conn);
  while (!done) {  // what arrives is dropped, so the peer is never stuck on a full window
    const ReadResult read = network_.Read(conn, 64 * 1024);
    if (read.kind != ReadResult::Kind::kData) break;
  }
  if (!done && linger.out_pos < linger.out.size()) {
    const WriteResult write =
        network_.Write(conn, std::string_view(linger.out).substr(linger.out_pos));
    linger.out_pos += write.accepted;
    done = write.broken;
  }
  const bool flushed = linger.out_pos == linger.out.size();
  Record("linger", {static_cast<int64_t>(conn.packed()),
                    static_cast<int64_t>(linger.out.size() - linger.out_pos), give_up ? 1 : 0});
  if (!flushed && !done && !give_up) return;  // the network calls OnChanged when it has room
  if (!flushed && !done) ++stats_.lingering_cut;
  if (linger.deadline_event.valid()) timeline_.Cancel(linger.deadline_event);
  lingering_.erase(conn);
  network_.Close(conn);
}

DriverConn* SimDriverImpl::FindOwned(ConnId conn, UnitId unit) {
  auto it = conns_.find(conn);
  if (it == conns_.end()) return nullptr;
  if (sched_.OwnerOf(conn) != sched::Owner::OfUnit(unit)) return nullptr;
  return &it->second;
}

}  // namespace switchyard::io_sim
