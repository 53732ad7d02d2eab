// Tests of the scheduler bookkeeping: runnable FIFO, disarm/re-arm and pending wake-ups.
#include "core/sched/scheduler.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include <algorithm>
#include <map>
#include <set>

namespace switchyard::sched {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::Pair;

constexpr Interest kRead{true, false};
constexpr Interest kWrite{false, true};
constexpr Interest kNone{};
constexpr Readiness kReadable{true, false};
constexpr Readiness kWritable{false, true};

ConnId Conn(uint32_t index) { return ConnId{index, 1}; }
UnitId Unit(uint64_t value) { return UnitId{value}; }

// Changes to a connection's entry in the shared poll set.
ArmChange Add(ConnId conn, Interest interest) {
  return ArmChange{conn, ArmChange::Op::kAdd, interest, UnitId{}, 0};
}
ArmChange Modify(ConnId conn, Interest interest) {
  return ArmChange{conn, ArmChange::Op::kModify, interest, UnitId{}, 0};
}
ArmChange Delete(ConnId conn) {
  return ArmChange{conn, ArmChange::Op::kDelete, kNone, UnitId{}, 0};
}

// A unit with a client (1) and a server (2) connection, both armed for reading, idle.
class TwoConnUnitTest : public ::testing::TestWithParam<DisarmPolicy> {
 protected:
  void SetUp() override {
    scheduler_ = Scheduler(GetParam());
    scheduler_.AddUnit(Unit(7));
    scheduler_.AddConn(Conn(1), Owner::OfUnit(Unit(7)));
    scheduler_.AddConn(Conn(2), Owner::OfUnit(Unit(7)));
    ASSERT_TRUE(scheduler_.Wake(Unit(7)).queued);
    ASSERT_TRUE(scheduler_.PopRunnable().has_value());
    auto end = scheduler_.EndRun(Unit(7), {{Conn(1), kRead}, {Conn(2), kRead}});
    ASSERT_FALSE(end.requeued);
    ASSERT_THAT(end.changes, ElementsAre(Add(Conn(1), kRead), Add(Conn(2), kRead)));
    scheduler_.CheckInvariants();
  }
  Scheduler scheduler_;
};

TEST_P(TwoConnUnitTest, ReadinessQueuesTheUnitOnce) {
  auto first = scheduler_.OnReady(Conn(1), kReadable);
  EXPECT_EQ(first.kind, Scheduler::ReadyResult::Kind::kUnit);
  EXPECT_EQ(first.unit, Unit(7));
  EXPECT_TRUE(first.wake.queued);
  // The other connection fired in the same epoll batch: remembered, not queued again.
  auto second = scheduler_.OnReady(Conn(2), kReadable);
  EXPECT_FALSE(second.wake.queued);
  EXPECT_EQ(scheduler_.runnable_count(), 1u);
  scheduler_.CheckInvariants();

  auto run = scheduler_.PopRunnable();
  ASSERT_TRUE(run.has_value());
  EXPECT_EQ(run->unit, Unit(7));
  EXPECT_THAT(run->ready, ElementsAre(Pair(Conn(1), kReadable), Pair(Conn(2), kReadable)));
  EXPECT_FALSE(scheduler_.PopRunnable().has_value());
}

TEST_P(TwoConnUnitTest, BecomingRunnableDisarmsTheOtherConnectionsUnderExplicitPolicy) {
  auto ready = scheduler_.OnReady(Conn(1), kReadable);
  if (GetParam() == DisarmPolicy::kExplicit) {
    // EPOLLONESHOT disabled connection 1; connection 2 must leave the poll set explicitly.
    EXPECT_THAT(ready.wake.disarm, ElementsAre(Delete(Conn(2))));
    EXPECT_TRUE(scheduler_.ArmedOf(Conn(2)).none());
  } else {
    EXPECT_THAT(ready.wake.disarm, IsEmpty());
    EXPECT_EQ(scheduler_.ArmedOf(Conn(2)), kRead);
  }
  EXPECT_TRUE(scheduler_.ArmedOf(Conn(1)).none());
  scheduler_.CheckInvariants();
}

TEST_P(TwoConnUnitTest, EndOfRunRearmsOnlyWhatChanged) {
  scheduler_.OnReady(Conn(1), kReadable);
  ASSERT_TRUE(scheduler_.PopRunnable().has_value());
  // The client is paused now and the server has output pending.
  auto end = scheduler_.EndRun(Unit(7), {{Conn(1), kNone}, {Conn(2), Interest{true, true}}});
  EXPECT_FALSE(end.requeued);
  if (GetParam() == DisarmPolicy::kExplicit) {
    // Connection 1 is disabled already (no syscall); connection 2 was removed, so re-added.
    EXPECT_THAT(end.changes, ElementsAre(Add(Conn(2), Interest{true, true})));
  } else {
    EXPECT_THAT(end.changes, ElementsAre(Modify(Conn(2), Interest{true, true})));
  }
  EXPECT_EQ(scheduler_.StateOf(Unit(7)), UnitState::kArmed);
  scheduler_.CheckInvariants();
}

TEST_P(TwoConnUnitTest, ConnectInProgressIsArmedForWriteAndReportsWritable) {
  scheduler_.OnReady(Conn(1), kReadable);
  ASSERT_TRUE(scheduler_.PopRunnable().has_value());
  scheduler_.AddConn(Conn(3), Owner::OfUnit(Unit(7)));
  auto end = scheduler_.EndRun(Unit(7), {{Conn(1), kRead}, {Conn(2), kRead}, {Conn(3), kWrite}});
  EXPECT_THAT(end.changes, ::testing::Contains(Add(Conn(3), kWrite)));
  EXPECT_TRUE(scheduler_.OnReady(Conn(3), kWritable).wake.queued);
  auto run = scheduler_.PopRunnable();
  ASSERT_TRUE(run.has_value());
  EXPECT_THAT(run->ready, ElementsAre(Pair(Conn(3), kWritable)));
}

TEST_P(TwoConnUnitTest, TimerWakeKeepsArmingUnchangedUnderLazyPolicy) {
  EXPECT_TRUE(scheduler_.Wake(Unit(7)).queued);
  ASSERT_TRUE(scheduler_.PopRunnable().has_value());
  auto end = scheduler_.EndRun(Unit(7), {{Conn(1), kRead}, {Conn(2), kRead}});
  if (GetParam() == DisarmPolicy::kLazy) {
    EXPECT_THAT(end.changes, IsEmpty());
  } else {
    EXPECT_THAT(end.changes, ElementsAre(Add(Conn(1), kRead), Add(Conn(2), kRead)));
  }
}

TEST_P(TwoConnUnitTest, ReadinessDuringARunRequeuesRightAfterIt) {
  scheduler_.OnReady(Conn(1), kReadable);
  ASSERT_TRUE(scheduler_.PopRunnable().has_value());
  auto during = scheduler_.OnReady(Conn(2), kReadable);
  EXPECT_FALSE(during.wake.queued);  // never handed to a second worker
  EXPECT_EQ(scheduler_.StateOf(Unit(7)), UnitState::kRunningWithPendingWake);
  EXPECT_FALSE(scheduler_.PopRunnable().has_value());

  auto end = scheduler_.EndRun(Unit(7), {{Conn(1), kRead}, {Conn(2), kRead}});
  EXPECT_TRUE(end.requeued);
  EXPECT_EQ(scheduler_.StateOf(Unit(7)), UnitState::kRunnable);
  scheduler_.CheckInvariants();
  auto again = scheduler_.PopRunnable();
  ASSERT_TRUE(again.has_value());
  EXPECT_THAT(again->ready, ElementsAre(Pair(Conn(2), kReadable)));
}

TEST_P(TwoConnUnitTest, ServiceReplyDuringARunRequeuesRightAfterIt) {
  scheduler_.OnReady(Conn(1), kReadable);
  ASSERT_TRUE(scheduler_.PopRunnable().has_value());
  EXPECT_FALSE(scheduler_.Wake(Unit(7)).queued);
  EXPECT_FALSE(scheduler_.Wake(Unit(7)).queued);
  auto end = scheduler_.EndRun(Unit(7), {{Conn(1), kRead}, {Conn(2), kRead}});
  EXPECT_TRUE(end.requeued);
  EXPECT_EQ(scheduler_.runnable_count(), 1u);
  auto again = scheduler_.PopRunnable();
  ASSERT_TRUE(again.has_value());
  EXPECT_THAT(again->ready, IsEmpty());
}

TEST_P(TwoConnUnitTest, ReadBoundYieldsBehindOtherUnits) {
  scheduler_.AddUnit(Unit(8));
  scheduler_.OnReady(Conn(1), kReadable);
  ASSERT_TRUE(scheduler_.PopRunnable().has_value());
  scheduler_.Wake(Unit(8));
  auto end =
      scheduler_.EndRun(Unit(7), {{Conn(1), kRead}, {Conn(2), kRead}}, {{Conn(1), kReadable}});
  EXPECT_TRUE(end.requeued);
  EXPECT_EQ(scheduler_.PopRunnable()->unit, Unit(8));
  auto seven = scheduler_.PopRunnable();
  ASSERT_TRUE(seven.has_value());
  EXPECT_THAT(seven->ready, ElementsAre(Pair(Conn(1), kReadable)));
}

TEST_P(TwoConnUnitTest, ConnectionHandedToThePoolWakesNoUnit) {
  scheduler_.OnReady(Conn(1), kReadable);
  ASSERT_TRUE(scheduler_.PopRunnable().has_value());
  EXPECT_FALSE(scheduler_.SetOwner(Conn(2), Owner::Pool()).has_value());
  auto arm = scheduler_.ArmPooled(Conn(2), kRead);
  // Under the lazy policy it never left the poll set, so arming it for the pool is free.
  EXPECT_EQ(arm.has_value(), GetParam() == DisarmPolicy::kExplicit);
  EXPECT_EQ(scheduler_.ArmedOf(Conn(2)), kRead);
  auto end = scheduler_.EndRun(Unit(7), {{Conn(1), kRead}});
  EXPECT_THAT(end.changes, ElementsAre(Modify(Conn(1), kRead)));
  EXPECT_THAT(scheduler_.ConnsOf(Unit(7)), ElementsAre(Conn(1)));

  // A read or hang-up on the idle pooled connection is the pool's business.
  auto ready = scheduler_.OnReady(Conn(2), kReadable);
  EXPECT_EQ(ready.kind, Scheduler::ReadyResult::Kind::kPool);
  EXPECT_EQ(scheduler_.runnable_count(), 0u);
  scheduler_.CheckInvariants();
}

TEST_P(TwoConnUnitTest, PooledConnectionReusedByARunningUnitStaysArmed) {
  scheduler_.AddConn(Conn(3), Owner::Pool());
  ASSERT_EQ(scheduler_.ArmPooled(Conn(3), kRead), Add(Conn(3), kRead));
  scheduler_.OnReady(Conn(1), kReadable);
  ASSERT_TRUE(scheduler_.PopRunnable().has_value());
  EXPECT_FALSE(scheduler_.SetOwner(Conn(3), Owner::OfUnit(Unit(7))).has_value());
  auto end = scheduler_.EndRun(Unit(7), {{Conn(1), kRead}, {Conn(2), kRead}, {Conn(3), kRead}});
  // Connection 3 is still armed for reading from its time in the pool: no syscall for it.
  for (const ArmChange& change : end.changes) EXPECT_NE(change.conn, Conn(3));
  scheduler_.CheckInvariants();
}

TEST_P(TwoConnUnitTest, PooledConnectionHandedToAQueuedUnitLeavesThePollSet) {
  scheduler_.AddConn(Conn(3), Owner::Pool());
  scheduler_.ArmPooled(Conn(3), kRead);
  scheduler_.OnReady(Conn(1), kReadable);
  auto change = scheduler_.SetOwner(Conn(3), Owner::OfUnit(Unit(7)));
  if (GetParam() == DisarmPolicy::kExplicit) {
    EXPECT_EQ(change, Delete(Conn(3)));
  } else {
    EXPECT_FALSE(change.has_value());
  }
  scheduler_.CheckInvariants();
}

TEST_P(TwoConnUnitTest, ClosedConnectionEventsAreIgnored) {
  scheduler_.OnReady(Conn(2), kReadable);
  ASSERT_TRUE(scheduler_.PopRunnable().has_value());
  scheduler_.RemoveConn(Conn(2));
  scheduler_.EndRun(Unit(7), {{Conn(1), kRead}});
  auto stale = scheduler_.OnReady(Conn(2), kReadable);
  EXPECT_EQ(stale.kind, Scheduler::ReadyResult::Kind::kUnknown);
  // The same number with a new generation is a different connection.
  EXPECT_EQ(scheduler_.OnReady(ConnId{2, 2}, kReadable).kind,
            Scheduler::ReadyResult::Kind::kUnknown);
  EXPECT_EQ(scheduler_.runnable_count(), 0u);
}

TEST_P(TwoConnUnitTest, RemovedConnectionIsForgottenFromThePendingReadiness) {
  scheduler_.OnReady(Conn(1), kReadable);
  scheduler_.OnReady(Conn(2), kWritable);
  scheduler_.RemoveConn(Conn(2));
  auto run = scheduler_.PopRunnable();
  ASSERT_TRUE(run.has_value());
  EXPECT_THAT(run->ready, ElementsAre(Pair(Conn(1), kReadable)));
}

INSTANTIATE_TEST_SUITE_P(Policies, TwoConnUnitTest,
                         ::testing::Values(DisarmPolicy::kExplicit, DisarmPolicy::kLazy));

// --- kUnitSet: each unit's connections in a set of its own, one entry in the shared set ---

ArmChange AddIn(UnitId set, ConnId conn, Interest interest) {
  return ArmChange{conn, ArmChange::Op::kAdd, interest, set, 0};
}
ArmChange DeleteFrom(UnitId set, ConnId conn) {
  return ArmChange{conn, ArmChange::Op::kDelete, kNone, set, 0};
}
ArmChange ArmSet(UnitId unit, ArmChange::Op op, uint32_t arming) {
  return ArmChange{ConnId{}, op, kRead, unit, arming};
}
ArmChange DisarmSet(UnitId unit, uint32_t arming) {
  return ArmChange{ConnId{}, ArmChange::Op::kModify, kNone, unit, arming};
}

// Unit 7 with a client (1) and a server (2), both in its own set for reading; the set armed.
class UnitSetTest : public ::testing::Test {
 protected:
  void SetUp() override {
    scheduler_.AddUnit(Unit(7));
    scheduler_.AddConn(Conn(1), Owner::OfUnit(Unit(7)));
    scheduler_.AddConn(Conn(2), Owner::OfUnit(Unit(7)));
    scheduler_.Wake(Unit(7));
    ASSERT_TRUE(scheduler_.PopRunnable().has_value());
    auto end = scheduler_.EndRun(Unit(7), {{Conn(1), kRead}, {Conn(2), kRead}});
    ASSERT_THAT(end.changes,
                ElementsAre(AddIn(Unit(7), Conn(1), kRead), AddIn(Unit(7), Conn(2), kRead),
                            ArmSet(Unit(7), ArmChange::Op::kAdd, 1)));
    scheduler_.CheckInvariants();
  }
  Scheduler scheduler_{DisarmPolicy::kUnitSet};
};

TEST_F(UnitSetTest, TheSetFiringQueuesTheUnitWithNoFurtherPollSetChange) {
  auto ready = scheduler_.OnUnitSetReady(Unit(7), 1);
  EXPECT_EQ(ready.kind, Scheduler::ReadyResult::Kind::kUnit);
  EXPECT_TRUE(ready.wake.queued);
  // EPOLLONESHOT on the set's entry took both connections out at once.
  EXPECT_THAT(ready.wake.disarm, IsEmpty());
  EXPECT_FALSE(scheduler_.SetArmedOf(Unit(7)));
  auto run = scheduler_.PopRunnable();
  ASSERT_TRUE(run.has_value());
  EXPECT_TRUE(run->poll_set);  // the worker asks the set which connections are ready
  EXPECT_THAT(run->ready, IsEmpty());
  scheduler_.CheckInvariants();
}

TEST_F(UnitSetTest, ARoundTripRearmsOnlyTheSet) {
  for (uint32_t arming = 1; arming <= 3; ++arming) {
    ASSERT_TRUE(scheduler_.OnUnitSetReady(Unit(7), arming).wake.queued);
    ASSERT_TRUE(scheduler_.PopRunnable().has_value());
    auto end = scheduler_.EndRun(Unit(7), {{Conn(1), kRead}, {Conn(2), kRead}});
    // One epoll_ctl per run: the connections' own entries did not change.
    EXPECT_THAT(end.changes, ElementsAre(ArmSet(Unit(7), ArmChange::Op::kModify, arming + 1)));
  }
}

TEST_F(UnitSetTest, AnEventFromAnEarlierArmingIsStale) {
  // A timer queues the unit: the set is disarmed explicitly...
  auto wake = scheduler_.Wake(Unit(7));
  EXPECT_THAT(wake.disarm, ElementsAre(DisarmSet(Unit(7), 1)));
  ASSERT_TRUE(scheduler_.PopRunnable().has_value());
  scheduler_.EndRun(Unit(7), {{Conn(1), kRead}, {Conn(2), kRead}});
  // ...and a worker that took the set's event before that hands it in only now.
  auto stale = scheduler_.OnUnitSetReady(Unit(7), 1);
  EXPECT_EQ(stale.kind, Scheduler::ReadyResult::Kind::kUnknown);
  EXPECT_EQ(scheduler_.runnable_count(), 0u);
  EXPECT_TRUE(scheduler_.SetArmedOf(Unit(7)));  // the current arming is still in force
  EXPECT_EQ(scheduler_.OnUnitSetReady(Unit(8), 1).kind, Scheduler::ReadyResult::Kind::kUnknown);
}

TEST_F(UnitSetTest, TheSetFiringWhileATimerQueuedTheUnitIsStillPolled) {
  scheduler_.Wake(Unit(7));  // disarms arming 1 (the event below was already taken)
  auto late = scheduler_.OnUnitSetReady(Unit(7), 1);
  EXPECT_FALSE(late.wake.queued);  // queued once
  auto run = scheduler_.PopRunnable();
  ASSERT_TRUE(run.has_value());
  EXPECT_TRUE(run->poll_set);
}

TEST_F(UnitSetTest, InterestChangesStayInsideTheSet) {
  scheduler_.OnUnitSetReady(Unit(7), 1);
  scheduler_.PopRunnable();
  // The client is paused; the server has output waiting.
  auto end = scheduler_.EndRun(Unit(7), {{Conn(1), kNone}, {Conn(2), Interest{true, true}}});
  EXPECT_THAT(end.changes, ElementsAre(DeleteFrom(Unit(7), Conn(1)),
                                       ArmChange{Conn(2), ArmChange::Op::kModify,
                                                 Interest{true, true}, Unit(7), 0},
                                       ArmSet(Unit(7), ArmChange::Op::kModify, 2)));
  EXPECT_TRUE(scheduler_.ArmedForWrite(Unit(7)));
}

TEST_F(UnitSetTest, AnEmptySetIsNotArmed) {
  scheduler_.OnUnitSetReady(Unit(7), 1);
  scheduler_.PopRunnable();
  auto end = scheduler_.EndRun(Unit(7), {{Conn(1), kNone}, {Conn(2), kNone}});
  EXPECT_THAT(end.changes, ElementsAre(DeleteFrom(Unit(7), Conn(1)), DeleteFrom(Unit(7), Conn(2))));
  EXPECT_FALSE(scheduler_.SetArmedOf(Unit(7)));
  scheduler_.CheckInvariants();
}

TEST_F(UnitSetTest, ConnectionsMoveBetweenTheUnitsSetAndTheSharedSet) {
  scheduler_.OnUnitSetReady(Unit(7), 1);
  scheduler_.PopRunnable();
  // Released to the pool: out of the unit's set, into the shared one.
  EXPECT_EQ(scheduler_.SetOwner(Conn(2), Owner::Pool()), DeleteFrom(Unit(7), Conn(2)));
  EXPECT_EQ(scheduler_.ArmPooled(Conn(2), kRead), Add(Conn(2), kRead));
  scheduler_.EndRun(Unit(7), {{Conn(1), kRead}});
  // The pool reports it from the shared set.
  EXPECT_EQ(scheduler_.OnReady(Conn(2), kReadable).kind, Scheduler::ReadyResult::Kind::kPool);
  scheduler_.ArmPooled(Conn(2), kRead);
  // Checked out again (by a queued unit): it leaves the shared set at once, and joins the
  // unit's set when that unit's run ends.
  scheduler_.Wake(Unit(7));
  EXPECT_EQ(scheduler_.SetOwner(Conn(2), Owner::OfUnit(Unit(7))), Delete(Conn(2)));
  // An event the shared set reported before that is stale.
  EXPECT_EQ(scheduler_.OnReady(Conn(2), kReadable).kind, Scheduler::ReadyResult::Kind::kUnknown);
  scheduler_.PopRunnable();
  auto end = scheduler_.EndRun(Unit(7), {{Conn(1), kRead}, {Conn(2), kRead}});
  EXPECT_THAT(end.changes, ElementsAre(AddIn(Unit(7), Conn(2), kRead),
                                       ArmSet(Unit(7), ArmChange::Op::kModify, 3)));
  scheduler_.CheckInvariants();
}

TEST(SchedulerTest, RunnableUnitsRunInWakeOrder) {
  Scheduler scheduler;
  for (uint64_t id : {1, 2, 3}) scheduler.AddUnit(Unit(id));
  scheduler.Wake(Unit(2));
  scheduler.Wake(Unit(1));
  scheduler.Wake(Unit(3));
  scheduler.Wake(Unit(2));
  EXPECT_EQ(scheduler.PopRunnable()->unit, Unit(2));
  EXPECT_EQ(scheduler.PopRunnable()->unit, Unit(1));
  EXPECT_EQ(scheduler.PopRunnable()->unit, Unit(3));
  EXPECT_FALSE(scheduler.PopRunnable().has_value());
}

TEST(SchedulerTest, FinishedUnitIsRemovedAfterItsConnections) {
  Scheduler scheduler;
  scheduler.AddUnit(Unit(1));
  scheduler.AddConn(Conn(1), Owner::OfUnit(Unit(1)));
  scheduler.Wake(Unit(1));
  scheduler.PopRunnable();
  scheduler.RemoveConn(Conn(1));
  scheduler.RemoveUnit(Unit(1));
  EXPECT_FALSE(scheduler.HasUnit(Unit(1)));
  EXPECT_FALSE(scheduler.HasConn(Conn(1)));
  scheduler.CheckInvariants();
}

TEST(SchedulerDeathTest, RemovingAUnitThatStillOwnsConnectionsAborts) {
  Scheduler scheduler;
  scheduler.AddUnit(Unit(1));
  scheduler.AddConn(Conn(1), Owner::OfUnit(Unit(1)));
  scheduler.Wake(Unit(1));
  scheduler.PopRunnable();
  EXPECT_DEATH(scheduler.RemoveUnit(Unit(1)), "removed with connections");
}

TEST(SchedulerDeathTest, EndingARunThatNeverStartedAborts) {
  Scheduler scheduler;
  scheduler.AddUnit(Unit(1));
  EXPECT_DEATH(scheduler.EndRun(Unit(1), {}), "not running");
}

// --- Property: random interleavings of readiness, wake-ups, runs and hand-overs, checked
// against a model of the kernel's poll sets. ---

struct KernelEntry {
  bool registered = false;
  UnitId set;  // kUnitSet: the unit set it is in; not valid for the shared set
  Interest enabled;
};

struct KernelUnitSet {
  bool registered = false;
  bool enabled = false;
  uint32_t arming = 0;
};

class Model {
 public:
  explicit Model(DisarmPolicy policy) : policy_(policy), scheduler_(policy) {}

