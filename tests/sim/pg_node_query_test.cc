// Tests of a simulated node's simple Query protocol and SQL: multi-statement strings, implicit
// and explicit transactions, savepoints, SET/SHOW, DISCARD ALL, LISTEN/NOTIFY, COPY, pg_sleep and
// cancel, row locks. Each test shows the exact statements a workload may send.
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

class PgNodeQueryTest : public ::testing::Test {
 protected:
  PgNodeQueryTest() : node_(Options()) {}
  static NodeOptions Options() {
    NodeOptions options;
    options.name = "pg0";
    return options;
  }
  std::unique_ptr<TestClient> Connect(uint64_t id) {
    auto client = std::make_unique<TestClient>(node_, id, &now_);
    client->Startup();
    return client;
  }
  std::optional<Value> Committed(std::string_view key) { return node_.store().Get(key); }

  Instant now_;
  PgNode node_;
};

TEST_F(PgNodeQueryTest, KvStatementsRoundTrip) {
  auto c = Connect(1);
  EXPECT_THAT(c->Query("CREATE TABLE IF NOT EXISTS kv (k text PRIMARY KEY, v text)"),
              ElementsAre("N:42P07", "C:CREATE TABLE", "Z:I"));
  EXPECT_THAT(c->Query("INSERT INTO kv VALUES ('a', '1')"), ElementsAre("C:INSERT 0 1", "Z:I"));
  EXPECT_THAT(c->Query("INSERT INTO kv (k, v) VALUES ('b', '2'), ('c', NULL)"),
              ElementsAre("C:INSERT 0 2", "Z:I"));
  EXPECT_THAT(c->Query("SELECT v FROM kv WHERE k = 'a'"),
              ElementsAre("T:v", "D:1", "C:SELECT 1", "Z:I"));
  EXPECT_THAT(c->Query("SELECT k, v FROM kv ORDER BY k LIMIT 2"),
              ElementsAre("T:k,v", "D:a|1", "D:b|2", "C:SELECT 2", "Z:I"));
  EXPECT_THAT(c->Query("SELECT * FROM kv ORDER BY k DESC"),
              ElementsAre("T:k,v", "D:c|\\N", "D:b|2", "D:a|1", "C:SELECT 3", "Z:I"));
  EXPECT_THAT(c->Query("SELECT count(*) FROM kv"),
              ElementsAre("T:count", "D:3", "C:SELECT 1", "Z:I"));
  EXPECT_THAT(c->Query("UPDATE kv SET v = v || 'x' WHERE k = 'a' RETURNING v"),
              ElementsAre("T:v", "D:1x", "C:UPDATE 1", "Z:I"));
  EXPECT_THAT(c->Query("UPDATE kv SET v = 'z' WHERE k = 'nope'"), ElementsAre("C:UPDATE 0", "Z:I"));
  EXPECT_THAT(c->Query("INSERT INTO kv VALUES ('a', 'dup')"), ElementsAre("E:23505", "Z:I"));
  EXPECT_THAT(c->Query("INSERT INTO kv VALUES ('a', 'new') ON CONFLICT (k) DO UPDATE SET v = "
                       "kv.v || EXCLUDED.v"),
              ElementsAre("C:INSERT 0 1", "Z:I"));
  EXPECT_EQ(Committed("a"), Value("1xnew"));
  EXPECT_THAT(c->Query("INSERT INTO kv VALUES ('a', 'skip') ON CONFLICT DO NOTHING"),
              ElementsAre("C:INSERT 0 0", "Z:I"));
  EXPECT_THAT(c->Query("DELETE FROM kv WHERE k = 'b'"), ElementsAre("C:DELETE 1", "Z:I"));
  EXPECT_THAT(c->Query("UPDATE kv SET v = (coalesce)"), ElementsAre("E:42703", "Z:I"));
  EXPECT_THAT(c->Query("SELECT (v::int + 1)::text AS n FROM kv WHERE k = 'a'"),
              ElementsAre("E:22P02", "Z:I"));
  EXPECT_THAT(c->Query("SELECT v FROM nope"), ElementsAre("E:42P01", "Z:I"));
  EXPECT_THAT(c->Query("VACUUM kv"), ElementsAre("E:42601", "Z:I"));
  EXPECT_FALSE(Committed("b").has_value());
}

