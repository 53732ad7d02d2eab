// Services: the cluster view built from health polls, and replica balancing (DESIGN.md 5).
#include <gtest/gtest.h>

#include <map>
#include <optional>
#include <variant>

#include "core/proxy.h"

namespace switchyard {
namespace {

constexpr UnitId kUnit{1};

ProxyConfig ThreeNodes() {
  ProxyConfig config;
  config.node_count = 3;
  config.health_user = "health";
  return config;
}

NodePolled Poll(uint32_t node, int64_t began_ms, bool in_recovery, uint64_t lsn,
                uint32_t timeline = 0) {
  return NodePolled{NodeId{node}, Instant::FromMs(began_ms),  true, in_recovery,
                    lsn,          in_recovery ? 0 : timeline, ""};
}

std::optional<NodeId> Chosen(const Services::Outcome& outcome) {
  EXPECT_EQ(outcome.deliveries.size(), 1u);
  return std::get<ReplicaChosen>(outcome.deliveries.at(0).reply).node;
}

TEST(ClusterServicesTest, TheConfiguredPrimaryIsPresumedUntilItsFirstPoll) {
  Services services(ThreeNodes());
  EXPECT_EQ(services.cluster().primary, NodeId{0});
  // A replica answers first: writes must still have somewhere to go.
  EXPECT_TRUE(services.Handle(Instant{}, kUnit, Poll(1, 1, true, 100)).cluster_changed);
  EXPECT_EQ(services.cluster().primary, NodeId{0});
  EXPECT_EQ(services.cluster().nodes[1].role, NodeRole::kReplica);
  services.Handle(Instant{}, kUnit, Poll(0, 2, false, 150, 1));
  EXPECT_EQ(services.cluster().primary, NodeId{0});
  EXPECT_EQ(services.cluster().primary_lsn, 150u);
  EXPECT_EQ(services.cluster().primary_poll_began, Instant::FromMs(2));
}

TEST(ClusterServicesTest, APromotedReplicaBecomesThePrimaryAndTheOldOneIsFenced) {
  Services services(ThreeNodes());
  services.Handle(Instant{}, kUnit, Poll(0, 1, false, 100, 1));
  services.Handle(Instant{}, kUnit, Poll(1, 1, true, 100));
  const uint64_t generation = services.cluster().primary_generation;
  NodePolled failed{NodeId{0}, Instant::FromMs(2), false, false, 0, 0, "connection refused"};
  services.Handle(Instant{}, kUnit, failed);
  EXPECT_EQ(services.cluster().primary, std::nullopt);
  services.Handle(Instant{}, kUnit, Poll(1, 3, false, 120, 2));
  EXPECT_EQ(services.cluster().primary, NodeId{1});
  EXPECT_GT(services.cluster().primary_generation, generation);
  // The old primary comes back on timeline 1.
  services.Handle(Instant{}, kUnit, Poll(0, 4, false, 110, 1));
  EXPECT_EQ(services.cluster().nodes[0].role, NodeRole::kFenced);
  EXPECT_EQ(services.cluster().primary, NodeId{1});
}

TEST(ClusterServicesTest, EveryPrimaryPollIsNewsEvenWhenNothingMoved) {
  Services services(ThreeNodes());
  services.Handle(Instant{}, kUnit, Poll(0, 1, false, 100, 1));
  // A unit waiting for a poll that began after its write learns from this one.
  EXPECT_TRUE(services.Handle(Instant{}, kUnit, Poll(0, 2, false, 100, 1)).cluster_changed);
  EXPECT_EQ(services.cluster().primary_poll_began, Instant::FromMs(2));
}

TEST(ClusterServicesTest, ReadsGoToTheReplicaWithFewestOutstanding) {
  Services services(ThreeNodes());
  std::map<uint32_t, int> chosen;
  std::vector<NodeId> both = {NodeId{1}, NodeId{2}};
  // Ten picks with none finished: they alternate (5 each).
  for (int i = 0; i < 10; ++i) {
    ++chosen[Chosen(services.Handle(Instant{}, kUnit, PickReplicaRequest{both}))->index];
  }
  EXPECT_EQ(chosen[1], 5);
  EXPECT_EQ(chosen[2], 5);
  // Node 1's requests finish: it is the less busy one now.
  for (int i = 0; i < 5; ++i) services.Handle(Instant{}, kUnit, NodeDone{NodeId{1}});
  EXPECT_EQ(Chosen(services.Handle(Instant{}, kUnit, PickReplicaRequest{both})), NodeId{1});
  EXPECT_EQ(Chosen(services.Handle(Instant{}, kUnit, PickReplicaRequest{{}})), std::nullopt);
}

TEST(ClusterServicesTest, TieBreaksAreSeeded) {
  auto first_picks = [](uint64_t seed) {
    ProxyConfig config = ThreeNodes();
    config.balance_seed = seed;
    Services services(config);
    std::vector<uint32_t> picks;
    for (int i = 0; i < 8; ++i) {
      auto node =
          Chosen(services.Handle(Instant{}, kUnit, PickReplicaRequest{{NodeId{1}, NodeId{2}}}));
      picks.push_back(node->index);
      services.Handle(Instant{}, kUnit, NodeDone{*node});
    }
    return picks;
  };
  EXPECT_EQ(first_picks(7), first_picks(7));
  bool some_seed_differs = false;
  for (uint64_t seed = 8; seed < 40 && !some_seed_differs; ++seed) {
    some_seed_differs = first_picks(seed) != first_picks(7);
  }
  EXPECT_TRUE(some_seed_differs);
}

}  // namespace
}  // namespace switchyard
