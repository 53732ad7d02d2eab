// Tests of a simulated node's extended query protocol: pipelines, skip-to-Sync after an error,
// named and unnamed statements and portals, Describe, PortalSuspended, binary formats, and
// protocol-level prepared statements sharing their names with SQL PREPARE/EXECUTE.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "sim/pg_node.h"
#include "tests/sim/pg_test_client.h"

namespace switchyard::sim {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using testing::TestClient;

std::string ParseMsg(std::string name, std::string sql, std::vector<uint32_t> types = {}) {
  return pg::Parse{
      .name = std::move(name), .query = std::move(sql), .parameter_types = std::move(types)}
      .Encode();
}
std::string BindMsg(std::string portal, std::string statement,
                    std::vector<std::optional<std::string>> params = {},
                    std::vector<int16_t> param_formats = {},
                    std::vector<int16_t> result_formats = {}) {
  return pg::Bind{.portal = std::move(portal),
                  .statement = std::move(statement),
                  .parameter_formats = std::move(param_formats),
                  .parameters = std::move(params),
                  .result_formats = std::move(result_formats)}
      .Encode();
}
std::string ExecuteMsg(std::string portal = "", int32_t max_rows = 0) {
  return pg::Execute{.portal = std::move(portal), .max_rows = max_rows}.Encode();
}
std::string DescribeMsg(char kind, std::string name) {
  return pg::Describe{.kind = kind, .name = std::move(name)}.Encode();
}
std::string SyncMsg() { return pg::Sync{}.Encode(); }

class PgNodeExtendedTest : public ::testing::TestWithParam<bool> {
 protected:
  PgNodeExtendedTest() : node_(NodeOptions{}) {}
  std::unique_ptr<TestClient> Connect(uint64_t id) {
    auto client = std::make_unique<TestClient>(node_, id, &now_);
    client->Startup();
    client->set_byte_by_byte(GetParam());
    return client;
  }
  Instant now_;
  PgNode node_;
};

TEST_P(PgNodeExtendedTest, PipelineRunsInOneImplicitTransactionUntilSync) {
  auto c = Connect(1);
  c->Send(ParseMsg("", "INSERT INTO kv VALUES ($1, $2)") + BindMsg("", "", {"a", "x"}) +
          ExecuteMsg() + ParseMsg("", "SELECT v FROM kv WHERE k = $1") + BindMsg("", "", {"a"}) +
          DescribeMsg('P', "") + ExecuteMsg());
  EXPECT_THAT(c->Read(),
              ElementsAre("1", "2", "C:INSERT 0 1", "1", "2", "T:v", "D:x", "C:SELECT 1"));
  EXPECT_FALSE(node_.store().Get("a").has_value()) << "nothing commits before Sync";
  c->Send(SyncMsg());
  EXPECT_THAT(c->Read(), ElementsAre("Z:I"));
  EXPECT_EQ(node_.store().Get("a"), std::optional<Value>("x"));
}

TEST_P(PgNodeExtendedTest, ErrorSkipsEverythingUntilSyncAndRollsTheBatchBack) {
  auto c = Connect(1);
  c->Query("INSERT INTO kv VALUES ('dup', '0')");
  c->Send(ParseMsg("ins", "INSERT INTO kv VALUES ($1, $2)") + BindMsg("", "ins", {"new", "1"}) +
          ExecuteMsg() + BindMsg("", "ins", {"dup", "2"}) + ExecuteMsg() +
          BindMsg("", "ins", {"later", "3"}) + ExecuteMsg() + ParseMsg("", "SELECT 1") + SyncMsg() +
          BindMsg("", "ins", {"after", "4"}) + ExecuteMsg() + SyncMsg());
  EXPECT_THAT(c->Read(), ElementsAre("1", "2", "C:INSERT 0 1", "2", "E:23505", "Z:I", "2",
                                     "C:INSERT 0 1", "Z:I"));
  EXPECT_FALSE(node_.store().Get("new").has_value()) << "the failed batch rolled back";
  EXPECT_FALSE(node_.store().Get("later").has_value());
  EXPECT_TRUE(node_.store().Get("after").has_value()) << "the named statement survived";
}

TEST_P(PgNodeExtendedTest, DescribeStatementGivesParameterAndRowTypes) {
  auto c = Connect(1);
  c->Send(ParseMsg("s", "SELECT k, v, count(*) FROM kv WHERE k = $1") +
          ParseMsg("t", "SELECT v FROM kv WHERE k = $1 LIMIT $2") + DescribeMsg('S', "t") +
          ParseMsg("u", "UPDATE kv SET v = $2 WHERE k = $1") + DescribeMsg('S', "u") +
          ParseMsg("z", "SELECT pg_sleep($1), $2::int") + DescribeMsg('S', "z") + SyncMsg());
  EXPECT_THAT(c->Read(), ElementsAre("E:42803", "Z:I"));
  c->Send(ParseMsg("t", "SELECT v FROM kv WHERE k = $1 LIMIT $2") + DescribeMsg('S', "t") +
          ParseMsg("u", "UPDATE kv SET v = $2 WHERE k = $1") + DescribeMsg('S', "u") +
          ParseMsg("z", "SELECT pg_sleep($1), $2::int") + DescribeMsg('S', "z") + SyncMsg());
  EXPECT_THAT(c->Read(), ElementsAre("1", "t:25,20", "T:v", "1", "t:25,25", "n", "1", "t:701,23",
                                     "T:pg_sleep,int4", "Z:I"));
}

TEST_P(PgNodeExtendedTest, MaxRowsSuspendsThePortal) {
  auto c = Connect(1);
  c->Query("INSERT INTO kv VALUES ('a', '1'), ('b', '2'), ('c', '3')");
  c->Send(ParseMsg("", "SELECT k FROM kv ORDER BY k") + BindMsg("cur", "") + ExecuteMsg("cur", 2) +
          ExecuteMsg("cur", 2) + ExecuteMsg("cur", 2) + SyncMsg());
  EXPECT_THAT(c->Read(),
              ElementsAre("1", "2", "D:a", "D:b", "s", "D:c", "C:SELECT 1", "C:SELECT 0", "Z:I"));
  c->Send(ExecuteMsg("cur") + SyncMsg());
  EXPECT_THAT(c->Read(), ElementsAre("E:34000", "Z:I")) << "portals end with their transaction";
}

TEST_P(PgNodeExtendedTest, NamedStatementsAndSqlPrepareShareOneNamespace) {
  auto c = Connect(1);
  c->Send(ParseMsg("p", "INSERT INTO kv VALUES ($1, 'v')") + SyncMsg());
  EXPECT_THAT(c->Read(), ElementsAre("1", "Z:I"));
  EXPECT_THAT(c->Query("EXECUTE p('k1')"), ElementsAre("C:INSERT 0 1", "Z:I"));
  EXPECT_THAT(c->Query("PREPARE p AS SELECT 1"), ElementsAre("E:42P05", "Z:I"));
  c->Query("PREPARE q AS SELECT v FROM kv WHERE k = $1");
  c->Send(BindMsg("", "q", {"k1"}) + ExecuteMsg() + ParseMsg("p", "SELECT 2") + SyncMsg());
  EXPECT_THAT(c->Read(), ElementsAre("2", "D:v", "C:SELECT 1", "E:42P05", "Z:I"));
  c->Send(pg::Close{.kind = 'S', .name = "p"}.Encode() + ParseMsg("p", "SELECT 2") +
          BindMsg("", "nope") + SyncMsg());
  EXPECT_THAT(c->Read(), ElementsAre("3", "1", "E:26000", "Z:I"));
  EXPECT_THAT(node_.InspectSession(1)->prepared_statements, ElementsAre("p", "q"));
}

TEST_P(PgNodeExtendedTest, ExplicitTransactionThroughExtendedProtocol) {
  auto c = Connect(1);
  c->Send(ParseMsg("", "BEGIN") + BindMsg("", "") + ExecuteMsg() + SyncMsg());
  EXPECT_THAT(c->Read(), ElementsAre("1", "2", "C:BEGIN", "Z:T"));
  c->Send(ParseMsg("", "SELECT nope FROM kv") + BindMsg("", "") + ExecuteMsg() + SyncMsg());
  EXPECT_THAT(c->Read(), ElementsAre("E:42703", "Z:E"));
  c->Send(ParseMsg("", "SELECT 1") + SyncMsg());
  EXPECT_THAT(c->Read(), ElementsAre("E:25P02", "Z:E"));
  c->Send(ParseMsg("", "ROLLBACK") + BindMsg("", "") + ExecuteMsg() + SyncMsg());
  EXPECT_THAT(c->Read(), ElementsAre("1", "2", "C:ROLLBACK", "Z:I"));
}

TEST_P(PgNodeExtendedTest, BinaryParametersAndResults) {
  auto c = Connect(1);
  const std::string seven("\0\0\0\7", 4);
  c->Send(ParseMsg("", "SELECT $1::int + 1 AS n, 'x' AS t", {23}) +
          BindMsg("", "", {seven}, {1}, {1, 0}) + ExecuteMsg() + SyncMsg());
  EXPECT_THAT(c->Read(),
              ElementsAre("1", "2", std::string("D:\0\0\0\x08|x", 8), "C:SELECT 1", "Z:I"));
  c->Send(ParseMsg("", "SELECT $1::int", {23}) + BindMsg("", "", {"abc"}) + SyncMsg());
  EXPECT_THAT(c->Read(), ElementsAre("1", "E:22P02", "Z:I"));
  c->Send(BindMsg("", "", {"1", "2"}) + SyncMsg());
  EXPECT_THAT(c->Read(), ElementsAre("E:08P01", "Z:I")) << "an ERROR, not a FATAL";
  EXPECT_FALSE(c->WantsClose());
}

TEST_P(PgNodeExtendedTest, SleepingExecuteIsCancelledAndTheBatchSkipsToSync) {
  auto c = Connect(1);
  c->Send(ParseMsg("", "SELECT pg_sleep(5)") + BindMsg("", "") + ExecuteMsg() +
          ParseMsg("", "SELECT 1") + BindMsg("", "") + ExecuteMsg() + SyncMsg());
  EXPECT_THAT(c->Read(), ElementsAre("1", "2"));
  TestClient cancel(node_, 9, &now_);
  cancel.Send(pg::CancelRequest{.pid = c->pid(), .secret = c->secret()}.Encode());
  EXPECT_THAT(c->Read(), ElementsAre("E:57014", "Z:I"));
}

TEST_P(PgNodeExtendedTest, EmptyQueryAndMultipleCommandsInParse) {
  auto c = Connect(1);
  c->Send(ParseMsg("", "") + BindMsg("", "") + DescribeMsg('P', "") + ExecuteMsg() + SyncMsg());
  EXPECT_THAT(c->Read(), ElementsAre("1", "2", "n", "I", "Z:I"));
  c->Send(ParseMsg("", "SELECT 1; SELECT 2") + SyncMsg());
  EXPECT_THAT(c->Read(), ElementsAre("E:42601", "Z:I"));
}

TEST_P(PgNodeExtendedTest, CopyInThroughExtendedProtocol) {
  auto c = Connect(1);
  c->Send(ParseMsg("", "COPY kv FROM STDIN") + BindMsg("", "") + ExecuteMsg());
  EXPECT_THAT(c->Read(), ElementsAre("1", "2", "G"));
  c->Send(pg::CopyData{.data = "a\t1\n"}.Encode() + pg::Flush{}.Encode() + pg::CopyDone{}.Encode() +
          SyncMsg());
  EXPECT_THAT(c->Read(), ElementsAre("C:COPY 1", "Z:I"));
  EXPECT_EQ(node_.store().Get("a"), std::optional<Value>("1"));
}

TEST_P(PgNodeExtendedTest, SimpleQueryIsSkippedToo) {
  auto c = Connect(1);
  c->Send(ParseMsg("", "SELEC 1") + pg::Query{.sql = "INSERT INTO kv VALUES ('q', '1')"}.Encode() +
          SyncMsg());
  EXPECT_THAT(c->Read(), ElementsAre("E:42601", "Z:I"));
  EXPECT_FALSE(node_.store().Get("q").has_value());
}

TEST_P(PgNodeExtendedTest, DiscardAllCannotRunInsideAPipelineTransaction) {
  auto c = Connect(1);
  c->Send(ParseMsg("", "SELECT 1") + BindMsg("", "") + ExecuteMsg() + ParseMsg("", "DISCARD ALL") +
          BindMsg("", "") + ExecuteMsg() + SyncMsg());
  EXPECT_THAT(c->Read(), ElementsAre("1", "2", "D:1", "C:SELECT 1", "1", "2", "E:25001", "Z:I"));
  c->Send(ParseMsg("", "DISCARD ALL") + BindMsg("", "") + ExecuteMsg() + SyncMsg());
  EXPECT_THAT(c->Read(), ElementsAre("1", "2", "C:DISCARD ALL", "Z:I"));
}

INSTANTIATE_TEST_SUITE_P(WholeAndByteByByte, PgNodeExtendedTest, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "ByteByByte" : "Whole"; });

}  // namespace
}  // namespace switchyard::sim