TEST_F(PgNodeQueryTest, EmptyQueryAndCommentsOnly) {
  auto c = Connect(1);
  EXPECT_THAT(c->Query(""), ElementsAre("I", "Z:I"));
  EXPECT_THAT(c->Query(" ; -- nothing\n"), ElementsAre("I", "Z:I"));
  EXPECT_THAT(
      c->Query("SELECT 'a;b' AS \"x;y\"; /* ; */ SELECT 2"),
      ElementsAre("T:x;y", "D:a;b", "C:SELECT 1", "T:?column?", "D:2", "C:SELECT 1", "Z:I"));
}

TEST_F(PgNodeQueryTest, ErrorInMultiStatementQueryRollsBackTheImplicitBlock) {
  auto c = Connect(1);
  EXPECT_THAT(c->Query("INSERT INTO kv VALUES ('a', '1'); SELECT 1/0x; INSERT INTO kv VALUES "
                       "('b', '2')"),
              ElementsAre("E:42601", "Z:I"))
      << "a syntax error anywhere rejects the whole string before anything runs";
  EXPECT_THAT(c->Query("INSERT INTO kv VALUES ('a', '1'); INSERT INTO kv VALUES ('a', '2'); "
                       "INSERT INTO kv VALUES ('b', '3')"),
              ElementsAre("C:INSERT 0 1", "E:23505", "Z:I"));
  EXPECT_FALSE(Committed("a").has_value()) << "the implicit block is one transaction";
  EXPECT_FALSE(Committed("b").has_value());
  EXPECT_THAT(c->Query("SET application_name = 'before'; SELECT v FROM nope"),
              ElementsAre("C:SET", "E:42P01", "Z:I"));
  EXPECT_THAT(c->Query("SHOW application_name"),
              ElementsAre("T:application_name", "D:", "C:SHOW", "Z:I"))
      << "the SET before the error was undone";
}

TEST_F(PgNodeQueryTest, FailedTransactionIgnoresCommandsUntilRollbackAndCommitRollsBack) {
  auto c = Connect(1);
  EXPECT_THAT(c->Query("BEGIN"), ElementsAre("C:BEGIN", "Z:T"));
  EXPECT_THAT(c->Query("INSERT INTO kv VALUES ('a', '1')"), ElementsAre("C:INSERT 0 1", "Z:T"));
  EXPECT_THAT(c->Query("SELECT nope FROM kv"), ElementsAre("E:42703", "Z:E"));
  EXPECT_THAT(c->Query("SELECT 1"), ElementsAre("E:25P02", "Z:E"));
  EXPECT_THAT(c->Query("INSERT INTO kv VALUES ('b', '2')"), ElementsAre("E:25P02", "Z:E"));
  EXPECT_THAT(c->Query("COMMIT"), ElementsAre("C:ROLLBACK", "Z:I"));
  EXPECT_FALSE(Committed("a").has_value());
  EXPECT_THAT(c->Query("BEGIN; SELECT nope FROM kv"), ElementsAre("C:BEGIN", "E:42703", "Z:E"));
  EXPECT_THAT(c->Query("ROLLBACK"), ElementsAre("C:ROLLBACK", "Z:I"));
  EXPECT_THAT(c->Query("COMMIT"), ElementsAre("N:25P01", "C:COMMIT", "Z:I"));
  EXPECT_THAT(c->Query("BEGIN; BEGIN"), ElementsAre("C:BEGIN", "N:25001", "C:BEGIN", "Z:T"));
  EXPECT_THAT(c->Query("INSERT INTO kv VALUES ('c', '3'); END"),
              ElementsAre("C:INSERT 0 1", "C:COMMIT", "Z:I"));
  EXPECT_EQ(Committed("c"), Value("3"));
}

TEST_F(PgNodeQueryTest, UncommittedWritesAreInvisibleToOthers) {
  auto a = Connect(1);
  auto b = Connect(2);
  a->Query("START TRANSACTION");
  a->Query("INSERT INTO kv VALUES ('k', 'v')");
  EXPECT_THAT(a->Query("SELECT v FROM kv WHERE k = 'k'"), Contains("D:v"));
  EXPECT_THAT(b->Query("SELECT v FROM kv WHERE k = 'k'"), ElementsAre("T:v", "C:SELECT 0", "Z:I"));
  EXPECT_THAT(a->Query("COMMIT"), ElementsAre("C:COMMIT", "Z:I"));
  EXPECT_THAT(b->Query("SELECT v FROM kv WHERE k = 'k'"), Contains("D:v"));
}

