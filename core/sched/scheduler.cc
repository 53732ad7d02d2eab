// The scheduler's bookkeeping: unit states, the runnable FIFO and poll-set membership.
#include "core/sched/scheduler.h"

#include <algorithm>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_format.h"
#include "core/base/check.h"

namespace switchyard::sched {
namespace {

// For messages only (this Abseil's StrCat predates AbslStringify).
std::string ConnText(ConnId conn) { return absl::StrFormat("c%u.%u", conn.index, conn.generation); }

Readiness Merge(Readiness a, Readiness b) {
  return Readiness{a.readable || b.readable, a.writable || b.writable};
}

}  // namespace

std::string_view UnitStateName(UnitState state) {
  switch (state) {
    case UnitState::kArmed:
      return "armed";
    case UnitState::kRunnable:
      return "runnable";
    case UnitState::kRunning:
      return "running";
    case UnitState::kRunningWithPendingWake:
      return "running_with_pending_wake";
  }
  return "unknown";
}

Scheduler::UnitRecord& Scheduler::UnitRef(UnitId unit) {
  auto it = units_.find(unit);
  CHECK(it != units_.end()) << "unknown unit " << unit.value;
  return it->second;
}

const Scheduler::UnitRecord& Scheduler::UnitRef(UnitId unit) const {
  auto it = units_.find(unit);
  CHECK(it != units_.end()) << "unknown unit " << unit.value;
  return it->second;
}

Scheduler::ConnRecord& Scheduler::ConnRef(ConnId conn) {
  auto it = conns_.find(conn);
  CHECK(it != conns_.end()) << "unknown connection " << ConnText(conn);
  return it->second;
}

void Scheduler::AddUnit(UnitId unit) {
  CHECK(unit.valid()) << "unit id 0";
  CHECK(units_.emplace(unit, UnitRecord{}).second) << "unit added twice " << unit.value;
}

void Scheduler::RemoveUnit(UnitId unit) {
  const UnitRecord& record = UnitRef(unit);
  CHECK(record.state == UnitState::kRunning || record.state == UnitState::kRunningWithPendingWake)
      << "only the worker running a unit removes it";
  CHECK(record.conns.empty()) << "unit " << unit.value << " removed with connections";
  units_.erase(unit);
}

UnitState Scheduler::StateOf(UnitId unit) const { return UnitRef(unit).state; }

std::vector<ConnId> Scheduler::ConnsOf(UnitId unit) const {
  const UnitRecord& record = UnitRef(unit);
  return std::vector<ConnId>(record.conns.begin(), record.conns.end());
}

void Scheduler::AddConn(ConnId conn, Owner owner) {
  CHECK(conn.valid()) << "connection with generation 0";
  CHECK(!conns_.contains(conn)) << "connection added twice " << ConnText(conn);
  if (owner.kind == Owner::Kind::kUnit) UnitRef(owner.unit).conns.insert(conn);
  conns_.emplace(conn, ConnRecord{owner, false, UnitId{}, Interest{}, Readiness{}});
}

void Scheduler::DetachFromOwner(ConnId conn, ConnRecord& record) {
  if (record.owner.kind == Owner::Kind::kUnit) {
    UnitRecord& unit = UnitRef(record.owner.unit);
    unit.conns.erase(conn);
    unit.ready.erase(std::remove(unit.ready.begin(), unit.ready.end(), conn), unit.ready.end());
  }
  record.ready = Readiness{};
}

std::optional<ArmChange> Scheduler::SetOwner(ConnId conn, Owner owner) {
  ConnRecord& record = ConnRef(conn);
  DetachFromOwner(conn, record);
  std::optional<ArmChange> change;
  if (record.registered && record.set != SetFor(owner)) {
    // kUnitSet: it leaves the old owner's set; the new owner arms it in its own (the pool at
    // once with ArmPooled, a unit at the end of its next run).
    change = ArmChange{conn, ArmChange::Op::kDelete, Interest{}, record.set};
    record.registered = false;
    record.armed = Interest{};
  }
  record.owner = owner;
  if (owner.kind == Owner::Kind::kPool) return change;
  UnitRecord& unit = UnitRef(owner.unit);
  unit.conns.insert(conn);
  // A queued unit must not be woken twice by its own connections.
  if (unit.state == UnitState::kRunnable && policy_ == DisarmPolicy::kExplicit) {
    return ChangeTo(conn, record, Interest{});
  }
  return change;
}

UnitId Scheduler::SetFor(Owner owner) const {
  if (policy_ != DisarmPolicy::kUnitSet || owner.kind == Owner::Kind::kPool) return UnitId{};
  return owner.unit;
}

void Scheduler::RemoveConn(ConnId conn) {
  ConnRecord& record = ConnRef(conn);
  DetachFromOwner(conn, record);
  conns_.erase(conn);
}

std::optional<Owner> Scheduler::OwnerOf(ConnId conn) const {
  auto it = conns_.find(conn);
  if (it == conns_.end()) return std::nullopt;
  return it->second.owner;
}

Interest Scheduler::ArmedOf(ConnId conn) const {
  auto it = conns_.find(conn);
  return it == conns_.end() ? Interest{} : it->second.armed;
}

bool Scheduler::ArmedForWrite(UnitId unit) const {
  for (ConnId conn : UnitRef(unit).conns) {
    if (conns_.at(conn).armed.write) return true;
  }
  return false;
}

std::optional<ArmChange> Scheduler::ArmPooled(ConnId conn, Interest interest) {
  ConnRecord& record = ConnRef(conn);
  CHECK(record.owner.kind == Owner::Kind::kPool) << "ArmPooled on a unit's connection";
  return ChangeTo(conn, record, interest);
}

std::optional<ArmChange> Scheduler::ChangeTo(ConnId conn, ConnRecord& record, Interest interest) {
  const UnitId set = SetFor(record.owner);
  CHECK(!record.registered || record.set == set)
      << "connection " << ConnText(conn) << " is in another owner's poll set";
  if (interest == record.armed) return std::nullopt;  // includes "disabled and wanted none"
  if (interest.none()) {
    // Removed rather than modified to an empty mask: the kernel always reports EPOLLHUP and
    // EPOLLERR on a registered descriptor, and a paused, hung-up connection would spin.
    record.registered = false;
    record.armed = Interest{};
    return ArmChange{conn, ArmChange::Op::kDelete, Interest{}, set};
  }
  ArmChange change{conn, record.registered ? ArmChange::Op::kModify : ArmChange::Op::kAdd, interest,
                   set};
  record.registered = true;
  record.set = set;
  record.armed = interest;
  return change;
}

std::vector<ArmChange> Scheduler::DisarmAll(UnitId id, UnitRecord& unit) {
  std::vector<ArmChange> changes;
  switch (policy_) {
    case DisarmPolicy::kLazy:
      break;
    case DisarmPolicy::kUnitSet:
      // One entry covers all the unit's connections (unless it fired, which disabled it).
      if (unit.set_armed) {
        unit.set_armed = false;
        changes.push_back(ArmChange{ConnId{}, ArmChange::Op::kModify, Interest{}, id, unit.arming});
      }
      break;
    case DisarmPolicy::kExplicit:
      for (ConnId conn : unit.conns) {
        if (auto change = ChangeTo(conn, ConnRef(conn), Interest{})) changes.push_back(*change);
      }
      break;
  }
  return changes;
}

void Scheduler::MarkReady(UnitRecord& unit, ConnId conn, ConnRecord& record, Readiness readiness) {
  if (!readiness.any()) return;
  if (!record.ready.any()) unit.ready.push_back(conn);
  record.ready = Merge(record.ready, readiness);
}

Scheduler::WakeResult Scheduler::WakeRecord(UnitId id, UnitRecord& unit) {
  WakeResult result;
  switch (unit.state) {
    case UnitState::kArmed:
      unit.state = UnitState::kRunnable;
      runnable_.push_back(id);
      result.queued = true;
      result.disarm = DisarmAll(id, unit);
      break;
    case UnitState::kRunning:
      unit.state = UnitState::kRunningWithPendingWake;
      break;
    case UnitState::kRunnable:
    case UnitState::kRunningWithPendingWake:
      break;  // already queued, or already due to be re-queued: once is enough
  }
  return result;
}

Scheduler::ReadyResult Scheduler::OnReady(ConnId conn, Readiness readiness) {
  ReadyResult result;
  auto it = conns_.find(conn);
  if (it == conns_.end()) return result;  // closed since the kernel queued the event
  ConnRecord& record = it->second;
  // Under kUnitSet only pooled connections are in the shared set: a report for one that has
  // left it since the event was queued is stale (its new owner's set reports it now).
  if (policy_ == DisarmPolicy::kUnitSet &&
      (record.owner.kind == Owner::Kind::kUnit || !record.registered)) {
    return result;
  }
  // EPOLLONESHOT disabled the descriptor when it fired; it stays registered.
  record.armed = Interest{};
  if (record.owner.kind == Owner::Kind::kPool) {
    result.kind = ReadyResult::Kind::kPool;
    return result;
  }
  result.kind = ReadyResult::Kind::kUnit;
  result.unit = record.owner.unit;
  UnitRecord& unit = UnitRef(result.unit);
  MarkReady(unit, conn, record, readiness);
  result.wake = WakeRecord(result.unit, unit);
  return result;
}

Scheduler::ReadyResult Scheduler::OnUnitSetReady(UnitId unit, uint32_t arming) {
  ReadyResult result;
  CHECK(policy_ == DisarmPolicy::kUnitSet) << "a unit's own poll set without kUnitSet";
  auto it = units_.find(unit);
  if (it == units_.end()) return result;  // retired since the kernel queued the event
  UnitRecord& record = it->second;
  if (record.arming != arming) return result;  // from an arming since superseded
  // Same arming: real readiness, even when a wake-up disarmed the entry meanwhile.
  record.set_armed = false;
  record.set_fired = true;
  result.kind = ReadyResult::Kind::kUnit;
  result.unit = unit;
  result.wake = WakeRecord(unit, record);
  return result;
}

Scheduler::WakeResult Scheduler::Wake(UnitId unit) { return WakeRecord(unit, UnitRef(unit)); }

std::optional<Scheduler::Run> Scheduler::PopRunnable() {
  if (runnable_.empty()) return std::nullopt;
  Run run;
  run.unit = runnable_.front();
  runnable_.pop_front();
  UnitRecord& unit = UnitRef(run.unit);
  CHECK(unit.state == UnitState::kRunnable) << "a queued unit that is not runnable";
  unit.state = UnitState::kRunning;
  run.poll_set = std::exchange(unit.set_fired, false);
  for (ConnId conn : unit.ready) {
    ConnRecord& record = ConnRef(conn);
    run.ready.emplace_back(conn, record.ready);
    record.ready = Readiness{};
  }
  unit.ready.clear();
  return run;
}

Scheduler::EndRunResult Scheduler::EndRun(
    UnitId id, const std::vector<std::pair<ConnId, Interest>>& desired,
    const std::vector<std::pair<ConnId, Readiness>>& still_ready) {
  UnitRecord& unit = UnitRef(id);
  CHECK(unit.state == UnitState::kRunning || unit.state == UnitState::kRunningWithPendingWake)
      << "EndRun of a unit that is not running";
  for (const auto& [conn, readiness] : still_ready) {
    CHECK(unit.conns.contains(conn)) << "still-ready connection the unit does not own";
    MarkReady(unit, conn, ConnRef(conn), readiness);
  }
  EndRunResult result;
  if (unit.state == UnitState::kRunningWithPendingWake || !unit.ready.empty()) {
    unit.state = UnitState::kRunnable;
    runnable_.push_back(id);
    result.requeued = true;
    result.changes = DisarmAll(id, unit);
    return result;
  }
  unit.state = UnitState::kArmed;
  for (const auto& [conn, interest] : desired) {
    CHECK(unit.conns.contains(conn)) << "desired interest on a connection unit " << id.value
                                     << " does not own: " << ConnText(conn);
  }
  bool any_registered = false;
  for (ConnId conn : unit.conns) {
    Interest want;
    for (const auto& [c, interest] : desired) {
      if (c == conn) want = interest;
    }
    ConnRecord& record = ConnRef(conn);
    if (auto change = ChangeTo(conn, record, want)) result.changes.push_back(*change);
    any_registered = any_registered || record.registered;
  }
  if (policy_ == DisarmPolicy::kUnitSet) {
    CHECK(!unit.set_armed) << "unit " << id.value << " ran with its poll set armed";
    // An empty set could never fire: leave it disarmed until a connection joins it.
    if (any_registered) {
      unit.arming = (unit.arming + 1) & kArmingMask;
      result.changes.push_back(
          ArmChange{ConnId{}, unit.set_registered ? ArmChange::Op::kModify : ArmChange::Op::kAdd,
                    Interest{true, false}, id, unit.arming});
      unit.set_registered = true;
      unit.set_armed = true;
    }
  }
  return result;
}

void Scheduler::CheckInvariants() const {
  absl::flat_hash_set<UnitId> queued;
  for (UnitId id : runnable_) {
    CHECK(queued.insert(id).second) << "unit " << id.value << " queued twice";
    CHECK(UnitRef(id).state == UnitState::kRunnable) << "queued unit not runnable";
  }
  for (const auto& [id, unit] : units_) {
    CHECK((unit.state == UnitState::kRunnable) == queued.contains(id))
        << "unit " << id.value << " runnable but not queued (or the reverse)";
    if (unit.state == UnitState::kArmed) CHECK(unit.ready.empty()) << "armed unit with readiness";
    if (unit.state != UnitState::kArmed) {
      CHECK(!unit.set_armed) << "unit " << id.value << " queued or running with its set armed";
    }
    CHECK(unit.set_registered || !unit.set_armed) << "unit set armed but not registered";
    CHECK(policy_ == DisarmPolicy::kUnitSet || !unit.set_registered) << "unit set without kUnitSet";
    for (ConnId conn : unit.conns) {
      auto it = conns_.find(conn);
      CHECK(it != conns_.end()) << "unit lists an unknown connection";
      CHECK(it->second.owner == Owner::OfUnit(id)) << "unit lists a connection it does not own";
      if (unit.state == UnitState::kRunnable && policy_ == DisarmPolicy::kExplicit) {
        CHECK(it->second.armed.none()) << "queued unit with an armed connection";
      }
    }
    for (ConnId conn : unit.ready) {
      CHECK(unit.conns.contains(conn)) << "ready list names a connection the unit does not own";
      CHECK(conns_.at(conn).ready.any()) << "ready list names a connection with no readiness";
    }
  }
  for (const auto& [conn, record] : conns_) {
    CHECK(record.registered || record.armed.none()) << "armed but not registered";
    CHECK(!record.registered || record.set == SetFor(record.owner))
        << "connection " << ConnText(conn) << " registered in another owner's poll set";
    if (record.owner.kind == Owner::Kind::kPool) {
      CHECK(!record.ready.any()) << "pooled connection with remembered readiness";
      continue;
    }
    auto it = units_.find(record.owner.unit);
    CHECK(it != units_.end()) << "connection owned by an unknown unit";
    CHECK(it->second.conns.contains(conn)) << "owner does not list its connection";
  }
}

}  // namespace switchyard::sched