  void Apply(const ArmChange& change) {
    if (!change.conn.valid()) return ApplyToUnitSet(change);
    KernelEntry& k = kernel_[change.conn];
    switch (change.op) {
      case ArmChange::Op::kAdd:
        RC_ASSERT(!k.registered);  // EEXIST otherwise (or in two sets at once)
        k = KernelEntry{true, change.set, change.interest};
        break;
      case ArmChange::Op::kModify:
        RC_ASSERT(k.registered);  // ENOENT otherwise
        RC_ASSERT(k.set == change.set);
        k.enabled = change.interest;
        break;
      case ArmChange::Op::kDelete:
        RC_ASSERT(k.registered);
        RC_ASSERT(k.set == change.set);
        k = KernelEntry{};
        break;
    }
  }
  void ApplyToUnitSet(const ArmChange& change) {
    RC_ASSERT(policy_ == DisarmPolicy::kUnitSet);
    KernelUnitSet& k = unit_sets_[change.set];
    RC_ASSERT(change.op != ArmChange::Op::kDelete);  // a unit set leaves only by closing
    RC_ASSERT(k.registered == (change.op == ArmChange::Op::kModify));
    k = KernelUnitSet{true, change.interest.read, change.arming};
  }
  void ApplyAll(const std::vector<ArmChange>& changes) {
    for (const ArmChange& change : changes) Apply(change);
  }