TEST_F(PgNodeQueryTest, SavepointsUndoPartOfATransaction) {
  auto c = Connect(1);
  EXPECT_THAT(
      c->Query("BEGIN; INSERT INTO kv VALUES ('a', '1'); SAVEPOINT s1; INSERT INTO kv "
               "VALUES ('b', '2'); SELECT nope FROM kv"),
      ElementsAre("C:BEGIN", "C:INSERT 0 1", "C:SAVEPOINT", "C:INSERT 0 1", "E:42703", "Z:E"));
  EXPECT_THAT(c->Query("ROLLBACK TO SAVEPOINT s1"), ElementsAre("C:ROLLBACK", "Z:T"));
  EXPECT_THAT(c->Query("SELECT k FROM kv ORDER BY k"),
              ElementsAre("T:k", "D:a", "C:SELECT 1", "Z:T"));
  EXPECT_THAT(c->Query("RELEASE s1; RELEASE s1"), ElementsAre("C:RELEASE", "E:3B001", "Z:E"));
  EXPECT_THAT(c->Query("ROLLBACK"), ElementsAre("C:ROLLBACK", "Z:I"));
  EXPECT_THAT(c->Query("SAVEPOINT s"), ElementsAre("E:25P01", "Z:I"));
  c->Query(
      "BEGIN; INSERT INTO kv VALUES ('x', '1'); SAVEPOINT s; DELETE FROM kv WHERE k = 'x'; "
      "ROLLBACK TO s; COMMIT");
  EXPECT_EQ(Committed("x"), Value("1"));
}

TEST_F(PgNodeQueryTest, SetShowResetAndTransactionScopes) {
  auto c = Connect(1);
  EXPECT_THAT(c->Query("SET application_name = 'app1'"),
              ElementsAre("C:SET", "S:application_name=app1", "Z:I"));
  EXPECT_THAT(c->Query("SHOW application_name"),
              ElementsAre("T:application_name", "D:app1", "C:SHOW", "Z:I"));
  EXPECT_THAT(c->Query("SET DateStyle TO iso, dmy"),
              ElementsAre("C:SET", "S:DateStyle=ISO, DMY", "Z:I"));
  EXPECT_THAT(c->Query("SELECT current_setting('datestyle'), set_config('work_mem', '8MB', false)"),
              ElementsAre("T:current_setting,set_config", "D:ISO, DMY|8MB", "C:SELECT 1", "Z:I"));
  EXPECT_THAT(c->Query("SET no_such_thing = 1"), ElementsAre("E:42704", "Z:I"));
  EXPECT_THAT(c->Query("SET myapp.tenant = 't1'; SHOW myapp.tenant"),
              ElementsAre("C:SET", "T:myapp.tenant", "D:t1", "C:SHOW", "Z:I"));
  EXPECT_THAT(c->Query("SET server_version = '1'"), ElementsAre("E:55P02", "Z:I"));
  // SET inside a rolled-back transaction is undone; SET LOCAL ends with the transaction.
  c->Query("BEGIN; SET statement_timeout = '1min'; SET LOCAL work_mem = '64MB'");
  EXPECT_THAT(c->Query("SHOW work_mem"), Contains("D:64MB"));
  EXPECT_THAT(c->Query("ROLLBACK"), ElementsAre("C:ROLLBACK", "Z:I"));
  EXPECT_THAT(
      c->Query("SHOW statement_timeout; SHOW work_mem"),
      ElementsAre("T:statement_timeout", "D:0", "C:SHOW", "T:work_mem", "D:8MB", "C:SHOW", "Z:I"));
  EXPECT_THAT(c->Query("SET LOCAL work_mem = '1MB'"), ElementsAre("N:25P01", "C:SET", "Z:I"));
  EXPECT_THAT(c->Query("SHOW work_mem"), Contains("D:8MB"));
  EXPECT_THAT(c->Query("RESET ALL"),
              ElementsAre("C:RESET", "S:application_name=", "S:DateStyle=ISO, MDY", "Z:I"));
  EXPECT_THAT(node_.InspectSession(1)->settings, IsEmpty());
}

