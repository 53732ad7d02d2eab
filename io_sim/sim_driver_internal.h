// The simulated driver's state: the loop side (sim_driver.cc) and the runs of the virtual
// workers (sim_run.cc). Not part of io_sim's interface.
//
// Every table is an ordered container: nothing a run does may depend on hash order.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "absl/strings/str_format.h"
#include "core/sched/scheduler.h"
#include "io_sim/sim_driver.h"

namespace switchyard::io_sim {

// Flush rounds at the end of a run (a Writable may make the unit send more), as in io_real.
inline constexpr int kFlushRoundsMax = 4;
// A deadline the services leave in the past is looked at again this much later, so that the
// simulation cannot spin at one instant.
inline constexpr int64_t kServicesRetryUs = 1000;

struct DriverConn {
  explicit DriverConn(ConnId conn) : id(conn) {}
  ConnId id;
  std::string out;  // bytes queued by Send; out[out_pos..] not yet taken by the network
  size_t out_pos = 0;
  bool connecting = false;
  // Closed or ConnectFailed was delivered: never armed or read again, output dropped.
  bool dead = false;
  bool dirty = false;  // listed in the current run's flush list
  // Handed to a unit by a checkout reply still in its inbox: the unit does not list it yet, so
  // the end of its current run must neither arm it nor close it as dropped.
  bool in_transit = false;
  bool pending() const { return out.size() > out_pos; }
};

// A connection the core closed while output was still queued: the driver alone finishes
// writing it (discarding whatever arrives), then releases it, as io_real's lingering close does.
struct LingeringConn {
  std::string out;
  size_t out_pos = 0;
  EventId deadline_event;
};

struct DriverUnit {
  std::unique_ptr<Unit> unit;
  bool admitted = false;
  std::vector<Event> inbox;  // Accepted and ServiceReplied for its next run
  bool timer_due = false;
  bool drain_requested = false;
  bool drain_delivered = false;
  std::optional<Instant> deadline;
  EventId timer;  // the timeline entry for `deadline`
};

// What a worker takes when it starts a run.
struct RunInput {
  sched::Scheduler::Run run;
  DriverUnit* record = nullptr;
  std::vector<Event> inbox;
  bool timer_due = false;
  bool drain = false;
};

// One run of one unit on one virtual worker, advanced a step at a time.
class SimRun {
 public:
  SimRun(SimDriverImpl& driver, RunInput input);
  // One step; true when the run is over (the unit re-armed, re-queued or retired).
  bool Step();
  UnitId unit() const { return id_; }

 private:
  struct DrainItem {};
  struct ReadyItem {
    ConnId conn;
    sched::Readiness readiness;
  };
  struct ReadItem {
    ConnId conn;
    size_t total = 0;  // read from it in this run so far
  };
  using WorkItem = std::variant<Event, DrainItem, ReadyItem, ReadItem>;

  void HandleEvent(const Event& event);
  // Drains the unit's actions completely and checks its invariants.
  void AfterCall();
  void PerformActions();
  void ProcessRequest();
  void Perform(Action& action);
  void DoSend(Send& send);
  void DoConnect(const Connect& connect);
  void DoClose(const Close& close);
  void DoWork(WorkItem& item);
  void HandleReady(ConnId conn, sched::Readiness readiness);
  void FinishConnect(DriverConn* record);
  void ReadOnce(ConnId conn, size_t total);
  void ReportDead(DriverConn* record, std::string why);
  void FlushOne(DriverConn* record);
  void FlushRound();
  void MarkDirty(DriverConn* record);
  void OrderReady(std::vector<std::pair<ConnId, sched::Readiness>>& ready);
  void Finish();
  bool TryRetire();
  DriverConn* Owned(ConnId conn);