  // The kernel reports `conn` if it can: from the shared set, or through its unit's set.
  void Fire(ConnId conn) {
    KernelEntry& k = kernel_[conn];
    if (!k.registered || k.enabled.none()) return;
    if (!k.set.valid()) {
      k.enabled = Interest{};  // EPOLLONESHOT
      auto result = scheduler_.OnReady(conn, kReadable);
      ApplyAll(result.wake.disarm);
      if (result.kind == Scheduler::ReadyResult::Kind::kUnit) owed_.insert(result.unit);
      return;
    }
    KernelUnitSet& set = unit_sets_[k.set];
    if (!set.enabled) return;
    set.enabled = false;  // EPOLLONESHOT on the set's entry
    // A worker took the event from the kernel; it reaches the scheduler later (Deliver), maybe
    // after the unit has run and re-armed its set meanwhile.
    in_flight_.emplace_back(k.set, set.arming);
  }

  void Deliver(size_t index) {
    const auto [unit, arming] = in_flight_[index];
    in_flight_.erase(in_flight_.begin() + static_cast<std::ptrdiff_t>(index));
    const bool current = unit_sets_[unit].arming == arming;
    auto result = scheduler_.OnUnitSetReady(unit, arming);
    // Only an event of the set's latest arming counts; an older one is stale.
    RC_ASSERT((result.kind == Scheduler::ReadyResult::Kind::kUnit) == current);
    ApplyAll(result.wake.disarm);
    if (current) owed_.insert(unit);
  }