TEST_F(PgNodeQueryTest, DiscardAllResetsSessionStateButNotInsideATransaction) {
  auto c = Connect(1);
  c->Query("SET application_name = 'x'; PREPARE p AS SELECT v FROM kv WHERE k = $1; LISTEN ch");
  SessionView before = *node_.InspectSession(1);
  EXPECT_THAT(before.prepared_statements, ElementsAre("p"));
  EXPECT_THAT(before.listens, ElementsAre("ch"));
  EXPECT_THAT(c->Query("BEGIN; DISCARD ALL"), ElementsAre("C:BEGIN", "E:25001", "Z:E"));
  c->Query("ROLLBACK");
  EXPECT_THAT(c->Query("SELECT 1; DISCARD ALL"),
              ElementsAre("T:?column?", "D:1", "C:SELECT 1", "E:25001", "Z:I"));
  EXPECT_THAT(c->Query("DISCARD ALL"), ElementsAre("C:DISCARD ALL", "S:application_name=", "Z:I"));
  SessionView after = *node_.InspectSession(1);
  EXPECT_THAT(after.settings, IsEmpty());
  EXPECT_THAT(after.prepared_statements, IsEmpty());
  EXPECT_THAT(after.listens, IsEmpty());
  EXPECT_THAT(c->Query("EXECUTE p('a')"), ElementsAre("E:26000", "Z:I"));
}

TEST_F(PgNodeQueryTest, SqlPrepareExecuteDeallocate) {
  auto c = Connect(1);
  EXPECT_THAT(c->Query("PREPARE ins (text, text) AS INSERT INTO kv VALUES ($1, $2)"),
              ElementsAre("C:PREPARE", "Z:I"));
  EXPECT_THAT(c->Query("EXECUTE ins('a', 'x'); EXECUTE ins('b', 'y')"),
              ElementsAre("C:INSERT 0 1", "C:INSERT 0 1", "Z:I"));
  EXPECT_THAT(c->Query("PREPARE get AS SELECT v FROM kv WHERE k = $1; EXECUTE get('b')"),
              ElementsAre("C:PREPARE", "T:v", "D:y", "C:SELECT 1", "Z:I"));
  EXPECT_THAT(c->Query("EXECUTE get"), ElementsAre("E:42601", "Z:I"));
  EXPECT_THAT(c->Query("PREPARE get AS SELECT 1"), ElementsAre("E:42P05", "Z:I"));
  EXPECT_THAT(c->Query("DEALLOCATE get; EXECUTE get('b')"),
              ElementsAre("C:DEALLOCATE", "E:26000", "Z:I"));
  EXPECT_THAT(c->Query("DEALLOCATE ALL"), ElementsAre("C:DEALLOCATE ALL", "Z:I"));
  EXPECT_THAT(node_.InspectSession(1)->prepared_statements, IsEmpty());
}

TEST_F(PgNodeQueryTest, ListenNotifyDeliversAtCommitToListenersOnTheNode) {
  auto listener = Connect(1);
  auto sender = Connect(2);
  EXPECT_THAT(listener->Query("LISTEN jobs"), ElementsAre("C:LISTEN", "Z:I"));
  EXPECT_THAT(sender->Query("BEGIN; NOTIFY jobs, 'one'; NOTIFY jobs, 'one'; NOTIFY other"),
              ElementsAre("C:BEGIN", "C:NOTIFY", "C:NOTIFY", "C:NOTIFY", "Z:T"));
  EXPECT_THAT(listener->Read(), IsEmpty()) << "nothing before commit";
  EXPECT_THAT(sender->Query("COMMIT"), ElementsAre("C:COMMIT", "Z:I"));
  EXPECT_THAT(listener->Read(), ElementsAre("A:jobs:one")) << "duplicates fold into one";
  // A listener inside a transaction gets it only after its transaction ends.
  listener->Query("BEGIN");
  sender->Query("SELECT pg_notify('jobs', 'two')");
  EXPECT_THAT(listener->Read(), IsEmpty());
  EXPECT_THAT(listener->Query("COMMIT"), ElementsAre("C:COMMIT", "A:jobs:two", "Z:I"));
  // Rolled-back notifications never arrive; UNLISTEN stops delivery.
  sender->Query("BEGIN; NOTIFY jobs, 'lost'; ROLLBACK");
  listener->Query("UNLISTEN *");
  sender->Query("NOTIFY jobs, 'three'");
  EXPECT_THAT(listener->Read(), IsEmpty());
}