  SimDriverImpl& d_;
  UnitId id_;
  DriverUnit* record_;
  Unit* unit_;
  std::deque<Action> outbox_;  // drained from the unit, not yet performed
  std::deque<Event> local_;    // produced for this unit during the run, handed in next
  std::deque<WorkItem> work_;  // inbox, timer, drain, then its ready connections
  std::vector<ConnId> dirty_;
  std::vector<std::pair<ConnId, sched::Readiness>> still_ready_;
  bool flushing_ = false;
  int flush_rounds_ = 0;
};

class SimDriverImpl final : public ProxyEndpoint {
 public:
  SimDriverImpl(SimDriverConfig config, Timeline& timeline, SimNetwork& network, Services& services,
                Environment& env, DecisionSource& decisions, SimDriver::UnitFactory factory,
                RunHash* hash);
  ~SimDriverImpl() override;

  enum class StepResult { kProgress, kQuiescent, kTimeLimit };
  StepResult Step(std::optional<Instant> until);
  void Shutdown();

  // --- ProxyEndpoint: called by the network inside timeline events ---
  ConnId OnAccept(LinkId link, PeerId client) override;
  void OnChanged(ConnId conn) override;

  // --- The poll set, timers and the services (sim_driver.cc) ---
  void ApplyChanges(const std::vector<sched::ArmChange>& changes);
  void Apply(const sched::ArmChange& change);
  void Wake(UnitId unit);
  void ScheduleCheck(ConnId conn);
  void CheckReady(ConnId conn);
  void SetUnitDeadline(UnitId unit, DriverUnit& record, std::optional<Instant> deadline);
  void OnUnitTimer(UnitId unit, Instant deadline);
  void RefreshServicesDeadline();
  void OnServicesTimer();
  // Applies a services Outcome: ownership changes first, then deliveries, then closes.
  // Replies for `self` are appended to `self_events` for the running unit.
  void ApplyOutcome(Services::Outcome outcome, UnitId self, std::deque<Event>* self_events);
  void BroadcastCluster(UnitId self);
  void AddSystemUnit(const SimDriver::SystemUnitFactory& make);
  void Deliver(Services::Delivery delivery, UnitId self, std::deque<Event>* self_events);
  void ClosePooled(ConnId conn);
  void DropOrphan(Services::Delivery orphan);
  void CloseConnection(ConnId conn);
  // Moves a lingering connection on: writes what the network takes, drops what it reads, and
  // releases the connection once everything went out, the peer hung up, or `give_up` is set.
  void Linger(ConnId conn, bool give_up);
  DriverConn* FindOwned(ConnId conn, UnitId unit);
  void StartRun(size_t slot);
  Instant now() const { return timeline_.now(); }

  void Record(std::string_view kind, std::initializer_list<int64_t> fields) {
    if (hash_ != nullptr) hash_->Record(kind, timeline_.now(), fields);
  }
  template <typename... Args>
  void Tracef(const absl::FormatSpec<Args...>& format, const Args&... args) {
    if (trace_)
      trace_(absl::StrFormat("t=%d ", timeline_.now().us) + absl::StrFormat(format, args...));
  }

  SimDriverConfig config_;
  Timeline& timeline_;
  SimNetwork& network_;
  Services& services_;
  Environment& env_;
  DecisionSource& decisions_;
  SimDriver::UnitFactory factory_;
  RunHash* hash_;
  std::function<void(std::string_view)> trace_;

  sched::Scheduler sched_;
  std::map<ConnId, DriverConn> conns_;
  std::map<UnitId, DriverUnit> units_;
  std::vector<std::unique_ptr<SimRun>> workers_;  // K slots; null while idle
  std::set<ConnId> check_pending_;
  std::map<ConnId, LingeringConn> lingering_;
  std::optional<Instant> services_deadline_;
  EventId services_timer_;
  uint64_t next_unit_ = 0;
  bool draining_ = false;
  SimDriverStats stats_;
};

// For hashes and traces: the connection an event is about (invalid when none).
ConnId EventConn(const Event& event);
std::string_view EventName(const Event& event);

}  // namespace switchyard::io_sim
