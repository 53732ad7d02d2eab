// The driver's shared state, used by the loop thread (driver.cc, driver_capture.cc) and the
// workers (driver_run.cc). Not part of io_real's interface.
//
// Threads and poll sets:
//   poll_fd_  the shared poll set: under kUnitSet one EPOLLONESHOT entry per unit (the unit's
//             own set, which holds its connections) and the idle pooled connections. The
//             workers wait on it themselves when no unit is runnable, so a readiness event is
//             handled by the thread that received it, with no hand-off (no futex wake, no
//             context switch); with units queued they still look at it once per queue's worth
//             of runs. It also holds work_fd_, an eventfd that wakes one idle worker when work
//             is queued by someone who will not run it (the loop thread: accepts, timers, the
//             drain; a cross-unit delivery).
//   loop_fd_  the loop thread's own set: the listener, signals, wake_fd_ (deadlines moved
//             earlier, the last unit gone during a drain, a socket handed to the lingering set)
//             and the lingering set's own poll set. The loop sleeps towards the nearest timer.
//
// Lingering closes (io_real/lingering.h) belong to the loop thread alone. A worker that applies
// a Close whose output the peer has not taken takes the socket out of the tables and its poll
// set as before (the core and the scheduler never see it again), then hands the descriptor
// over and wakes the loop. Keeping them off the workers' shared set means they never meet the
// scheduler's bookkeeping (EPOLLONESHOT, unit sets, arming numbers), need no lock beyond the
// hand-over, and their deadlines join the loop's sleep like the timers; the traffic is small
// and rare (the tail of a slow client's output).
//
// Locks, always taken in this order:
//   services_mu_  serializes every call into ServicesLike, and the application of its Outcome;
//   mu_           guards the scheduler, the connection and unit tables, the timer heap and the
//                 poll sets (every epoll_ctl on a registered connection or a unit's set happens
//                 under it, so an arming never races a disarming).
// A unit (and the ConnRecords it owns) is touched without a lock only by the worker running it.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <queue>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "core/sched/scheduler.h"
#include "io_real/driver.h"
#include "io_real/lingering.h"

namespace switchyard::io_real {

// epoll_data of the loop's own descriptors. A ConnId with generation 0 is never valid, so these
// packed values can never collide with a connection's.
inline constexpr uint64_t kListenerTag = 1;
inline constexpr uint64_t kWakeTag = 2;
inline constexpr uint64_t kSignalTag = 3;
inline constexpr uint64_t kWorkTag = 4;
inline constexpr uint64_t kLingeringTag = 5;  // the lingering set's poll set, in loop_fd_
// A unit's own poll set (DisarmPolicy::kUnitSet) is tagged with the top bit, its arming number
// (Scheduler::kArmingMask) and its UnitId. A ConnId's generation never reaches 2^31, so a
// connection's tag never has the top bit (checked when it is registered).
inline constexpr uint64_t kUnitSetTagBit = uint64_t{1} << 63;
inline constexpr int kUnitSetArmingShift = 48;
inline constexpr uint64_t kUnitIdMax = (uint64_t{1} << kUnitSetArmingShift) - 1;
static_assert((uint64_t{sched::Scheduler::kArmingMask} << kUnitSetArmingShift) < kUnitSetTagBit);
inline uint64_t UnitSetTag(UnitId unit, uint32_t arming) {
  return kUnitSetTagBit | (uint64_t{arming} << kUnitSetArmingShift) | unit.value;
}

inline constexpr size_t kReadBufferBytes = 64 * 1024;
inline constexpr int kAcceptsPerWakeMax = 256;
inline constexpr int kEpollEventsMax = 256;
// Connections one poll of a unit's own set reports at most (a unit has a client and a few
// servers; any beyond this are reported by the next poll, the re-arm making sure it comes).
inline constexpr int kUnitSetEventsMax = 16;
// Readiness events one worker takes from the poll set at a time; it runs the units they wake
// one after another, so a bound keeps the others' share for the other workers.
inline constexpr int kWorkerEventsMax = 32;
// Flush rounds at the end of a run (a Writable may make the unit send more).
inline constexpr int kFlushRoundsMax = 4;
// When accept(2) runs out of descriptors, pause accepting for this long.
inline constexpr int64_t kAcceptPauseUs = 100'000;

Instant Now();

struct ConnRecord {
  ConnId id;
  int fd = -1;      // -1 for a connect that failed before it had a socket
  std::string out;  // bytes queued by Send; out[out_pos..] not yet written
  size_t out_pos = 0;
  bool connecting = false;
  // Closed or ConnectFailed was delivered: never armed or read again, output dropped.
  bool dead = false;
  bool dirty = false;  // listed in the current run's flush list
  // Handed to a unit by a checkout reply still in its inbox: the unit does not list it yet, so
  // the end of its current run must neither re-arm it nor close it as dropped.
  bool in_transit = false;
  bool pending() const { return out.size() > out_pos; }
};

struct UnitRecord {
  UnitRecord() = default;
  UnitRecord(const UnitRecord&) = delete;
  UnitRecord& operator=(const UnitRecord&) = delete;
  ~UnitRecord();  // closes set_fd, which also takes it out of the shared poll set

