// Each oracle fed by hand: a correct observation passes, and the same observation broken the way
// a proxy bug would break it is reported by the oracle that owns the rule.
#include "sim/oracles.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "io_sim/event_queue.h"
#include "sim/kv_store.h"

namespace switchyard::sim {
namespace {

class OraclesTest : public ::testing::Test {
 protected:
  OraclesTest() {
    world.timeline = &timeline;
    world.store = &store;
    world.history = &history;
    world.pool_size = 2;
    world.max_server_connections = 2;
    AddStandardOracles(oracles, world, violations);
  }

  // The oracles that reported something, in order.
  std::vector<std::string> Reported() const {
    std::vector<std::string> names;
    for (const Violation& v : violations.list()) names.push_back(v.oracle);
    return names;
  }
  std::string All() const {
    std::string text;
    for (const Violation& v : violations.list()) text += v.oracle + ": " + v.what + "\n";
    return text;
  }

  void Commit(const std::string& sql, RowChange change) {
    store.Commit({std::move(change)}, {sql}, 1, "primary", 1);
  }
  // Sends `request` at the current WAL position and answers it with `answer` at the current one.
  void Exchange(Request request, Answer answer, SessionModel& session) {
    request.seq = ++seq;
    request.sent_pos = store.records_total();
    oracles.OnRequest(client, request);
    answer.pos = store.records_total();
    if (answer.status == 0) answer.status = session.StatusAfter(request, answer);
    oracles.OnAnswer(client, session, request, answer);
    session.Apply(request, answer);
  }
  // An autocommit write that the node commits while it is in flight.
  void Write(Request request, RowChange change, std::string tag) {
    request.seq = ++seq;
    request.sent_pos = store.records_total();
    oracles.OnRequest(client, request);
    Commit(request.sql, std::move(change));
    Answer answer = Tag(std::move(tag));
    answer.pos = store.records_total();
    answer.status = 'I';
    oracles.OnAnswer(client, session, request, answer);
  }
  static Answer Row(std::string tag, std::optional<std::string> value) {
    Answer answer;
    answer.described = true;
    answer.rows.push_back({std::move(value)});
    answer.tags.push_back(std::move(tag));
    return answer;
  }
  static Answer Tag(std::string tag) {
    Answer answer;
    answer.tags.push_back(std::move(tag));
    return answer;
  }
  static Answer Error(std::string sqlstate, std::string message, bool fatal = false) {
    Answer answer;
    answer.errors.push_back(
        ErrorInfo{fatal ? "FATAL" : "ERROR", std::move(sqlstate), std::move(message), fatal});
    return answer;
  }
  static Request Read(std::string key) {
    return Request{.op = Op::kRead, .key = key, .sql = "SELECT v FROM kv WHERE k = '" + key + "'"};
  }

