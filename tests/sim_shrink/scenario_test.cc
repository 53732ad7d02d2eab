// The pieces under the shrinking property: the planned decision source (io_sim/decision.h) and
// the scenario world driven by hand. A scenario is a pure function of its commands, which is
// what lets a shrunk command list stand for a reproduction.
#include "tests/sim_shrink/scenario.h"

#include <gtest/gtest.h>

#include "io_sim/decision.h"

namespace switchyard::sim {
namespace {

using io_sim::PlannedDecisions;

TEST(PlannedDecisionsTest, NothingPlannedIsTheLastAlternative) {
  PlannedDecisions d;
  EXPECT_FALSE(d.Chance(1, io_sim::kPpm, "net.reset"));
  EXPECT_EQ(d.Between(3, 9, "net.latency"), 9);
  EXPECT_EQ(d.Pick(4, "sched.step"), 3u);
  EXPECT_EQ(d.decisions(), 3u);
  EXPECT_EQ(d.planned_used(), 0u);
}

TEST(PlannedDecisionsTest, PlansAreKeptPerLabelInOrderAndSaturate) {
  PlannedDecisions d;
  d.Plan("net.cut", PlannedDecisions::kLast);
  d.Plan("net.cut", 0);
  d.Plan("net.cut_at", 5);
  d.Plan("sched.step", 100);
  // Another label's choice takes nothing planned for "net.cut".
  EXPECT_EQ(d.Pick(3, "sched.step"), 2u);  // 100 saturates to the last candidate
  EXPECT_FALSE(d.Chance(1, io_sim::kPpm, "net.cut"));
  EXPECT_TRUE(d.Chance(1, io_sim::kPpm, "net.cut"));
  EXPECT_EQ(d.Below(10, "net.cut_at"), 5u);
  EXPECT_FALSE(d.Chance(1, io_sim::kPpm, "net.cut"));  // the plan is used up
  EXPECT_EQ(d.planned_used(), 4u);
  d.Plan("net.reset", 0);
  d.Clear();
  EXPECT_FALSE(d.Chance(1, io_sim::kPpm, "net.reset"));
}

// Three clients' statements, with nothing planned: every one is answered and the network, asked
// about every write, was told "no fault" each time.
TEST(ScenarioTest, WithNothingPlannedEveryStatementIsAnswered) {
  ScenarioOptions options;
  options.pool_size = 3;  // no client waits for another to leave
  Scenario scenario(options);
  scenario.Add(0, Intent{Intent::Kind::kInsert, 1});
  scenario.Add(1, Intent{Intent::Kind::kRead, 1});
  scenario.Add(2, Intent{Intent::Kind::kBegin});
  scenario.Add(2, Intent{Intent::Kind::kUpdate, 2});
  scenario.Add(2, Intent{Intent::Kind::kCommit});
  ASSERT_TRUE(scenario.Advance(50'000));
  EXPECT_EQ(scenario.answers(), 5u) << scenario.Report();
  EXPECT_GT(scenario.decisions().decisions(), 20u);
  EXPECT_EQ(scenario.decisions().planned_used(), 0u);
  scenario.Finish();
  EXPECT_TRUE(scenario.ok()) << scenario.Report();
}

struct ScriptResult {
  uint64_t hash = 0;
  uint64_t answers = 0;
  bool ok = false;
  std::string report;
};

// One hand-written scenario: a write, then (if `reset`) the next write on the wire is cut short
// by a reset, then a read; a cut, a delay, a crash and a pause follow.
ScriptResult RunScript(bool reset) {
  Scenario scenario(ScenarioOptions{});
  scenario.Add(0, Intent{Intent::Kind::kInsert, 0});
  scenario.Advance(20'000);
  if (reset) {
    scenario.decisions().Plan("net.reset", 0);
    scenario.decisions().Plan("net.reset_at", 3);
  }
  scenario.Add(0, Intent{Intent::Kind::kRead, 0});
  scenario.Add(1, Intent{Intent::Kind::kUpdate, 0});
  scenario.decisions().Plan("net.cut", 0);
  scenario.decisions().Plan("net.cut_at", 2);
  scenario.decisions().Plan("net.spike", 0);
  scenario.decisions().Plan("net.spike_us", 3'000);
  scenario.decisions().Plan("sched.step", 0);
  scenario.Advance(20'000);
  scenario.CrashNode(/*down_us=*/5'000, /*shutdown=*/false);
  scenario.Add(2, Intent{Intent::Kind::kScan});
  scenario.Advance(10'000);
  scenario.PauseNode(3'000);
  scenario.Add(1, Intent{Intent::Kind::kRead, 0});
  scenario.Finish();
  return ScriptResult{scenario.hash(), scenario.answers(), scenario.ok(), scenario.Report()};
}

TEST(ScenarioTest, AScenarioReplaysToTheSameHash) {
  const ScriptResult first = RunScript(/*reset=*/false);
  const ScriptResult second = RunScript(/*reset=*/false);
  EXPECT_TRUE(first.ok) << first.report;
  EXPECT_EQ(first.hash, second.hash);
  EXPECT_EQ(first.answers, second.answers);
}

// The reset strikes the read on its way to the proxy: the client's session breaks there and the
// read is never answered; the oracles accept that (a reset on the client's own link).
TEST(ScenarioTest, APlannedResetChangesTheRunAndOnlyThat) {
  const ScriptResult clean = RunScript(/*reset=*/false);
  const ScriptResult broken = RunScript(/*reset=*/true);
  EXPECT_TRUE(broken.ok) << broken.report;
  EXPECT_NE(clean.hash, broken.hash);
  EXPECT_EQ(broken.answers + 1, clean.answers);
}

// A cancel whose connection gets through only after its session ended (the client left, logged
// in again and runs its next statement) carries the old session's key: it cancels nothing.
// Shrunk by the property from a case where the client sent the new session's key instead.
TEST(ScenarioTest, ACancelThatArrivesAfterItsSessionEndedCancelsNothing) {
  Scenario scenario(ScenarioOptions{});
  scenario.Add(1, Intent{Intent::Kind::kSet, 0});
  scenario.Advance(700);
  scenario.Add(1, Intent{Intent::Kind::kSleep, 1});
  scenario.decisions().Plan("net.spike", 0);  // the cancel's connect takes 10 ms
  scenario.decisions().Plan("net.spike_us", 10'200);
  scenario.Cancel(1, /*delay_us=*/0);  // the SET is still in flight
  scenario.Advance(0);
  scenario.Disconnect(1, /*abortive=*/false);
  scenario.Finish();
  EXPECT_TRUE(scenario.ok()) << scenario.Report();
  EXPECT_EQ(scenario.decisions().planned_used(), 2u);
}

// A client's read meets a black hole on the proxy's server connection; the client leaves, the
// proxy closes that connection and opens another for the next client. The node hears of the
// close only when the black hole resets, so the accounting at the end waits that long: until
// then the node still counts the old session, one more than the proxy may hold. Shrunk by the
// property from a case where the accounting did not wait.
TEST(ScenarioTest, AConnectionClosedIntoABlackHoleIsNotCountedAgainstThePool) {
  Scenario scenario(ScenarioOptions{});
  scenario.Add(1, Intent{Intent::Kind::kRead, 0});
  scenario.Add(0, Intent{Intent::Kind::kBegin});
  scenario.Add(2, Intent{Intent::Kind::kSet, 0});
  for (int i = 0; i < 3; ++i) scenario.decisions().Plan("net.black_hole", PlannedDecisions::kLast);
  scenario.decisions().Plan("net.black_hole", 0);
  scenario.decisions().Plan("net.black_hole_at", 53);
  scenario.Advance(10'000);
  scenario.Disconnect(1, /*abortive=*/false);
  scenario.Advance(11'000);
  scenario.Disconnect(1, /*abortive=*/false);
  scenario.Finish();
  EXPECT_TRUE(scenario.ok()) << scenario.Report();
  EXPECT_EQ(scenario.decisions().planned_used(), 5u);
}

}  // namespace
}  // namespace switchyard::sim
