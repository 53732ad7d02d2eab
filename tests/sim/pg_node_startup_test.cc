// Tests of a simulated node's connection startup: trust, MD5 and SCRAM-SHA-256, the
// ParameterStatus set, BackendKeyData, SSLRequest, refusals and protocol violations.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/auth/md5.h"
#include "core/auth/scram.h"
#include "sim/pg_node.h"
#include "tests/sim/pg_test_client.h"

namespace switchyard::sim {
namespace {

using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::IsEmpty;
using testing::TestClient;
using testing::WithoutParameterStatus;

NodeOptions Trust() {
  NodeOptions options;
  options.name = "pg0";
  options.seed = 7;
  return options;
}

TEST(PgNodeStartupTest, TrustStartupSendsPostgres15ParameterSetKeyAndReady) {
  Instant now;
  PgNode node(Trust());
  TestClient client(node, 1, &now);
  std::vector<std::string> answer =
      client.Startup("alice", {{"database", "app"}, {"application_name", "tests"}});
  EXPECT_THAT(
      answer,
      ElementsAre("R:0", "S:application_name=tests", "S:client_encoding=UTF8",
                  "S:DateStyle=ISO, MDY", "S:default_transaction_read_only=off",
                  "S:in_hot_standby=off", "S:integer_datetimes=on", "S:IntervalStyle=postgres",
                  "S:is_superuser=off", "S:server_encoding=UTF8",
                  "S:server_version=15.0 (switchyard-sim)", "S:session_authorization=alice",
                  "S:standard_conforming_strings=on", "S:TimeZone=UTC", "K", "Z:I"));
  EXPECT_EQ(client.pid(), 10000);
  EXPECT_FALSE(client.WantsClose());
  EXPECT_THAT(client.Query("SELECT current_database(), current_user, pg_backend_pid()"),
              ElementsAre("T:current_database,current_user,pg_backend_pid", "D:app|alice|10000",
                          "C:SELECT 1", "Z:I"));
}

TEST(PgNodeStartupTest, StartupAcceptedOneByteAtATime) {
  Instant now;
  PgNode node(Trust());
  TestClient client(node, 1, &now);
  client.set_byte_by_byte(true);
  EXPECT_THAT(WithoutParameterStatus(client.Startup()), ElementsAre("R:0", "K", "Z:I"));
  EXPECT_THAT(client.Query("SELECT 1"), ElementsAre("T:?column?", "D:1", "C:SELECT 1", "Z:I"));
}

TEST(PgNodeStartupTest, SslRequestIsRefusedWithNAndStartupContinues) {
  Instant now;
  PgNode node(Trust());
  TestClient client(node, 1, &now);
  client.ExpectSslAnswer();
  client.Send(pg::SslRequest{}.Encode());
  EXPECT_THAT(client.Read(), IsEmpty());
  EXPECT_EQ(client.ssl_answer(), 'N');
  EXPECT_THAT(WithoutParameterStatus(client.Startup()), ElementsAre("R:0", "K", "Z:I"));
}

TEST(PgNodeStartupTest, PidsAreDistinctAndSecretsDependOnTheSeed) {
  Instant now;
  PgNode node(Trust());
  TestClient a(node, 1, &now);
  TestClient b(node, 2, &now);
  a.Startup();
  b.Startup();
  EXPECT_NE(a.pid(), b.pid());
  NodeOptions other = Trust();
  other.seed = 8;
  PgNode node2(other);
  TestClient c(node2, 1, &now);
  c.Startup();
  EXPECT_EQ(c.pid(), a.pid());
  EXPECT_NE(c.secret(), a.secret());
  PgNode node3(Trust());
  TestClient d(node3, 1, &now);
  d.Startup();
  EXPECT_EQ(d.secret(), a.secret()) << "same seed, same secret";
}

TEST(PgNodeStartupTest, UnknownRoleAndDatabaseAreFatal) {
  Instant now;
  NodeOptions options = Trust();
  options.users = {{"alice", std::nullopt}};
  options.databases = {"app"};
  PgNode node(options);
  TestClient bob(node, 1, &now);
  EXPECT_THAT(bob.Startup("bob"), ElementsAre("E!:28000"));
  EXPECT_TRUE(bob.WantsClose());
  TestClient alice(node, 2, &now);
  EXPECT_THAT(alice.Startup("alice", {{"database", "nope"}}), ElementsAre("E!:3D000"));
  EXPECT_TRUE(alice.WantsClose());
}

TEST(PgNodeStartupTest, UnknownStartupParameterIsFatalAndOptionsAreApplied) {
  Instant now;
  PgNode node(Trust());
  TestClient bad(node, 1, &now);
  EXPECT_THAT(bad.Startup("alice", {{"no_such_setting", "1"}}), ElementsAre("E!:42704"));
  TestClient good(node, 2, &now);
  good.Startup("alice", {{"options", "-c statement_timeout=5s -c search_path=s1"}});
  EXPECT_THAT(good.Query("SHOW statement_timeout; SHOW search_path"),
              ElementsAre("T:statement_timeout", "D:5s", "C:SHOW", "T:search_path", "D:s1",
                          "C:SHOW", "Z:I"));
  // RESET goes back to the startup value, not the built-in default.
  EXPECT_THAT(good.Query("SET search_path = s2; RESET search_path; SHOW search_path"),
              ElementsAre("C:SET", "C:RESET", "T:search_path", "D:s1", "C:SHOW", "Z:I"));
}

TEST(PgNodeStartupTest, TooManyConnections) {
  Instant now;
  NodeOptions options = Trust();
  options.limits.max_connections = 1;
  PgNode node(options);
  TestClient first(node, 1, &now);
  EXPECT_THAT(WithoutParameterStatus(first.Startup()), ElementsAre("R:0", "K", "Z:I"));
  TestClient second(node, 2, &now);
  EXPECT_THAT(second.Startup(), ElementsAre("E!:53300"));
  // A slot frees when a session ends.
  first.Send(pg::Terminate{}.Encode());
  EXPECT_TRUE(first.WantsClose());
  TestClient third(node, 3, &now);
  EXPECT_THAT(WithoutParameterStatus(third.Startup()), ElementsAre("R:0", "K", "Z:I"));
}

TEST(PgNodeStartupTest, GarbageIsAProtocolViolation) {
  Instant now;
  PgNode node(Trust());
  TestClient client(node, 1, &now);
  client.Startup();
  client.Send(std::string("\x01\x00\x00\x00\x04", 5));
  EXPECT_THAT(client.Read(), ElementsAre("E!:08P01"));
  EXPECT_TRUE(client.WantsClose());
  EXPECT_EQ(node.counters().protocol_errors, 1u);
}

TEST(PgNodeStartupTest, NewerMinorProtocolGetsNegotiateProtocolVersion) {
  Instant now;
  PgNode node(Trust());
  TestClient client(node, 1, &now);
  pg::StartupMessage startup;
  startup.protocol = pg::kProtocolVersion3 + 2;
  startup.parameters = {{"user", "alice"}, {"_pq_.compression", "on"}};
  client.Send(startup.Encode());
  std::vector<std::string> answer = WithoutParameterStatus(client.Read());
  EXPECT_THAT(answer, ElementsAre("v", "R:0", "K", "Z:I"));
}

NodeOptions Scram() {
  NodeOptions options;
  options.auth = NodeAuth::kScramSha256;
  options.users = {{"alice", "secret"}, {"nopass", std::nullopt}};
  options.seed = 3;
  return options;
}

// Runs a SCRAM exchange with `password`; returns the messages after the client's final.
std::vector<std::string> ScramLogin(TestClient& client, const std::string& user,
                                    const std::string& password) {
  EXPECT_THAT(client.Startup(user), ElementsAre("R:10"));
  auth::ScramClient scram(password, "client-nonce-18-by");
  client.Send(
      pg::SaslInitialResponse{.mechanism = "SCRAM-SHA-256", .data = scram.ClientFirst()}.Encode());
  std::vector<std::string> cont = client.Read();
  EXPECT_THAT(cont, ElementsAre("R:11"));
  auto server_first = pg::Authentication::Decode(std::string_view(client.raw().back()).substr(5));
  absl::StatusOr<std::string> final_message = scram.HandleServerFirst(server_first->data);
  EXPECT_TRUE(final_message.ok()) << final_message.status();
  client.Send(pg::SaslResponse{.data = final_message.value_or("")}.Encode());
  std::vector<std::string> answer = client.Read();
  if (!answer.empty() && answer[0] == "R:12") {
    auto server_final = pg::Authentication::Decode(
        std::string_view(client.raw()[client.raw().size() - answer.size()]).substr(5));
    EXPECT_TRUE(scram.HandleServerFinal(server_final->data).ok()) << "server signature";
  }
  return answer;
}

TEST(PgNodeStartupTest, ScramLoginSucceedsWithTheRightPassword) {
  Instant now;
  PgNode node(Scram());
  TestClient client(node, 1, &now);
  EXPECT_THAT(WithoutParameterStatus(ScramLogin(client, "alice", "secret")),
              ElementsAre("R:12", "R:0", "K", "Z:I"));
  EXPECT_THAT(client.Query("SELECT 1"), Contains("C:SELECT 1"));
}

TEST(PgNodeStartupTest, ScramLoginFailsWithWrongPasswordUnknownUserOrNoPassword) {
  Instant now;
  PgNode node(Scram());
  TestClient wrong(node, 1, &now);
  EXPECT_THAT(ScramLogin(wrong, "alice", "guess"), ElementsAre("E!:28P01"));
  EXPECT_TRUE(wrong.WantsClose());
  TestClient unknown(node, 2, &now);
  EXPECT_THAT(ScramLogin(unknown, "mallory", "x"), ElementsAre("E!:28P01"));
  TestClient nopass(node, 3, &now);
  EXPECT_THAT(ScramLogin(nopass, "nopass", ""), ElementsAre("E!:28P01"));
}

TEST(PgNodeStartupTest, Md5Login) {
  Instant now;
  NodeOptions options;
  options.auth = NodeAuth::kMd5;
  options.users = {{"alice", "secret"}};
  PgNode node(options);
  for (const auto& [password, expected] :
       std::vector<std::pair<std::string, std::string>>{{"secret", "Z:I"}, {"wrong", "E!:28P01"}}) {
    TestClient client(node, password == "secret" ? 1 : 2, &now);
    EXPECT_THAT(client.Startup(), ElementsAre("R:5"));
    auto request = pg::Authentication::Decode(std::string_view(client.raw().back()).substr(5));
    client.Send(pg::PasswordMessage{.password = auth::Md5Response("alice", password, request->data)}
                    .Encode());
    EXPECT_THAT(client.Read(), Contains(expected));
  }
}

TEST(PgNodeStartupTest, CancelRequestConnectionIsClosedWithoutAnswer) {
  Instant now;
  PgNode node(Trust());
  TestClient cancel(node, 1, &now);
  cancel.Send(pg::CancelRequest{.pid = 12345, .secret = 1}.Encode());
  EXPECT_THAT(cancel.Read(), IsEmpty());
  EXPECT_TRUE(cancel.WantsClose());
  EXPECT_EQ(node.counters().cancels_received, 1u);
}

}  // namespace
}  // namespace switchyard::sim
