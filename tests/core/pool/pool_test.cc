// Pool: the bookkeeping under Services, checked through its counts and replies.
#include "core/pool/pool.h"

#include <gtest/gtest.h>

#include <string>

namespace switchyard {
namespace {

using Kind = CheckoutReply::Kind;

constexpr UnitId kU1{1};
constexpr UnitId kU2{2};
constexpr UnitId kU3{3};

PoolKey Key(const std::string& database) { return PoolKey{NodeId{0}, "bob", database, {}}; }

PooledConnection Connection(uint32_t index, const PoolKey& key) {
  PooledConnection connection;
  connection.conn = ConnId{index, 1};
  connection.key = key;
  return connection;
}

PoolLimits Limits(int pool_size, int max_server_connections) {
  return PoolLimits{.pool_size = pool_size,
                    .max_server_connections = max_server_connections,
                    .checkout_timeout_us = 1'000,
                    .idle_timeout_us = 5'000};
}

Kind OnlyKind(const Pool::Result& result) {
  EXPECT_EQ(result.replies.size(), 1u);
  return result.replies.empty() ? Kind::kRefused : result.replies[0].reply.kind;
}

TEST(PoolTest, CountsFollowEachSlotThroughItsLife) {
  Pool pool(Limits(3, 10));
  pool.Checkout(Instant{0}, kU1, Key("db"));
  EXPECT_EQ(pool.Counts(Key("db")).reserved, 1);
  pool.Release(Instant{1}, kU1, Connection(1, Key("db")));
  EXPECT_EQ(pool.Counts(Key("db")).reserved, 0);
  EXPECT_EQ(pool.Counts(Key("db")).idle, 1);
  pool.Checkout(Instant{2}, kU2, Key("db"));
  EXPECT_EQ(pool.Counts(Key("db")).lent, 1);
  EXPECT_EQ(pool.Counts(Key("db")).idle, 0);
  pool.Forget(kU2, Key("db"), ConnId{1, 1});
  EXPECT_EQ(pool.total(), 0);
  EXPECT_EQ(pool.Counts(Key("db")).lent, 0);
  EXPECT_EQ(pool.FindInvariantViolation(), "");
}

TEST(PoolTest, FreedSlotGoesToItsOwnKeyBeforeAnOlderWaiterOfAnother) {
  Pool pool(Limits(1, 2));
  pool.Checkout(Instant{0}, kU1, Key("a"));
  pool.Checkout(Instant{0}, kU2, Key("b"));
  pool.Checkout(Instant{1}, kU3, Key("c"));        // overall bound: waits first
  pool.Checkout(Instant{2}, UnitId{4}, Key("a"));  // per-key bound
  Pool::Result result = pool.Forget(kU1, Key("a"), ConnId{1, 1});
  ASSERT_EQ(result.replies.size(), 1u);
  EXPECT_EQ(result.replies[0].unit, UnitId{4});
  EXPECT_EQ(result.replies[0].reply.kind, Kind::kConnect);
  EXPECT_TRUE(pool.IsWaiting(kU3));
}

TEST(PoolTest, NextDeadlineIsTheEarlierOfWaiterAndIdleDeadlines) {
  Pool pool(Limits(1, 10));
  EXPECT_EQ(pool.NextDeadline(), std::nullopt);
  pool.Checkout(Instant{0}, kU1, Key("a"));
  pool.Checkout(Instant{0}, kU2, Key("b"));
  pool.Release(Instant{100}, kU2, Connection(2, Key("b")));  // idle until 5'100
  pool.Checkout(Instant{300}, kU3, Key("a"));                // waits until 1'300
  EXPECT_EQ(pool.NextDeadline(), Instant{1'300});
  EXPECT_EQ(OnlyKind(pool.Tick(Instant{1'300})), Kind::kTimedOut);
  EXPECT_EQ(pool.NextDeadline(), Instant{5'100});
}

TEST(PoolTest, ZeroTimeoutsMeanWaitAndIdleForever) {
  PoolLimits limits = Limits(1, 10);
  limits.checkout_timeout_us = 0;
  limits.idle_timeout_us = 0;
  Pool pool(limits);
  pool.Checkout(Instant{0}, kU1, Key("a"));
  pool.Checkout(Instant{0}, kU2, Key("a"));
  pool.Checkout(Instant{0}, kU3, Key("b"));
  pool.Release(Instant{0}, kU3, Connection(3, Key("b")));
  EXPECT_EQ(pool.NextDeadline(), std::nullopt);
  Pool::Result late = pool.Tick(Instant{int64_t{1} << 50});
  EXPECT_TRUE(late.replies.empty());
  EXPECT_TRUE(late.close.empty());
  EXPECT_TRUE(pool.IsWaiting(kU2));
  EXPECT_EQ(pool.Counts(Key("b")).idle, 1);
}

TEST(PoolTest, EvictionClosesIdleConnectionsOldestFirst) {
  Pool pool(Limits(3, 3));
  pool.Checkout(Instant{0}, kU1, Key("a"));
  pool.Checkout(Instant{0}, kU1, Key("a"));
  pool.Checkout(Instant{0}, kU1, Key("b"));
  pool.Release(Instant{30}, kU1, Connection(1, Key("a")));
  pool.Release(Instant{10}, kU1, Connection(2, Key("a")));  // older by the clock
  pool.Release(Instant{20}, kU1, Connection(3, Key("b")));

  Pool::Result first = pool.Checkout(Instant{40}, kU2, Key("c"));
  EXPECT_EQ(first.close, (std::vector<ConnId>{ConnId{2, 1}}));
  Pool::Result second = pool.Checkout(Instant{41}, kU3, Key("c"));
  EXPECT_EQ(second.close, (std::vector<ConnId>{ConnId{3, 1}}));
  EXPECT_EQ(pool.Counts(Key("a")).idle, 1);
}

// Found by the simulator: a released connection that another key's waiter evicts at once must
// still be reported idle first, or the driver is told to close a connection it never pooled.
TEST(PoolTest, ReleasedConnectionEvictedForAnotherKeyIsReportedIdleThenClosed) {
  Pool pool(Limits(1, 1));
  pool.Checkout(Instant{0}, kU1, Key("a"));
  pool.Checkout(Instant{1}, kU2, Key("b"));  // waits: the overall bound is full
  Pool::Result result = pool.Release(Instant{2}, kU1, Connection(1, Key("a")));
  ASSERT_EQ(result.close.size(), 1u);
  EXPECT_EQ(result.close[0], (ConnId{1, 1}));
  ASSERT_EQ(result.now_idle.size(), 1u);
  EXPECT_EQ(result.now_idle[0], (ConnId{1, 1}));
  EXPECT_EQ(OnlyKind(result), Kind::kConnect);
  EXPECT_EQ(pool.FindInvariantViolation(), "");
}

TEST(PoolTest, UnitWithSeveralSlotsReturnsThemOneByOne) {
  Pool pool(Limits(2, 10));
  EXPECT_EQ(OnlyKind(pool.Checkout(Instant{0}, kU1, Key("a"))), Kind::kConnect);
  EXPECT_EQ(OnlyKind(pool.Checkout(Instant{0}, kU1, Key("a"))), Kind::kConnect);
  pool.Forget(kU1, Key("a"), ConnId{});
  EXPECT_EQ(pool.Counts(Key("a")).reserved, 1);
  pool.Release(Instant{1}, kU1, Connection(5, Key("a")));
  EXPECT_EQ(pool.Counts(Key("a")).reserved, 0);
  EXPECT_EQ(pool.Counts(Key("a")).idle, 1);
}

// `serve` runs the pool without the linear check after each call: the same calls give the same
// replies, and the full check still finds the bookkeeping consistent afterwards.
TEST(PoolTest, WithoutTheFullCheckEachCallTheRepliesAndBookkeepingAreTheSame) {
  Pool checked(Limits(1, 2));
  Pool unchecked(Limits(1, 2), /*check_every_call=*/false);
  auto same = [&](auto call) {
    Pool::Result a = call(checked);
    Pool::Result b = call(unchecked);
    ASSERT_EQ(a.replies.size(), b.replies.size());
    for (size_t i = 0; i < a.replies.size(); ++i) {
      EXPECT_EQ(a.replies[i].unit, b.replies[i].unit);
      EXPECT_EQ(a.replies[i].reply.kind, b.replies[i].reply.kind);
    }
    EXPECT_EQ(a.now_idle, b.now_idle);
    EXPECT_EQ(a.close, b.close);
  };
  same([](Pool& p) { return p.Checkout(Instant{0}, kU1, Key("a")); });
  same([](Pool& p) { return p.Checkout(Instant{0}, kU2, Key("b")); });
  same([](Pool& p) { return p.Checkout(Instant{1}, kU3, Key("c")); });
  same([](Pool& p) { return p.Release(Instant{2}, kU1, Connection(1, Key("a"))); });
  same([](Pool& p) { return p.Tick(Instant{2'000}); });
  same([](Pool& p) { return p.Forget(kU2, Key("b"), ConnId{}); });
  same([](Pool& p) { return p.Tick(Instant{10'000}); });
  EXPECT_EQ(unchecked.total(), checked.total());
  EXPECT_EQ(unchecked.FindInvariantViolation(), "");
}

TEST(PoolDeathTest, ForgettingAnotherUnitsConnectionAbortsWithoutTheFullCheckToo) {
  Pool pool(Limits(2, 10), /*check_every_call=*/false);
  pool.Checkout(Instant{0}, kU1, Key("a"));
  pool.Release(Instant{1}, kU1, Connection(1, Key("a")));
  pool.Checkout(Instant{2}, kU1, Key("a"));
  EXPECT_DEATH(pool.Forget(kU2, Key("a"), ConnId{1, 1}), "did not lend it");
}

TEST(PoolDeathTest, ForgettingAnotherUnitsConnectionAborts) {
  Pool pool(Limits(2, 10));
  pool.Checkout(Instant{0}, kU1, Key("a"));
  pool.Release(Instant{1}, kU1, Connection(1, Key("a")));
  pool.Checkout(Instant{2}, kU1, Key("a"));
  EXPECT_DEATH(pool.Forget(kU2, Key("a"), ConnId{1, 1}), "did not lend it");
}

}  // namespace
}  // namespace switchyard