TEST_F(PgNodeQueryTest, CopyInAndOutRoundTrip) {
  auto c = Connect(1);
  EXPECT_THAT(c->Query("COPY kv FROM STDIN"), ElementsAre("G"));
  c->Send(pg::CopyData{.data = "a\t1\nb\t\\N\nc\ttab\\there\n"}.Encode());
  c->Send(pg::CopyData{.data = "d\t4"}.Encode());
  c->Send(pg::CopyDone{}.Encode());
  EXPECT_THAT(c->Read(), ElementsAre("C:COPY 4", "Z:I"));
  EXPECT_EQ(Committed("c"), Value("tab\there"));
  EXPECT_EQ(Committed("b"), std::optional<Value>(Value(std::nullopt))) << "present, v NULL";
  EXPECT_THAT(c->Query("COPY kv TO STDOUT"),
              ElementsAre("H", "d:a\t1\n", "d:b\t\\N\n", "d:c\ttab\\there\n", "d:d\t4\n", "c",
                          "C:COPY 4", "Z:I"));
  // CopyFail aborts the COPY and its statement string; a duplicate key aborts the whole COPY.
  EXPECT_THAT(c->Query("COPY kv FROM STDIN; INSERT INTO kv VALUES ('z', 'z')"), ElementsAre("G"));
  c->Send(pg::CopyFail{.message = "client gave up"}.Encode());
  EXPECT_THAT(c->Read(), ElementsAre("E:57014", "Z:I"));
  c->Query("COPY kv (k, v) FROM STDIN");
  c->Send(pg::CopyData{.data = "e\t5\na\tdup\n"}.Encode());
  c->Send(pg::CopyDone{}.Encode());
  EXPECT_THAT(c->Read(), ElementsAre("E:23505", "Z:I"));
  EXPECT_FALSE(Committed("e").has_value());
  EXPECT_FALSE(Committed("z").has_value());
}

TEST_F(PgNodeQueryTest, PgSleepCompletesAtItsDeadlineAndCanBeCancelled) {
  auto c = Connect(1);
  c->Send(pg::Query{.sql = "SELECT pg_sleep(1.5)"}.Encode());
  EXPECT_THAT(c->Read(), IsEmpty());
  EXPECT_EQ(node_.NextDeadline(), Instant{1'500'000});
  now_ = Instant{1'000'000};
  node_.Tick(now_);
  EXPECT_THAT(c->Read(), IsEmpty());
  now_ = Instant{1'500'000};
  node_.Tick(now_);
  EXPECT_THAT(c->Read(), ElementsAre("T:pg_sleep", "D:", "C:SELECT 1", "Z:I"));
  EXPECT_EQ(node_.NextDeadline(), std::nullopt);

  c->Send(pg::Query{.sql = "BEGIN; SELECT pg_sleep(60); SELECT 1"}.Encode());
  EXPECT_THAT(c->Read(), ElementsAre("C:BEGIN"));
  TestClient wrong(node_, 2, &now_);
  wrong.Send(pg::CancelRequest{.pid = c->pid(), .secret = c->secret() + 1}.Encode());
  EXPECT_THAT(c->Read(), IsEmpty()) << "a wrong secret cancels nothing";
  TestClient cancel(node_, 3, &now_);
  cancel.Send(pg::CancelRequest{.pid = c->pid(), .secret = c->secret()}.Encode());
  EXPECT_TRUE(cancel.WantsClose());
  EXPECT_THAT(c->Read(), ElementsAre("E:57014", "Z:E"));
  EXPECT_EQ(node_.counters().cancels_applied, 1u);
  c->Query("ROLLBACK");
}

