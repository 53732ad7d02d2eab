// The real HealthChecker (core/cluster) polling simulated PgNodes over protocol bytes: LSNs and
// timelines as the nodes report them, pg_walfile_name itself, promotion, a crashed node, and the
// ClusterView those results build.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/auth/scram.h"
#include "core/auth/users.h"
#include "core/cluster/cluster_view.h"
#include "core/cluster/health_checker.h"
#include "sim/pg_node.h"
#include "tests/sim/pg_test_client.h"

namespace switchyard {
namespace {

using sim::NodeRole;
using sim::PgNode;
using sim::testing::TestClient;
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::SizeIs;

class CountingEnvironment : public Environment {
 public:
  ConnId NewConnId() override { return ConnId{next_conn_++, 1}; }
  void RandomBytes(char* out, size_t n) override {
    for (size_t i = 0; i < n; ++i) out[i] = static_cast<char>('a' + (counter_++ % 26));
  }

 private:
  uint32_t next_conn_ = 1;
  uint32_t counter_ = 0;
};

sim::NodeOptions Node(std::string name, NodeRole role) {
  sim::NodeOptions options;
  options.name = std::move(name);
  options.role = role;
  options.auth = sim::NodeAuth::kScramSha256;
  options.users = {{"health", "hpw"}, {"alice", "apw"}};
  options.scram_iterations = 64;
  return options;
}

// Carries the checker's actions to the nodes and the nodes' output back, until both are quiet.
class ClusterHarness : public ::testing::Test {
 protected:
  ClusterHarness()
      : secret_(*auth::ParseSecret("hpw")),
        primary_(Node("p", NodeRole::kPrimary)),
        replica_(Node("r", NodeRole::kReplica)),
        checker_(Config(), env_),
        view_({{NodeId{0}, true}, {NodeId{1}, false}}) {}

  HealthConfig Config() {
    HealthConfig config;
    config.nodes = {NodeId{0}, NodeId{1}};
    config.user = "health";
    config.secret = &secret_;
    return config;
  }
  PgNode& NodeFor(NodeId id) { return id.index == 0 ? primary_ : replica_; }

  void Deliver(const Event& event) {
    checker_.Handle(now_, event);
    checker_.CheckInvariants();
    for (const ClusterView::PollResult& result : checker_.TakeResults()) {
      results_.push_back(result);
      view_.Apply(result);
      view_.CheckInvariants();
    }
    while (auto action = checker_.PollAction()) pending_.push_back(std::move(*action));
  }

  void Carry(Action action) {
    if (auto* connect = std::get_if<Connect>(&action)) {
      PgNode& node = NodeFor(connect->node);
      ++connects_;
      node.Open(connect->conn.packed(), now_);
      if (node.WantsClose(connect->conn.packed())) {
        Deliver(ConnectFailed{connect->conn, "connection refused"});
      } else {
        open_[connect->conn] = connect->node;
        Deliver(Connected{connect->conn});
      }
    } else if (auto* send = std::get_if<Send>(&action)) {
      auto it = open_.find(send->conn);
      if (it != open_.end()) NodeFor(it->second).Receive(send->conn.packed(), send->bytes, now_);
    } else if (auto* close = std::get_if<Close>(&action)) {
      auto it = open_.find(close->conn);
      if (it != open_.end()) {
        NodeFor(it->second).Close(close->conn.packed(), now_);
        open_.erase(it);
      }
    }
  }

  // Node output to the checker; connections the node ended (or lost in a crash) are Closed.
  bool CarryNodeOutput() {
    bool any = false;
    for (auto it = open_.begin(); it != open_.end();) {
      const ConnId conn = it->first;
      PgNode& node = NodeFor(it->second);
      const uint64_t id = conn.packed();
      std::string bytes = node.TakeOutput(id);
      const bool closing = node.WantsClose(id) || !node.up();
      ++it;
      if (!bytes.empty()) {
        any = true;
        Deliver(Received{conn, bytes});
      }
      if (closing && open_.contains(conn)) {
        any = true;
        open_.erase(conn);
        Deliver(Closed{conn, "closed by server"});
      }
    }
    return any;
  }

