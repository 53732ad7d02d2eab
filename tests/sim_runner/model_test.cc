// The reference model: write statements parse back, the committed history answers "what could a
// statement have seen between two WAL positions", a WAL record its statements do not explain is
// reported, and a session's SET/transaction state follows PostgreSQL's rules.
#include "sim/model.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "sim/kv_store.h"

namespace switchyard::sim {
namespace {

TEST(WriteStatementTest, ParsesWhatTheWorkloadWrites) {
  auto insert = ParseWriteStatement(InsertSql("k01", "t3_7"));
  ASSERT_TRUE(insert.has_value());
  EXPECT_EQ(insert->op, Op::kInsert);
  EXPECT_EQ(insert->key, "k01");
  EXPECT_EQ(insert->value, "t3_7");
  auto update = ParseWriteStatement(UpdateSql("k02", "t3_8"));
  ASSERT_TRUE(update.has_value());
  EXPECT_EQ(update->op, Op::kUpdate);
  EXPECT_EQ(update->key, "k02");
  EXPECT_EQ(update->value, "t3_8");
  auto remove = ParseWriteStatement(DeleteSql("k03"));
  ASSERT_TRUE(remove.has_value());
  EXPECT_EQ(remove->op, Op::kDelete);
  EXPECT_EQ(remove->key, "k03");
}

TEST(WriteStatementTest, RejectsAnythingElse) {
  EXPECT_FALSE(ParseWriteStatement("SELECT v FROM kv WHERE k = 'k01'"));
  EXPECT_FALSE(ParseWriteStatement("INSERT INTO kv VALUES ('k01', 'a'), ('k02', 'b')"));
  EXPECT_FALSE(ParseWriteStatement("UPDATE kv SET v = 'a'"));
  EXPECT_FALSE(ParseWriteStatement("DELETE FROM kv"));
}

// A store with three committed transactions: k1 inserted, k1 updated with k2 inserted, k1
// deleted.
class HistoryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Commit({InsertSql("k1", "a")}, {{"k1", false, "a"}});
    Commit({UpdateSql("k1", "b"), InsertSql("k2", "c")}, {{"k1", false, "b"}, {"k2", false, "c"}});
    Commit({DeleteSql("k1")}, {{"k1", true, std::nullopt}});
  }
  void Commit(std::vector<std::string> statements, std::vector<RowChange> changes) {
    store.Commit(std::move(changes), std::move(statements), 1, "primary", 7);
  }

  KvStore store;
  KvHistory history;
};

TEST_F(HistoryTest, RebuildsEveryPosition) {
  history.Ingest(store);
  EXPECT_TRUE(history.TakeProblems().empty());
  EXPECT_EQ(history.position(), 3u);
  EXPECT_EQ(history.ValueAt("k1", 0), std::nullopt);
  EXPECT_EQ(history.ValueAt("k1", 1), RowState("a"));
  EXPECT_EQ(history.ValueAt("k1", 2), RowState("b"));
  EXPECT_EQ(history.ValueAt("k1", 3), std::nullopt);
  EXPECT_EQ(history.ValueAt("k2", 2), RowState("c"));
  EXPECT_EQ(history.TableAt(2), (std::map<std::string, std::string>{{"k1", "b"}, {"k2", "c"}}));
}

TEST_F(HistoryTest, AnswersWhatAStatementCouldHaveSeen) {
  history.Ingest(store);
  ASSERT_TRUE(history.TakeProblems().empty());
  // A read sent at position 1 and answered at 2 saw "a" or "b", nothing else.
  EXPECT_TRUE(history.Saw("k1", 1, 2, RowState("a")));
  EXPECT_TRUE(history.Saw("k1", 1, 2, RowState("b")));
  EXPECT_FALSE(history.Saw("k1", 1, 2, std::nullopt));
  EXPECT_FALSE(history.Saw("k1", 1, 2, RowState("c")));
  EXPECT_TRUE(history.SawPresence("k1", 2, 3, false));
  EXPECT_FALSE(history.SawPresence("k2", 2, 3, false));
  EXPECT_TRUE(history.SawTable(0, 3, {{"k2", "c"}}));
  EXPECT_FALSE(history.SawTable(0, 1, {{"k2", "c"}}));
  // A session's own uncommitted write hides the committed row.
  EXPECT_TRUE(history.SawTable(3, 3, {{"k2", "c"}, {"k3", "x"}}, {{"k3", RowState("x")}}));
}

