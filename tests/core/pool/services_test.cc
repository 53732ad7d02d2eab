// Services: pooling as a unit sees it through messages, cancel keys, counters and admission.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "core/proxy.h"

namespace switchyard {
namespace {

using Kind = CheckoutReply::Kind;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

constexpr UnitId kU1{1};
constexpr UnitId kU2{2};
constexpr UnitId kU3{3};
constexpr UnitId kU4{4};

PoolKey Key(const std::string& database) {
  return PoolKey{NodeId{0}, "alice", database, {{"application_name", "app"}}};
}

ConnId Conn(uint32_t index) { return ConnId{index, 1}; }

Instant Ms(int64_t ms) { return Instant::FromMs(ms); }

ProxyConfig Config(int pool_size, int max_server_connections) {
  ProxyConfig config;
  config.pool_size = pool_size;
  config.max_server_connections = max_server_connections;
  config.checkout_timeout_ms = 1'000;
  config.server_idle_timeout_ms = 10'000;
  config.max_clients = 10;
  return config;
}

PooledConnection Connection(ConnId conn, const PoolKey& key) {
  PooledConnection connection;
  connection.conn = conn;
  connection.key = key;
  connection.parameters = {{"server_version", "15.4"}};
  connection.backend_pid = static_cast<int32_t>(1000 + conn.index);
  connection.backend_secret = 77;
  return connection;
}

// One delivered CheckoutReply, flattened for comparisons.
struct Got {
  uint64_t unit;
  Kind kind;
  std::optional<ConnId> conn;
  friend bool operator==(const Got&, const Got&) = default;
};

void PrintTo(const Got& got, std::ostream* os) {
  *os << "{unit " << got.unit << ", kind " << static_cast<int>(got.kind);
  if (got.conn) *os << ", conn " << got.conn->index;
  *os << "}";
}

std::vector<Got> Replies(const Services::Outcome& outcome) {
  std::vector<Got> replies;
  for (const Services::Delivery& delivery : outcome.deliveries) {
    const auto* reply = std::get_if<CheckoutReply>(&delivery.reply);
    if (reply == nullptr) continue;
    std::optional<ConnId> conn;
    if (reply->connection) conn = reply->connection->conn;
    replies.push_back({delivery.unit.value, reply->kind, conn});
  }
  return replies;
}

Got Reuse(UnitId unit, ConnId conn) { return {unit.value, Kind::kReuse, conn}; }
Got Connect(UnitId unit) { return {unit.value, Kind::kConnect, std::nullopt}; }
Got TimedOut(UnitId unit) { return {unit.value, Kind::kTimedOut, std::nullopt}; }

class ServicesTest : public ::testing::Test {
 protected:
  void Make(const ProxyConfig& config) { services_.emplace(config); }
  Services::Outcome Checkout(Instant now, UnitId unit, const PoolKey& key) {
    return services_->Handle(now, unit, CheckoutRequest{key});
  }
  Services::Outcome Release(Instant now, UnitId unit, ConnId conn, const PoolKey& key) {
    return services_->Handle(now, unit, ReleaseRequest{Connection(conn, key)});
  }
  Services::Outcome Forget(Instant now, UnitId unit, ConnId conn, const PoolKey& key) {
    return services_->Handle(now, unit, ForgetRequest{key, conn});
  }
  std::optional<Services> services_;
};

TEST_F(ServicesTest, ReusesTheMostRecentlyReleasedConnection) {
  Make(Config(3, 10));
  EXPECT_THAT(Replies(Checkout(Ms(0), kU1, Key("db"))), ElementsAre(Connect(kU1)));
  EXPECT_THAT(Replies(Checkout(Ms(0), kU2, Key("db"))), ElementsAre(Connect(kU2)));
  EXPECT_THAT(Release(Ms(1), kU1, Conn(1), Key("db")).now_idle, ElementsAre(Conn(1)));
  EXPECT_THAT(Release(Ms(2), kU2, Conn(2), Key("db")).now_idle, ElementsAre(Conn(2)));

  Services::Outcome outcome = Checkout(Ms(3), kU3, Key("db"));
  EXPECT_THAT(Replies(outcome), ElementsAre(Reuse(kU3, Conn(2))));
  // The unit rebuilds its server session from what the pool kept.
  const PooledConnection& kept = *std::get<CheckoutReply>(outcome.deliveries[0].reply).connection;
  EXPECT_EQ(kept.backend_pid, 1002);
  EXPECT_EQ(kept.idle_since, Ms(2));
  EXPECT_EQ(kept.key, Key("db"));
  EXPECT_THAT(Replies(Checkout(Ms(3), kU4, Key("db"))), ElementsAre(Reuse(kU4, Conn(1))));
  EXPECT_EQ(services_->counters().server_connections_opened, 2u);
  EXPECT_EQ(services_->counters().server_connections_reused, 2u);
}

TEST_F(ServicesTest, KeysDifferingInAParameterAreNotShared) {
  Make(Config(3, 10));
  PoolKey other = Key("db");
  other.parameters = {{"application_name", "other"}};
  Checkout(Ms(0), kU1, Key("db"));
  Release(Ms(1), kU1, Conn(1), Key("db"));
  EXPECT_THAT(Replies(Checkout(Ms(2), kU2, other)), ElementsAre(Connect(kU2)));
}

TEST_F(ServicesTest, QueuesAtThePerKeyBoundButServesOtherKeys) {
  Make(Config(2, 10));
  Checkout(Ms(0), kU1, Key("a"));
  Checkout(Ms(0), kU2, Key("a"));
  Services::Outcome queued = Checkout(Ms(0), kU3, Key("a"));
  EXPECT_THAT(queued.deliveries, IsEmpty());
  EXPECT_THAT(Replies(Checkout(Ms(0), kU4, Key("b"))), ElementsAre(Connect(kU4)));
}

TEST_F(ServicesTest, QueuesAtTheOverallBound) {
  Make(Config(5, 2));
  Checkout(Ms(0), kU1, Key("a"));
  Checkout(Ms(0), kU2, Key("a"));
  EXPECT_THAT(Checkout(Ms(0), kU3, Key("b")).deliveries, IsEmpty());
  EXPECT_THAT(Checkout(Ms(0), kU4, Key("a")).deliveries, IsEmpty());
}

TEST_F(ServicesTest, ReleaseHandsTheConnectionToWaitersInArrivalOrder) {
  Make(Config(1, 10));
  Checkout(Ms(0), kU1, Key("db"));
  Checkout(Ms(1), kU2, Key("db"));
  Checkout(Ms(2), kU3, Key("db"));

  Services::Outcome first = Release(Ms(3), kU1, Conn(1), Key("db"));
  EXPECT_THAT(Replies(first), ElementsAre(Reuse(kU2, Conn(1))));
  EXPECT_THAT(first.now_idle, IsEmpty());
  EXPECT_THAT(Replies(Release(Ms(4), kU2, Conn(1), Key("db"))), ElementsAre(Reuse(kU3, Conn(1))));
  Services::Outcome last = Release(Ms(5), kU3, Conn(1), Key("db"));
  EXPECT_THAT(last.deliveries, IsEmpty());
  EXPECT_THAT(last.now_idle, ElementsAre(Conn(1)));
}

TEST_F(ServicesTest, QueuedCheckoutTimesOutExactlyAtItsDeadline) {
  Make(Config(1, 10));
  Checkout(Ms(0), kU1, Key("db"));
  Checkout(Ms(10), kU2, Key("db"));
  ASSERT_EQ(services_->NextDeadline(), Ms(1'010));

  EXPECT_THAT(services_->Tick(Ms(1'010) + -1).deliveries, IsEmpty());
  EXPECT_THAT(Replies(services_->Tick(Ms(1'010))), ElementsAre(TimedOut(kU2)));
  EXPECT_EQ(services_->NextDeadline(), std::nullopt);
  // The timed-out unit is no longer waiting: the connection goes idle.
  Services::Outcome released = Release(Ms(1'020), kU1, Conn(1), Key("db"));
  EXPECT_THAT(released.deliveries, IsEmpty());
  EXPECT_THAT(released.now_idle, ElementsAre(Conn(1)));
}

TEST_F(ServicesTest, ForgetGivesTheFreedSlotToAWaiter) {
  Make(Config(1, 10));
  Checkout(Ms(0), kU1, Key("db"));
  Checkout(Ms(0), kU2, Key("db"));
  EXPECT_THAT(Replies(Forget(Ms(1), kU1, Conn(1), Key("db"))), ElementsAre(Connect(kU2)));
  EXPECT_EQ(services_->counters().server_connections_opened, 2u);
}

TEST_F(ServicesTest, ForgetOfAnUnopenedSlotFreesIt) {
  Make(Config(1, 10));
  Checkout(Ms(0), kU1, Key("db"));
  Checkout(Ms(0), kU2, Key("db"));
  EXPECT_THAT(Replies(Forget(Ms(1), kU1, ConnId{}, Key("db"))), ElementsAre(Connect(kU2)));
}

TEST_F(ServicesTest, FreedOverallSlotGoesToTheOldestWaiter) {
  Make(Config(1, 1));
  Checkout(Ms(0), kU1, Key("a"));
  Checkout(Ms(1), kU2, Key("b"));
  Checkout(Ms(2), kU3, Key("c"));
  EXPECT_THAT(Replies(Forget(Ms(3), kU1, Conn(1), Key("a"))), ElementsAre(Connect(kU2)));
  EXPECT_THAT(Replies(Forget(Ms(4), kU2, Conn(2), Key("b"))), ElementsAre(Connect(kU3)));
}

TEST_F(ServicesTest, EvictsTheLeastRecentlyUsedIdleConnectionOfAnotherKey) {
  Make(Config(2, 2));
  Checkout(Ms(0), kU1, Key("a"));
  Checkout(Ms(0), kU2, Key("b"));
  Release(Ms(1), kU1, Conn(1), Key("a"));
  Release(Ms(2), kU2, Conn(2), Key("b"));

  Services::Outcome outcome = Checkout(Ms(3), kU3, Key("c"));
  EXPECT_THAT(Replies(outcome), ElementsAre(Connect(kU3)));
  EXPECT_THAT(outcome.close, ElementsAre(Conn(1)));
  EXPECT_THAT(Replies(Checkout(Ms(4), kU4, Key("b"))), ElementsAre(Reuse(kU4, Conn(2))));
}

TEST_F(ServicesTest, ReleasedConnectionMakesRoomForAnotherKeysWaiter) {
  Make(Config(1, 1));
  Checkout(Ms(0), kU1, Key("a"));
  Checkout(Ms(1), kU2, Key("b"));
  Services::Outcome outcome = Release(Ms(2), kU1, Conn(1), Key("a"));
  EXPECT_THAT(Replies(outcome), ElementsAre(Connect(kU2)));
  EXPECT_THAT(outcome.close, ElementsAre(Conn(1)));
  // Pooled first, so the driver closes a connection the pool owns (found by the simulator).
  EXPECT_THAT(outcome.now_idle, ElementsAre(Conn(1)));
}

TEST_F(ServicesTest, IdleConnectionIsClosedAtTheIdleTimeout) {
  Make(Config(2, 10));
  Checkout(Ms(0), kU1, Key("db"));
  Release(Ms(5), kU1, Conn(1), Key("db"));
  ASSERT_EQ(services_->NextDeadline(), Ms(10'005));
  EXPECT_THAT(services_->Tick(Ms(10'005) + -1).close, IsEmpty());
  EXPECT_THAT(services_->Tick(Ms(10'005)).close, ElementsAre(Conn(1)));
  EXPECT_THAT(Replies(Checkout(Ms(10'006), kU2, Key("db"))), ElementsAre(Connect(kU2)));
}

TEST_F(ServicesTest, LostIdleConnectionIsDroppedAndItsSlotReused) {
  Make(Config(1, 10));
  Checkout(Ms(0), kU1, Key("db"));
  Release(Ms(1), kU1, Conn(1), Key("db"));
  EXPECT_THAT(services_->IdleConnectionLost(Ms(2), Conn(1)).close, ElementsAre(Conn(1)));
  EXPECT_THAT(services_->IdleConnectionLost(Ms(2), Conn(1)).close, IsEmpty());
  EXPECT_THAT(Replies(Checkout(Ms(3), kU2, Key("db"))), ElementsAre(Connect(kU2)));
}

TEST_F(ServicesTest, LostReportForALentConnectionIsIgnored) {
  Make(Config(1, 10));
  Checkout(Ms(0), kU1, Key("db"));
  Release(Ms(1), kU1, Conn(1), Key("db"));
  Checkout(Ms(2), kU2, Key("db"));  // lends Conn(1) to kU2
  EXPECT_THAT(services_->IdleConnectionLost(Ms(3), Conn(1)).close, IsEmpty());
  EXPECT_THAT(Release(Ms(4), kU2, Conn(1), Key("db")).now_idle, ElementsAre(Conn(1)));
}

TEST_F(ServicesTest, CancelCheckoutLeavesTheQueue) {
  Make(Config(1, 10));
  Checkout(Ms(0), kU1, Key("db"));
  Checkout(Ms(0), kU2, Key("db"));
  Checkout(Ms(0), kU3, Key("db"));
  // The withdrawn unit hears back once, so it knows no connection is on its way.
  EXPECT_THAT(Replies(services_->Handle(Ms(1), kU2, CancelCheckoutRequest{})),
              ElementsAre(Got{kU2.value, Kind::kCancelled, std::nullopt}));
  // A unit not waiting gets nothing.
  EXPECT_THAT(services_->Handle(Ms(1), kU2, CancelCheckoutRequest{}).deliveries, IsEmpty());
  EXPECT_THAT(Replies(Release(Ms(2), kU1, Conn(1), Key("db"))), ElementsAre(Reuse(kU3, Conn(1))));
}

TEST_F(ServicesTest, RefusesWhenThePoolCanNeverServe) {
  Make(Config(0, 10));
  EXPECT_THAT(Replies(Checkout(Ms(0), kU1, Key("db"))),
              ElementsAre(Got{kU1.value, Kind::kRefused, std::nullopt}));
  Make(Config(5, 0));
  EXPECT_THAT(Replies(Checkout(Ms(0), kU1, Key("db"))),
              ElementsAre(Got{kU1.value, Kind::kRefused, std::nullopt}));
}

std::vector<uint64_t> CancelTargets(const Services::Outcome& outcome) {
  std::vector<uint64_t> targets;
  for (const Services::Delivery& delivery : outcome.deliveries) {
    if (std::holds_alternative<CancelDelivered>(delivery.reply)) {
      targets.push_back(delivery.unit.value);
    }
  }
  return targets;
}

TEST_F(ServicesTest, CancelReachesOnlyTheUnitThatRegisteredTheKey) {
  Make(Config(1, 10));
  services_->Handle(Ms(0), kU1, RegisterCancelKeyRequest{7, 42});
  services_->Handle(Ms(0), kU2, RegisterCancelKeyRequest{8, 43});

  Services::Outcome outcome = services_->Handle(Ms(1), kU3, CancelRequest{7, 42});
  EXPECT_THAT(CancelTargets(outcome), ElementsAre(kU1.value));
  EXPECT_EQ(outcome.deliveries.size(), 1u);
  EXPECT_EQ(services_->counters().cancels_forwarded, 1u);

  EXPECT_THAT(services_->Handle(Ms(1), kU3, CancelRequest{7, 43}).deliveries, IsEmpty());
  EXPECT_EQ(services_->counters().cancels_forwarded, 1u);
}

TEST_F(ServicesTest, UnregisteredKeyNoLongerCancels) {
  Make(Config(1, 10));
  services_->Handle(Ms(0), kU1, RegisterCancelKeyRequest{7, 42});
  // Another unit cannot drop the key.
  services_->Handle(Ms(0), kU2, UnregisterCancelKeyRequest{7, 42});
  EXPECT_THAT(CancelTargets(services_->Handle(Ms(1), kU3, CancelRequest{7, 42})),
              ElementsAre(kU1.value));
  services_->Handle(Ms(2), kU1, UnregisterCancelKeyRequest{7, 42});
  EXPECT_THAT(services_->Handle(Ms(3), kU3, CancelRequest{7, 42}).deliveries, IsEmpty());
}

TEST_F(ServicesTest, FirstUnitToRegisterAKeyKeepsIt) {
  Make(Config(1, 10));
  services_->Handle(Ms(0), kU1, RegisterCancelKeyRequest{7, 42});
  services_->Handle(Ms(0), kU2, RegisterCancelKeyRequest{7, 42});
  EXPECT_THAT(CancelTargets(services_->Handle(Ms(1), kU3, CancelRequest{7, 42})),
              ElementsAre(kU1.value));
}

TEST_F(ServicesTest, ClientGoneLeavesTheQueueAndDropsItsCancelKeys) {
  Make(Config(1, 10));
  ASSERT_TRUE(services_->AdmitClient());
  ASSERT_TRUE(services_->AdmitClient());
  Checkout(Ms(0), kU1, Key("db"));
  Checkout(Ms(0), kU2, Key("db"));
  services_->Handle(Ms(0), kU2, RegisterCancelKeyRequest{9, 99});

  services_->ClientGone(kU2);
  EXPECT_EQ(services_->counters().clients_active, 1u);
  Services::Outcome released = Release(Ms(1), kU1, Conn(1), Key("db"));
  EXPECT_THAT(released.deliveries, IsEmpty());
  EXPECT_THAT(released.now_idle, ElementsAre(Conn(1)));
  EXPECT_THAT(services_->Handle(Ms(2), kU3, CancelRequest{9, 99}).deliveries, IsEmpty());
}

TEST_F(ServicesTest, AdmitsUpToMaxClients) {
  ProxyConfig config = Config(1, 10);
  config.max_clients = 2;
  Make(config);
  EXPECT_TRUE(services_->AdmitClient());
  EXPECT_TRUE(services_->AdmitClient());
  EXPECT_FALSE(services_->AdmitClient());
  EXPECT_EQ(services_->counters().clients_active, 2u);
  services_->ClientGone(kU1);
  EXPECT_TRUE(services_->AdmitClient());
  EXPECT_FALSE(services_->AdmitClient());
}

TEST_F(ServicesTest, CountersDeltasAddUp) {
  Make(Config(1, 10));
  services_->Handle(Ms(0), kU1, CountersDelta{1, 10, 2, 3, 4});
  services_->Handle(Ms(0), kU2, CountersDelta{1, 5, 0, 0, 1});
  const Counters& counters = services_->counters();
  EXPECT_EQ(counters.clients_accepted, 2u);
  EXPECT_EQ(counters.queries, 15u);
  EXPECT_EQ(counters.protocol_errors, 2u);
  EXPECT_EQ(counters.auth_failures, 3u);
  EXPECT_EQ(counters.server_losses, 5u);
}

// Broken promises of the calling code stop the process instead of letting counts drift.
TEST(ServicesDeathTest, ReleasingAConnectionNeverLentAborts) {
  Services services(Config(1, 10));
  EXPECT_DEATH(services.Handle(Ms(0), kU1, ReleaseRequest{Connection(Conn(1), Key("db"))}),
               "without holding a slot");
}

TEST(ServicesDeathTest, ReleasingTwiceAborts) {
  Services services(Config(2, 10));
  services.Handle(Ms(0), kU1, CheckoutRequest{Key("db")});
  services.Handle(Ms(1), kU1, ReleaseRequest{Connection(Conn(1), Key("db"))});
  EXPECT_DEATH(services.Handle(Ms(2), kU1, ReleaseRequest{Connection(Conn(1), Key("db"))}),
               "did not lend it");
}

TEST(ServicesDeathTest, SecondCheckoutWhileWaitingAborts) {
  Services services(Config(1, 10));
  services.Handle(Ms(0), kU1, CheckoutRequest{Key("db")});
  services.Handle(Ms(0), kU2, CheckoutRequest{Key("db")});
  EXPECT_DEATH(services.Handle(Ms(0), kU2, CheckoutRequest{Key("other")}), "already waiting");
}

TEST(ServicesDeathTest, ClientGoneWithoutAdmissionAborts) {
  Services services(Config(1, 10));
  EXPECT_DEATH(services.ClientGone(kU1), "no admitted client");
}

}  // namespace
}  // namespace switchyard
