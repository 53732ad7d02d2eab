// Transaction pooling (--pool-mode transaction): scripted byte exchanges, no sockets. One server
// connection (pool size 1) serves two clients, one transaction at a time; session state follows
// each client by replay.
#include <gtest/gtest.h>

#include "core/protocol/messages.h"
#include "tests/core/session/harness.h"

namespace switchyard {
namespace {

using testing::Harness;

std::string Ready(char status = 'I') { return pg::ReadyForQuery{status}.Encode(); }
std::string Complete(std::string tag) { return pg::CommandComplete{std::move(tag)}.Encode(); }
std::string Q(std::string sql) { return pg::Query{std::move(sql)}.Encode(); }
std::string Parse(std::string name, std::string sql) {
  return pg::Parse{std::move(name), std::move(sql), {}}.Encode();
}
std::string Sync() { return pg::Sync{}.Encode(); }
std::string BindExecute(std::string statement) {
  return pg::Bind{"", std::move(statement), {}, {}, {}}.Encode() + pg::Execute{"", 0}.Encode() +
         Sync();
}

std::string ServerLogin(int32_t pid) {
  return pg::Authentication{pg::Authentication::kOk, ""}.Encode() +
         pg::ParameterStatus{"server_version", "15.18"}.Encode() +
         pg::BackendKeyData{pid, 777}.Encode() + Ready();
}

std::string Startup() {
  return pg::StartupMessage{pg::kProtocolVersion3, {{"user", "alice"}, {"database", "shop"}}}
      .Encode();
}

class TransactionPoolingTest : public ::testing::Test {
 protected:
  static ProxyConfig Config() {
    ProxyConfig config = Harness::DefaultConfig();
    config.pool_mode = PoolMode::kTransaction;
    config.pool_size = 1;
    config.max_server_connections = 1;
    return config;
  }

  TransactionPoolingTest() : h(Config()) {
    a = h.Accept();
    h.Receive(h.client(a), Startup());
    server = h.LastConnect();
    h.Connected(server);
    h.TakeSent(server);
    h.Receive(server, ServerLogin(4242));
    h.TakeSent(h.client(a));
    // Nothing to do for a, and the connection holds none of its state: pooled as it is.
    EXPECT_EQ(h.TakeSent(server), "");
    b = h.Accept();
    h.Receive(h.client(b), Startup());
    EXPECT_EQ(h.connect_count(), 1u) << "b logs in on the pooled connection";
    EXPECT_EQ(Harness::Types(h.TakeFrames(h.client(b))), "RSKZ");
  }

  // Runs `sql` for `unit` on the one server connection, answering `answer`, and takes what its
  // client got.
  void Run(size_t unit, const std::string& sql, const std::string& answer) {
    h.Receive(h.client(unit), Q(sql));
    EXPECT_EQ(h.TakeSent(server), Q(sql));
    h.Receive(server, answer);
    EXPECT_EQ(h.TakeSent(h.client(unit)), answer);
  }