TEST_F(HistoryTest, FindsACommittedTransactionWithinItsInterval) {
  history.Ingest(store);
  ASSERT_TRUE(history.TakeProblems().empty());
  const std::vector<std::string> second = {UpdateSql("k1", "b"), InsertSql("k2", "c")};
  EXPECT_EQ(history.FindRecord(second, 0, 3), 1u);
  EXPECT_EQ(history.FindRecord(second, 2, 3), std::nullopt);
  EXPECT_EQ(history.FindRecord({InsertSql("k1", "zzz")}, 0, 3), std::nullopt);
}

// A replica that had the first two records is promoted; the third, committed on the old
// primary only, is lost. The history forks back to the state of two records, then goes on with
// the new primary's WAL.
TEST_F(HistoryTest, AFailoverThatLosesWritesForksTheHistory) {
  KvStore replica;
  ASSERT_TRUE(replica.ReplicateFrom(store, store.wal()[1].end_lsn).ok());
  history.Ingest(store);
  ASSERT_EQ(history.position(), 3u);
  EXPECT_EQ(history.PositionOfLsn(store.wal()[1].end_lsn), 2u);
  replica.AppendEndOfRecovery(2, "replica");
  replica.Commit({{"k2", false, "d"}}, {UpdateSql("k2", "d")}, 2, "replica", 9);
  history.Ingest(replica);
  EXPECT_TRUE(history.TakeProblems().empty());
  EXPECT_EQ(history.forks(), 1u);
  EXPECT_TRUE(history.records()[2].lost);
  // 3: the lost delete; 4: the fork puts k1 back; 5: end of recovery; 6: the new write.
  ASSERT_EQ(history.position(), 6u);
  EXPECT_EQ(history.ValueAt("k1", 3), std::nullopt);
  EXPECT_EQ(history.ValueAt("k1", 4), RowState("b"));
  EXPECT_EQ(history.ValueAt("k2", 6), RowState("d"));
  // LSNs count on the new line; the old primary's LSN maps onto its own records.
  EXPECT_EQ(history.PositionOfLsn(replica.lsn()), 6u);
  EXPECT_EQ(history.PositionOfLsn(store, store.lsn()), 3u);
  EXPECT_EQ(history.PositionOfLsn(replica, replica.wal()[1].end_lsn), 2u);
  // Nothing new: no second fork.
  history.Ingest(replica);
  EXPECT_EQ(history.forks(), 1u);
}

TEST_F(HistoryTest, ReportsARecordItsStatementsDoNotExplain) {
  history.Ingest(store);
  ASSERT_TRUE(history.TakeProblems().empty());
  // k2 exists: a committed INSERT of it means the node applied a failing statement.
  Commit({InsertSql("k2", "d")}, {{"k2", false, "d"}});
  // The statement says one value, the row change another.
  Commit({UpdateSql("k2", "e")}, {{"k2", false, "f"}});
  // A statement no client sends.
  Commit({"UPDATE kv SET v = v || 'x'"}, {{"k2", false, "fx"}});
  history.Ingest(store);
  std::vector<std::string> problems = history.TakeProblems();
  ASSERT_EQ(problems.size(), 3u);
  EXPECT_NE(problems[0].find("to a row that was 'c'"), std::string::npos) << problems[0];
  EXPECT_NE(problems[1].find("do not explain"), std::string::npos) << problems[1];
  EXPECT_NE(problems[2].find("no client sent"), std::string::npos) << problems[2];
  // The node's own changes stay the truth for what follows.
  EXPECT_EQ(history.ValueAt("k2", history.position()), RowState("fx"));
}

