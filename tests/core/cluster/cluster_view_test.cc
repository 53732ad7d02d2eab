// ClusterView fed poll results by hand: roles from pg_is_in_recovery(), promotion, two primaries
// and fencing by timeline, down and up, replica lag, and the LSNs read-your-writes waits for.
#include "core/cluster/cluster_view.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace switchyard {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using Role = ClusterView::Role;

constexpr NodeId kN0{0};
constexpr NodeId kN1{1};
constexpr NodeId kN2{2};

ClusterView::PollResult Ok(NodeId node, int64_t began_ms, bool in_recovery, uint64_t lsn,
                           uint32_t timeline = 0) {
  return ClusterView::PollResult{.node = node,
                                 .began = Instant::FromMs(began_ms),
                                 .finished = Instant::FromMs(began_ms + 3),
                                 .ok = true,
                                 .in_recovery = in_recovery,
                                 .lsn = lsn,
                                 .timeline = timeline,
                                 .error = {}};
}
ClusterView::PollResult Primary(NodeId node, int64_t began_ms, uint64_t lsn, uint32_t timeline) {
  return Ok(node, began_ms, /*in_recovery=*/false, lsn, timeline);
}
ClusterView::PollResult Replica(NodeId node, int64_t began_ms, uint64_t lsn) {
  return Ok(node, began_ms, /*in_recovery=*/true, lsn);
}
ClusterView::PollResult Failed(NodeId node, int64_t began_ms, std::string error = "refused") {
  return ClusterView::PollResult{.node = node,
                                 .began = Instant::FromMs(began_ms),
                                 .finished = Instant::FromMs(began_ms + 2000),
                                 .ok = false,
                                 .in_recovery = false,
                                 .lsn = 0,
                                 .timeline = 0,
                                 .error = std::move(error)};
}

ClusterView ThreeNodes(ClusterView::Options options = {}) {
  return ClusterView({{kN0, true}, {kN1, false}, {kN2, false}}, options);
}

// Applies and checks the view's invariants, as the driver does in tests and in the simulator.
ClusterView::Changes Apply(ClusterView& view, const ClusterView::PollResult& result) {
  ClusterView::Changes changes = view.Apply(result);
  view.CheckInvariants();
  return changes;
}

TEST(ClusterViewTest, NothingIsKnownBeforeTheFirstPoll) {
  ClusterView view = ThreeNodes();
  EXPECT_EQ(view.primary(), std::nullopt) << "the configured primary is not trusted unpolled";
  EXPECT_EQ(view.primary_generation(), 0u);
  EXPECT_EQ(view.last_primary_lsn(), 0u);
  EXPECT_THAT(view.ReadableReplicas(0), IsEmpty());
  for (const auto& node : view.nodes()) {
    EXPECT_FALSE(node.up);
    EXPECT_EQ(node.role, Role::kUnknown);
  }
  EXPECT_TRUE(view.node(kN0).configured_primary);
}

TEST(ClusterViewTest, RolesComeFromRecoveryState) {
  ClusterView view = ThreeNodes();
  EXPECT_TRUE(Apply(view, Primary(kN0, 0, 500, 1)).routing);
  EXPECT_TRUE(Apply(view, Replica(kN1, 0, 400)).routing);
  EXPECT_TRUE(Apply(view, Replica(kN2, 0, 300)).routing);
  EXPECT_EQ(view.primary(), kN0);
  EXPECT_EQ(view.primary_generation(), 1u);
  EXPECT_EQ(view.node(kN1).role, Role::kReplica);
  EXPECT_THAT(view.ReadableReplicas(0), ElementsAre(kN1, kN2));
  EXPECT_EQ(view.last_primary_lsn(), 500u);
}

TEST(ClusterViewTest, ConfiguredPrimaryInRecoveryServesAsReplicaUntilAPrimaryAppears) {
  ClusterView view = ThreeNodes();
  Apply(view, Replica(kN0, 0, 700));
  Apply(view, Replica(kN1, 0, 600));
  EXPECT_EQ(view.primary(), std::nullopt);
  EXPECT_EQ(view.node(kN0).role, Role::kReplica);
  EXPECT_THAT(view.ReadableReplicas(0), ElementsAre(kN0, kN1));
  // An unconfigured node turns out to be the primary.
  Apply(view, Primary(kN2, 10, 900, 2));
  EXPECT_EQ(view.primary(), kN2);
  EXPECT_EQ(view.node(kN0).role, Role::kReplica);
  EXPECT_THAT(view.ReadableReplicas(0), ElementsAre(kN0, kN1));
}

