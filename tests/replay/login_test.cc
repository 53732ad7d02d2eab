// The replay's login: trust, MD5 and SCRAM-SHA-256 (against core/auth's server side), refusals.
#include "replay/login.h"

#include <gtest/gtest.h>

#include "core/auth/md5.h"
#include "core/auth/scram.h"
#include "replay/statements.h"
#include "tests/replay/replay_test_util.h"

namespace switchyard::replay {
namespace {

LoginSettings Settings(std::optional<std::string> password) {
  return LoginSettings{.user = "alice",
                       .database = "shop",
                       .password = std::move(password),
                       .parameters = {{"user", "captured"}, {"application_name", "app"}}};
}

TEST(LoginTest, StartupCarriesTheReplayUserAndTheCapturedParameters) {
  LoginClient login(Settings(std::nullopt), "nonce-nonce-nonce-nonce");
  std::string packet = login.StartupPacket();
  auto startup = pg::StartupMessage::Decode(std::string_view(packet).substr(4));
  ASSERT_TRUE(startup.ok());
  EXPECT_EQ(*startup->Find("user"), "alice");
  EXPECT_EQ(*startup->Find("database"), "shop");
  EXPECT_EQ(*startup->Find("application_name"), "app");
}

TEST(LoginTest, TrustKeepsTheBackendKey) {
  LoginClient login(Settings(std::nullopt), "nonce-nonce-nonce-nonce");
  EXPECT_EQ(*login.OnMessage(testing::AuthOk()), "");
  EXPECT_EQ(*login.OnMessage(pg::ParameterStatus{.name = "a", .value = "b"}.Encode()), "");
  EXPECT_EQ(*login.OnMessage(testing::Key(77, 88)), "");
  EXPECT_FALSE(login.done());
  EXPECT_EQ(*login.OnMessage(testing::Z()), "");
  EXPECT_TRUE(login.done());
  ASSERT_TRUE(login.key().has_value());
  EXPECT_EQ(login.key()->pid, 77);
  EXPECT_EQ(login.key()->secret, 88);
}

TEST(LoginTest, Md5AnswersWithTheSaltedHash) {
  LoginClient login(Settings("secret"), "nonce-nonce-nonce-nonce");
  auto reply = login.OnMessage(
      pg::Authentication{.code = pg::Authentication::kMd5Password, .data = "salt"}.Encode());
  ASSERT_TRUE(reply.ok());
  EXPECT_EQ(*reply,
            pg::PasswordMessage{.password = auth::Md5Response("alice", "secret", "salt")}.Encode());
}

TEST(LoginTest, ScramAgainstTheServerSide) {
  LoginClient login(Settings("secret"), "client-nonce-bytes-123456");
  auth::ScramServer server(auth::MakeVerifier("secret", "salt-bytes-16...", 4096),
                           "server-nonce-bytes-123456");
  auto first = login.OnMessage(pg::Authentication::Sasl({"SCRAM-SHA-256"}).Encode());
  ASSERT_TRUE(first.ok()) << first.status();
  auto initial = pg::SaslInitialResponse::Decode(Payload(*first));
  ASSERT_TRUE(initial.ok());
  EXPECT_EQ(initial->mechanism, "SCRAM-SHA-256");
  auto server_first = server.HandleClientFirst(*initial->data);
  ASSERT_TRUE(server_first.ok()) << server_first.status();
  auto final_message = login.OnMessage(
      pg::Authentication{.code = pg::Authentication::kSaslContinue, .data = *server_first}
          .Encode());
  ASSERT_TRUE(final_message.ok()) << final_message.status();
  auto response = pg::SaslResponse::Decode(Payload(*final_message));
  ASSERT_TRUE(response.ok());
  auto server_final = server.HandleClientFinal(response->data);
  ASSERT_TRUE(server_final.ok()) << server_final.status();
  EXPECT_TRUE(login
                  .OnMessage(pg::Authentication{.code = pg::Authentication::kSaslFinal,
                                                .data = *server_final}
                                 .Encode())
                  .ok());
  EXPECT_TRUE(login.OnMessage(testing::AuthOk()).ok());
  EXPECT_TRUE(login.OnMessage(testing::Z()).ok());
  EXPECT_TRUE(login.done());
}

TEST(LoginTest, AWrongServerSignatureFails) {
  LoginClient login(Settings("secret"), "client-nonce-bytes-123456");
  auth::ScramServer server(auth::MakeVerifier("other", "salt-bytes-16...", 4096),
                           "server-nonce-bytes-123456");
  auto first = login.OnMessage(pg::Authentication::Sasl({"SCRAM-SHA-256"}).Encode());
  auto initial = pg::SaslInitialResponse::Decode(Payload(*first));
  auto server_first = server.HandleClientFirst(*initial->data);
  ASSERT_TRUE(login
                  .OnMessage(pg::Authentication{.code = pg::Authentication::kSaslContinue,
                                                .data = *server_first}
                                 .Encode())
                  .ok());
  // A server that does not know the password cannot produce a valid signature.
  EXPECT_FALSE(
      login
          .OnMessage(pg::Authentication{.code = pg::Authentication::kSaslFinal,
                                        .data = "v=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}
                         .Encode())
          .ok());
}

TEST(LoginTest, RefusalsAndMissingPasswordsAreErrors) {
  LoginClient refused(Settings("secret"), "nonce-nonce-nonce-nonce");
  auto error =
      refused.OnMessage(pg::BuildError("FATAL", "28P01", "password authentication failed"));
  ASSERT_FALSE(error.ok());
  EXPECT_EQ(refused.sqlstate(), "28P01");
  EXPECT_NE(std::string(error.status().message()).find("password authentication failed"),
            std::string::npos);

  LoginClient no_password(Settings(std::nullopt), "nonce-nonce-nonce-nonce");
  auto reply = no_password.OnMessage(
      pg::Authentication{.code = pg::Authentication::kCleartextPassword}.Encode());
  ASSERT_FALSE(reply.ok());
  EXPECT_NE(std::string(reply.status().message()).find("--password-file"), std::string::npos);

  LoginClient gss(Settings("secret"), "nonce-nonce-nonce-nonce");
  EXPECT_EQ(
      gss.OnMessage(pg::Authentication{.code = pg::Authentication::kGss}.Encode()).status().code(),
      absl::StatusCode::kUnimplemented);
}

}  // namespace
}  // namespace switchyard::replay
