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
  Ending ending;
  ending.how = Ending::How::kServerClosed;
  ending.logged_in = true;
  ending.outstanding = Request{.seq = 4, .op = Op::kCommit, .sql = "COMMIT"};
  ending.trailing = Error("08006", "server connection lost during the statement");
  ending.trailing.errors.push_back(
      ErrorInfo{"FATAL", "08006", "terminating connection: switchyard lost the server", true});
  oracles.OnEnded(client, session, ending);
  EXPECT_EQ(Reported(), std::vector<std::string>{"connection_loss"}) << All();

  // The same loss during an UPDATE is reported correctly with 08006.
  ending.outstanding = Request{.seq = 4, .op = Op::kUpdate, .sql = UpdateSql("k1", "t4")};
  oracles.OnEnded(ClientInfo{4, 1}, session, ending);
  EXPECT_EQ(violations.count(), 1u) << All();
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
