// The unit with replicas (DESIGN.md section 5): scripted byte exchanges, no sockets. Node 0 is
// the primary, nodes 1 and 2 replicas, as the cluster view the tests hand in says.
#include <gtest/gtest.h>

#include "core/protocol/messages.h"
#include "core/route/functions.h"
#include "tests/core/session/harness.h"

namespace switchyard {
namespace {

using testing::Harness;

constexpr NodeId kPrimary{0};
constexpr NodeId kReplica1{1};
constexpr NodeId kReplica2{2};

std::string Ready(char status = 'I') { return pg::ReadyForQuery{status}.Encode(); }
std::string Complete(std::string tag) { return pg::CommandComplete{std::move(tag)}.Encode(); }
std::string Q(std::string sql) { return pg::Query{std::move(sql)}.Encode(); }
std::string Row(std::string value) { return pg::DataRow{{std::move(value)}}.Encode(); }

std::string SqlState(const std::string& payload) {
  auto fields = pg::ErrorFields::Decode('E', payload);
  return fields.ok() ? std::string(fields->sqlstate()) : "";
}

std::string ServerLogin(int32_t pid) {
  return pg::Authentication{pg::Authentication::kOk, ""}.Encode() +
         pg::ParameterStatus{"server_version", "15.4"}.Encode() +
         pg::ParameterStatus{"in_hot_standby", "off"}.Encode() +
         pg::BackendKeyData{pid, 777}.Encode() + Ready();
}

ProxyConfig ReplicaConfig() {
  ProxyConfig config = Harness::DefaultConfig();
  config.node_count = 3;
  config.pool_size = 4;
  config.max_server_connections = 30;
  return config;
}

// Everybody up; the replicas have replayed `replica_lsn`, the primary is at `primary_lsn` as read
// by a poll that began at `polled`.
ClusterSnapshot Cluster(uint64_t version, uint64_t primary_lsn, uint64_t replica_lsn,
                        Instant polled, bool replica1_up = true) {
  ClusterSnapshot cluster;
  cluster.version = version;
  cluster.primary = kPrimary;
  cluster.primary_generation = 1;
  cluster.primary_poll_began = polled;
  cluster.primary_lsn = primary_lsn;
  cluster.nodes = {NodeState{kPrimary, NodeRole::kPrimary, true, polled, primary_lsn},
                   NodeState{kReplica1, NodeRole::kReplica, replica1_up, polled, replica_lsn},
                   NodeState{kReplica2, NodeRole::kReplica, true, polled, replica_lsn}};
  return cluster;
}

std::string Startup() {
  pg::StartupMessage startup;
  startup.parameters = {{"user", "alice"}, {"database", "shop"}};
  return startup.Encode();
}

// Logs a client in through the primary; returns the primary connection.
ConnId LogIn(Harness& h, size_t unit) {
  h.Receive(h.client(unit), Startup());
  ConnId server = h.LastConnect();
  EXPECT_EQ(h.NodeOf(server).index, kPrimary.index);
  h.Connected(server);
  h.TakeSent(server);
  h.Receive(server, ServerLogin(100));
  h.TakeSent(h.client(unit));
  return server;
}

// The unit opened a connection to a node for the statement it holds: log it in and return it.
ConnId OpenedTo(Harness& h, NodeId node, int32_t pid) {
  ConnId conn = h.LastConnect();
  EXPECT_EQ(h.NodeOf(conn).index, node.index);
  h.Connected(conn);
  h.TakeSent(conn);
  h.Receive(conn, ServerLogin(pid));
  return conn;
}

class RoutingTest : public ::testing::Test {
 protected:
  RoutingTest() : h(ReplicaConfig()) {
    u = h.Accept();
    h.SetCluster(Cluster(1, 100, 100, Instant{0}));
    primary = LogIn(h, u);
  }
  bool IsReplica(ConnId conn) const { return h.NodeOf(conn).index != kPrimary.index; }
  // An autocommit UPDATE whose primary connection closes before it is answered: the client
  // hears 08006 and ReadyForQuery.
  void LoseAnUpdate() {
    h.Receive(h.client(u), Q("update kv set v = 'b' where k = 1"));
    h.TakeSent(primary);
    h.PeerClosed(primary);
    auto frames = h.TakeFrames(h.client(u));
    ASSERT_EQ(testing::Harness::Types(frames), "EZ");
    EXPECT_EQ(SqlState(frames[0].second), "08006");
  }