TEST(ClusterViewTest, PromotedReplicaBecomesPrimaryAtItsFirstPollAndOldPrimaryIsFenced) {
  ClusterView view = ThreeNodes();
  Apply(view, Primary(kN0, 0, 500, 1));
  Apply(view, Replica(kN1, 0, 500));
  Apply(view, Replica(kN2, 0, 450));
  ASSERT_EQ(view.primary_generation(), 1u);

  // The primary dies: no primary, until a poll shows one.
  ClusterView::Changes changes = Apply(view, Failed(kN0, 1000));
  EXPECT_TRUE(changes.routing);
  EXPECT_EQ(view.primary(), std::nullopt);
  EXPECT_EQ(view.primary_generation(), 2u);
  EXPECT_FALSE(view.node(kN0).up);
  EXPECT_EQ(view.node(kN0).last_error, "refused");
  Apply(view, Replica(kN1, 1000, 500));
  EXPECT_EQ(view.primary(), std::nullopt) << "still in recovery: not yet promoted";

  // n1 is promoted onto timeline 2; its first poll out of recovery makes it primary.
  Apply(view, Primary(kN1, 2000, 600, 2));
  EXPECT_EQ(view.primary(), kN1);
  EXPECT_EQ(view.primary_generation(), 3u);
  EXPECT_THAT(view.ReadableReplicas(0), ElementsAre(kN2));

  // The old primary restarts, still claiming primary on timeline 1: fenced, no traffic.
  changes = Apply(view, Primary(kN0, 3000, 520, 1));
  EXPECT_TRUE(changes.routing);
  EXPECT_EQ(view.node(kN0).role, Role::kFenced);
  EXPECT_TRUE(view.node(kN0).up);
  EXPECT_EQ(view.primary(), kN1);
  EXPECT_EQ(view.primary_generation(), 3u);
  EXPECT_THAT(view.ReadableReplicas(0), ElementsAre(kN2));

  // Even with the new primary gone, the stale one never takes writes back.
  Apply(view, Failed(kN1, 4000));
  Apply(view, Primary(kN0, 4000, 520, 1));
  EXPECT_EQ(view.primary(), std::nullopt);
  EXPECT_EQ(view.node(kN0).role, Role::kFenced);

  // Rebuilt as a replica of the new primary, it serves reads again.
  Apply(view, Replica(kN0, 5000, 600));
  EXPECT_EQ(view.node(kN0).role, Role::kReplica);
  EXPECT_THAT(view.ReadableReplicas(0), ElementsAre(kN0, kN2));
}

TEST(ClusterViewTest, HigherTimelineWinsWhileBothClaimPrimary) {
  ClusterView view = ThreeNodes();
  Apply(view, Primary(kN0, 0, 500, 1));
  Apply(view, Replica(kN1, 0, 500));
  // n1 was promoted while n0 still answers (a partition the proxy does not see).
  EXPECT_TRUE(Apply(view, Primary(kN1, 1000, 510, 2)).routing);
  EXPECT_EQ(view.primary(), kN1);
  EXPECT_EQ(view.node(kN0).role, Role::kFenced);
  EXPECT_EQ(view.primary_generation(), 2u);
  // n0 keeps claiming on the lower timeline: it stays fenced, and nothing changes for routing.
  ClusterView::Changes changes = Apply(view, Primary(kN0, 1000, 530, 1));
  EXPECT_FALSE(changes.routing);
  EXPECT_TRUE(changes.lsn);
  EXPECT_EQ(view.node(kN0).role, Role::kFenced);
  EXPECT_EQ(view.primary(), kN1);
}

TEST(ClusterViewTest, EqualTimelinesKeepTheSittingPrimary) {
  ClusterView view = ThreeNodes();
  Apply(view, Primary(kN0, 0, 500, 3));
  Apply(view, Primary(kN1, 0, 900, 3));
  EXPECT_EQ(view.primary(), kN0);
  EXPECT_EQ(view.node(kN1).role, Role::kFenced);
  EXPECT_EQ(view.primary_generation(), 1u);
  // With the sitting primary gone, the other claimant on the same timeline is accepted.
  Apply(view, Failed(kN0, 1000));
  Apply(view, Primary(kN1, 1000, 910, 3));
  EXPECT_EQ(view.primary(), kN1);
  EXPECT_EQ(view.primary_generation(), 3u);
}

TEST(ClusterViewTest, PrimaryRestartedWithoutFailoverIsPrimaryAgain) {
  ClusterView view = ThreeNodes();
  Apply(view, Primary(kN0, 0, 500, 1));
  Apply(view, Failed(kN0, 1000));
  Apply(view, Primary(kN0, 2000, 500, 1));
  EXPECT_EQ(view.primary(), kN0);
  EXPECT_EQ(view.primary_generation(), 3u) << "to none and back: watermarks reset";
}