TEST_F(PgNodeQueryTest, StatementTimeoutCancelsSlowStatements) {
  auto c = Connect(1);
  c->Query("SET statement_timeout = 100");
  c->Send(pg::Query{.sql = "SELECT pg_sleep(10)"}.Encode());
  EXPECT_EQ(node_.NextDeadline(), Instant{100'000});
  now_ = Instant{100'000};
  node_.Tick(now_);
  EXPECT_THAT(c->Read(), ElementsAre("E:57014", "Z:I"));
}

TEST_F(PgNodeQueryTest, RowLocksMakeWritersWaitAndDeadlocksAreDetected) {
  auto a = Connect(1);
  auto b = Connect(2);
  a->Query("INSERT INTO kv VALUES ('x', '0'), ('y', '0')");
  a->Query("BEGIN; UPDATE kv SET v = v || 'a' WHERE k = 'x'");
  b->Send(pg::Query{.sql = "UPDATE kv SET v = v || 'b' WHERE k = 'x'"}.Encode());
  EXPECT_THAT(b->Read(), IsEmpty()) << "b waits for a's row lock";
  EXPECT_TRUE(node_.InspectSession(2)->running);
  EXPECT_THAT(a->Query("COMMIT"), ElementsAre("C:COMMIT", "Z:I"));
  EXPECT_THAT(b->Read(), ElementsAre("C:UPDATE 1", "Z:I")) << "b runs once a commits";
  EXPECT_EQ(Committed("x"), Value("0ab")) << "b saw a's committed value";
  // A concurrent INSERT of the same key waits, then fails once the first commits.
  a->Query("BEGIN; INSERT INTO kv VALUES ('n', '1')");
  b->Send(pg::Query{.sql = "INSERT INTO kv VALUES ('n', '2')"}.Encode());
  EXPECT_THAT(b->Read(), IsEmpty());
  a->Query("COMMIT");
  EXPECT_THAT(b->Read(), ElementsAre("E:23505", "Z:I"));
  // Deadlock: each holds one row and wants the other's; one of them is chosen after 1s.
  a->Query("BEGIN; UPDATE kv SET v = 'a' WHERE k = 'x'");
  b->Query("BEGIN; UPDATE kv SET v = 'b' WHERE k = 'y'");
  a->Send(pg::Query{.sql = "UPDATE kv SET v = 'a' WHERE k = 'y'"}.Encode());
  b->Send(pg::Query{.sql = "UPDATE kv SET v = 'b' WHERE k = 'x'"}.Encode());
  EXPECT_EQ(node_.NextDeadline(), Instant{1'000'000});
  now_ = Instant{1'000'000};
  node_.Tick(now_);
  EXPECT_THAT(a->Read(), ElementsAre("E:40P01", "Z:E"));
  EXPECT_THAT(b->Read(), ElementsAre("C:UPDATE 1", "Z:T")) << "the victim's locks were freed";
  EXPECT_THAT(b->Query("COMMIT"), ElementsAre("C:COMMIT", "Z:I"));
  a->Query("ROLLBACK");
  // NOWAIT and SKIP LOCKED.
  a->Query("BEGIN; SELECT v FROM kv WHERE k = 'x' FOR UPDATE");
  EXPECT_THAT(b->Query("SELECT v FROM kv WHERE k = 'x' FOR UPDATE NOWAIT"),
              ElementsAre("E:55P03", "Z:I"));
  EXPECT_THAT(b->Query("SELECT k FROM kv ORDER BY k FOR UPDATE SKIP LOCKED"),
              ElementsAre("T:k", "D:n", "D:y", "C:SELECT 2", "Z:I"));
  a->Query("ROLLBACK");
}

TEST_F(PgNodeQueryTest, ClosedClientStillHasWhatItSentRunAndCommitted) {
  auto c = Connect(1);
  node_.SetSlowness(1000);
  c->Send(pg::Query{.sql = "INSERT INTO kv VALUES ('late', '1')"}.Encode());
  node_.Close(1, now_);
  EXPECT_FALSE(Committed("late").has_value());
  now_ = Instant{1000};
  node_.Tick(now_);
  EXPECT_EQ(Committed("late"), Value("1"));
  EXPECT_THAT(node_.SessionIds(), IsEmpty());
  // An open transaction of a client that leaves is rolled back.
  node_.SetSlowness(0);
  auto d = Connect(2);
  d->Query("BEGIN; INSERT INTO kv VALUES ('gone', '1')");
  node_.Close(2, now_);
  EXPECT_FALSE(Committed("gone").has_value());
}

TEST_F(PgNodeQueryTest, TerminateBackendEndsTheOtherSession) {
  auto a = Connect(1);
  auto b = Connect(2);
  b->Query("BEGIN; INSERT INTO kv VALUES ('t', '1')");
  EXPECT_THAT(a->Query("SELECT pg_terminate_backend(" + std::to_string(b->pid()) + ")"),
              ElementsAre("T:pg_terminate_backend", "D:t", "C:SELECT 1", "Z:I"));
  EXPECT_THAT(b->Read(), ElementsAre("E!:57P01"));
  EXPECT_TRUE(b->WantsClose());
  EXPECT_FALSE(Committed("t").has_value());
}

TEST_F(PgNodeQueryTest, ByteByByteMultiStatementQuery) {
  auto c = Connect(1);
  c->set_byte_by_byte(true);
  EXPECT_THAT(c->Query("INSERT INTO kv VALUES ('a', 'b'); SELECT v FROM kv WHERE k = 'a'"),
              ElementsAre("C:INSERT 0 1", "T:v", "D:b", "C:SELECT 1", "Z:I"));
}

TEST_F(PgNodeQueryTest, CommitAndRollbackInsideAMultiStatementQuery) {
  auto c = Connect(1);
  EXPECT_THAT(c->Query("INSERT INTO kv VALUES ('a', '1'); COMMIT; INSERT INTO kv VALUES ('a', "
                       "'2')"),
              ElementsAre("C:INSERT 0 1", "N:25P01", "C:COMMIT", "E:23505", "Z:I"));
  EXPECT_EQ(Committed("a"), Value("1")) << "committed before the error";
  EXPECT_THAT(
      c->Query("INSERT INTO kv VALUES ('b', '1'); ROLLBACK; SELECT count(*) FROM kv"),
      ElementsAre("C:INSERT 0 1", "N:25P01", "C:ROLLBACK", "T:count", "D:1", "C:SELECT 1", "Z:I"));
  EXPECT_THAT(c->Query("INSERT INTO kv VALUES ('x', '1'), ('x', '2') ON CONFLICT (k) DO UPDATE "
                       "SET v = EXCLUDED.v"),
              ElementsAre("E:21000", "Z:I"));
  EXPECT_THAT(c->Query("DELETE FROM kv RETURNING k, v"),
              ElementsAre("T:k,v", "D:a|1", "C:DELETE 1", "Z:I"));
}

TEST_F(PgNodeQueryTest, CancelDuringCopyInAndBackendSignalsOnItself) {
  auto c = Connect(1);
  EXPECT_THAT(c->Query("COPY kv FROM STDIN"), ElementsAre("G"));
  c->Send(pg::CopyData{.data = "a\t1\n"}.Encode());
  TestClient cancel(node_, 2, &now_);
  cancel.Send(pg::CancelRequest{.pid = c->pid(), .secret = c->secret()}.Encode());
  EXPECT_THAT(c->Read(), ElementsAre("E:57014", "Z:I"));
  c->Send(pg::CopyDone{}.Encode());
  EXPECT_THAT(c->Read(), IsEmpty()) << "late COPY messages are dropped";
  EXPECT_FALSE(Committed("a").has_value());
  EXPECT_THAT(c->Query("SELECT pg_cancel_backend(pg_backend_pid())"),
              ElementsAre("E:57014", "Z:I"));
  EXPECT_THAT(c->Query("SELECT pg_cancel_backend(1)"),
              ElementsAre("N:01000", "T:pg_cancel_backend", "D:f", "C:SELECT 1", "Z:I"));
  EXPECT_THAT(c->Query("SELECT pg_terminate_backend(pg_backend_pid())"), ElementsAre("E!:57P01"));
  EXPECT_TRUE(c->WantsClose());
}

TEST_F(PgNodeQueryTest, LimitsAreErrorsNotCrashes) {
  NodeOptions options;
  options.limits.rows_max = 2;
  options.limits.key_bytes_max = 4;
  options.limits.transaction_write_statements_max = 3;
  PgNode small(options);
  TestClient c(small, 1, &now_);
  c.Startup();
  EXPECT_THAT(c.Query("INSERT INTO kv VALUES ('toolong', '1')"), ElementsAre("E:54000", "Z:I"));
  EXPECT_THAT(c.Query("INSERT INTO kv VALUES ('a', '1'), ('b', '2'), ('c', '3')"),
              ElementsAre("E:53100", "Z:I"));
  EXPECT_THAT(c.Query("INSERT INTO kv VALUES ('a', '1'), ('b', '2')"),
              ElementsAre("C:INSERT 0 2", "Z:I"));
  EXPECT_THAT(c.Query("BEGIN; UPDATE kv SET v = 'x'; UPDATE kv SET v = 'y'; UPDATE kv SET v = "
                      "'z'; UPDATE kv SET v = 'w'"),
              ElementsAre("C:BEGIN", "C:UPDATE 2", "C:UPDATE 2", "C:UPDATE 2", "E:54000", "Z:E"));
}

}  // namespace
}  // namespace switchyard::sim
