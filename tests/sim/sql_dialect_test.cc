// Tests of the simulated nodes' SQL dialect parser (sim/sql_dialect.h): splitting, every
// statement form, syntax errors versus errors that wait until the statement runs.
#include "sim/sql_dialect.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace switchyard::sim {
namespace {

using ::testing::ElementsAre;

template <typename T>
const T& As(const Statement& statement) {
  const T* node = std::get_if<T>(&statement.node);
  EXPECT_NE(node, nullptr) << statement.text;
  static const T kEmpty{};
  return node ? *node : kEmpty;
}

Statement One(std::string_view sql) {
  ParsedQuery parsed = ParseQuery(sql);
  EXPECT_FALSE(parsed.error.has_value()) << sql << ": " << parsed.error->message;
  EXPECT_EQ(parsed.statements.size(), 1u) << sql;
  return parsed.statements.empty() ? Statement{} : parsed.statements[0];
}

std::string SyntaxError(std::string_view sql) {
  ParsedQuery parsed = ParseQuery(sql);
  EXPECT_TRUE(parsed.error.has_value()) << sql;
  EXPECT_TRUE(parsed.statements.empty());
  return parsed.error ? parsed.error->sqlstate + " " + parsed.error->message : "";
}

std::string RunTimeError(std::string_view sql) {
  Statement statement = One(sql);
  const auto* invalid = std::get_if<InvalidStmt>(&statement.node);
  EXPECT_NE(invalid, nullptr) << sql;
  return invalid ? invalid->error.sqlstate + " " + invalid->error.message : "";
}

TEST(SqlDialectTest, SplitsOnSemicolonsOutsideLiteralsAndComments) {
  ParsedQuery parsed = ParseQuery(
      "SELECT 'a;b'; -- c;d\n SELECT \"x;y\" FROM kv /* ; /* nested ; */ */;;  SELECT E'\\';'");
  ASSERT_FALSE(parsed.error.has_value()) << parsed.error->message;
  ASSERT_EQ(parsed.statements.size(), 3u);
  EXPECT_EQ(parsed.statements[0].text, "SELECT 'a;b'");
  EXPECT_EQ(parsed.statements[1].text, "SELECT \"x;y\" FROM kv");
  EXPECT_EQ(As<SelectStmt>(parsed.statements[2]).items[0].expr.text, "';");
  EXPECT_TRUE(ParseQuery("").statements.empty());
  EXPECT_TRUE(ParseQuery(" ; ;").statements.empty());
  EXPECT_FALSE(ParseQuery(" ; ;").error.has_value());
}

TEST(SqlDialectTest, SelectForms) {
  Statement select = One("select v from KV where k = $1 for update");
  const SelectStmt& point = As<SelectStmt>(select);
  EXPECT_TRUE(point.from_kv);
  ASSERT_TRUE(point.where_key.has_value());
  EXPECT_EQ(point.where_key->kind, Expr::Kind::kParam);
  EXPECT_TRUE(point.for_update);
  Statement scan = One("SELECT k, v FROM public.kv ORDER BY kv.k DESC LIMIT 10");
  EXPECT_TRUE(As<SelectStmt>(scan).order_desc);
  EXPECT_EQ(As<SelectStmt>(scan).limit->text, "10");
  EXPECT_EQ(As<SelectStmt>(One("SELECT k FROM kv FOR UPDATE SKIP LOCKED")).lock_wait,
            LockWait::kSkipLocked);
  EXPECT_EQ(As<SelectStmt>(One("TABLE kv")).items.size(), 1u);
  EXPECT_EQ(One("SELECT $3, $1").param_count, 3);
  EXPECT_EQ(One("SELECT 1").WriteCommandName(), std::nullopt);
  EXPECT_EQ(One("SELECT v FROM kv WHERE k = 'a' FOR SHARE").WriteCommandName(),
            "SELECT FOR UPDATE");
}

TEST(SqlDialectTest, WriteForms) {
  Statement statement =
      One("INSERT INTO kv (v, k) VALUES ('x', 'a'), ('y', 'b') ON CONFLICT (k) DO UPDATE SET v "
          "= kv.v || EXCLUDED.v RETURNING k");
  const InsertStmt& insert = As<InsertStmt>(statement);
  ASSERT_EQ(insert.rows.size(), 2u);
  EXPECT_EQ(insert.rows[0][0].text, "a") << "rows are normalized to (k, v)";
  EXPECT_EQ(insert.on_conflict, InsertStmt::OnConflict::kUpdate);
  EXPECT_EQ(insert.returning.size(), 1u);
  EXPECT_EQ(One("INSERT INTO kv VALUES ('a')").WriteCommandName(), "INSERT");
  EXPECT_EQ(One("UPDATE kv SET v = 'x' WHERE k = 'y'").WriteCommandName(), "UPDATE");
  EXPECT_EQ(One("DELETE FROM kv").WriteCommandName(), "DELETE");
  EXPECT_EQ(One("TRUNCATE kv").Verb(), "TRUNCATE TABLE");
  EXPECT_EQ(One("COPY kv FROM STDIN").WriteCommandName(), "COPY FROM");
  EXPECT_EQ(One("COPY kv (k, v) TO STDOUT WITH (FORMAT text)").WriteCommandName(), std::nullopt);
  EXPECT_EQ(One("CREATE TABLE IF NOT EXISTS kv (k text PRIMARY KEY, v text)").Verb(),
            "CREATE TABLE");
}

TEST(SqlDialectTest, SessionAndTransactionForms) {
  EXPECT_EQ(As<TransactionStmt>(One("BEGIN READ ONLY")).read_only, true);
  EXPECT_EQ(As<TransactionStmt>(One("START TRANSACTION READ WRITE")).tag, "START TRANSACTION");
  EXPECT_EQ(As<TransactionStmt>(One("rollback to savepoint s1")).savepoint, "s1");
  EXPECT_TRUE(One("ROLLBACK TO s1").IsTransactionExit());
  EXPECT_TRUE(One("END").IsTransactionExit());
  EXPECT_FALSE(One("SAVEPOINT s1").IsTransactionExit());
  Statement statement = One("SET LOCAL search_path TO s1, \"$user\"");
  const SetStmt& set = As<SetStmt>(statement);
  EXPECT_TRUE(set.local);
  EXPECT_EQ(set.value, "s1, \"$user\"");
  EXPECT_EQ(As<SetStmt>(One("SET TIME ZONE 'UTC'")).name, "timezone");
  EXPECT_EQ(As<SetStmt>(One("SET statement_timeout = DEFAULT")).value, std::nullopt);
  EXPECT_EQ(As<SetStmt>(One("SET extra_float_digits = -3")).value, "-3");
  EXPECT_EQ(As<SetStmt>(One("RESET ALL")).kind, SetStmt::Kind::kResetAll);
  EXPECT_EQ(As<SetStmt>(One("SHOW TRANSACTION ISOLATION LEVEL")).name, "transaction_isolation");
  EXPECT_EQ(As<DiscardStmt>(One("DISCARD ALL")).what, "ALL");
  EXPECT_EQ(As<NotifyStmt>(One("NOTIFY ch, 'it''s'")).payload, "it's");
  EXPECT_TRUE(As<UnlistenStmt>(One("UNLISTEN *")).all);
}

TEST(SqlDialectTest, PreparedStatementForms) {
  Statement prepare = One("PREPARE p (text, int) AS UPDATE kv SET v = $2::text WHERE k = $1");
  const PrepareStmt& p = As<PrepareStmt>(prepare);
  EXPECT_EQ(p.name, "p");
  EXPECT_THAT(p.param_types, ElementsAre(kTextOid, kInt4Oid));
  ASSERT_NE(p.body, nullptr);
  EXPECT_EQ(p.body->text, "UPDATE kv SET v = $2::text WHERE k = $1");
  EXPECT_EQ(p.body->param_count, 2);
  EXPECT_EQ(As<ExecuteStmt>(One("EXECUTE p('a', 1)")).args.size(), 2u);
  EXPECT_TRUE(As<DeallocateStmt>(One("DEALLOCATE PREPARE ALL")).all);
  EXPECT_THAT(SyntaxError("PREPARE p AS BEGIN"), ::testing::StartsWith("42601"));
  EXPECT_THAT(SyntaxError("PREPARE p AS PREPARE q AS SELECT 1"), ::testing::StartsWith("42601"));
}

TEST(SqlDialectTest, SyntaxErrorsRejectTheWholeString) {
  EXPECT_EQ(SyntaxError("SELECT 1; SELEC 2"), "42601 syntax error at or near \"selec\"");
  EXPECT_EQ(SyntaxError("SELECT v FROM kv WHERE"), "42601 syntax error at end of input");
  EXPECT_EQ(SyntaxError("SELECT 'open"), "42601 unterminated quoted string");
  EXPECT_EQ(SyntaxError("SELECT 1 /* open"), "42601 unterminated /* comment");
  EXPECT_EQ(SyntaxError("SELECT v FROM kv WHERE v > 'a'"), "42601 syntax error at or near \">\"");
  EXPECT_EQ(ParseOne("SELECT 1; SELECT 2").error->message,
            "cannot insert multiple commands into a prepared statement");
}

TEST(SqlDialectTest, NameErrorsWaitUntilTheStatementRuns) {
  EXPECT_EQ(RunTimeError("SELECT v FROM accounts"), "42P01 relation \"accounts\" does not exist");
  EXPECT_EQ(RunTimeError("SELECT w FROM kv"), "42703 column \"w\" does not exist");
  EXPECT_EQ(RunTimeError("SELECT k"), "42703 column \"k\" does not exist");
  EXPECT_EQ(RunTimeError("SELECT now()"), "42883 function now() does not exist");
  EXPECT_EQ(RunTimeError("SELECT 1::money"), "42704 type \"money\" does not exist");
  EXPECT_EQ(RunTimeError("SELECT k, count(*) FROM kv"),
            "42803 column \"kv.k\" must appear in the GROUP BY clause or be used in an aggregate "
            "function");
  EXPECT_EQ(RunTimeError("CREATE TABLE kv (k text, v text)"),
            "42P07 relation \"kv\" already exists");
  EXPECT_EQ(RunTimeError("INSERT INTO kv VALUES (EXCLUDED.v, 'x')"),
            "42P01 missing FROM-clause entry for table \"excluded\"");
}

TEST(SqlDialectTest, IdentifiersFoldToLowerCaseUnlessQuoted) {
  EXPECT_TRUE(std::holds_alternative<SelectStmt>(One("SELECT V FROM Kv").node));
  EXPECT_TRUE(std::holds_alternative<InvalidStmt>(One("SELECT \"V\" FROM kv").node));
  EXPECT_EQ(As<SelectStmt>(One("SELECT 1 AS \"Mixed\"")).items[0].alias, "Mixed");
}

}  // namespace
}  // namespace switchyard::sim