TEST(ClusterViewTest, PrimaryRebuiltAsReplicaLeavesNoPrimary) {
  ClusterView view = ThreeNodes();
  Apply(view, Primary(kN0, 0, 500, 1));
  EXPECT_TRUE(Apply(view, Replica(kN0, 1000, 500)).routing);
  EXPECT_EQ(view.primary(), std::nullopt);
  EXPECT_EQ(view.node(kN0).role, Role::kReplica);
  EXPECT_EQ(view.primary_generation(), 2u);
}

TEST(ClusterViewTest, DownAfterConsecutiveFailuresAndUpAtFirstSuccess) {
  ClusterView view = ThreeNodes({.failures_to_down = 3});
  Apply(view, Primary(kN0, 0, 500, 1));
  Apply(view, Replica(kN1, 0, 500));
  // Two failures, a success, two failures: never three in a row.
  EXPECT_FALSE(Apply(view, Failed(kN1, 1000, "timeout")).routing);
  EXPECT_FALSE(Apply(view, Failed(kN1, 2000, "timeout")).routing);
  EXPECT_EQ(view.node(kN1).consecutive_failures, 2);
  EXPECT_EQ(view.node(kN1).last_error, "timeout");
  EXPECT_THAT(view.ReadableReplicas(0), ElementsAre(kN1));
  Apply(view, Replica(kN1, 3000, 510));
  EXPECT_EQ(view.node(kN1).consecutive_failures, 0);
  EXPECT_EQ(view.node(kN1).last_error, "");
  Apply(view, Failed(kN1, 4000));
  Apply(view, Failed(kN1, 5000));
  EXPECT_TRUE(view.node(kN1).up);
  // The third in a row: down, and no reads go there.
  EXPECT_TRUE(Apply(view, Failed(kN1, 6000)).routing);
  EXPECT_FALSE(view.node(kN1).up);
  EXPECT_THAT(view.ReadableReplicas(0), IsEmpty());
  EXPECT_TRUE(Apply(view, Replica(kN1, 7000, 520)).routing);
  EXPECT_TRUE(view.node(kN1).up);
  EXPECT_EQ(view.node(kN1).role, Role::kReplica);
  EXPECT_THAT(view.ReadableReplicas(0), ElementsAre(kN1));
  // A primary within its allowance of failures stays primary.
  Apply(view, Failed(kN0, 7000));
  EXPECT_EQ(view.primary(), kN0);
}

TEST(ClusterViewTest, OneFailureIsDownByDefault) {
  ClusterView view = ThreeNodes();
  Apply(view, Replica(kN1, 0, 500));
  Apply(view, Failed(kN1, 1000));
  EXPECT_FALSE(view.node(kN1).up);
  EXPECT_EQ(view.node(kN1).role, Role::kUnknown);
}

TEST(ClusterViewTest, ReadableReplicasExcludeLaggingDownFencedAndPrimary) {
  ClusterView view(
      {{kN0, true}, {kN1, false}, {kN2, false}, {NodeId{3}, false}, {NodeId{4}, false}});
  Apply(view, Primary(kN0, 0, 1000, 2));
  Apply(view, Replica(kN1, 0, 200));
  Apply(view, Replica(kN2, 0, 100));
  Apply(view, Primary(NodeId{3}, 0, 5000, 1));  // fenced, though far "ahead"
  Apply(view, Replica(NodeId{4}, 0, 900));
  Apply(view, Failed(NodeId{4}, 1000));
  EXPECT_THAT(view.ReadableReplicas(0), ElementsAre(kN1, kN2));
  EXPECT_THAT(view.ReadableReplicas(150), ElementsAre(kN1));
  EXPECT_THAT(view.ReadableReplicas(200), ElementsAre(kN1)) << "caught up exactly counts";
  EXPECT_THAT(view.ReadableReplicas(201), IsEmpty());
}

TEST(ClusterViewTest, LsnAdvanceAloneIsNotARoutingChange) {
  ClusterView view = ThreeNodes();
  Apply(view, Primary(kN0, 0, 500, 1));
  Apply(view, Replica(kN1, 0, 400));
  ClusterView::Changes changes = Apply(view, Replica(kN1, 1000, 450));
  EXPECT_FALSE(changes.routing);
  EXPECT_TRUE(changes.lsn);
  changes = Apply(view, Replica(kN1, 2000, 450));
  EXPECT_FALSE(changes.routing);
  EXPECT_FALSE(changes.lsn);
  EXPECT_EQ(view.node(kN1).lsn, 450u);
}