  Harness h;
  size_t u = 0;
  ConnId primary;
};

TEST_F(RoutingTest, ReadsGoToAReplicaAndWritesToThePrimary) {
  h.Receive(h.client(u), Q("select v from kv where k = 1"));
  EXPECT_EQ(h.TakeSent(primary), "");
  ConnId replica = OpenedTo(h, h.NodeOf(h.LastConnect()), 200);
  EXPECT_TRUE(IsReplica(replica));
  EXPECT_EQ(h.TakeSent(replica), Q("select v from kv where k = 1"));
  h.Receive(replica, Row("a") + Complete("SELECT 1") + Ready());
  EXPECT_EQ(testing::Harness::Types(h.TakeFrames(h.client(u))), "DCZ");

  h.Receive(h.client(u), Q("update kv set v = 'b' where k = 1"));
  EXPECT_EQ(h.TakeSent(primary), Q("update kv set v = 'b' where k = 1"));
  EXPECT_EQ(h.TakeSent(replica), "");
}

TEST_F(RoutingTest, LockingReadsAndVolatileFunctionsStayOnThePrimary) {
  for (std::string sql : {"select v from kv where k = 1 for update", "select nextval('s')",
                          "select pg_backend_pid()", "/* switchyard: primary */ select 1"}) {
    h.Receive(h.client(u), Q(sql));
    EXPECT_EQ(h.TakeSent(primary), Q(sql)) << sql;
    h.Receive(primary, Complete("SELECT 1") + Ready());
  }
  EXPECT_EQ(h.connect_count(), 1u);
}

TEST_F(RoutingTest, AReadWriteTransactionRunsWhollyOnThePrimary) {
  h.Receive(h.client(u), Q("begin"));
  EXPECT_EQ(h.TakeSent(primary), Q("begin"));
  h.Receive(primary, Complete("BEGIN") + Ready('T'));
  h.Receive(h.client(u), Q("select 1"));
  EXPECT_EQ(h.TakeSent(primary), Q("select 1"));
  h.Receive(primary, Complete("SELECT 1") + Ready('T'));
  h.Receive(h.client(u), Q("commit"));
  EXPECT_EQ(h.TakeSent(primary), Q("commit"));
  EXPECT_EQ(h.connect_count(), 1u);
}

TEST_F(RoutingTest, ASyncBatchWithAWriteGoesWholeToThePrimary) {
  std::string batch = pg::Parse{"", "select 1", {}}.Encode() + pg::Bind{}.Encode() +
                      pg::Execute{}.Encode() +
                      pg::Parse{"", "insert into kv values (1, 'a')", {}}.Encode() +
                      pg::Bind{}.Encode() + pg::Execute{}.Encode() + pg::Sync{}.Encode();
  h.Receive(h.client(u), batch);
  EXPECT_EQ(h.TakeSent(primary), batch);
  EXPECT_EQ(h.connect_count(), 1u);
}

TEST_F(RoutingTest, AReadOnlySyncBatchGoesWholeToOneReplica) {
  std::string batch = pg::Parse{"", "select 1", {}}.Encode() + pg::Bind{}.Encode() +
                      pg::Execute{}.Encode() + pg::Sync{}.Encode();
  // Split at every message: the decision must not depend on how TCP cut the bytes.
  h.ReceiveByteByByte(h.client(u), batch);
  EXPECT_EQ(h.TakeSent(primary), "");
  ConnId replica = OpenedTo(h, h.NodeOf(h.LastConnect()), 200);
  EXPECT_TRUE(IsReplica(replica));
  EXPECT_EQ(h.TakeSent(replica), batch);
}

TEST_F(RoutingTest, AfterItsOwnWriteAClientReadsFromThePrimaryUntilAReplicaCaughtUp) {
  h.Receive(h.client(u), Q("insert into kv values (1, 'a')"));
  h.TakeSent(primary);
  h.AdvanceMs(10);
  h.Receive(primary, Complete("INSERT 0 1") + Ready());
  // No poll began after the commit yet: the primary serves the read.
  h.Receive(h.client(u), Q("select v from kv where k = 1"));
  EXPECT_EQ(h.TakeSent(primary), Q("select v from kv where k = 1"));
  h.Receive(primary, Complete("SELECT 1") + Ready());
  // A poll that began after the commit read LSN 150; the replicas are still at 120.
  h.SetCluster(Cluster(2, 150, 120, Instant{2'000'000}));
  h.Receive(h.client(u), Q("select v from kv where k = 1"));
  EXPECT_EQ(h.TakeSent(primary), Q("select v from kv where k = 1"));
  h.Receive(primary, Complete("SELECT 1") + Ready());
  EXPECT_EQ(h.connect_count(), 1u);
  // Now they have replayed it.
  h.SetCluster(Cluster(3, 160, 150, Instant{3'000'000}));
  h.Receive(h.client(u), Q("select v from kv where k = 1"));
  EXPECT_EQ(h.TakeSent(primary), "");
  EXPECT_TRUE(IsReplica(h.LastConnect()));
}

TEST_F(RoutingTest, AReadWhoseReplicaDiesBeforeAnsweringIsRetriedElsewhere) {
  h.Receive(h.client(u), Q("select v from kv where k = 1"));
  ConnId first = OpenedTo(h, h.NodeOf(h.LastConnect()), 200);
  h.TakeSent(first);
  h.PeerClosed(first);
  ConnId second = OpenedTo(h, h.NodeOf(h.LastConnect()), 300);
  EXPECT_NE(h.NodeOf(second).index, h.NodeOf(first).index);
  EXPECT_EQ(h.TakeSent(second), Q("select v from kv where k = 1"));
  h.Receive(second, Row("a") + Complete("SELECT 1") + Ready());
  // The client saw one answer and no error.
  EXPECT_EQ(testing::Harness::Types(h.TakeFrames(h.client(u))), "DCZ");
}

TEST_F(RoutingTest, AWriteWhoseConnectionIsLostIsNeverRetried) {
  LoseAnUpdate();
  EXPECT_EQ(h.connect_count(), 1u);
}

TEST_F(RoutingTest, AWriteLostWithItsConnectionStillKeepsTheClientsReadsOffLaggingReplicas) {
  h.AdvanceMs(10);
  LoseAnUpdate();
  // The update may have committed before the connection went, and the replicas (at the LSN the
  // last poll saw) may not have it: the read goes to the primary.
  h.AdvanceMs(10);
  h.Receive(h.client(u), Q("select v from kv where k = 1"));
  ConnId again = OpenedTo(h, kPrimary, 300);
  EXPECT_EQ(h.TakeSent(again), Q("select v from kv where k = 1"));
  h.Receive(again, Row("b") + Complete("SELECT 1") + Ready());
  // A poll begun after the loss: the replicas have replayed what the primary had.
  h.SetCluster(Cluster(2, 150, 150, Instant{2'000'000}));
  h.Receive(h.client(u), Q("select v from kv where k = 1"));
  EXPECT_EQ(h.TakeSent(again), "");
  EXPECT_TRUE(IsReplica(h.LastConnect()));
}

TEST_F(RoutingTest, AReplicaRefusalSendsTheStatementToThePrimaryFromThenOn) {
  // A function the built-in table calls stable but that writes (the classifier cannot know).
  const std::string sql = "select v from kv where k = 1";
  h.Receive(h.client(u), Q(sql));
  ConnId replica = OpenedTo(h, h.NodeOf(h.LastConnect()), 200);
  h.TakeSent(replica);
  h.Receive(replica,
            pg::BuildError("ERROR", "25006", "cannot execute UPDATE in a read-only transaction") +
                Ready());
  EXPECT_EQ(h.TakeSent(primary), Q(sql));
  h.Receive(primary, Complete("SELECT 1") + Ready());
  EXPECT_EQ(testing::Harness::Types(h.TakeFrames(h.client(u))), "CZ");
  h.Receive(h.client(u), Q(sql));
  EXPECT_EQ(h.TakeSent(primary), Q(sql));
}

TEST_F(RoutingTest, ANodeDeclaredDownFailsOverItsConnectionsAtOnce) {
  h.Receive(h.client(u), Q("select v from kv where k = 1"));
  ConnId replica = OpenedTo(h, h.NodeOf(h.LastConnect()), 200);
  h.TakeSent(replica);
  const bool replica1 = h.NodeOf(replica).index == kReplica1.index;
  ClusterSnapshot down = Cluster(2, 100, 100, Instant{2'000'000});
  down.nodes[h.NodeOf(replica).index].up = false;
  h.SetCluster(down);
  EXPECT_TRUE(h.IsClosed(replica));
  ConnId other = OpenedTo(h, replica1 ? kReplica2 : kReplica1, 300);
  EXPECT_EQ(h.TakeSent(other), Q("select v from kv where k = 1"));
}

TEST_F(RoutingTest, InsideAReadOnlyTransactionAReplicaRefusalIsTheClientsAnswer) {
  h.Receive(h.client(u), Q("begin read only"));
  ConnId replica = OpenedTo(h, h.NodeOf(h.LastConnect()), 200);
  EXPECT_TRUE(IsReplica(replica));
  EXPECT_EQ(h.TakeSent(replica), Q("begin read only"));
  h.Receive(replica, Complete("BEGIN") + Ready('T'));
  h.TakeSent(h.client(u));
  // PostgreSQL refuses a write in a READ ONLY transaction on the primary too; the transaction is
  // on this replica, so nothing may move: the client hears the refusal, once.
  h.Receive(h.client(u), Q("update kv set v = 'x'"));
  EXPECT_EQ(h.TakeSent(replica), Q("update kv set v = 'x'"));
  h.Receive(replica,
            pg::BuildError("ERROR", "25006", "cannot execute UPDATE in a read-only transaction") +
                Ready('E'));
  EXPECT_EQ(testing::Harness::Types(h.TakeFrames(h.client(u))), "EZ");
  EXPECT_EQ(h.TakeSent(primary), "");
  EXPECT_EQ(h.TakeSent(replica), "");
  h.Receive(h.client(u), Q("rollback"));
  EXPECT_EQ(h.TakeSent(replica), Q("rollback"));
}

TEST_F(RoutingTest, AWithHoldCursorOnAReplicaKeepsItsReadsThereButNotWritesOrTransactions) {
  h.Receive(h.client(u), Q("declare c cursor with hold for select v from kv"));
  ConnId replica = OpenedTo(h, h.NodeOf(h.LastConnect()), 200);
  ASSERT_TRUE(IsReplica(replica)) << "a read-only cursor may be declared on a replica";
  EXPECT_EQ(h.TakeSent(replica), Q("declare c cursor with hold for select v from kv"));
  h.Receive(replica, Complete("DECLARE CURSOR") + Ready());
  // The cursor pins the client's reads to that replica...
  h.Receive(h.client(u), Q("fetch 1 from c"));
  EXPECT_EQ(h.TakeSent(replica), Q("fetch 1 from c"));
  h.Receive(replica, Row("a") + Complete("FETCH 1") + Ready());
  // ...but a write cannot run there, and a read-write transaction stays whole on the primary.
  h.Receive(h.client(u), Q("update kv set v = 'b'"));
  EXPECT_EQ(h.TakeSent(primary), Q("update kv set v = 'b'"));
  h.Receive(primary, Complete("UPDATE 1") + Ready());
  h.Receive(h.client(u), Q("begin"));
  EXPECT_EQ(h.TakeSent(primary), Q("begin"));
  h.Receive(primary, Complete("BEGIN") + Ready('T'));
  h.Receive(h.client(u), Q("select v from kv"));
  EXPECT_EQ(h.TakeSent(primary), Q("select v from kv"));
  EXPECT_EQ(h.TakeSent(replica), "");
}

TEST(FunctionVolatilityTest, PgProcIsLoadedOncePerDatabaseAndAgainAfterFunctionDdl) {
  ProxyConfig config = ReplicaConfig();
  config.load_functions = true;
  Harness h(config);
  const size_t u = h.Accept();
  h.SetCluster(Cluster(1, 100, 100, Instant{0}));
  const ConnId primary = LogIn(h, u);
  const std::string load = Q(std::string(route::FunctionVolatility::kLoadQuery));
  const std::string table = pg::DataRow{{"my_stable", "s"}}.Encode() +
                            pg::DataRow{{"my_volatile", "v"}}.Encode() + Complete("SELECT 2") +
                            Ready();
  // Unknown to the built-in table, my_stable counts as volatile: its statement goes to the
  // primary, whose replay reads pg_proc first (the rows are not the client's).
  h.Receive(h.client(u), Q("select my_stable(1)"));
  EXPECT_EQ(h.TakeSent(primary), load);
  h.Receive(primary, table);
  EXPECT_EQ(h.TakeSent(primary), Q("select my_stable(1)"));
  h.Receive(primary, Row("1") + Complete("SELECT 1") + Ready());
  EXPECT_EQ(Harness::Types(h.TakeFrames(h.client(u))), "DCZ");
  // (That call counted as a write: read-your-writes waits for a poll of the primary after it.)
  h.AdvanceMs(10);
  h.SetCluster(Cluster(2, 100, 100, h.now()));
  // Now known as stable: a replica may serve it. A volatile one stays on the primary.
  h.Receive(h.client(u), Q("select my_stable(2)"));
  EXPECT_EQ(h.TakeSent(primary), "");
  const ConnId replica = OpenedTo(h, h.NodeOf(h.LastConnect()), 200);
  EXPECT_NE(h.NodeOf(replica).index, kPrimary.index);
  EXPECT_EQ(h.TakeSent(replica), Q("select my_stable(2)"));
  h.Receive(replica, Row("2") + Complete("SELECT 1") + Ready());
  h.Receive(h.client(u), Q("select my_volatile()"));
  EXPECT_EQ(h.TakeSent(primary), Q("select my_volatile()"));
  h.Receive(primary, Row("3") + Complete("SELECT 1") + Ready());

  // Another session of the same database gets the table without loading it.
  const size_t v = h.Accept();
  h.SetCluster(Cluster(3, 100, 100, h.now()));
  const ConnId primary_v = LogIn(h, v);
  h.Receive(h.client(v), Q("select my_stable(4)"));
  EXPECT_EQ(h.TakeSent(primary_v), "") << "no pg_proc load, and the read goes to a replica";

  // A function changed through the proxy: that client no longer trusts the table (the built-in
  // one serves it), and the next session of the database reads pg_proc again.
  h.Receive(h.client(u), Q("alter function my_stable(int) volatile"));
  EXPECT_EQ(h.TakeSent(primary), Q("alter function my_stable(int) volatile"));
  h.Receive(primary, Complete("ALTER FUNCTION") + Ready());
  h.Receive(h.client(u), Q("select my_stable(5)"));
  EXPECT_EQ(h.TakeSent(primary), Q("select my_stable(5)"));
  h.Receive(primary, Row("5") + Complete("SELECT 1") + Ready());
  // A session asked to load that leaves first hands the load on at once.
  const size_t w = h.Accept();
  h.SetCluster(Cluster(4, 100, 100, h.now()));
  LogIn(h, w);
  h.PeerClosed(h.client(w));
  const size_t x = h.Accept();
  h.SetCluster(Cluster(5, 100, 100, h.now()));
  const ConnId primary_x = LogIn(h, x);
  h.Receive(h.client(x), Q("select my_stable(6)"));
  EXPECT_EQ(h.TakeSent(primary_x), load);
  h.Receive(primary_x, pg::DataRow{{"my_stable", "v"}}.Encode() + Complete("SELECT 1") + Ready());
  EXPECT_EQ(h.TakeSent(primary_x), Q("select my_stable(6)"));
  h.Receive(primary_x, Row("6") + Complete("SELECT 1") + Ready());
  h.Receive(h.client(x), Q("select my_stable(7)"));
  EXPECT_EQ(h.TakeSent(primary_x), Q("select my_stable(7)")) << "volatile now: the primary";
}

TEST_F(RoutingTest, TheHotStandbyFlagOfAReplicaIsNeverShown) {
  Harness fresh(ReplicaConfig());
  size_t v = fresh.Accept();
  ClusterSnapshot no_primary = Cluster(1, 100, 100, Instant{0});
  no_primary.primary.reset();
  no_primary.nodes[0].up = false;
  fresh.SetCluster(no_primary);
  fresh.Receive(fresh.client(v), Startup());
  ConnId server = fresh.LastConnect();
  EXPECT_NE(fresh.NodeOf(server).index, kPrimary.index);
  fresh.Connected(server);
  fresh.TakeSent(server);
  fresh.Receive(server, pg::Authentication{pg::Authentication::kOk, ""}.Encode() +
                            pg::ParameterStatus{"in_hot_standby", "on"}.Encode() +
                            pg::BackendKeyData{5, 6}.Encode() + Ready());
  auto frames = fresh.TakeFrames(fresh.client(v));
  bool saw = false;
  for (const auto& [type, payload] : frames) {
    if (type == 'S' && payload.starts_with("in_hot_standby")) {
      saw = true;
      EXPECT_EQ(payload, std::string("in_hot_standby\0off\0", 19));
    }
  }
  EXPECT_TRUE(saw);
}

}  // namespace
}  // namespace switchyard
