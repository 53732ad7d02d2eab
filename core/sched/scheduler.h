// The scheduler's bookkeeping (DESIGN.md section 3) as pure data: who owns which connection,
// which units are runnable, and what each connection is registered for in the poll set.
//
// A driver (io_real's workers, io_sim's virtual workers) calls it under its own lock and
// carries out the ArmChanges it returns. Nothing here touches a socket or a clock.
//
// Poll sets: the shared set is the one the driver's workers wait on. Under DisarmPolicy
// kUnitSet each unit also has a set of its own, which holds all of the unit's connections and
// is itself one EPOLLONESHOT entry of the shared set.
//
// Unit states:
//   kArmed        idle: its connections are armed in the poll set as it asked.
//   kRunnable     queued (exactly once) in the FIFO, waiting for a worker. With the explicit
//                 disarm policy none of its connections is armed.
//   kRunning      a worker runs it; readiness reported now is remembered, not queued.
//   kRunningWithPendingWake
//                 something arrived while it ran (readiness, a timer, a service reply): it is
//                 re-queued right after its run instead of being re-armed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "core/base/types.h"

namespace switchyard::sched {

// What a connection is (or should be) registered for in the poll set.
struct Interest {
  bool read = false;
  bool write = false;
  bool none() const { return !read && !write; }
  friend bool operator==(const Interest&, const Interest&) = default;
};

// What the poll set reported on a connection. Hang-ups and errors count as readable (a read
// reveals them) and, for a connect in progress, as writable (SO_ERROR reveals them).
struct Readiness {
  bool readable = false;
  bool writable = false;
  bool any() const { return readable || writable; }
  friend bool operator==(const Readiness&, const Readiness&) = default;
};

// Who a connection belongs to: a unit, or the pool (an idle pooled server connection).
struct Owner {
  enum class Kind { kUnit, kPool };
  Kind kind = Kind::kPool;
  UnitId unit;  // valid when kind == kUnit
  static Owner Pool() { return Owner{Kind::kPool, UnitId{}}; }
  static Owner OfUnit(UnitId unit) { return Owner{Kind::kUnit, unit}; }
  friend bool operator==(const Owner&, const Owner&) = default;
};

// One change the driver must make to a poll set (add, modify or remove a registration).
struct ArmChange {
  enum class Op { kAdd, kModify, kDelete };
  // The connection whose entry changes. Not valid: the change is to the entry that unit `set`'s
  // own poll set has in the shared set (kUnitSet), armed when `interest.read`.
  ConnId conn;
  Op op = Op::kModify;
  Interest interest;  // what the entry is registered for afterwards (none for kDelete)
  // The set a connection's entry is in: not valid for the shared set, else that unit's own set.
  UnitId set;
  // A unit set's entry only: the arming number its events carry back to OnUnitSetReady.
  uint32_t arming = 0;
  friend bool operator==(const ArmChange&, const ArmChange&) = default;
};

enum class UnitState { kArmed, kRunnable, kRunning, kRunningWithPendingWake };
std::string_view UnitStateName(UnitState state);

// How the other connections of a unit are kept quiet while it is queued or running.
enum class DisarmPolicy {
  // DESIGN.md section 3: when a unit becomes runnable, ALL its connections leave the poll set
  // (EPOLLONESHOT disarms only the one that fired, so the others are removed explicitly).
  kExplicit,
  // Leave the others armed; if one fires while the unit is queued or running, the state machine
  // absorbs it (remembered readiness, pending wake). Fewer poll-set changes per transaction.
  kLazy,
  // Each unit's connections sit (level-triggered) in a poll set of the unit's own, and that set
  // is one EPOLLONESHOT entry of the shared set. The event that wakes the unit therefore takes
  // ALL of its connections out of the shared set at once, as kExplicit does, with no call per
  // connection: a run costs one poll of the unit's set and one re-arm of its entry. Connections
  // change sets (a DEL and an ADD) only when they change owners.
  kUnitSet,
};

class Scheduler {
 public:
  explicit Scheduler(DisarmPolicy policy = DisarmPolicy::kExplicit) : policy_(policy) {}

  // --- Units ---
  // A new unit starts kArmed with no connections; the driver usually Wake()s it at once.
  void AddUnit(UnitId unit);
  // Only the worker running a unit drops it, after removing its connections.
  void RemoveUnit(UnitId unit);
  bool HasUnit(UnitId unit) const { return units_.contains(unit); }
  UnitState StateOf(UnitId unit) const;
  // The unit's connections, ordered by ConnId (never by hash order).
  std::vector<ConnId> ConnsOf(UnitId unit) const;
  // Calls `f(ConnId)` for each of them, in the same order, without a copy.
  template <typename F>
  void ForEachConnOf(UnitId unit, F&& f) const {
    for (ConnId conn : UnitRef(unit).conns) f(conn);
  }
  size_t unit_count() const { return units_.size(); }

