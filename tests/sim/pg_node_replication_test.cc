// Tests of simulated nodes as a cluster: LSNs, replicas that apply the primary's WAL only when
// told, read-only refusals (25006), promotion, divergence after failover, and node faults
// (crash, restart, shutdown, pause, slowness).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "sim/pg_node.h"
#include "tests/sim/pg_test_client.h"

namespace switchyard::sim {
namespace {

using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::Not;
using testing::TestClient;
using testing::WithoutParameterStatus;

NodeOptions Named(std::string name, NodeRole role) {
  NodeOptions options;
  options.name = std::move(name);
  options.role = role;
  return options;
}

class PgClusterTest : public ::testing::Test {
 protected:
  PgClusterTest()
      : primary_(Named("p", NodeRole::kPrimary)), replica_(Named("r", NodeRole::kReplica)) {}
  std::unique_ptr<TestClient> Connect(PgNode& node, uint64_t id) {
    auto client = std::make_unique<TestClient>(node, id, &now_);
    client->Startup();
    return client;
  }
  // The single value of a one-row, one-column answer.
  static std::string Scalar(const std::vector<std::string>& answer) {
    for (const std::string& m : answer) {
      if (m.rfind("D:", 0) == 0) return m.substr(2);
    }
    return "<none>";
  }