TEST(ClusterViewTest, PrimaryLsnPolledAfterIsTheFirstPollThatBeganLater) {
  ClusterView view = ThreeNodes({.failures_to_down = 2});
  EXPECT_EQ(view.PrimaryLsnPolledAfter(Instant::FromMs(0)), std::nullopt) << "no primary";
  Apply(view, Primary(kN0, 0, 100, 1));
  Apply(view, Replica(kN1, 500, 90));  // a replica's poll is no evidence about the primary
  Apply(view, Primary(kN0, 1000, 200, 1));
  Apply(view, Primary(kN0, 2000, 300, 1));
  EXPECT_EQ(view.PrimaryLsnPolledAfter(Instant::FromMs(-1)), 100u);
  EXPECT_EQ(view.PrimaryLsnPolledAfter(Instant::FromMs(500)), 200u);
  // Began at the commit's instant is not after it: the poll may have read before the commit.
  EXPECT_EQ(view.PrimaryLsnPolledAfter(Instant::FromMs(1000)), 300u);
  EXPECT_EQ(view.PrimaryLsnPolledAfter(Instant::FromMs(2000)), std::nullopt) << "none yet";
  EXPECT_EQ(view.last_primary_lsn(), 300u);
  // A failed poll read nothing: the next successful one answers.
  Apply(view, Failed(kN0, 3000));
  EXPECT_EQ(view.PrimaryLsnPolledAfter(Instant::FromMs(2500)), std::nullopt);
  Apply(view, Primary(kN0, 4000, 450, 1));
  EXPECT_EQ(view.PrimaryLsnPolledAfter(Instant::FromMs(2500)), 450u);
}

TEST(ClusterViewTest, PrimaryLsnHistoryIsBoundedAndAnswersConservatively) {
  ClusterView view = ThreeNodes({.lsn_history_max = 4});
  for (int i = 0; i < 10; ++i) Apply(view, Primary(kN0, i * 1000, 100 + i * 10, 1));
  // Kept: the polls that began at 6000..9000. Older instants get the oldest kept poll, whose LSN
  // is at least the one the dropped first-poll-after read.
  EXPECT_EQ(view.PrimaryLsnPolledAfter(Instant::FromMs(0)), 160u);
  EXPECT_EQ(view.PrimaryLsnPolledAfter(Instant::FromMs(-100000)), 160u);
  EXPECT_EQ(view.PrimaryLsnPolledAfter(Instant::FromMs(7500)), 180u);
  EXPECT_EQ(view.PrimaryLsnPolledAfter(Instant::FromMs(9000)), std::nullopt);
}

TEST(ClusterViewTest, PrimaryLsnHistoryResetsWhenThePrimaryChanges) {
  ClusterView view = ThreeNodes();
  Apply(view, Primary(kN0, 0, 100, 1));
  Apply(view, Primary(kN0, 1000, 200, 1));
  Apply(view, Replica(kN1, 1000, 200));
  Apply(view, Failed(kN0, 2000));
  EXPECT_EQ(view.last_primary_lsn(), 0u);
  EXPECT_EQ(view.PrimaryLsnPolledAfter(Instant::FromMs(500)), std::nullopt);
  Apply(view, Primary(kN1, 3000, 250, 2));
  // The old primary's LSNs are gone: a commit at 500 is judged by the new primary's first poll.
  EXPECT_EQ(view.PrimaryLsnPolledAfter(Instant::FromMs(500)), 250u);
  EXPECT_EQ(view.last_primary_lsn(), 250u);
}

TEST(ClusterViewTest, DescribeIsOneLineNamingRolesAndErrors) {
  ClusterView view = ThreeNodes();
  Apply(view, Primary(kN0, 0, 0x3000060, 2));
  Apply(view, Replica(kN1, 0, 0x3000000));
  Apply(view, Failed(kN2, 0, "connect failed: refused"));
  const std::string line = view.Describe();
  EXPECT_EQ(line.find('\n'), std::string::npos);
  EXPECT_THAT(line, HasSubstr("primary=n0 generation=1"));
  EXPECT_THAT(line, HasSubstr("n0[configured-primary primary up lsn=0/3000060 timeline=2]"));
  EXPECT_THAT(line, HasSubstr("n1[replica up lsn=0/3000000]"));
  EXPECT_THAT(line,
              HasSubstr("n2[unknown down lsn=0/0 failures=1 error=\"connect failed: refused\"]"));
}

TEST(ClusterViewTest, LsnTextRoundTrips) {
  EXPECT_EQ(FormatWalLsn(0x16B3748), "0/16B3748");
  EXPECT_EQ(FormatWalLsn(0x1'0000'00A0), "1/A0");
  EXPECT_EQ(ParseWalLsn("0/16B3748"), 0x16B3748u);
  EXPECT_EQ(ParseWalLsn("FFFFFFFF/ffffffff"), 0xFFFFFFFF'FFFFFFFFu);
  EXPECT_EQ(ParseWalLsn("1/A0"), 0x1'0000'00A0u);
  for (std::string_view bad :
       {"", "/", "0/", "/0", "0x1/0", "1/2/3", "123456789/0", "g/0", "0 /1"}) {
    EXPECT_EQ(ParseWalLsn(bad), std::nullopt) << bad;
  }
}

}  // namespace
}  // namespace switchyard
