// Pairing responses with statements: simple and extended protocol, errors, latency, splitting and
// fingerprints.
#include "replay/statements.h"

#include <gtest/gtest.h>

#include "tests/replay/replay_test_util.h"

namespace switchyard::replay {
namespace {

using testing::Error;
using testing::Q;
using testing::Row;
using testing::Tag;
using testing::Z;

TEST(StatementsTest, EachStatementOfASimpleQueryGetsItsResultAndLatency) {
  StatementTracker tracker;
  tracker.OnClientMessage(Q("BEGIN; UPDATE items SET a = 1; COMMIT"), 100);
  EXPECT_EQ(tracker.requests_outstanding(), 1u);
  EXPECT_EQ(tracker.CurrentText(), "BEGIN");
  auto begin = tracker.OnServerMessage(Tag("BEGIN"), 110);
  auto update = tracker.OnServerMessage(Tag("UPDATE 2"), 150);
  auto commit = tracker.OnServerMessage(Tag("COMMIT"), 170);
  ASSERT_TRUE(begin && update && commit);
  EXPECT_EQ(begin->text, "BEGIN");
  EXPECT_EQ(update->text, "UPDATE items SET a = 1");
  EXPECT_EQ(update->end_us - update->start_us, 40);
  EXPECT_EQ(commit->text, "COMMIT");
  EXPECT_TRUE(commit->is_statement());
  EXPECT_FALSE(tracker.OnServerMessage(Z(), 171).has_value());
  EXPECT_EQ(tracker.requests_outstanding(), 0u);
}

TEST(StatementsTest, AnErrorEndsTheQuery) {
  StatementTracker tracker;
  tracker.OnClientMessage(Q("SELECT 1/0; SELECT 2"), 0);
  auto error = tracker.OnServerMessage(Error("22012", "division by zero"), 5);
  ASSERT_TRUE(error.has_value());
  EXPECT_TRUE(error->error);
  EXPECT_EQ(error->sqlstate, "22012");
  EXPECT_EQ(error->text, "SELECT 1/0");
  EXPECT_EQ(tracker.CurrentText(), "");
}

TEST(StatementsTest, ExtendedProtocolFollowsPreparedStatementsAndPortals) {
  StatementTracker tracker;
  tracker.Prepare("from_snapshot", "SELECT 42");
  tracker.OnClientMessage(pg::Parse{.name = "by_id", .query = "SELECT $1::int"}.Encode(), 0);
  tracker.OnClientMessage(pg::Describe{.kind = 'S', .name = "by_id"}.Encode(), 0);
  tracker.OnClientMessage(pg::Bind{.portal = "", .statement = "by_id"}.Encode(), 0);
  tracker.OnClientMessage(pg::Execute{}.Encode(), 10);
  tracker.OnClientMessage(pg::Bind{.portal = "p", .statement = "from_snapshot"}.Encode(), 10);
  tracker.OnClientMessage(pg::Execute{.portal = "p"}.Encode(), 10);
  tracker.OnClientMessage(pg::Sync{}.Encode(), 10);
  EXPECT_EQ(tracker.OnServerMessage(pg::ParseComplete{}.Encode(), 1)->kind, Response::Kind::kParse);
  EXPECT_FALSE(tracker.OnServerMessage(pg::ParameterDescription{}.Encode(), 1).has_value());
  EXPECT_FALSE(tracker.OnServerMessage(testing::Columns({"x"}), 1).has_value());
  EXPECT_EQ(tracker.OnServerMessage(pg::BindComplete{}.Encode(), 2)->text, "SELECT $1::int");
  EXPECT_FALSE(tracker.OnServerMessage(Row({"1"}), 3).has_value());
  auto first = tracker.OnServerMessage(Tag("SELECT 1"), 30);
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->kind, Response::Kind::kExecute);
  EXPECT_EQ(first->text, "SELECT $1::int");
  EXPECT_EQ(first->end_us - first->start_us, 20);
  tracker.OnServerMessage(pg::BindComplete{}.Encode(), 31);
  EXPECT_EQ(tracker.OnServerMessage(Tag("SELECT 1"), 32)->text, "SELECT 42");
  tracker.OnServerMessage(Z(), 33);
  EXPECT_EQ(tracker.requests_outstanding(), 0u);
}

TEST(StatementsTest, AnExtendedErrorSkipsToSync) {
  StatementTracker tracker;
  tracker.OnClientMessage(pg::Parse{.query = "SELEC 1"}.Encode(), 0);
  tracker.OnClientMessage(pg::Bind{}.Encode(), 0);
  tracker.OnClientMessage(pg::Execute{}.Encode(), 0);
  tracker.OnClientMessage(pg::Sync{}.Encode(), 0);
  tracker.OnClientMessage(Q("SELECT 2"), 0);
  auto error = tracker.OnServerMessage(Error("42601", "syntax error"), 1);
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(error->kind, Response::Kind::kParse);
  EXPECT_EQ(error->text, "SELEC 1");
  tracker.OnServerMessage(Z(), 2);
  EXPECT_EQ(tracker.OnServerMessage(Tag("SELECT 1"), 3)->text, "SELECT 2");
}

TEST(StatementsTest, SplitAndFingerprint) {
  EXPECT_EQ(SplitStatements("SELECT 1; SELECT ';'  ;"),
            (std::vector<std::string>{"SELECT 1", "SELECT ';'"}));
  EXPECT_EQ(SplitStatements("  "), (std::vector<std::string>{""}));
  EXPECT_EQ(Fingerprint("SELECT * FROM t WHERE id = 1"),
            Fingerprint("select * from t where id = 7"));
  EXPECT_NE(Fingerprint("SELECT * FROM t WHERE id = 1"),
            Fingerprint("SELECT * FROM u WHERE id = 1"));
  EXPECT_EQ(Fingerprint("SELEC oops"), "");
}

}  // namespace
}  // namespace switchyard::replay