  DisarmPolicy policy_;
  Scheduler scheduler_;
  std::map<ConnId, KernelEntry> kernel_;
  std::map<UnitId, KernelUnitSet> unit_sets_;
  std::set<UnitId> running_;
  std::set<UnitId> owed_;                               // woken since they last started running
  std::vector<std::pair<UnitId, uint32_t>> in_flight_;  // unit-set events taken, not yet seen
};

void CheckModel(const Model& model) {
  model.scheduler_.CheckInvariants();
  for (const auto& [conn, k] : model.kernel_) {
    if (!model.scheduler_.HasConn(conn)) continue;
    // The scheduler's idea of the poll sets is the kernel's.
    RC_ASSERT(model.scheduler_.ArmedOf(conn) == k.enabled);
    const std::optional<Owner> owner = model.scheduler_.OwnerOf(conn);
    if (model.policy_ == DisarmPolicy::kUnitSet && k.registered) {
      // A unit's connections are in its own set, the pool's in the shared one.
      RC_ASSERT(k.set == (owner->kind == Owner::Kind::kUnit ? owner->unit : UnitId{}));
    }
    if (model.policy_ == DisarmPolicy::kLazy || owner->kind != Owner::Kind::kUnit) continue;
    // DESIGN.md section 3: nothing of a queued or running unit can be reported.
    // (kExplicit leaves a pooled connection handed to a running unit armed until the run ends;
    // kUnitSet moves it out of the shared set at once.)
    const UnitState state = model.scheduler_.StateOf(owner->unit);
    if (state == UnitState::kArmed) continue;
    if (model.policy_ == DisarmPolicy::kExplicit && state != UnitState::kRunnable) continue;
    if (!k.set.valid()) RC_ASSERT(k.enabled.none());
  }
  for (const auto& [unit, k] : model.unit_sets_) {
    if (!model.scheduler_.HasUnit(unit)) continue;
    // While an event of the current arming is on its way, only the kernel knows it fired.
    const bool fired_unseen =
        std::find(model.in_flight_.begin(), model.in_flight_.end(),
                  std::pair<UnitId, uint32_t>{unit, k.arming}) != model.in_flight_.end();
    const bool armed = model.scheduler_.SetArmedOf(unit);
    RC_ASSERT(armed || !k.enabled);
    RC_ASSERT(!armed || k.enabled || fired_unseen);
    if (model.scheduler_.StateOf(unit) != UnitState::kArmed) RC_ASSERT(!k.enabled);
  }
  for (UnitId unit : model.owed_) {
    UnitState state = model.scheduler_.StateOf(unit);
    // No lost wake-up: a woken unit is queued, or will be re-queued after its run.
    RC_ASSERT(state == UnitState::kRunnable || state == UnitState::kRunningWithPendingWake);
  }
}

void RunRandomSchedule(DisarmPolicy policy) {
  Model model(policy);
  constexpr int kUnits = 3;
  constexpr int kConns = 6;
  for (int u = 1; u <= kUnits; ++u) model.scheduler_.AddUnit(Unit(u));
  for (int c = 1; c <= kConns; ++c) {
    model.scheduler_.AddConn(Conn(c), Owner::OfUnit(Unit((c - 1) % kUnits + 1)));
  }
  // Every unit has run once and armed its connections for reading, so readiness can be
  // reported from the first step on.
  for (int u = 1; u <= kUnits; ++u) {
    model.ApplyAll(model.scheduler_.Wake(Unit(u)).disarm);
    RC_ASSERT(model.scheduler_.PopRunnable().has_value());
    std::vector<std::pair<ConnId, Interest>> desired;
    for (ConnId c : model.scheduler_.ConnsOf(Unit(u))) desired.emplace_back(c, kRead);
    model.ApplyAll(model.scheduler_.EndRun(Unit(u), desired).changes);
  }
  CheckModel(model);
  const int steps = *rc::gen::inRange(1, 150);
  for (int step = 0; step < steps; ++step) {
    // 0 report, 1 wake, 2 start a run, 3 end a run, 4 hand over, 5 deliver a taken event;
    // weighted so that events are often still on their way when the unit runs.
    const int op = *rc::gen::weightedElement<int>({{3, 0}, {1, 1}, {2, 2}, {2, 3}, {1, 4}, {2, 5}});
    const ConnId conn = Conn(*rc::gen::inRange(1, kConns + 1));
    const UnitId unit = Unit(*rc::gen::inRange(1, kUnits + 1));
    if (op == 0) {
      // The kernel reports only enabled entries, and EPOLLONESHOT disables them.
      model.Fire(conn);
    } else if (op == 1) {
      model.ApplyAll(model.scheduler_.Wake(unit).disarm);
      model.owed_.insert(unit);
    } else if (op == 2) {
      auto run = model.scheduler_.PopRunnable();
      if (!run) continue;
      RC_ASSERT(model.running_.insert(run->unit).second);  // one worker at a time
      model.owed_.erase(run->unit);
    } else if (op == 3) {
      if (model.running_.empty()) continue;
      UnitId done = *model.running_.begin();
      std::vector<std::pair<ConnId, Interest>> desired;
      for (ConnId c : model.scheduler_.ConnsOf(done)) {
        desired.emplace_back(c, Interest{*rc::gen::arbitrary<bool>(), *rc::gen::arbitrary<bool>()});
      }
      const bool was_pending = model.scheduler_.StateOf(done) == UnitState::kRunningWithPendingWake;
      auto end = model.scheduler_.EndRun(done, desired);
      model.ApplyAll(end.changes);
      model.running_.erase(done);
      RC_ASSERT(end.requeued == was_pending);
      if (!end.requeued) {
        bool any = false;
        for (const auto& [c, interest] : desired) {
          RC_ASSERT(model.kernel_[c].enabled == interest);
          any = any || !interest.none();
        }
        // Under kUnitSet the set is armed exactly when it holds something to report.
        if (policy == DisarmPolicy::kUnitSet) RC_ASSERT(model.unit_sets_[done].enabled == any);
      }
    } else if (op == 5) {
      if (model.in_flight_.empty()) continue;
      model.Deliver(*rc::gen::inRange<size_t>(0, model.in_flight_.size()));
    } else {
      // Hand a connection to the pool or to another unit (a pooled checkout or release).
      auto owner = model.scheduler_.OwnerOf(conn);
      if (owner->kind == Owner::Kind::kUnit && !model.running_.contains(owner->unit)) {
        continue;  // only a running unit hands its connections over
      }
      if (*rc::gen::arbitrary<bool>()) {
        if (auto change = model.scheduler_.SetOwner(conn, Owner::Pool())) model.Apply(*change);
        if (auto change = model.scheduler_.ArmPooled(conn, kRead)) model.Apply(*change);
      } else if (auto change = model.scheduler_.SetOwner(conn, Owner::OfUnit(unit))) {
        model.Apply(*change);
      }
    }
    CheckModel(model);
  }
}

RC_GTEST_PROP(SchedulerProperty, ExplicitPolicyNeverLosesAWakeUpOrRunsAUnitTwice, ()) {
  RunRandomSchedule(DisarmPolicy::kExplicit);
}

RC_GTEST_PROP(SchedulerProperty, LazyPolicyNeverLosesAWakeUpOrRunsAUnitTwice, ()) {
  RunRandomSchedule(DisarmPolicy::kLazy);
}

RC_GTEST_PROP(SchedulerProperty, UnitSetPolicyNeverLosesAWakeUpOrRunsAUnitTwice, ()) {
  RunRandomSchedule(DisarmPolicy::kUnitSet);
}

}  // namespace
}  // namespace switchyard::sched