  std::unique_ptr<UnitLike> unit;
  // The unit's own poll set under DisarmPolicy::kUnitSet (an epoll descriptor), else -1.
  int set_fd = -1;
  bool admitted = false;
  std::vector<Event> inbox;  // Accepted and ServiceReplied for its next run
  bool timer_due = false;
  bool drain_requested = false;
  bool drain_delivered = false;
  std::optional<Instant> deadline;  // the live entry in the timer heap
  // The connection the unit's last run sent to (set under mu_ at the end of each run): a
  // request's answer usually comes back on it, so it is read first when the unit's set fires.
  ConnId last_sent;
};

struct TimerEntry {
  Instant deadline;
  UnitId unit;
  friend bool operator>(const TimerEntry& a, const TimerEntry& b) {
    return a.deadline > b.deadline;
  }
};

struct AtomicStats {
  std::atomic<uint64_t> clients_accepted{0}, runs{0}, reads{0}, writes{0}, epoll_ctls{0},
      epoll_waits{0}, unit_set_polls{0}, loop_wakes{0}, worker_wakes{0}, connects{0}, closes{0};
  static void Add(std::atomic<uint64_t>& counter, uint64_t n = 1) {
    counter.fetch_add(n, std::memory_order_relaxed);
  }
};

// What a worker takes out of the shared state when it starts a run.
struct RunInput {
  sched::Scheduler::Run run;
  UnitRecord* record = nullptr;
  std::vector<Event> inbox;
  bool timer_due = false;
  bool drain = false;
  // kUnitSet, when the unit's set fired: the connection to read before asking the set which
  // connections are ready (invalid: ask at once).
  ConnId guess;
  // The unit's connections and their records when the run starts (the run keeps it current).
  std::vector<std::pair<ConnId, ConnRecord*>> owned;
};

class DriverImpl {
 public:
  DriverImpl(DriverConfig config, ServicesLike& services, Environment& env,
             Driver::UnitFactory factory);
  ~DriverImpl();

  absl::Status Listen();
  void AddSystemUnit(std::unique_ptr<UnitLike> unit);
  absl::Status Run();
  void Shutdown();
  DriverStats Stats() const;
  size_t UnitCount();

  // --- driver.cc: the loop thread ---
  void LoopMain();
  int PrepareSleep(Instant now);
  void HandleEpollBatch(const struct epoll_event* events, int count, Instant now);
  void AcceptClients(Instant now);
  void AdmitOne(int fd, const std::string& peer);
  void FireTimers(Instant now);
  void BeginDrain(Instant now);
  void ReadSignals();
  void IdleConnectionLost(Instant now, ConnId conn);
  void StopWorkersAndDropUnits(bool forced);
  // After the drain: serves the lingering sockets until they finish, their deadlines pass or
  // the drain deadline does, whichever is first.
  void FinishLingering();

  // --- driver_capture.cc: traffic capture, on the loop thread ---
  // A toggle asked for (SIGUSR1, ToggleCapture()), and the writer's notices: a new file to
  // tell the units about, or a failure that ends the capture.
  void ServiceCapture(Instant now);
  void StartCapture(Instant now);
  // At shutdown it waits for the writer, so that the files are complete when Run() returns.
  void StopCapture(std::string_view reason, bool wait = false);
  CaptureChanged CurrentCapture() const { return {capture_on_, capture_epoch_, capture_start_}; }
  // Tells every unit (caller holds mu_); only the newest state matters to a unit that has not
  // run since the last one.
  void BroadcastCaptureLocked();