  io_sim::Timeline timeline;
  KvStore store;
  KvHistory history;
  World world;
  Violations violations;
  OracleSet oracles;
  ClientInfo client{3, 1};
  uint64_t seq = 0;
  SessionModel session{{{"search_path", "public"}}};
};

TEST_F(OraclesTest, ACorrectSessionPasses) {
  oracles.OnWelcome(client, Welcome{{{"application_name", ""}}, 1, 2, 'I', ""});
  Write(Request{.op = Op::kInsert, .key = "k1", .value = "t1", .sql = InsertSql("k1", "t1")},
        {"k1", false, "t1"}, "INSERT 0 1");
  Exchange(Read("k1"), Row("SELECT 1", "t1"), session);
  Write(Request{.op = Op::kUpdate, .key = "k1", .value = "t2", .sql = UpdateSql("k1", "t2")},
        {"k1", false, "t2"}, "UPDATE 1");
  Exchange(Read("k1"), Row("SELECT 1", "t2"), session);
  Exchange(Request{.op = Op::kShow, .guc = "search_path", .sql = "SHOW search_path"},
           Row("SHOW", "public"), session);
  Ending ending;
  ending.how = Ending::How::kClientLeft;
  ending.logged_in = true;
  oracles.OnEnded(client, session, ending);
  oracles.Finish();
  EXPECT_TRUE(violations.list().empty()) << All();
}

TEST_F(OraclesTest, AReadOfAValueNeverCommittedIsCaught) {
  Commit(InsertSql("k1", "a"), {"k1", false, "a"});
  Exchange(Read("k1"), Row("SELECT 1", "another client's value"), session);
  EXPECT_EQ(Reported(), std::vector<std::string>{"model"}) << All();
}

TEST_F(OraclesTest, AnAcknowledgedWriteMissingFromTheWalIsCaught) {
  Exchange(Request{.op = Op::kInsert, .key = "k9", .value = "t9", .sql = InsertSql("k9", "t9")},
           Tag("INSERT 0 1"), session);
  EXPECT_EQ(Reported(), std::vector<std::string>{"model"}) << All();
}

TEST_F(OraclesTest, AWriteAppliedTwiceIsCaught) {
  const Request insert{.op = Op::kInsert, .key = "k1", .value = "t1", .sql = InsertSql("k1", "t1")};
  Write(insert, {"k1", false, "t1"}, "INSERT 0 1");
  Write(Request{.op = Op::kDelete, .key = "k1", .sql = DeleteSql("k1")}, {"k1", true, std::nullopt},
        "DELETE 1");
  // The first statement applied again, as a retried write would be.
  Commit(insert.sql, {"k1", false, "t1"});
  oracles.Finish();
  EXPECT_EQ(Reported(), std::vector<std::string>{"no_double_write"}) << All();
}

TEST_F(OraclesTest, AServersFatalForwardedAsTheClientsOwnIsCaught) {
  Ending ending;
  ending.how = Ending::How::kServerClosed;
  ending.logged_in = true;
  ending.trailing = Error("57P01", "terminating connection due to administrator command", true);
  oracles.OnEnded(client, session, ending);
  EXPECT_EQ(Reported(), std::vector<std::string>{"connection_loss"}) << All();
}

TEST_F(OraclesTest, ALostCommitMustSay08007) {
  Exchange(Request{.op = Op::kBegin, .sql = "BEGIN"}, Tag("BEGIN"), session);
  // 08006 for a COMMIT in flight: the rule is 08007 (transaction resolution unknown).
  Exchange(Request{.op = Op::kCommit, .sql = "COMMIT"},
           Error("08006", "server connection lost during the statement"), session);
  EXPECT_EQ(Reported(), std::vector<std::string>{"connection_loss"}) << All();
  // 08007 is for a COMMIT only.
  Exchange(Request{.op = Op::kUpdate, .key = "k1", .value = "t4", .sql = UpdateSql("k1", "t4")},
           Error("08007", "server connection lost during COMMIT"), session);
  EXPECT_EQ(violations.count(), 2u) << All();
  // An autocommit UPDATE that lost its connection gets 08006 and the session goes on, idle.
  Exchange(Request{.op = Op::kUpdate, .key = "k1", .value = "t5", .sql = UpdateSql("k1", "t5")},
           Error("08006", "server connection lost during the statement"), session);
  EXPECT_EQ(violations.count(), 2u) << All();
  EXPECT_EQ(session.status(), 'I');
}

TEST_F(OraclesTest, ALossInATransactionAbortsItUntilRollback) {
  Exchange(Request{.op = Op::kBegin, .sql = "BEGIN"}, Tag("BEGIN"), session);
  Exchange(Read("k1"), Error("08006", "server connection lost during the statement"), session);
  EXPECT_EQ(session.status(), 'E');
  Exchange(Read("k1"),
           Error("25P02",
                 "current transaction is aborted, commands ignored until end of "
                 "transaction block"),
           session);
  Exchange(Request{.op = Op::kCommit, .sql = "COMMIT"}, Tag("ROLLBACK"), session);
  EXPECT_TRUE(violations.list().empty()) << All();
  // A transaction that goes on as if nothing happened is caught (the status byte, at least).
  Exchange(Request{.op = Op::kBegin, .sql = "BEGIN"}, Tag("BEGIN"), session);
  Answer lost = Error("08006", "server connection lost during the statement");
  lost.status = 'T';
  Exchange(Read("k1"), lost, session);
  EXPECT_EQ(Reported(), std::vector<std::string>{"model"}) << All();
}

TEST_F(OraclesTest, AWriteThatNeverRanMustNotCommit) {
  Exchange(Request{.op = Op::kInsert, .key = "k1", .value = "t1", .sql = InsertSql("k1", "t1")},
           Error("08006", "switchyard: no primary server is available"), session);
  Commit(InsertSql("k1", "t1"), {"k1", false, "t1"});
  oracles.Finish();
  EXPECT_EQ(Reported(), std::vector<std::string>{"no_double_write"}) << All();
}

TEST_F(OraclesTest, ALostWriteMayHaveCommitted) {
  const Request insert{.op = Op::kInsert, .key = "k1", .value = "t1", .sql = InsertSql("k1", "t1")};
  Exchange(insert, Error("08006", "server connection lost during the statement"), session);
  Commit(insert.sql, {"k1", false, "t1"});
  oracles.Finish();
  EXPECT_TRUE(violations.list().empty()) << All();
}

TEST_F(OraclesTest, TheProxyEndingASessionAfterALossIsCaught) {
  Ending ending;
  ending.how = Ending::How::kServerClosed;
  ending.logged_in = true;
  ending.outstanding = Read("k1");
  ending.trailing = Error("08006", "server connection lost during the statement");
  ending.trailing.errors.push_back(
      ErrorInfo{"FATAL", "08006", "terminating connection: switchyard lost the server", true});
  oracles.OnEnded(client, session, ending);
  EXPECT_EQ(Reported(), std::vector<std::string>{"connection_loss"}) << All();
}

TEST_F(OraclesTest, AStaleReadOfTheClientsOwnWriteIsCaught) {
  world.replicas = 1;
  Commit(InsertSql("k1", "a"), {"k1", false, "a"});
  oracles.OnConnect(client);
  Write(Request{.op = Op::kUpdate, .key = "k1", .value = "b", .sql = UpdateSql("k1", "b")},
        {"k1", false, "b"}, "UPDATE 1");
  Request read = Read("k1");
  read.replica_ok = true;
  // Another client's older value is fine before our write, never after it.
  Exchange(read, Row("SELECT 1", "a"), session);
  EXPECT_EQ(Reported(), std::vector<std::string>{"read_your_writes"}) << All();
  Exchange(read, Row("SELECT 1", "b"), session);
  EXPECT_EQ(violations.count(), 1u) << All();
}

TEST_F(OraclesTest, AWriteOnAReplicaIsCaught) {
  const std::string tag = FormatRouteTag(RouteTag{.client = 3, .session = 1, .seq = 9});
  oracles.OnNodeQuery(NodeQuery{.node = 1, .sql = "SELECT 1" + tag, .in_recovery = true});
  EXPECT_TRUE(violations.list().empty()) << All();
  const std::string write_tag =
      FormatRouteTag(RouteTag{.client = 3, .session = 1, .seq = 9, .primary_only = true});
  oracles.OnNodeQuery(
      NodeQuery{.node = 0, .sql = UpdateSql("k1", "x") + write_tag, .in_recovery = false});
  EXPECT_TRUE(violations.list().empty()) << All();
  oracles.OnNodeQuery(
      NodeQuery{.node = 1, .sql = UpdateSql("k1", "x") + write_tag, .in_recovery = true});
  EXPECT_EQ(Reported(), std::vector<std::string>{"no_write_on_replica"}) << All();
}

TEST_F(OraclesTest, ASplitSyncBatchIsCaught) {
  RouteTag tag{.client = 3, .session = 1, .seq = 4};
  oracles.OnNodeQuery(NodeQuery{.node = 1, .sql = "SELECT 1" + FormatRouteTag(tag)});
  tag.index = 1;
  oracles.OnNodeQuery(NodeQuery{.node = 1, .sql = "SELECT 2" + FormatRouteTag(tag)});
  // Retried elsewhere from its first statement: fine.
  tag.index = 0;
  oracles.OnNodeQuery(NodeQuery{.node = 0, .sql = "SELECT 1" + FormatRouteTag(tag)});
  EXPECT_TRUE(violations.list().empty()) << All();
  tag.index = 1;
  oracles.OnNodeQuery(NodeQuery{.node = 2, .sql = "SELECT 2" + FormatRouteTag(tag)});
  EXPECT_EQ(Reported(), std::vector<std::string>{"batch_one_node"}) << All();
}

TEST_F(OraclesTest, RouteTagsParseBack) {
  const RouteTag tag{.client = 12, .session = 3, .seq = 456, .index = 2, .primary_only = true};
  const std::optional<RouteTag> parsed = ParseRouteTag("SELECT 1" + FormatRouteTag(tag));
  ASSERT_TRUE(parsed.has_value());
  EXPECT_EQ(parsed->Request(), "c12.s3#456");
  EXPECT_EQ(parsed->index, 2u);
  EXPECT_TRUE(parsed->primary_only);
  EXPECT_FALSE(ParseRouteTag("SELECT 1 /* a comment */").has_value());
}

TEST_F(OraclesTest, ACloseWithoutAWordIsCaught) {
  Ending ending;
  ending.how = Ending::How::kServerClosed;
  ending.logged_in = true;
  ending.outstanding = Read("k1");
  oracles.OnEnded(client, session, ending);
  EXPECT_EQ(Reported(), (std::vector<std::string>{"answers_in_order", "connection_loss"})) << All();
}

TEST_F(OraclesTest, AnotherSessionsSettingIsCaught) {
  Exchange(Request{.op = Op::kShow, .guc = "search_path", .sql = "SHOW search_path"},
           Row("SHOW", "s7_3"), session);
  oracles.OnWelcome(client, Welcome{{{"application_name", "a7_1"}}, 1, 2, 'I', "app0"});
  EXPECT_EQ(Reported(), (std::vector<std::string>{"session_state", "session_state"})) << All();
}

TEST_F(OraclesTest, ACancelThatHitTheWrongClientIsCaught) {
  Exchange(Request{.op = Op::kSleep, .sql = "SELECT pg_sleep(1)"},
           Error("57014", "canceling statement due to user request"), session);
  EXPECT_EQ(Reported(), std::vector<std::string>{"cancel"}) << All();
  // With a cancel of its own, the client's 57014 is fine.
  oracles.OnCancelSent(client, Request{});
  Exchange(Request{.op = Op::kSleep, .sql = "SELECT pg_sleep(1)"},
           Error("57014", "canceling statement due to user request"), session);
  EXPECT_EQ(violations.count(), 1u) << All();
}

TEST_F(OraclesTest, TwoCompletionsForOneRequestAreCaught) {
  Answer answer = Tag("SET");
  answer.tags.push_back("SET");
  Exchange(Request{.op = Op::kSet, .value = "x", .guc = "search_path", .sql = "SET x"}, answer,
           session);
  EXPECT_EQ(Reported(), (std::vector<std::string>{"answers_in_order", "model"})) << All();
}

TEST_F(OraclesTest, AStuckSessionIsCaught) {
  Ending ending;
  ending.how = Ending::How::kStillOpen;
  ending.logged_in = true;
  ending.outstanding = Read("k1");
  oracles.OnEnded(client, session, ending);
  EXPECT_EQ(Reported(), std::vector<std::string>{"liveness"}) << All();
}

}  // namespace
}  // namespace switchyard::sim