  void Settle() {
    for (int rounds = 0; rounds < 100; ++rounds) {
      bool moved = !pending_.empty();
      while (!pending_.empty()) {
        Action action = std::move(pending_.front());
        pending_.erase(pending_.begin());
        Carry(std::move(action));
      }
      moved |= CarryNodeOutput();
      if (!moved) return;
    }
    FAIL() << "the checker and the nodes never went quiet";
  }

  // Runs one poll round at `ms` and returns its results, by node.
  std::map<uint32_t, ClusterView::PollResult> Round(int64_t ms) {
    now_ = Instant::FromMs(ms);
    results_.clear();
    auto deadline = checker_.NextDeadline();
    EXPECT_TRUE(deadline && *deadline <= now_);
    Deliver(TimerFired{});
    Settle();
    std::map<uint32_t, ClusterView::PollResult> by_node;
    for (const auto& result : results_) by_node[result.node.index] = result;
    return by_node;
  }

  // A client logged in over SCRAM, as every user of these nodes must be.
  std::unique_ptr<TestClient> Client(PgNode& node, uint64_t id) {
    auto client = std::make_unique<TestClient>(node, id, &now_);
    pg::StartupMessage startup;
    startup.parameters = {{"user", "alice"}, {"database", "app"}};
    client->Send(startup.Encode());
    EXPECT_THAT(client->Read(), ElementsAre("R:10"));
    auth::ScramClient scram("apw", "writer-nonce-bytes");
    client->Send(
        pg::SaslInitialResponse{std::string(auth::kScramMechanism), scram.ClientFirst()}.Encode());
    client->Read();
    auto first = pg::Authentication::Decode(client->raw().back().substr(pg::kHeaderSize));
    EXPECT_TRUE(first.ok());
    auto final_message = scram.HandleServerFirst(first->data);
    EXPECT_TRUE(final_message.ok()) << final_message.status();
    client->Send(pg::SaslResponse{*final_message}.Encode());
    EXPECT_THAT(client->Read(), Contains("Z:I"));
    return client;
  }

