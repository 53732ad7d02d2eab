// The driver's shared state, used by the loop thread (driver.cc) and the workers
// (driver_run.cc). Not part of io_real's interface.
//
// Locks, always taken in this order:
//   services_mu_  serializes every call into ServicesLike, and the application of its Outcome;
//   mu_           guards the scheduler, the connection and unit tables, the timer heap and the
//                 poll set (every epoll_ctl on a registered connection happens under it, so an
//                 arming never races a disarming).
// A unit (and the ConnRecords it owns) is touched without a lock only by the worker running it.
#pragma once

#include <atomic>
#include <condition_variable>
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

namespace switchyard::io_real {

// epoll_data of the loop's own descriptors. A ConnId with generation 0 is never valid, so these
// packed values can never collide with a connection's.
inline constexpr uint64_t kListenerTag = 1;
inline constexpr uint64_t kWakeTag = 2;
inline constexpr uint64_t kSignalTag = 3;

inline constexpr size_t kReadBufferBytes = 64 * 1024;
inline constexpr int kAcceptsPerWakeMax = 256;
inline constexpr int kEpollEventsMax = 256;
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
  std::unique_ptr<UnitLike> unit;
  bool admitted = false;
  std::vector<Event> inbox;  // Accepted and ServiceReplied for its next run
  bool timer_due = false;
  bool drain_requested = false;
  bool drain_delivered = false;
  std::optional<Instant> deadline;  // the live entry in the timer heap
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
      epoll_waits{0}, loop_wakes{0}, connects{0}, closes{0};
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
};

class DriverImpl {
 public:
  DriverImpl(DriverConfig config, ServicesLike& services, Environment& env,
             Driver::UnitFactory factory);
  ~DriverImpl();

  absl::Status Listen();
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

  // --- shared helpers (callers hold mu_ where the name says Locked) ---
  void WakeLoop();
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
  void ClosePooled(ConnId conn);
  void DropOrphan(Instant now, Services::Delivery orphan);
  // Reads the services' next deadline (caller holds services_mu_ and mu_); true when the loop
  // sleeps past it and must be woken.
  bool RefreshServicesDeadlineLocked(Instant now);
  // Removes a connection from the tables and closes its descriptor (best-effort flush first).
  void CloseConnection(ConnRecord* record);
  ConnRecord* FindOwned(ConnId conn, UnitId unit);

  // --- driver_run.cc: the workers ---
  void WorkerMain();
  std::optional<RunInput> NextRun();

  DriverConfig config_;
  ServicesLike& services_;
  Environment& env_;
  Driver::UnitFactory factory_;

  int epoll_fd_ = -1;
  int wake_fd_ = -1;
  int signal_fd_ = -1;
  int listen_fd_ = -1;
  std::string listen_address_;
  uint16_t listen_port_ = 0;

  std::mutex services_mu_;

  std::mutex mu_;
  std::condition_variable work_cv_;
  sched::Scheduler sched_;
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

  // Loop-thread only.
  uint64_t next_unit_ = 0;
  Instant drain_deadline_;
  std::optional<Instant> accept_resume_;

  std::atomic<bool> shutdown_requested_{false};
  std::vector<std::thread> workers_;
  AtomicStats stats_;
};

}  // namespace switchyard::io_real