  Instant now_;
  PgNode primary_;
  PgNode replica_;
};

TEST_F(PgClusterTest, LsnMovesForwardOnEveryWriteCommitOnly) {
  auto c = Connect(primary_, 1);
  const std::string start = Scalar(c->Query("SELECT pg_current_wal_lsn()"));
  EXPECT_EQ(start, FormatLsn(kLsnInitial));
  uint64_t previous = primary_.lsn();
  for (int i = 0; i < 20; ++i) {
    c->Query("INSERT INTO kv VALUES ('k" + std::to_string(i) + "', 'v')");
    EXPECT_GT(primary_.lsn(), previous);
    EXPECT_EQ(Scalar(c->Query("SELECT pg_current_wal_insert_lsn()")), FormatLsn(primary_.lsn()));
    previous = primary_.lsn();
  }
  c->Query(
      "SELECT v FROM kv WHERE k = 'k1'; BEGIN; UPDATE kv SET v = 'x' WHERE k = 'k1'; "
      "ROLLBACK");
  EXPECT_EQ(primary_.lsn(), previous) << "reads and rollbacks write no WAL";
  EXPECT_THAT(
      c->Query("SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()"),
      ElementsAre("T:pg_is_in_recovery,pg_last_wal_replay_lsn", "D:f|\\N", "C:SELECT 1", "Z:I"));
  const WalRecord& last = primary_.store().wal().back();
  EXPECT_EQ(last.origin_node, "p");
  EXPECT_EQ(last.origin_session, 1u);
  EXPECT_THAT(last.statements, ElementsAre("INSERT INTO kv VALUES ('k19', 'v')"));
}

TEST_F(PgClusterTest, ReplicaAppliesCommitsOnlyWhenToldAndRefusesWrites) {
  auto w = Connect(primary_, 1);
  auto r = Connect(replica_, 1);
  w->Query("INSERT INTO kv VALUES ('a', '1')");
  const uint64_t first = primary_.lsn();
  w->Query("INSERT INTO kv VALUES ('b', '2')");
  EXPECT_THAT(r->Query("SELECT count(*) FROM kv"), Contains("D:0"));
  ASSERT_TRUE(replica_.ReplicateFrom(primary_, first, now_).ok());
  EXPECT_THAT(r->Query("SELECT k FROM kv ORDER BY k"),
              ElementsAre("T:k", "D:a", "C:SELECT 1", "Z:I"));
  EXPECT_EQ(Scalar(r->Query("SELECT pg_last_wal_replay_lsn()")), FormatLsn(first));
  ASSERT_TRUE(replica_.ReplicateFrom(primary_, first + 1, now_).ok());
  EXPECT_EQ(replica_.lsn(), first) << "a record is applied whole or not at all";
  ASSERT_TRUE(replica_.ReplicateFrom(primary_, primary_.lsn(), now_).ok());
  EXPECT_THAT(r->Query("SELECT count(*) FROM kv"), Contains("D:2"));
  EXPECT_EQ(replica_.store().rows(), primary_.store().rows());

  EXPECT_THAT(r->Query("INSERT INTO kv VALUES ('c', '3')"), ElementsAre("E:25006", "Z:I"));
  EXPECT_THAT(r->Query("UPDATE kv SET v = 'x' WHERE k = 'a'"), ElementsAre("E:25006", "Z:I"));
  EXPECT_THAT(r->Query("SELECT v FROM kv WHERE k = 'a' FOR UPDATE"), ElementsAre("E:25006", "Z:I"));
  EXPECT_THAT(r->Query("COPY kv FROM STDIN"), ElementsAre("E:25006", "Z:I"));
  EXPECT_THAT(r->Query("LISTEN ch"), ElementsAre("E:25006", "Z:I"));
  EXPECT_THAT(r->Query("BEGIN READ WRITE"), ElementsAre("E:0A000", "Z:E"));
  r->Query("ROLLBACK");
  EXPECT_THAT(r->Query("SELECT pg_current_wal_lsn()"), ElementsAre("E:55000", "Z:I"));
  EXPECT_THAT(r->Query("SELECT pg_is_in_recovery(); SHOW transaction_read_only; SHOW "
                       "in_hot_standby"),
              ElementsAre("T:pg_is_in_recovery", "D:t", "C:SELECT 1", "T:transaction_read_only",
                          "D:on", "C:SHOW", "T:in_hot_standby", "D:on", "C:SHOW", "Z:I"));
  EXPECT_EQ(replica_.counters().read_only_refusals, 4u);
  for (const WalRecord& record : replica_.store().wal()) EXPECT_EQ(record.origin_node, "p");
}

TEST_F(PgClusterTest, ReadOnlyTransactionsOnThePrimaryRefuseWrites) {
  auto c = Connect(primary_, 1);
  EXPECT_THAT(c->Query("BEGIN READ ONLY; INSERT INTO kv VALUES ('a', '1')"),
              ElementsAre("C:BEGIN", "E:25006", "Z:E"));
  c->Query("ROLLBACK");
  EXPECT_THAT(c->Query("START TRANSACTION ISOLATION LEVEL SERIALIZABLE, READ ONLY; SHOW "
                       "transaction_isolation; DELETE FROM kv; COMMIT"),
              ElementsAre("C:START TRANSACTION", "T:transaction_isolation", "D:serializable",
                          "C:SHOW", "E:25006", "Z:E"));
  c->Query("ROLLBACK");
  EXPECT_THAT(c->Query("SET default_transaction_read_only = on"),
              ElementsAre("C:SET", "S:default_transaction_read_only=on", "Z:I"));
  EXPECT_THAT(c->Query("INSERT INTO kv VALUES ('a', '1')"), ElementsAre("E:25006", "Z:I"));
  EXPECT_THAT(c->Query("BEGIN READ WRITE; INSERT INTO kv VALUES ('a', '1'); COMMIT"),
              ElementsAre("C:BEGIN", "C:INSERT 0 1", "C:COMMIT", "Z:I"));
}

TEST_F(PgClusterTest, PromotionEndsRecoveryOnANewTimeline) {
  auto w = Connect(primary_, 1);
  w->Query("INSERT INTO kv VALUES ('a', '1')");
  ASSERT_TRUE(replica_.ReplicateFrom(primary_, primary_.lsn(), now_).ok());
  auto r = Connect(replica_, 1);
  const uint64_t replayed = replica_.lsn();
  ASSERT_TRUE(replica_.Promote(now_).ok());
  EXPECT_FALSE(replica_.in_recovery());
  EXPECT_EQ(replica_.timeline(), 2);
  EXPECT_GT(replica_.lsn(), replayed) << "the end-of-recovery record";
  EXPECT_THAT(
      r->Query("SELECT pg_is_in_recovery()"),
      ElementsAre("T:pg_is_in_recovery", "D:f", "C:SELECT 1", "S:in_hot_standby=off", "Z:I"));
  EXPECT_THAT(r->Query("INSERT INTO kv VALUES ('b', '2')"), ElementsAre("C:INSERT 0 1", "Z:I"));
  EXPECT_EQ(replica_.store().wal().back().timeline, 2);
  EXPECT_EQ(Scalar(r->Query("SELECT pg_last_wal_replay_lsn()")), FormatLsn(replayed))
      << "stays at the last replayed record";
  EXPECT_FALSE(replica_.Promote(now_).ok());
  EXPECT_FALSE(replica_.ReplicateFrom(primary_, primary_.lsn(), now_).ok()) << "not a replica";
}

TEST_F(PgClusterTest, DivergedNodesAreDetectedAndRebuilt) {
  PgNode other(Named("r2", NodeRole::kReplica));
  auto w = Connect(primary_, 1);
  w->Query("INSERT INTO kv VALUES ('a', '1')");
  ASSERT_TRUE(replica_.ReplicateFrom(primary_, primary_.lsn(), now_).ok());
  w->Query("INSERT INTO kv VALUES ('b', 'lost')");
  ASSERT_TRUE(other.ReplicateFrom(primary_, primary_.lsn(), now_).ok()) << "r2 got 'b' too";
  primary_.Crash();
  EXPECT_FALSE(replica_.ReplicateFrom(primary_, primary_.lsn(), now_).ok()) << "primary is down";
  ASSERT_TRUE(replica_.Promote(now_).ok());
  auto n = Connect(replica_, 2);
  n->Query("INSERT INTO kv VALUES ('c', '3')");
  absl::Status diverged = other.ReplicateFrom(replica_, replica_.lsn(), now_);
  EXPECT_EQ(diverged.code(), absl::StatusCode::kFailedPrecondition) << diverged;
  // The old primary comes back still claiming to be a primary on the old timeline.
  primary_.Restart(now_);
  EXPECT_FALSE(primary_.in_recovery());
  EXPECT_LT(primary_.timeline(), replica_.timeline());
  primary_.RebuildAsReplicaOf(replica_, now_);
  other.RebuildAsReplicaOf(replica_, now_);
  EXPECT_TRUE(primary_.in_recovery());
  EXPECT_EQ(primary_.store().rows(), replica_.store().rows());
  EXPECT_FALSE(primary_.store().Get("b").has_value()) << "the unreplicated commit is gone";
  n->Query("INSERT INTO kv VALUES ('d', '4')");
  EXPECT_TRUE(other.ReplicateFrom(replica_, replica_.lsn(), now_).ok());
  EXPECT_TRUE(other.store().Get("d").has_value());
}

TEST_F(PgClusterTest, CrashLosesUncommittedWorkAndKeepsCommittedData) {
  auto a = Connect(primary_, 1);
  auto b = Connect(primary_, 2);
  a->Query("INSERT INTO kv VALUES ('kept', '1')");
  b->Query("BEGIN; INSERT INTO kv VALUES ('lost', '1')");
  const uint64_t lsn = primary_.lsn();
  primary_.Crash();
  EXPECT_FALSE(primary_.up());
  EXPECT_TRUE(a->WantsClose());
  EXPECT_THAT(primary_.SessionIds(), IsEmpty());
  EXPECT_THAT(b->Query("COMMIT"), IsEmpty()) << "a crashed node answers nothing";
  TestClient refused(primary_, 3, &now_);
  EXPECT_TRUE(refused.WantsClose());
  primary_.Restart(now_);
  EXPECT_EQ(primary_.lsn(), lsn);
  auto c = Connect(primary_, 4);
  EXPECT_THAT(c->Query("SELECT k FROM kv ORDER BY k"),
              ElementsAre("T:k", "D:kept", "C:SELECT 1", "Z:I"));
  primary_.CheckInvariants();
}

TEST_F(PgClusterTest, ShutdownSendsFatalToEverySession) {
  auto a = Connect(primary_, 1);
  a->Query("BEGIN; INSERT INTO kv VALUES ('x', '1')");
  primary_.Shutdown(now_);
  EXPECT_THAT(a->Read(), ElementsAre("E!:57P01"));
  EXPECT_TRUE(a->WantsClose());
  EXPECT_FALSE(primary_.up());
  EXPECT_FALSE(primary_.store().Get("x").has_value());
}

TEST_F(PgClusterTest, PausedNodeQueuesInputAndAnswersWhenResumed) {
  auto a = Connect(primary_, 1);
  primary_.Pause(true, now_);
  a->Send(pg::Query{.sql = "SELECT pg_sleep(0.001)"}.Encode());
  EXPECT_THAT(a->Read(), IsEmpty());
  EXPECT_EQ(primary_.NextDeadline(), std::nullopt);
  now_ = Instant{5000};
  primary_.Tick(now_);
  EXPECT_THAT(a->Read(), IsEmpty());
  primary_.Pause(false, now_);
  EXPECT_THAT(a->Read(), IsEmpty()) << "the sleep starts when the statement runs";
  EXPECT_EQ(primary_.NextDeadline(), Instant{6000});
  now_ = Instant{6000};
  primary_.Tick(now_);
  EXPECT_THAT(a->Read(), ElementsAre("T:pg_sleep", "D:", "C:SELECT 1", "Z:I"));
}

TEST_F(PgClusterTest, SlownessDelaysEveryStatement) {
  auto a = Connect(primary_, 1);
  primary_.SetSlowness(2000);
  a->Send(pg::Query{.sql = "INSERT INTO kv VALUES ('a', '1'); SELECT 1"}.Encode());
  EXPECT_THAT(a->Read(), IsEmpty());
  now_ = Instant{2000};
  primary_.Tick(now_);
  EXPECT_THAT(a->Read(), ElementsAre("C:INSERT 0 1"));
  EXPECT_FALSE(primary_.store().Get("a").has_value()) << "the implicit block is still open";
  EXPECT_EQ(primary_.NextDeadline(), Instant{4000});
  now_ = Instant{4000};
  primary_.Tick(now_);
  EXPECT_THAT(a->Read(), ElementsAre("T:?column?", "D:1", "C:SELECT 1", "Z:I"));
  EXPECT_TRUE(primary_.store().Get("a").has_value());
}

TEST_F(PgClusterTest, OneHealthPollQueryServesBothRoles) {
  constexpr std::string_view kPoll =
      "SELECT pg_is_in_recovery(), CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() "
      "ELSE pg_current_wal_insert_lsn() END AS lsn";
  auto w = Connect(primary_, 1);
  w->Query("INSERT INTO kv VALUES ('a', '1')");
  EXPECT_THAT(w->Query(kPoll),
              ElementsAre("T:pg_is_in_recovery,lsn", "D:f|" + FormatLsn(primary_.lsn()),
                          "C:SELECT 1", "Z:I"));
  auto r = Connect(replica_, 1);
  EXPECT_THAT(r->Query(kPoll), ElementsAre("T:pg_is_in_recovery,lsn",
                                           "D:t|" + FormatLsn(kLsnInitial), "C:SELECT 1", "Z:I"))
      << "the branch not taken is not evaluated";
  EXPECT_THAT(
      r->Query("SELECT coalesce(pg_last_wal_replay_lsn(), '0/0')::text, CASE WHEN "
               "false THEN 1 END"),
      ElementsAre("T:coalesce,case", "D:" + FormatLsn(kLsnInitial) + "|\\N", "C:SELECT 1", "Z:I"));
  EXPECT_THAT(r->Query("SELECT CASE WHEN 1 THEN 2 END"), ElementsAre("E:42804", "Z:I"));
}

TEST_F(PgClusterTest, ReplicaStartupReportsHotStandby) {
  TestClient r(replica_, 1, &now_);
  EXPECT_THAT(r.Startup(), Contains("S:in_hot_standby=on"));
  EXPECT_THAT(WithoutParameterStatus(r.Read()), IsEmpty());
}

}  // namespace
}  // namespace switchyard::sim