  Harness h;
  size_t a = 0;
  size_t b = 0;
  ConnId server;
};

TEST_F(TransactionPoolingTest, ClientsTakeTurnsOnOneConnectionAndTheirSetsFollowThem) {
  Run(a, "set application_name = 'a'", Complete("SET") + Ready());
  // a's SET is on the connection: it is reset before anyone else gets it.
  EXPECT_EQ(h.TakeSent(server), Q("DISCARD ALL"));
  h.Receive(server, Complete("DISCARD ALL") + Ready());
  Run(b, "select 1", Complete("SELECT 1") + Ready());
  EXPECT_EQ(h.TakeSent(server), "") << "b left nothing behind: no reset";
  // a's next statement gets its SET back first, on the connection b used.
  h.Receive(h.client(a), Q("show application_name"));
  const std::string replay = h.TakeSent(server);
  EXPECT_NE(replay.find("application_name"), std::string::npos) << replay;
  EXPECT_EQ(replay.find("show"), std::string::npos) << "the statement waits for the replay";
  h.Receive(server, Complete("SET") + Ready());
  EXPECT_EQ(h.TakeSent(server), Q("show application_name"));
  h.Receive(server, Complete("SHOW") + Ready());
  EXPECT_EQ(Harness::Types(h.TakeFrames(h.client(a))), "CZ") << "the replay's answers are ours";
  EXPECT_EQ(h.connect_count(), 1u);
}

TEST_F(TransactionPoolingTest, ATransactionKeepsTheConnectionUntilItEnds) {
  Run(a, "begin", Complete("BEGIN") + Ready('T'));
  h.Receive(h.client(b), Q("select 2"));
  EXPECT_EQ(h.TakeSent(server), "") << "b waits: a's transaction holds the connection";
  Run(a, "update t set x = 1", Complete("UPDATE 1") + Ready('T'));
  EXPECT_EQ(h.TakeSent(server), "");
  Run(a, "commit", Complete("COMMIT") + Ready());
  EXPECT_EQ(h.TakeSent(server), Q("select 2")) << "a's commit gave the connection to b";
  h.Receive(server, Complete("SELECT 1") + Ready());
  EXPECT_EQ(Harness::Types(h.TakeFrames(h.client(b))), "CZ");
}

TEST_F(TransactionPoolingTest, AParseWithoutAConnectionIsAnsweredAndReplayedWhenUsed) {
  // b holds the connection in a transaction; a prepares meanwhile, as pgbench -M prepared does
  // (and then waits for that answer before it lets b go on).
  Run(b, "begin", Complete("BEGIN") + Ready('T'));
  h.Receive(h.client(a), Parse("s1", "select 1") + Sync());
  EXPECT_EQ(Harness::Types(h.TakeFrames(h.client(a))), "1Z");
  EXPECT_EQ(h.TakeSent(server), "");
  Run(b, "commit", Complete("COMMIT") + Ready());
  // Its first use brings the statement to the server, alone before its own Sync.
  h.Receive(h.client(a), BindExecute("s1"));
  EXPECT_EQ(h.TakeSent(server), Parse("s1", "select 1") + Sync());
  h.Receive(server, pg::ParseComplete{}.Encode() + Ready());
  EXPECT_EQ(h.TakeSent(server), BindExecute("s1"));
  h.Receive(server, pg::BindComplete{}.Encode() + Complete("SELECT 1") + Ready());
  EXPECT_EQ(Harness::Types(h.TakeFrames(h.client(a))), "2CZ");
}

TEST_F(TransactionPoolingTest, AParseTheServerRefusesLaterIsForgotten) {
  h.Receive(h.client(a), Parse("bad", "select * from missing") + Sync());
  EXPECT_EQ(Harness::Types(h.TakeFrames(h.client(a))), "1Z");
  h.Receive(h.client(a), BindExecute("bad"));
  EXPECT_EQ(h.TakeSent(server), Parse("bad", "select * from missing") + Sync());
  h.Receive(server,
            pg::BuildError("ERROR", "42P01", "relation \"missing\" does not exist") + Ready());
  EXPECT_FALSE(h.IsClosed(server)) << "the connection stays usable";
  EXPECT_EQ(h.TakeSent(server), BindExecute("bad"));
  h.Receive(server, pg::BuildError("ERROR", "26000", "prepared statement \"bad\" does not exist") +
                        Ready());
  auto frames = h.TakeFrames(h.client(a));
  ASSERT_EQ(Harness::Types(frames), "EZ") << "the client hears only its own statement's error";
  EXPECT_NE(frames[0].second.find("26000"), std::string::npos);
  // The statement never existed: nothing of a's is left on the connection, and nothing is
  // replayed for it again.
  EXPECT_EQ(h.TakeSent(server), "");
  h.Receive(h.client(a), BindExecute("bad"));
  EXPECT_EQ(h.TakeSent(server), BindExecute("bad"));
}

TEST_F(TransactionPoolingTest, AListeningClientKeepsItsConnection) {
  Run(a, "listen ch", Complete("LISTEN") + Ready());
  EXPECT_EQ(h.TakeSent(server), "") << "no reset: a keeps the connection its channel is on";
  h.Receive(h.client(b), Q("select 4"));
  EXPECT_EQ(h.TakeSent(server), "");
  h.Receive(server, pg::NotificationResponse{99, "ch", "hello"}.Encode());
  EXPECT_EQ(Harness::Types(h.TakeFrames(h.client(a))), "A");
  // UNLISTEN left the connection as clean as a reset would: b gets it at once.
  h.Receive(h.client(a), Q("unlisten *"));
  EXPECT_EQ(h.TakeSent(server), Q("unlisten *"));
  h.Receive(server, Complete("UNLISTEN") + Ready());
  EXPECT_EQ(h.TakeSent(server), Q("select 4"));
}

}  // namespace
}  // namespace switchyard