  // --- Connections ---
  // A connection that is not in the poll set yet (its first arming is an kAdd).
  void AddConn(ConnId conn, Owner owner);
  // Moves a connection to another owner. When the new owner is a queued unit and the
  // connection is armed, it is taken out of the poll set (the returned change).
  std::optional<ArmChange> SetOwner(ConnId conn, Owner owner);
  // The descriptor was closed (which also removed it from the poll set).
  void RemoveConn(ConnId conn);
  std::optional<Owner> OwnerOf(ConnId conn) const;
  bool HasConn(ConnId conn) const { return conns_.contains(conn); }
  Interest ArmedOf(ConnId conn) const;
  // Whether any connection of the unit is armed for writing (a connect or output waiting).
  bool ArmedForWrite(UnitId unit) const;
  // Arms a pool-owned connection (units are armed through EndRun only).
  std::optional<ArmChange> ArmPooled(ConnId conn, Interest interest);

  // --- Readiness and wake-ups (the event loop) ---
  struct WakeResult {
    bool queued = false;            // the unit entered the runnable FIFO now
    std::vector<ArmChange> disarm;  // its other connections to take out of the poll set
  };
  struct ReadyResult {
    enum class Kind { kUnknown, kPool, kUnit };
    Kind kind = Kind::kUnknown;  // kUnknown: a stale event for a closed connection; ignore it
    UnitId unit;
    WakeResult wake;
  };
  // The shared poll set reported `conn` (EPOLLONESHOT has disabled it in the kernel). Under
  // kUnitSet only pooled connections are in the shared set; any other report is stale.
  ReadyResult OnReady(ConnId conn, Readiness readiness);
  // Arming numbers wrap at this mask (the driver carries them in a few bits of the event).
  static constexpr uint32_t kArmingMask = (1u << 15) - 1;
  // The shared set reported unit `unit`'s own set, armed with `arming` (kUnitSet; EPOLLONESHOT
  // has disabled the entry). A report from an earlier arming is stale and ignored (kUnknown):
  // the run that followed it has seen the same readiness, or the re-arm reports it again.
  ReadyResult OnUnitSetReady(UnitId unit, uint32_t arming);
  // Something other than readiness needs the unit to run (timer, service reply, drain).
  WakeResult Wake(UnitId unit);

  // --- Runs (the workers) ---
  struct Run {
    UnitId unit;
    // Connections reported ready since the unit last ran, in the order they were reported.
    std::vector<std::pair<ConnId, Readiness>> ready;
    // kUnitSet: the unit's own set fired; the worker asks it which connections are ready.
    bool poll_set = false;
  };
  // Takes the oldest runnable unit; it becomes kRunning.
  std::optional<Run> PopRunnable();
  struct EndRunResult {
    bool requeued = false;
    std::vector<ArmChange> changes;
  };
  // The unit's run is over. `desired` is the interest for each connection it still owns
  // (absent: none). `still_ready` lists connections the worker stopped reading before they were
  // drained (the per-run read bound); the unit is re-queued to read them, behind the others.
  EndRunResult EndRun(UnitId unit, const std::vector<std::pair<ConnId, Interest>>& desired,
                      const std::vector<std::pair<ConnId, Readiness>>& still_ready = {});

  size_t runnable_count() const { return runnable_.size(); }
  DisarmPolicy policy() const { return policy_; }
  // kUnitSet: whether the unit's own set is armed in the shared set, and its arming number.
  bool SetArmedOf(UnitId unit) const { return UnitRef(unit).set_armed; }
  uint32_t ArmingOf(UnitId unit) const { return UnitRef(unit).arming; }

  // Always-on consistency check of every record; aborts with a message when broken.
  void CheckInvariants() const;

 private:
  struct ConnRecord {
    Owner owner;
    bool registered = false;  // in a poll set (possibly disabled by EPOLLONESHOT)
    UnitId set;               // which one, when registered: not valid for the shared set
    Interest armed;           // enabled interest in the kernel; none when disabled/absent
    Readiness ready;          // reported but not yet handed to a run
  };
  struct UnitRecord {
    UnitState state = UnitState::kArmed;
    std::set<ConnId> conns;
    std::vector<ConnId> ready;  // conns with pending readiness, in report order
    // kUnitSet: the unit's own set's entry in the shared set.
    bool set_registered = false;
    bool set_armed = false;
    bool set_fired = false;  // reported since the unit last started running
    uint32_t arming = 0;
  };

  UnitRecord& UnitRef(UnitId unit);
  const UnitRecord& UnitRef(UnitId unit) const;
  ConnRecord& ConnRef(ConnId conn);
  void MarkReady(UnitRecord& unit, ConnId conn, ConnRecord& record, Readiness readiness);
  // kArmed → kRunnable, kRunning → kRunningWithPendingWake, otherwise nothing.
  WakeResult WakeRecord(UnitId id, UnitRecord& unit);
  // Takes every armed connection of the unit out of the poll set (policy permitting).
  std::vector<ArmChange> DisarmAll(UnitId id, UnitRecord& unit);
  std::optional<ArmChange> ChangeTo(ConnId conn, ConnRecord& record, Interest interest);
  // The set a connection with this owner belongs in.
  UnitId SetFor(Owner owner) const;
  void DetachFromOwner(ConnId conn, ConnRecord& record);

  DisarmPolicy policy_;
  absl::flat_hash_map<UnitId, UnitRecord> units_;
  absl::flat_hash_map<ConnId, ConnRecord> conns_;
  std::deque<UnitId> runnable_;
};

}  // namespace switchyard::sched