  // --- shared helpers (callers hold mu_ where the name says Locked) ---
  void WakeLoop();
  // Wakes one worker waiting in the poll set (the caller holds mu_ and just queued a unit).
  void NotifyWorkersLocked();
  void WriteWorkFd();
  void ApplyLocked(const sched::ArmChange& change);
  void ApplyAllLocked(const std::vector<sched::ArmChange>& changes);
  void WakeUnitLocked(UnitId unit);
  void SetUnitDeadlineLocked(UnitId unit, UnitRecord& record, std::optional<Instant> deadline);
  // Applies a services Outcome: ownership changes first (a handed-over connection belongs to
  // its new owner before that owner runs), then deliveries, then closes. Replies for `self`
  // are appended to `self_replies` for the caller to Handle at once. Caller holds services_mu_.
  void ApplyOutcome(Instant now, Services::Outcome outcome, UnitId self,
                    std::vector<ServiceReply>* self_replies);
  void DeliverLocked(Services::Delivery delivery, UnitId self,
                     std::vector<ServiceReply>* self_replies);
  // Tells every unit but `self` the new cluster view (caller holds services_mu_ and mu_).
  void BroadcastClusterLocked(UnitId self);
  // Logs each node whose role or health changed since the last call (caller holds services_mu_).
  void LogNodeChanges(const ClusterSnapshot& snapshot);
  void ClosePooled(ConnId conn);
  void DropOrphan(Instant now, Services::Delivery orphan);
  // Reads the services' next deadline (caller holds services_mu_ and mu_); true when the loop
  // sleeps past it and must be woken.
  bool RefreshServicesDeadlineLocked(Instant now);
  // Removes a connection from the tables and closes its descriptor, or hands it to the
  // lingering set when the peer still has output to receive or input we never read.
  void CloseConnection(ConnRecord* record);
  // The poll set a connection's entry is in, if it is registered (Scheduler::SetFor).
  int PollSetOfLocked(ConnId conn);
  // True when the descriptor went to the lingering set; false when it can be closed now.
  bool HandToLingering(ConnRecord& record, int poll_set);
  ConnRecord* FindOwned(ConnId conn, UnitId unit);

  // --- driver_run.cc: the workers ---
  void WorkerMain();
  // Takes the oldest runnable unit for a run into `input` (caller holds mu_); false when none.
  bool TakeRunLocked(RunInput* input);
  ConnId GuessLocked(UnitId unit, const UnitRecord& record);
  // Feeds a batch of poll-set events to the scheduler (caller holds mu_); idle pooled
  // connections that fired are appended to `pooled`.
  void HandleReadinessLocked(const struct epoll_event* events, int count,
                             std::vector<ConnId>* pooled);

  DriverConfig config_;
  ServicesLike& services_;
  Environment& env_;
  Driver::UnitFactory factory_;

  int poll_fd_ = -1;
  int loop_fd_ = -1;
  int wake_fd_ = -1;
  int work_fd_ = -1;
  int signal_fd_ = -1;
  int listen_fd_ = -1;
  std::string listen_address_;
  uint16_t listen_port_ = 0;

  std::mutex services_mu_;
  ClusterSnapshot logged_cluster_;  // guarded by services_mu_

  std::mutex mu_;
  sched::Scheduler sched_;
  // Workers blocked in epoll_wait on poll_fd_, and whether a write to work_fd_ is on its way to
  // one of them (one wake-up at a time is enough: the woken worker re-checks the queue).
  int idle_workers_ = 0;
  bool work_wake_pending_ = false;
  absl::flat_hash_map<ConnId, std::unique_ptr<ConnRecord>> conns_;
  absl::flat_hash_map<UnitId, std::unique_ptr<UnitRecord>> units_;
  std::priority_queue<TimerEntry, std::vector<TimerEntry>, std::greater<TimerEntry>> timers_;
  size_t live_deadlines_ = 0;
  std::optional<Instant> services_deadline_;
  // The deadline the loop sleeps towards; kAwake while it is processing (it recomputes before
  // sleeping again, so nobody needs to wake it).
  static constexpr int64_t kAwake = INT64_MIN;
  int64_t loop_sleep_until_us_ = kAwake;
  bool stopping_ = false;
  bool draining_ = false;  // read by workers to wake the loop when the last unit goes

  // Set before Run(), started by it.
  std::vector<std::unique_ptr<UnitLike>> system_units_;

  // The capture writer (null without a capture directory); workers Offer to it directly.
  std::unique_ptr<CaptureWriter> capture_;
  std::atomic<bool> capture_toggle_requested_{false};
  // Loop-thread only: the capture as the units were last told.
  bool capture_on_ = false;
  uint64_t capture_id_ = 0;  // the first epoch of the capture that is on
  uint64_t capture_epoch_ = 0;
  Instant capture_start_;

  // Loop-thread only.
  uint64_t next_unit_ = 0;
  Instant drain_deadline_;
  std::optional<Instant> accept_resume_;
  // What StopWorkersAndDropUnits cut, for the last shutdown line.
  bool forced_ = false;
  size_t units_dropped_ = 0;
  size_t connections_dropped_ = 0;

  std::atomic<bool> shutdown_requested_{false};
  std::vector<std::thread> workers_;
  AtomicStats stats_;
  // Offered to by any thread (its own lock); everything else is the loop thread's.
  LingeringSet lingering_;
};

}  // namespace switchyard::io_real
