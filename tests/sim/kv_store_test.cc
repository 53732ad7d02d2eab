// Tests of the simulated nodes' data and WAL (sim/kv_store.h): LSN text form, commits, partial
// replication, recycling, divergence.
#include "sim/kv_store.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

namespace switchyard::sim {
namespace {

using ::testing::ElementsAre;

uint64_t Put(KvStore& store, std::string key, std::string value, int timeline = 1) {
  return store.Commit({RowChange{.key = std::move(key), .value = std::move(value)}}, {"INSERT"},
                      timeline, "p", 1);
}

TEST(LsnTest, TextFormMatchesPostgres) {
  EXPECT_EQ(FormatLsn(0x16B3748), "0/16B3748");
  EXPECT_EQ(FormatLsn(0x16B374D848ULL), "16/B374D848");
  EXPECT_EQ(ParseLsn("16/B374D848").value(), 0x16B374D848ULL);
  EXPECT_EQ(ParseLsn("0/0").value(), 0u);
  EXPECT_FALSE(ParseLsn("16B374D848").ok());
  EXPECT_FALSE(ParseLsn("1/").ok());
  EXPECT_FALSE(ParseLsn("G/1").ok());
  EXPECT_FALSE(ParseLsn("1/123456789").ok());
}

RC_GTEST_PROP(LsnTest, ParseInvertsFormat, (uint64_t lsn)) {
  RC_ASSERT(ParseLsn(FormatLsn(lsn)).value() == lsn);
}

TEST(KvStoreTest, CommitsApplyAtomicallyAndMoveTheLsn) {
  KvStore store;
  EXPECT_EQ(store.lsn(), kLsnInitial);
  const uint64_t first = Put(store, "a", "1");
  EXPECT_GT(first, kLsnInitial);
  EXPECT_EQ(first % kWalAlignBytes, 0u);
  EXPECT_EQ(store.Commit({}, {}, 1, "p", 1), first) << "an empty transaction writes nothing";
  const uint64_t second = store.Commit(
      {RowChange{.key = "a", .deleted = true}, RowChange{.key = "b", .value = std::nullopt}},
      {"DELETE", "INSERT"}, 1, "p", 2);
  EXPECT_GT(second, first);
  EXPECT_FALSE(store.Get("a").has_value());
  EXPECT_EQ(store.Get("b"), std::optional<Value>(Value(std::nullopt)));
  ASSERT_EQ(store.wal().size(), 2u);
  EXPECT_EQ(store.wal()[1].start_lsn, first);
  EXPECT_EQ(store.wal()[1].origin_session, 2u);
  store.CheckInvariants();
}

TEST(KvStoreTest, ReplicaCopiesWholeRecordsUpToTheGivenLsn) {
  KvStore primary;
  KvStore replica;
  const uint64_t l1 = Put(primary, "a", "1");
  const uint64_t l2 = Put(primary, "b", "2");
  ASSERT_TRUE(replica.ReplicateFrom(primary, l2 - 1).ok());
  EXPECT_EQ(replica.lsn(), l1);
  EXPECT_FALSE(replica.Get("b").has_value());
  ASSERT_TRUE(replica.ReplicateFrom(primary, l2).ok());
  EXPECT_EQ(replica.rows(), primary.rows());
  EXPECT_EQ(replica.wal(), primary.wal());
  ASSERT_TRUE(replica.ReplicateFrom(primary, l2).ok()) << "idempotent";
  EXPECT_EQ(replica.records_total(), 2u);
}

TEST(KvStoreTest, DivergedHistoryIsRefused) {
  KvStore old_primary;
  KvStore replica;
  Put(old_primary, "a", "1");
  ASSERT_TRUE(replica.ReplicateFrom(old_primary, old_primary.lsn()).ok());
  KvStore other = replica;  // a second replica at the same point
  Put(old_primary, "b", "old timeline");
  ASSERT_TRUE(other.ReplicateFrom(old_primary, old_primary.lsn()).ok());
  replica.AppendEndOfRecovery(2, "r");
  Put(replica, "c", "new timeline", 2);
  absl::Status status = other.ReplicateFrom(replica, replica.lsn());
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << status;
  EXPECT_FALSE(other.Get("c").has_value()) << "nothing applied";
  other.CopyFrom(replica);
  EXPECT_EQ(other.rows(), replica.rows());
}

TEST(KvStoreTest, RecycledWalCannotBeReplayed) {
  KvStore primary(KvStoreLimits{.wal_records_max = 4});
  KvStore replica;
  for (int i = 0; i < 10; ++i) Put(primary, "k" + std::to_string(i), "v");
  EXPECT_LE(primary.wal().size(), 4u);
  EXPECT_EQ(primary.records_total(), 10u);
  absl::Status status = replica.ReplicateFrom(primary, primary.lsn());
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << status;
  EXPECT_THAT(std::string(status.message()), ::testing::HasSubstr("removed"));
  primary.CheckInvariants();
}

}  // namespace
}  // namespace switchyard::sim