  CountingEnvironment env_;
  auth::UserSecret secret_;
  Instant now_;
  PgNode primary_;
  PgNode replica_;
  HealthChecker checker_;
  ClusterView view_;
  std::map<ConnId, NodeId> open_;
  std::vector<Action> pending_;
  std::vector<ClusterView::PollResult> results_;
  int connects_ = 0;
};

TEST(PgWalFileNameTest, NamesTheSegmentOnTheTimelineAndFailsOnAReplica) {
  Instant now;
  PgNode primary(sim::NodeOptions{});
  sim::NodeOptions replica_options;
  replica_options.role = NodeRole::kReplica;
  PgNode replica(replica_options);
  TestClient p(primary, 1, &now);
  p.Startup();
  // The initial LSN, 0/1000000, ends segment 0 (PostgreSQL names the segment before the byte).
  EXPECT_THAT(p.Query("SELECT pg_walfile_name(pg_current_wal_insert_lsn())"),
              Contains("D:000000010000000000000000"));
  EXPECT_THAT(p.Query("SELECT pg_walfile_name('0/1000001')"),
              Contains("D:000000010000000000000001"));
  EXPECT_THAT(p.Query("SELECT pg_walfile_name('A/FF000001')"),
              Contains("D:000000010000000A000000FF"));
  EXPECT_THAT(p.Query("SELECT pg_walfile_name('junk')"), Contains("E:22P02"));
  EXPECT_THAT(p.Query("SELECT pg_walfile_name(NULL)"), Contains("D:\\N"));
  TestClient r(replica, 1, &now);
  r.Startup();
  EXPECT_THAT(r.Query("SELECT pg_walfile_name('0/1000001')"), Contains("E:55000"));
  // The health poll itself works on both roles.
  EXPECT_THAT(r.Query(kHealthPollQuery), Contains("D:t|0/1000000|\\N"));
  EXPECT_THAT(p.Query(kHealthPollQuery), Contains("D:f|0/1000000|000000010000000000000000"));
}

TEST_F(ClusterHarness, PollsReportEachNodesLsnAndTimeline) {
  auto writer = Client(primary_, 1000);
  for (int i = 0; i < 5; ++i)
    writer->Query("INSERT INTO kv VALUES ('k" + std::to_string(i) + "', 'v')");
  const uint64_t half = primary_.lsn();
  writer->Query("INSERT INTO kv VALUES ('late', 'v')");
  ASSERT_TRUE(replica_.ReplicateFrom(primary_, half, now_).ok());
  ASSERT_LT(replica_.lsn(), primary_.lsn());

  auto results = Round(0);
  ASSERT_THAT(results, SizeIs(2));
  EXPECT_TRUE(results[0].ok) << results[0].error;
  EXPECT_FALSE(results[0].in_recovery);
  EXPECT_EQ(results[0].lsn, primary_.lsn());
  EXPECT_EQ(results[0].timeline, 1u);
  EXPECT_TRUE(results[1].ok) << results[1].error;
  EXPECT_TRUE(results[1].in_recovery);
  EXPECT_EQ(results[1].lsn, replica_.lsn());
  EXPECT_EQ(results[1].timeline, 0u);

  EXPECT_EQ(view_.primary(), NodeId{0});
  EXPECT_EQ(view_.last_primary_lsn(), primary_.lsn());
  EXPECT_THAT(view_.ReadableReplicas(replica_.lsn()), ElementsAre(NodeId{1}));
  EXPECT_THAT(view_.ReadableReplicas(primary_.lsn()), ::testing::IsEmpty()) << "lagging";

  // The next round reuses both connections and sees the replica catch up.
  ASSERT_TRUE(replica_.ReplicateFrom(primary_, primary_.lsn(), now_).ok());
  results = Round(1000);
  ASSERT_THAT(results, SizeIs(2));
  EXPECT_EQ(results[1].lsn, primary_.lsn());
  EXPECT_THAT(view_.ReadableReplicas(primary_.lsn()), ElementsAre(NodeId{1}));
  EXPECT_THAT(checker_.Conns(), SizeIs(2));
  EXPECT_EQ(connects_, 2) << "one persistent connection per node";
}

TEST_F(ClusterHarness, PromotionAndACrashedPrimaryAreSeen) {
  Round(0);
  ASSERT_EQ(view_.primary(), NodeId{0});
  const uint64_t generation = view_.primary_generation();

  // The primary crashes: its connection is reset, and the next round cannot connect.
  primary_.Crash();
  Settle();
  auto results = Round(1000);
  ASSERT_THAT(results, SizeIs(2));
  EXPECT_FALSE(results[0].ok);
  EXPECT_EQ(view_.primary(), std::nullopt);
  EXPECT_FALSE(view_.node(NodeId{0}).up);

  // The replica is promoted onto timeline 2: primary at its first poll.
  ASSERT_TRUE(replica_.Promote(now_).ok());
  results = Round(2000);
  ASSERT_TRUE(results[1].ok) << results[1].error;
  EXPECT_FALSE(results[1].in_recovery);
  EXPECT_EQ(results[1].timeline, 2u);
  EXPECT_EQ(results[1].lsn, replica_.lsn());
  EXPECT_EQ(view_.primary(), NodeId{1});
  EXPECT_EQ(view_.primary_generation(), generation + 2);

  // The old primary comes back still believing it is primary, on timeline 1: fenced.
  primary_.Restart(now_);
  results = Round(3000);
  ASSERT_TRUE(results[0].ok) << results[0].error;
  EXPECT_EQ(results[0].timeline, 1u);
  EXPECT_EQ(view_.primary(), NodeId{1});
  EXPECT_EQ(view_.node(NodeId{0}).role, ClusterView::Role::kFenced);

  // Rebuilt as a replica of the new primary, it is a readable replica again.
  primary_.RebuildAsReplicaOf(replica_, now_);
  Settle();
  results = Round(4000);
  ASSERT_TRUE(results[0].ok) << results[0].error;
  EXPECT_TRUE(results[0].in_recovery);
  EXPECT_EQ(view_.node(NodeId{0}).role, ClusterView::Role::kReplica);
  EXPECT_THAT(view_.ReadableReplicas(replica_.lsn()), ElementsAre(NodeId{0}));
}

}  // namespace
}  // namespace switchyard