Answer Ok(std::string tag) {
  Answer answer;
  answer.tags.push_back(std::move(tag));
  return answer;
}
Answer Failed(std::string sqlstate) {
  Answer answer;
  answer.errors.push_back(ErrorInfo{"ERROR", std::move(sqlstate), "boom", false});
  return answer;
}
Request Make(Op op, std::string key = "", std::string value = "", std::string guc = "") {
  Request request{.op = op, .key = std::move(key), .value = std::move(value), .guc = guc};
  if (op == Op::kInsert) request.sql = InsertSql(request.key, request.value);
  if (op == Op::kUpdate) request.sql = UpdateSql(request.key, request.value);
  if (op == Op::kDelete) request.sql = DeleteSql(request.key);
  return request;
}

TEST(SessionModelTest, RollbackUndoesSetsAndWrites) {
  SessionModel session({{"search_path", "public"}});
  session.Apply(Make(Op::kSet, "", "a", "search_path"), Ok("SET"));
  EXPECT_EQ(session.Show("search_path"), "a");
  session.Apply(Make(Op::kBegin), Ok("BEGIN"));
  EXPECT_EQ(session.status(), 'T');
  session.Apply(Make(Op::kSet, "", "b", "search_path"), Ok("SET"));
  session.Apply(Make(Op::kInsert, "k1", "t1"), Ok("INSERT 0 1"));
  EXPECT_EQ(session.Show("search_path"), "b");
  EXPECT_EQ(session.own_writes().at("k1"), RowState("t1"));
  EXPECT_EQ(session.tx_statements(), std::vector<std::string>{InsertSql("k1", "t1")});
  session.Apply(Make(Op::kRollback), Ok("ROLLBACK"));
  EXPECT_EQ(session.status(), 'I');
  EXPECT_EQ(session.Show("search_path"), "a");
  EXPECT_TRUE(session.own_writes().empty());
}

TEST(SessionModelTest, SetLocalEndsWithTheTransaction) {
  SessionModel session({{"application_name", "app0"}});
  session.Apply(Make(Op::kBegin), Ok("BEGIN"));
  session.Apply(Make(Op::kSetLocal, "", "x", "application_name"), Ok("SET"));
  EXPECT_EQ(session.Show("application_name"), "x");
  session.Apply(Make(Op::kCommit), Ok("COMMIT"));
  EXPECT_EQ(session.Show("application_name"), "app0");
}

TEST(SessionModelTest, AnErrorFailsTheTransactionUntilItEnds) {
  SessionModel session({});
  const Request insert = Make(Op::kInsert, "k1", "t1");
  EXPECT_EQ(session.StatusAfter(insert, Failed("23505")), 'I');
  session.Apply(Make(Op::kBegin), Ok("BEGIN"));
  EXPECT_EQ(session.StatusAfter(insert, Failed("23505")), 'E');
  session.Apply(insert, Failed("23505"));
  EXPECT_EQ(session.status(), 'E');
  // COMMIT of a failed transaction rolls back.
  session.Apply(Make(Op::kCommit), Ok("ROLLBACK"));
  EXPECT_EQ(session.status(), 'I');
  EXPECT_TRUE(session.tx_statements().empty());
}

TEST(AnswerTest, AffectedRowsComeFromTheTag) {
  EXPECT_EQ(Ok("INSERT 0 1").Affected(), 1);
  EXPECT_EQ(Ok("UPDATE 0").Affected(), 0);
  EXPECT_EQ(Ok("DELETE 1").Affected(), 1);
  EXPECT_EQ(Ok("SELECT 1").Affected(), -1);
  EXPECT_EQ(Answer{}.Affected(), -1);
}

}  // namespace
}  // namespace switchyard::sim
