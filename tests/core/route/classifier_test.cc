// The classifier, statement by statement: where each may run and what it does to the session.
#include "core/route/classifier.h"

#include <gtest/gtest.h>
#include <pthread.h>

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "core/route/lexer.h"
#include "tests/core/route/printers.h"

namespace switchyard::route {
namespace {

using namespace expect;  // NOLINT: the table reads better unqualified
using Kind = SessionEffect::Kind;

struct Case {
  std::string_view sql;
  QueryInfo expected;
};

// Built-ins plus a few user functions, as a load from pg_proc would give them.
FunctionVolatility TestFunctions() {
  FunctionVolatility functions = FunctionVolatility::Builtin();
  EXPECT_TRUE(functions.AddRow("my_stable_fn", "s").ok());
  EXPECT_TRUE(functions.AddRow("my_immutable_fn", "i").ok());
  EXPECT_TRUE(functions.AddRow("my_volatile_fn", "v").ok());
  return functions;
}

void RunTable(const std::vector<Case>& cases) {
  const FunctionVolatility functions = TestFunctions();
  for (const Case& c : cases) {
    EXPECT_EQ(Classify(c.sql, functions), c.expected) << "SQL: " << c.sql;
  }
}

TEST(ClassifierTest, ReadOnlyStatements) {
  RunTable({
      {"SELECT 1", Query({Read()})},
      {"SELECT abalance FROM pgbench_accounts WHERE aid = 123;", Query({Read()})},
      {"VALUES (1), (2)", Query({Read()})},
      {"TABLE users", Query({Read()})},
      {"SHOW search_path", Query({Read()})},
      {"SHOW TIME ZONE", Query({Read()})},
      {"EXPLAIN SELECT * FROM t", Query({Read()})},
      {"WITH x AS (SELECT 1) SELECT * FROM x", Query({Read()})},
      {"SELECT now(), lower('A'), count(*) FROM t GROUP BY 1", Query({Read()})},
      {"SELECT * FROM generate_series(1, 10) g", Query({Read()})},
      {"SELECT date_trunc('day', now()) AS d, x::text FROM t", Query({Read()})},
      {"SELECT CASE WHEN a THEN upper(b) ELSE coalesce(c, 'x') END FROM t", Query({Read()})},
      {"SELECT (SELECT max(x) FROM u WHERE u.id = t.id) FROM t", Query({Read()})},
      {"SELECT my_stable_fn(1), my_immutable_fn(2)", Query({Read()})},
      {"SELECT pg_catalog.lower(name) FROM t ORDER BY 1 LIMIT 10", Query({Read()})},
      {"SELECT current_setting('search_path')", Query({Read()})},
      {"SELECT current_timestamp, current_user, extract(year FROM now())", Query({Read()})},
      {"SELECT a FROM t UNION ALL SELECT b FROM u EXCEPT SELECT c FROM v", Query({Read()})},
      {"SELECT jsonb_build_object('a', 1) -> 'a', to_char(now(), 'YYYY')", Query({Read()})},
      {"SELECT row_number() OVER (PARTITION BY a ORDER BY b) FROM t", Query({Read()})},
      {"SELECT * FROM pg_class WHERE relname LIKE 'pg_%'", Query({Read()})},
  });
}

TEST(ClassifierTest, ExplainIsReadOnlyUnlessAnalyzeRunsAWrite) {
  RunTable({
      {"EXPLAIN DELETE FROM t", Query({Read()})},  // plans only
      {"EXPLAIN ANALYZE DELETE FROM t", Query({Write()})},
      {"EXPLAIN (ANALYZE, BUFFERS) SELECT * FROM t", Query({Read()})},
      {"EXPLAIN (ANALYZE false) DELETE FROM t", Query({Read()})},
      {"EXPLAIN (ANALYZE 'on') UPDATE t SET a = 1", Query({Write()})},
      {"EXPLAIN ANALYZE SELECT random()", Query({Write()})},
      {"EXPLAIN ANALYZE SELECT pg_advisory_lock(1)",
       Query({With(Write(), {Effect(Kind::kPinAdvisoryLock)})})},
  });
}

TEST(ClassifierTest, RowLocksIntoAndDataModifyingCtesAreWrites) {
  RunTable({
      {"SELECT * FROM t FOR UPDATE", Query({Write()})},
      {"SELECT * FROM t FOR NO KEY UPDATE SKIP LOCKED", Query({Write()})},
      {"SELECT * FROM t FOR KEY SHARE", Query({Write()})},
      {"SELECT * FROM t WHERE id IN (SELECT id FROM u FOR SHARE)", Query({Write()})},
      {"SELECT * FROM (SELECT * FROM u FOR UPDATE) s", Query({Write()})},
      {"WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d", Query({Write()})},
      {"WITH i AS (INSERT INTO t VALUES (1) RETURNING id) SELECT id FROM i", Query({Write()})},
      {"WITH a AS (SELECT 1), u AS (UPDATE t SET x = 1 RETURNING x) SELECT 1", Query({Write()})},
      {"SELECT * INTO new_table FROM t", Query({Write()})},
  });
}

TEST(ClassifierTest, VolatileUnknownAndNodeLocalFunctionsAreWrites) {
  RunTable({
      {"SELECT random()", Query({Write()})},
      {"SELECT my_volatile_fn(1)", Query({Write()})},
      {"SELECT never_heard_of(1)", Query({Write()})},
      {"SELECT * FROM t WHERE a > (SELECT unknown_fn())", Query({Write()})},
      {"SELECT * FROM t JOIN LATERAL unknown_srf(t.id) f ON true", Query({Write()})},
      {"WITH x AS (SELECT clock_timestamp()) SELECT * FROM x", Query({Write()})},
      {"SELECT nextval('s')", Query({Write()})},
      {"SELECT setval('s', 10)", Query({Write()})},
      {"SELECT currval('s')", Query({Write()})},
      {"SELECT lastval()", Query({Write()})},
      {"SELECT * FROM t WHERE x = (SELECT pg_backend_pid())", Query({Write()})},
      {"SELECT pg_catalog.pg_is_in_recovery()", Query({Write()})},
      {"SELECT pg_last_wal_replay_lsn()", Query({Write()})},
      {"SELECT pg_current_wal_insert_lsn()", Query({Write()})},
      {"SELECT pg_wal_lsn_diff('0/1', '0/2')", Query({Write()})},
      {"SELECT txid_current_if_assigned()", Query({Write()})},
      {"SELECT pg_current_snapshot(), pg_current_xact_id()", Query({Write()})},
      {"SELECT pg_xact_commit_timestamp('5'::xid)", Query({Write()})},
      {"SELECT pg_blocking_pids(123)", Query({Write()})},
      {"SELECT pg_stat_get_numscans(1)", Query({Write()})},
      {"SELECT current_setting('transaction_read_only')", Query({Write()})},
      {"SELECT current_setting(name) FROM settings", Query({Write()})},
  });
}

TEST(ClassifierTest, NodeLocalRelationsAndSettingsAreWrites) {
  RunTable({
      {"SELECT * FROM pg_stat_activity", Query({Write()})},
      {"SELECT * FROM pg_catalog.pg_locks", Query({Write()})},
      {"SELECT count(*) FROM (SELECT * FROM pg_stat_replication) s", Query({Write()})},
      {"SELECT * FROM t WHERE EXISTS (SELECT 1 FROM pg_statio_user_tables)", Query({Write()})},
      {"SELECT * FROM pg_prepared_xacts", Query({Write()})},
      {"SELECT * FROM pg_replication_slots", Query({Write()})},
      {"SHOW transaction_read_only", Query({Write()})},
      {"SHOW in_hot_standby", Query({Write()})},
      {"SHOW ALL", Query({Write()})},
  });
}

TEST(ClassifierTest, WritesAndUtilityStatements) {
  RunTable({
      {"INSERT INTO t VALUES (1)", Query({Write()})},
      {"UPDATE t SET a = 1", Query({Write()})},
      {"DELETE FROM t", Query({Write()})},
      {"MERGE INTO t USING u ON t.id = u.id WHEN MATCHED THEN DELETE", Query({Write()})},
      {"CREATE TABLE t (a int)", Query({Write()})},
      {"CREATE TABLE t AS SELECT 1", Query({Write()})},
      {"DROP TABLE t", Query({Write()})},
      {"LOCK TABLE t IN ACCESS SHARE MODE", Query({Write()})},
      {"NOTIFY ch, 'payload'", Query({Write()})},
      {"COPY t FROM STDIN", Query({Write()})},
      {"COPY (SELECT 1) TO STDOUT", Query({Write()})},
      {"CALL p(1)", Query({Write()})},
      {"EXECUTE p(1)", Query({Write()})},
      {"VACUUM t", Query({Write()})},
      {"TRUNCATE t", Query({Write()})},
      {"CREATE VIEW v AS SELECT pg_advisory_lock(1)", Query({Write()})},  // defines, runs nothing
  });
}

TEST(ClassifierTest, TransactionControl) {
  RunTable({
      {"BEGIN", Query({Txn(TxnControl::kBegin)})},
      {"BEGIN READ WRITE", Query({Txn(TxnControl::kBegin)})},
      {"BEGIN READ ONLY", Query({Txn(TxnControl::kBeginReadOnly)})},
      {"START TRANSACTION READ ONLY", Query({Txn(TxnControl::kBeginReadOnly)})},
      {"START TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY",
       Query({Txn(TxnControl::kBeginReadOnly)})},
      {"BEGIN ISOLATION LEVEL SERIALIZABLE", Query({Txn(TxnControl::kBeginSerializable)})},
      {"BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY DEFERRABLE",
       Query({Txn(TxnControl::kBeginSerializable)})},
      {"START TRANSACTION ISOLATION LEVEL SERIALIZABLE",
       Query({Txn(TxnControl::kBeginSerializable)})},
      {"COMMIT", Query({Txn(TxnControl::kCommit)})},
      {"END", Query({Txn(TxnControl::kCommit)})},
      {"ROLLBACK", Query({Txn(TxnControl::kRollback)})},
      {"ABORT", Query({Txn(TxnControl::kRollback)})},
      {"SAVEPOINT a", Query({Savepoint(TxnControl::kSavepoint, "a")})},
      {"SAVEPOINT \"My Point\"", Query({Savepoint(TxnControl::kSavepoint, "My Point")})},
      {"RELEASE SAVEPOINT A", Query({Savepoint(TxnControl::kRelease, "a")})},
      {"RELEASE b", Query({Savepoint(TxnControl::kRelease, "b")})},
      {"ROLLBACK TO SAVEPOINT a", Query({Savepoint(TxnControl::kRollbackTo, "a")})},
      {"ROLLBACK TO c", Query({Savepoint(TxnControl::kRollbackTo, "c")})},
      {"PREPARE TRANSACTION 'x'", Query({Txn(TxnControl::kPrepareTransaction)})},
      {"COMMIT PREPARED 'x'", Query({Write()})},
      {"ROLLBACK PREPARED 'x'", Query({Write()})},
      {"SET TRANSACTION ISOLATION LEVEL SERIALIZABLE",
       Query({Local(Txn(TxnControl::kSetTransaction, false))})},
      {"SET TRANSACTION SNAPSHOT '00000003-0000001B-1'",
       Query({Local(Txn(TxnControl::kSetTransaction, false))})},
      {"SET transaction_isolation = 'serializable'",
       Query({Local(Txn(TxnControl::kSetTransaction, false))})},
  });
}

TEST(ClassifierTest, SetForms) {
  RunTable({
      {"SET search_path = public, \"My Schema\"",
       Query({With(Write(), {Set("search_path", "public, \"My Schema\"")})})},
      {"SET TIME ZONE 'UTC'", Query({With(Write(), {Set("timezone", "'UTC'")})})},
      {"SET TIME ZONE LOCAL", Query({With(Write(), {Set("timezone", "DEFAULT")})})},
      {"SET TIME ZONE -5", Query({With(Write(), {Set("timezone", "-5")})})},
      {"SET TIME ZONE INTERVAL '+05:30' HOUR TO MINUTE",
       Query({With(Write(), {Set("timezone", "'interval ''+05:30'''")})})},
      {"SET NAMES 'UTF8'", Query({With(Write(), {Set("client_encoding", "'UTF8'")})})},
      {"SET SCHEMA 'app'", Query({With(Write(), {Set("search_path", "'app'")})})},
      {"SET statement_timeout TO '100ms'",
       Query({With(Write(), {Set("statement_timeout", "'100ms'")})})},
      {"SET statement_timeout = 100", Query({With(Write(), {Set("statement_timeout", "100")})})},
      {"SET SESSION work_mem = '4MB'", Query({With(Write(), {Set("work_mem", "'4MB'")})})},
      {"SET Work_Mem = '4MB'", Query({With(Write(), {Set("work_mem", "'4MB'")})})},
      {"SET application_name = 'a;b' -- why",
       Query({With(Write(), {Set("application_name", "'a;b'")})})},
      {"SET my.setting TO DEFAULT", Query({With(Write(), {Set("my.setting", "DEFAULT")})})},
      {"SET ROLE reader", Query({With(Write(), {Set("role", "reader")})})},
      {"SET LOCAL work_mem = '4MB'", Query({Local(Write())})},
      {"SET LOCAL SESSION AUTHORIZATION 'bob'", Query({Local(Write())})},
      {"SET work_mem FROM CURRENT", Query({Write()})},
      {"RESET work_mem", Query({With(Write(), {Effect(Kind::kReset, "work_mem")})})},
      {"RESET ROLE", Query({With(Write(), {Effect(Kind::kReset, "role")})})},
      {"RESET TIME ZONE", Query({With(Write(), {Effect(Kind::kReset, "timezone")})})},
      {"RESET ALL", Query({With(Write(), {Effect(Kind::kResetAll)})})},
      {"SET SESSION AUTHORIZATION 'alice'",
       Query({With(Write(), {Effect(Kind::kPinSessionAuthorization)})})},
      {"SET SESSION AUTHORIZATION DEFAULT",
       Query({With(Write(), {Effect(Kind::kPinSessionAuthorization)})})},
      {"RESET SESSION AUTHORIZATION",
       Query({With(Write(), {Effect(Kind::kPinSessionAuthorization)})})},
      {"SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL SERIALIZABLE",
       Query({With(Write(), {Set("default_transaction_isolation", "'serializable'")})})},
      {"SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY, NOT DEFERRABLE",
       Query({With(Write(), {Set("default_transaction_read_only", "'on'"),
                             Set("default_transaction_deferrable", "'off'")})})},
  });
}

TEST(ClassifierTest, SetConfig) {
  RunTable({
      {"SELECT set_config('app.user', '42', false)",
       Query({With(Write(), {Set("app.user", "'42'")})})},
      {"SELECT set_config('App.User', 'it''s', 'false')",
       Query({With(Write(), {Set("app.user", "'it''s'")})})},
      {"SELECT set_config('app.path', 'C:\\dir', false)",
       Query({With(Write(), {Set("app.path", "E'C:\\\\dir'")})})},
      {"SELECT pg_catalog.set_config('app.user', '42'::text, false::boolean)",
       Query({With(Write(), {Set("app.user", "'42'")})})},
      {"SELECT set_config('app.user', '42', true)", Query({Local(Write())})},
      {"SELECT set_config('app.user', NULL, false)",
       Query({With(Write(), {Effect(Kind::kReset, "app.user")})})},
      {"SELECT set_config('app.user', x, false) FROM t", Query({Write()})},
      {"SELECT set_config('app.user', '1', is_local) FROM t", Query({Write()})},
      {"SELECT 1 FROM t WHERE set_config('a.b', 'c', false) IS NOT NULL",
       Query({With(Write(), {Set("a.b", "'c'")})})},
      {"SELECT set_config('a.b', '1', true), set_config('c.d', '2', false)",
       Query({With(Write(), {Set("c.d", "'2'")})})},
      {"SELECT set_config('z.z', '1', false), set_config('a.a', '2', false)",
       Query({With(Write(), {Set("z.z", "'1'"), Set("a.a", "'2'")})})},
      {"SELECT set_config('session_authorization', 'x', false)",
       Query({With(Write(), {Effect(Kind::kPinSessionAuthorization)})})},
      {"SELECT myschema.set_config('a.b', 'c', false)", Query({Write()})},  // not ours
  });
}

TEST(ClassifierTest, PreparedStatementsDiscardListen) {
  RunTable({
      {"PREPARE p (int) AS SELECT $1",
       Query({With(Write(), {Effect(Kind::kPrepare, "p", "PREPARE p (int) AS SELECT $1")})})},
      {"  PREPARE q AS SELECT 1 ; SELECT 2",
       Query({With(Write(), {Effect(Kind::kPrepare, "q", "PREPARE q AS SELECT 1")}), Read()})},
      {"DEALLOCATE p", Query({With(Write(), {Effect(Kind::kDeallocate, "p")})})},
      {"DEALLOCATE PREPARE p", Query({With(Write(), {Effect(Kind::kDeallocate, "p")})})},
      {"DEALLOCATE ALL", Query({With(Write(), {Effect(Kind::kDeallocateAll)})})},
      {"DISCARD ALL", Query({With(Write(), {Effect(Kind::kDiscardAll)})})},
      {"DISCARD PLANS", Query({With(Write(), {Effect(Kind::kDiscardPlans)})})},
      {"DISCARD TEMP", Query({With(Write(), {Effect(Kind::kDiscardTemp)})})},
      {"DISCARD SEQUENCES", Query({With(Write(), {Effect(Kind::kDiscardSequences)})})},
      {"LISTEN ch", Query({With(Write(), {Effect(Kind::kListen, "ch")})})},
      {"LISTEN \"Mixed\"", Query({With(Write(), {Effect(Kind::kListen, "Mixed")})})},
      {"UNLISTEN ch", Query({With(Write(), {Effect(Kind::kUnlisten, "ch")})})},
      {"UNLISTEN *", Query({With(Write(), {Effect(Kind::kUnlistenAll)})})},
  });
}

TEST(ClassifierTest, PinsAndCursors) {
  const SessionEffect temp = Effect(Kind::kPinTempTable);
  const SessionEffect lock = Effect(Kind::kPinAdvisoryLock);
  RunTable({
      {"CREATE TEMP TABLE t (a int)", Query({With(Write(), {temp})})},
      {"CREATE TEMPORARY VIEW v AS SELECT 1", Query({With(Write(), {temp})})},
      {"CREATE TEMP SEQUENCE s", Query({With(Write(), {temp})})},
      {"CREATE TABLE pg_temp.t (a int)", Query({With(Write(), {temp})})},
      {"CREATE TEMP TABLE t AS SELECT 1", Query({With(Write(), {temp})})},
      {"SELECT 1 AS a INTO TEMP t", Query({With(Write(), {temp})})},
      {"SELECT pg_advisory_lock(1)", Query({With(Write(), {lock})})},
      {"SELECT pg_try_advisory_lock(1, 2)", Query({With(Write(), {lock})})},
      {"SELECT pg_advisory_lock_shared(1), pg_try_advisory_lock_shared(2)",
       Query({With(Write(), {lock, lock})})},
      {"SELECT pg_advisory_xact_lock(1)", Query({Write()})},
      {"SELECT pg_advisory_unlock(1)", Query({Write()})},
      {"UPDATE t SET a = 1 WHERE pg_try_advisory_lock(id)", Query({With(Write(), {lock})})},
      {"DECLARE c CURSOR WITH HOLD FOR SELECT 1",
       Query({With(Read(), {Effect(Kind::kPinWithHoldCursor)})})},
      {"DECLARE c CURSOR FOR SELECT * FROM t",
       Query({StatementInfo{.read_only = true, .declares_cursor = true}})},
      {"DECLARE c CURSOR FOR SELECT * FROM t FOR UPDATE",
       Query({StatementInfo{.declares_cursor = true}})},
      {"FETCH 10 FROM c", Query({Cursor("c")})},
      {"MOVE NEXT IN c", Query({Cursor("c")})},
      {"CLOSE c", Query({Cursor("c")})},
      {"CLOSE ALL", Query({Cursor("")})},
  });
}

TEST(ClassifierTest, FunctionChangesInvalidate) {
  RunTable({
      {"CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'", Query({Invalidates(Write())})},
      {"CREATE OR REPLACE FUNCTION f() RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT 1'",
       Query({Invalidates(Write())})},
      {"CREATE FUNCTION pg_temp.f() RETURNS int LANGUAGE sql AS 'SELECT 1'",
       Query({Invalidates(With(Write(), {Effect(Kind::kPinTempTable)}))})},
      {"CREATE PROCEDURE p() LANGUAGE sql AS $$ SELECT 1 $$", Query({Invalidates(Write())})},
      {"ALTER FUNCTION f() VOLATILE", Query({Invalidates(Write())})},
      {"ALTER FUNCTION f() RENAME TO g", Query({Invalidates(Write())})},
      {"ALTER FUNCTION f() SET SCHEMA s", Query({Invalidates(Write())})},
      {"DROP FUNCTION f()", Query({Invalidates(Write())})},
      {"DROP PROCEDURE p()", Query({Invalidates(Write())})},
      {"DROP ROUTINE r()", Query({Invalidates(Write())})},
      {"CREATE AGGREGATE a (int) (sfunc = int4pl, stype = int)", Query({Invalidates(Write())})},
      {"DROP AGGREGATE a(int)", Query({Invalidates(Write())})},
      {"DROP SCHEMA s CASCADE", Query({Invalidates(Write())})},
      {"CREATE EXTENSION pgcrypto", Query({Invalidates(Write())})},
      {"ALTER EXTENSION pgcrypto UPDATE", Query({Invalidates(Write())})},
      {"DROP EXTENSION pgcrypto", Query({Invalidates(Write())})},
      {"DO $$BEGIN PERFORM 1; END$$", Query({Invalidates(Write())})},
      {"CREATE TYPE mood AS ENUM ('a')", Query({Write()})},
  });
}

TEST(ClassifierTest, PrimaryHint) {
  RunTable({
      {"/* switchyard: primary */ SELECT 1", Hinted(Query({Read()}))},
      {"  \n/*switchyard:primary*/SELECT 1", Hinted(Query({Read()}))},
      {"/*  SwitchYard :  PRIMARY  */ INSERT INTO t VALUES (1)", Hinted(Query({Write()}))},
      {"/* switchyard: replica */ SELECT 1", Query({Read()})},
      {"/* switchyard: primary, please */ SELECT 1", Query({Read()})},
      {"SELECT 1 /* switchyard: primary */", Query({Read()})},
      {"-- switchyard: primary\nSELECT 1", Query({Read()})},
  });
}

TEST(ClassifierTest, ParseErrorsAndEmptyText) {
  RunTable({
      {"SELEKT 1", ParseError()},
      {"SELECT 'unterminated", ParseError()},
      {"SELECT 1; DELETE FROM", ParseError()},
      {"/* switchyard: primary */ SELEKT", Hinted(ParseError())},
      {"", Query({})},
      {";", Query({})},
      {" ;; ", Query({})},
      {"-- only a comment", Query({})},
  });
  // PostgreSQL ends a Query string at its first NUL; never guess what the server would see.
  const std::string with_nul("SELECT 1\0; DELETE FROM t", 24);
  EXPECT_EQ(Classify(with_nul, TestFunctions()), ParseError());
}

TEST(ClassifierTest, MultiStatementStrings) {
  RunTable({
      {"SELECT 1; SELECT 2", Query({Read(), Read()})},
      {"SELECT 1; INSERT INTO t VALUES (1)", Query({Read(), Write()})},
      {"BEGIN READ ONLY; SELECT 1; COMMIT",
       Query({Txn(TxnControl::kBeginReadOnly), Read(), Txn(TxnControl::kCommit)})},
      {"BEGIN; UPDATE t SET a = 1; COMMIT",
       Query({Txn(TxnControl::kBegin), Write(), Txn(TxnControl::kCommit)})},
      {"SET x.y = 1; SELECT 1", Query({With(Write(), {Set("x.y", "1")}), Read()})},
      {"SET a.b = 'x' ; /* c */ SET c.d TO 'y' -- tail\n",
       Query({With(Write(), {Set("a.b", "'x'")}), With(Write(), {Set("c.d", "'y'")})})},
      {"SELECT 'a;b'; SELECT $$;$$; SELECT \"x;y\" FROM t", Query({Read(), Read(), Read()})},
      {"CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT 2; END; "
       "SELECT 3",
       Query({Invalidates(Write()), Read()})},
  });
}

TEST(ClassifierTest, UnknownFunctionsAreVolatileUntilLoaded) {
  FunctionVolatility functions;  // nothing loaded yet
  EXPECT_FALSE(Classify("SELECT lower('A')", functions).read_only);
  EXPECT_TRUE(Classify("SELECT lower('A')", FunctionVolatility::Builtin()).read_only);
  ASSERT_TRUE(functions.AddRow("lower", "i").ok());
  EXPECT_TRUE(Classify("SELECT lower('A')", functions).read_only);
  // A volatile overload anywhere makes the name volatile.
  ASSERT_TRUE(functions.AddRow("lower", "v").ok());
  EXPECT_FALSE(Classify("SELECT lower('A')", functions).read_only);
}

TEST(ClassifierTest, LiteralDependenceIsReported) {
  const FunctionVolatility functions = TestFunctions();
  EXPECT_FALSE(
      ClassifyDetailed("SELECT * FROM t WHERE a = 'x' AND b = 5", functions).depends_on_literals);
  EXPECT_FALSE(ClassifyDetailed("UPDATE t SET a = 'x'", functions).depends_on_literals);
  EXPECT_TRUE(ClassifyDetailed("SET a.b = 'x'", functions).depends_on_literals);
  EXPECT_TRUE(
      ClassifyDetailed("SELECT set_config('a.b', 'x', false)", functions).depends_on_literals);
  EXPECT_TRUE(
      ClassifyDetailed("SELECT current_setting('search_path')", functions).depends_on_literals);
  EXPECT_TRUE(
      ClassifyDetailed("EXPLAIN (ANALYZE 'off') DELETE FROM t", functions).depends_on_literals);
  EXPECT_TRUE(ClassifyDetailed("PREPARE p AS SELECT 1", functions).depends_on_literals);
}

std::string Repeat(std::string_view piece, int count) {
  std::string out;
  for (int i = 0; i < count; ++i) out.append(piece);
  return out;
}

TEST(ClassifierTest, TooDeepTextIsAParseErrorNotACrash) {
  const FunctionVolatility functions = FunctionVolatility::Builtin();
  // 100,000 levels would overflow any thread's stack inside libpg_query.
  EXPECT_EQ(Classify("SELECT 1" + Repeat("+1", 100000), functions), ParseError());
  EXPECT_EQ(Classify("SELECT " + Repeat("(SELECT ", 20000) + "1" + Repeat(")", 20000), functions),
            ParseError());
  // Long but shallow text is classified.
  EXPECT_EQ(Classify("SELECT 1 WHERE a IN (" + Repeat("1, ", 100000) + "1)", functions),
            Query({Read()}));
}

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ROUTE_TEST_ASAN 1
#endif
#endif
#ifdef ROUTE_TEST_ASAN
constexpr size_t kStackBytes = size_t{4} << 20;  // sanitized frames are larger
#else
constexpr size_t kStackBytes = size_t{2} << 20;
#endif

// Runs `body` on a thread with a kStackBytes stack.
void OnSmallStack(std::function<void()> body) {
  pthread_attr_t attributes;
  ASSERT_EQ(pthread_attr_init(&attributes), 0);
  ASSERT_EQ(pthread_attr_setstacksize(&attributes, kStackBytes), 0);
  pthread_t thread;
  auto run = [](void* argument) -> void* {
    (*static_cast<std::function<void()>*>(argument))();
    return nullptr;
  };
  ASSERT_EQ(pthread_create(&thread, &attributes, run, &body), 0);
  ASSERT_EQ(pthread_join(thread, nullptr), 0);
  pthread_attr_destroy(&attributes);
}

TEST(ClassifierTest, DeepestTextUnderTheLimitFitsASmallStack) {
  const std::vector<std::function<std::string(int)>> shapes = {
      [](int n) { return "SELECT 1" + Repeat("+1", n); },
      [](int n) { return "SELECT " + Repeat("(SELECT ", n) + "1" + Repeat(")", n); },
      [](int n) { return "SELECT " + Repeat("CASE WHEN true THEN ", n) + "1" + Repeat(" END", n); },
      [](int n) { return "SELECT * FROM t" + Repeat(" JOIN t ON true", n); },
      [](int n) { return "SELECT 1" + Repeat(" UNION SELECT 1", n); },
      [](int n) { return "SELECT 1" + Repeat("::int", n); },
      [](int n) { return "SELECT " + Repeat("abs(", n) + "1" + Repeat(")", n); },
      [](int n) { return "SELECT " + Repeat("ROW(1, ", n) + "1" + Repeat(")", n); },
      [](int n) { return "SELECT " + Repeat("NOT ", n) + "true"; },
      [](int n) { return Repeat("WITH a AS (", n) + "SELECT 1" + Repeat(") SELECT * FROM a", n); },
      [](int n) {
        return "SELECT * FROM " + Repeat("(VALUES ((SELECT ", n) + "1" + Repeat("))) v", n);
      },
  };
  for (const auto& shape : shapes) {
    int deepest = 0;  // the largest size still under the limit
    while (NestingBound(shape(deepest + 1)) <= kNestingBoundMax) ++deepest;
    ASSERT_GT(deepest, 10);
    const std::string sql = shape(deepest);
    QueryInfo info;
    OnSmallStack([&] { info = Classify(sql, FunctionVolatility::Builtin()); });
    EXPECT_FALSE(info.parse_error) << sql.substr(0, 60);
    EXPECT_EQ(Classify(shape(deepest + 1), FunctionVolatility::Builtin()), ParseError());
  }
}

}  // namespace
}  // namespace switchyard::route
