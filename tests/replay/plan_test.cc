// Pacing arithmetic (--speed, --skip-idle) and the --from/--to window.
#include "replay/plan.h"

#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include <algorithm>
#include <vector>

#include "tests/replay/replay_test_util.h"

namespace switchyard::replay {
namespace {

using testing::Q;
using testing::TraceBuilder;
using testing::Z;

constexpr int64_t kSecond = 1'000'000;

TEST(PacerTest, KeepsCapturedGapsFromTheEarliestTime) {
  Pacer pacer(PacingOptions{}, {5 * kSecond, 7 * kSecond, 5 * kSecond + 300});
  EXPECT_EQ(pacer.DueOffsetUs(5 * kSecond), 0);
  EXPECT_EQ(pacer.DueOffsetUs(5 * kSecond + 300), 300);
  EXPECT_EQ(pacer.DueOffsetUs(7 * kSecond), 2 * kSecond);
  EXPECT_EQ(pacer.DueOffsetUs(0), 0);  // before the earliest: at once
}

TEST(PacerTest, SpeedScalesAndMaxDoesNotWait) {
  PacingOptions twice;
  twice.speed = 2;
  Pacer fast(twice, {0, 3 * kSecond});
  EXPECT_EQ(fast.DueOffsetUs(3 * kSecond), 1'500'000);
  PacingOptions half;
  half.speed = 0.5;
  EXPECT_EQ(Pacer(half, {0, 3 * kSecond}).DueOffsetUs(3 * kSecond), 6 * kSecond);
  PacingOptions max;
  max.no_waiting = true;
  EXPECT_EQ(Pacer(max, {0, 3 * kSecond}).DueOffsetUs(3 * kSecond), 0);
}

TEST(PacerTest, SkipIdleCutsLongStretchesToOneSecond) {
  PacingOptions options;
  options.skip_idle = true;
  Pacer pacer(options, {0, kSecond / 2, 10 * kSecond, 10 * kSecond + 200'000, 60 * kSecond});
  EXPECT_EQ(pacer.DueOffsetUs(kSecond / 2), kSecond / 2);  // short gap kept
  EXPECT_EQ(pacer.DueOffsetUs(10 * kSecond), 1'500'000);   // 9.5 s became 1 s
  EXPECT_EQ(pacer.DueOffsetUs(10 * kSecond + 200'000), 1'700'000);
  EXPECT_EQ(pacer.DueOffsetUs(60 * kSecond), 2'700'000);
  EXPECT_EQ(pacer.DueOffsetUs(5 * kSecond), 1'500'000);  // inside a cut stretch
  options.speed = 2;
  EXPECT_EQ(Pacer(options, {0, 10 * kSecond}).DueOffsetUs(10 * kSecond), kSecond / 2);
}

RC_GTEST_PROP(PacerProperty, DueTimesKeepTheCapturedOrder, (std::vector<int64_t> raw, bool skip)) {
  std::vector<int64_t> times;
  for (int64_t t : raw) times.push_back(std::abs(t % (1000 * kSecond)));
  RC_PRE(!times.empty());
  PacingOptions options;
  options.skip_idle = skip;
  Pacer pacer(options, times);
  PacingOptions plain;
  Pacer unskipped(plain, times);
  std::sort(times.begin(), times.end());
  for (size_t i = 1; i < times.size(); ++i) {
    int64_t gap = pacer.DueOffsetUs(times[i]) - pacer.DueOffsetUs(times[i - 1]);
    RC_ASSERT(gap >= 0);
    RC_ASSERT(gap <= times[i] - times[i - 1]);
    if (skip) RC_ASSERT(gap <= kIdleGapMaxUs);
  }
  RC_ASSERT(pacer.DueOffsetUs(times.back()) <= unskipped.DueOffsetUs(times.back()));
  RC_ASSERT(unskipped.DueOffsetUs(times.back()) == times.back() - times.front());
}

// A session of three request/answer exchanges at 1 s, 2 s and 3 s, the second one pipelined
// (two queries sent before the first answer).
CapturedSession ThreeExchanges() {
  TraceBuilder trace;
  trace.Open(1, 500'000);
  trace.Client(1, 1 * kSecond, Q("SELECT 1"));
  trace.Answer(1, 1 * kSecond + 10, Z());
  trace.Client(1, 2 * kSecond, Q("SELECT 2"));
  trace.Client(1, 2 * kSecond + 1, Q("SELECT 3"));
  trace.Answer(1, 2 * kSecond + 10, Z());
  trace.Answer(1, 2 * kSecond + 20, Z());
  trace.Client(1, 3 * kSecond, Q("SELECT 4"));
  trace.Answer(1, 3 * kSecond + 10, Z());
  return trace.Capture().sessions.at(0);
}

TEST(PlanTest, TheWholeSessionWithoutAWindow) {
  CapturedSession session = ThreeExchanges();
  SessionPlan plan = PlanSession(session, PacingOptions{});
  EXPECT_TRUE(plan.replay);
  EXPECT_EQ(plan.first_step, 0u);
  EXPECT_EQ(plan.end_step, 4u);
  EXPECT_EQ(plan.first_unit, 0u);
  EXPECT_EQ(plan.end_unit, 4u);
  EXPECT_EQ(plan.start_time_us, 500'000);
}

TEST(PlanTest, FromJoinsAfterAWholeAnswerAndToStopsSending) {
  CapturedSession session = ThreeExchanges();
  PacingOptions options;
  options.from_us = 2 * kSecond + 1;  // SELECT 3 is pipelined behind SELECT 2: not a join point
  SessionPlan plan = PlanSession(session, options);
  ASSERT_TRUE(plan.replay);
  EXPECT_EQ(plan.first_step, 3u);  // SELECT 4
  EXPECT_EQ(plan.first_unit, 3u);
  EXPECT_EQ(plan.end_unit, 4u);
  EXPECT_EQ(plan.start_time_us, 2 * kSecond + 1);

  options.from_us = 0;
  options.to_us = 2 * kSecond;  // SELECT 3 and 4 are after it
  plan = PlanSession(session, options);
  EXPECT_EQ(plan.end_step, 2u);
  EXPECT_EQ(plan.end_unit, 2u);  // the answers to SELECT 1 and SELECT 2
}

TEST(PlanTest, SessionsOutsideTheWindowAndFailedLoginsAreNotReplayed) {
  CapturedSession session = ThreeExchanges();
  PacingOptions options;
  options.to_us = 100;
  EXPECT_FALSE(PlanSession(session, options).replay);
  options.to_us = PacingOptions{}.to_us;
  options.from_us = 4 * kSecond;
  EXPECT_FALSE(PlanSession(session, options).replay);
  session.login_failed = true;
  EXPECT_FALSE(PlanSession(session, PacingOptions{}).replay);
}

TEST(PlanTest, AnIncompleteLastAnswerIsNotExpected) {
  TraceBuilder trace;
  trace.Open(1, 0);
  trace.Client(1, 10, Q("SELECT 1"));
  trace.Answer(1, 20, Z());
  trace.Client(1, 30, Q("SELECT pg_sleep(100)"));
  trace.Answer(1, 40, pg::BuildError("FATAL", "57P01", "terminating connection"));
  CapturedSession session = trace.Capture().sessions.at(0);
  SessionPlan plan = PlanSession(session, PacingOptions{});
  EXPECT_EQ(plan.end_step, 2u);
  EXPECT_EQ(plan.end_unit, 1u);
}

TEST(PlanTest, ScheduledTimesListStartsAndSteps) {
  Capture capture;
  capture.sessions.push_back(ThreeExchanges());
  std::vector<SessionPlan> plans = {PlanSession(capture.sessions[0], PacingOptions{})};
  std::vector<int64_t> times = ScheduledTimes(capture, plans);
  EXPECT_EQ(times,
            (std::vector<int64_t>{500'000, kSecond, 2 * kSecond, 2 * kSecond + 1, 3 * kSecond}));
}

}  // namespace
}  // namespace switchyard::replay
