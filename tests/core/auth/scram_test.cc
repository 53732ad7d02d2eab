// Tests of SCRAM-SHA-256 (core/auth/scram.h): the RFC 7677 example, client against server, and
// malformed or tampered messages.
#include "core/auth/scram.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include <string>

#include "core/auth/crypto.h"
#include "core/auth/scram_internal.h"

namespace switchyard::auth {
namespace {

using ::testing::HasSubstr;

// RFC 7677 section 3: user "user", password "pencil".
constexpr std::string_view kRfcClientFirst = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
constexpr std::string_view kRfcClientNonce = "rOprNGfwEbeRWgbNEkqO";
constexpr std::string_view kRfcNonce = "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
constexpr std::string_view kRfcSalt = "W22ZaJ0SNY7soEsUEjb6gQ==";
constexpr std::string_view kRfcServerFirst =
    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
constexpr std::string_view kRfcClientFinal =
    "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
    "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
constexpr std::string_view kRfcServerFinal = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";
// ClientKey for "pencil" with the RFC's salt, computed independently with Python's hashlib.
constexpr std::string_view kRfcClientKey = "pg/JI9Z+hkSpLRa5btpe9GVrDHJcSEN0viVTVXaZbos=";

const std::string kServerNonce = "server-nonce-18-by";  // 18 bytes
const std::string kClientNonce = "client-nonce-18-by";
const std::string kSalt = "sixteen byte sal";

std::string Decode(std::string_view b64) {
  std::optional<std::string> bytes = internal::Base64Decode(b64);
  EXPECT_TRUE(bytes.has_value()) << b64;
  return bytes.value_or("");
}

TEST(ScramRfc7677Test, ClientSideReproducesTheExample) {
  absl::StatusOr<scram_internal::ClientStep> step = scram_internal::RespondToServerFirst(
      std::string("pencil"), std::nullopt, kRfcClientFirst.substr(3), kRfcClientNonce,
      kRfcServerFirst);
  ASSERT_TRUE(step.ok()) << step.status();
  EXPECT_EQ(step->client_final, kRfcClientFinal);
  EXPECT_TRUE(
      scram_internal::VerifyServerFinal(step->server_key, step->auth_message, kRfcServerFinal)
          .ok());
}

TEST(ScramRfc7677Test, ServerSideReproducesTheExample) {
  ScramVerifier verifier = MakeVerifier("pencil", Decode(kRfcSalt), 4096);
  absl::StatusOr<scram_internal::ClientFirst> first =
      scram_internal::ParseClientFirst(kRfcClientFirst);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->nonce, kRfcClientNonce);
  EXPECT_EQ(scram_internal::FormatServerFirst(kRfcNonce, verifier), kRfcServerFirst);
  absl::StatusOr<scram_internal::ServerStep> step = scram_internal::VerifyClientFinal(
      verifier, *first, kRfcServerFirst, kRfcNonce, kRfcClientFinal);
  ASSERT_TRUE(step.ok()) << step.status();
  EXPECT_EQ(step->server_final, kRfcServerFinal);
  EXPECT_EQ(step->client_key, Decode(kRfcClientKey));
}

TEST(ScramRfc7677Test, ClassesSpeakTheSameMessages) {
  // The RFC's client nonce happens to be valid base64, so the class can send it; its user name
  // is empty, as PostgreSQL clients send it, so the proof differs from the RFC's.
  ScramClient client("pencil", Decode(kRfcClientNonce));
  EXPECT_EQ(client.ClientFirst(), "n,,n=,r=rOprNGfwEbeRWgbNEkqO");
  absl::StatusOr<std::string> final_message = client.HandleServerFirst(kRfcServerFirst);
  ASSERT_TRUE(final_message.ok()) << final_message.status();
  EXPECT_THAT(*final_message, ::testing::StartsWith(internal::Cat("c=biws,r=", kRfcNonce, ",p=")));
  // A client holding only the keys sends exactly what the password holder sends.
  ScramClient::Keys keys = scram_internal::DeriveKeys("pencil", Decode(kRfcSalt), 4096);
  ScramClient keyed(keys, Decode(kRfcClientNonce));
  keyed.ClientFirst();
  EXPECT_EQ(keyed.HandleServerFirst(kRfcServerFirst).value_or(""), *final_message);
}

TEST(ScramVerifierTest, MakeVerifierMatchesTheKeyDefinitions) {
  ScramVerifier v = MakeVerifier("pencil", Decode(kRfcSalt), 4096);
  EXPECT_EQ(v.iterations, 4096);
  EXPECT_EQ(v.salt, Decode(kRfcSalt));
  // StoredKey = SHA256(ClientKey), ServerKey from hashlib as well.
  EXPECT_EQ(v.stored_key, internal::Sha256(Decode(kRfcClientKey)));
  EXPECT_EQ(internal::Base64Encode(v.server_key), "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=");
  EXPECT_EQ(FormatVerifier(v),
            "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$"
            "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
            "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=");
}

// Runs a whole exchange; returns the first failure, or OK.
absl::Status Exchange(ScramClient& client, ScramServer& server) {
  absl::StatusOr<std::string> server_first = server.HandleClientFirst(client.ClientFirst());
  if (!server_first.ok()) return server_first.status();
  absl::StatusOr<std::string> client_final = client.HandleServerFirst(*server_first);
  if (!client_final.ok()) return client_final.status();
  absl::StatusOr<std::string> server_final = server.HandleClientFinal(*client_final);
  if (!server_final.ok()) return server_final.status();
  return client.HandleServerFinal(*server_final);
}

TEST(ScramExchangeTest, PasswordClientAuthenticatesAndServerRecoversClientKey) {
  ScramVerifier verifier = MakeVerifier("secret", kSalt, 4096);
  ScramServer server(verifier, kServerNonce);
  ScramClient client("secret", kClientNonce);
  ASSERT_TRUE(Exchange(client, server).ok());
  ASSERT_TRUE(server.client_key().has_value());
  EXPECT_EQ(*server.client_key(), scram_internal::DeriveKeys("secret", kSalt, 4096).client_key);
}

TEST(ScramExchangeTest, RecoveredClientKeyLogsInToAServerWithTheSameVerifier) {
  ScramVerifier verifier = MakeVerifier("secret", kSalt, 4096);
  ScramServer proxy(verifier, kServerNonce);
  ScramClient app("secret", kClientNonce);
  ASSERT_TRUE(Exchange(app, proxy).ok());
  ASSERT_TRUE(proxy.client_key().has_value());

  // The proxy, knowing only the verifier and the recovered key, logs in to the real server.
  ScramServer postgres(verifier, "another-server-nonce");
  ScramClient proxy_as_client(ScramClient::Keys{*proxy.client_key(), verifier.server_key},
                              "another-client-nonce");
  EXPECT_TRUE(Exchange(proxy_as_client, postgres).ok());
  ASSERT_TRUE(postgres.client_key().has_value());
  EXPECT_EQ(*postgres.client_key(), *proxy.client_key());
}

TEST(ScramExchangeTest, RecoveredClientKeyFailsAgainstADifferentVerifier) {
  ScramVerifier verifier = MakeVerifier("secret", kSalt, 4096);
  ScramServer proxy(verifier, kServerNonce);
  ScramClient app("secret", kClientNonce);
  ASSERT_TRUE(Exchange(app, proxy).ok());
  // Same password, other salt: the server's pg_authid entry differs from the users file.
  ScramServer postgres(MakeVerifier("secret", "other salt bytes", 4096), "another-server-nonce");
  ScramClient proxy_as_client(ScramClient::Keys{*proxy.client_key(), verifier.server_key},
                              "another-client-nonce");
  absl::Status status = Exchange(proxy_as_client, postgres);
  EXPECT_EQ(status.code(), absl::StatusCode::kUnauthenticated) << status;
}

TEST(ScramExchangeTest, WrongPasswordIsUnauthenticated) {
  ScramServer server(MakeVerifier("secret", kSalt, 4096), kServerNonce);
  ScramClient client("Secret", kClientNonce);
  absl::Status status = Exchange(client, server);
  EXPECT_EQ(status.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(status.message(), "password authentication failed");
  EXPECT_FALSE(server.client_key().has_value());
}

TEST(ScramExchangeTest, ClientDetectsAServerThatDoesNotHoldTheVerifier) {
  // An impostor that replays a client's proof check without the real ServerKey.
  ScramVerifier verifier = MakeVerifier("secret", kSalt, 4096);
  ScramVerifier impostor = verifier;
  impostor.server_key = internal::Sha256("not the server key");
  ScramServer server(impostor, kServerNonce);
  ScramClient client("secret", kClientNonce);
  absl::Status status = Exchange(client, server);
  EXPECT_EQ(status.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(status.message(), HasSubstr("server signature"));
  // Keys-based client: a wrong ServerKey is caught the same way.
  ScramServer honest(verifier, kServerNonce);
  ScramClient keyed(ScramClient::Keys{scram_internal::DeriveKeys("secret", kSalt, 4096).client_key,
                                      internal::Sha256("wrong")},
                    kClientNonce);
  EXPECT_EQ(Exchange(keyed, honest).code(), absl::StatusCode::kUnauthenticated);
}

TEST(ScramExchangeTest, ServerErrorAttributeIsReported) {
  ScramClient client("secret", kClientNonce);
  client.ClientFirst();
  ASSERT_TRUE(
      client
          .HandleServerFirst(internal::Cat("r=", internal::Base64Encode(kClientNonce),
                                           "xyz,s=", internal::Base64Encode(kSalt), ",i=16"))
          .ok());
  absl::Status status = client.HandleServerFinal("e=invalid-proof");
  EXPECT_EQ(status.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(status.message(), HasSubstr("invalid-proof"));
}

RC_GTEST_PROP(ScramExchangeTest, AnyPasswordAndNoncesRoundTrip, ()) {
  std::string password = *rc::gen::arbitrary<std::string>();
  std::string salt = *rc::gen::nonEmpty(rc::gen::arbitrary<std::string>());
  std::string server_nonce =
      *rc::gen::container<std::string>(*rc::gen::inRange(18, 40), rc::gen::arbitrary<char>());
  std::string client_nonce = *rc::gen::nonEmpty(rc::gen::arbitrary<std::string>());
  int iterations = *rc::gen::inRange(1, 32);
  ScramVerifier verifier = MakeVerifier(password, salt, iterations);
  RC_ASSERT(ParseSecret(FormatVerifier(verifier))->verifier == verifier);

  ScramServer server(verifier, server_nonce);
  ScramClient client(password, client_nonce);
  RC_ASSERT(Exchange(client, server).ok());
  std::string other = *rc::gen::distinctFrom(password);
  ScramServer server2(verifier, server_nonce);
  ScramClient wrong(other, client_nonce);
  RC_ASSERT(Exchange(wrong, server2).code() == absl::StatusCode::kUnauthenticated);
}

// A server that has answered `client`'s first message. Few iterations keep the many runs fast.
struct Started {
  ScramClient client{"secret", kClientNonce};
  ScramServer server{MakeVerifier("secret", kSalt, 64), kServerNonce};
  std::string server_first;
  Started() {
    absl::StatusOr<std::string> first = server.HandleClientFirst(client.ClientFirst());
    EXPECT_TRUE(first.ok());
    server_first = first.value_or("");
  }
};

bool IsRejection(const absl::Status& status) {
  return status.code() == absl::StatusCode::kInvalidArgument ||
         status.code() == absl::StatusCode::kUnauthenticated;
}

TEST(ScramMalformedTest, TruncatedClientFirst) {
  std::string full = ScramClient("secret", kClientNonce).ClientFirst();
  for (size_t n = 0; n < full.size(); ++n) {
    ScramServer server(MakeVerifier("secret", kSalt, 1), kServerNonce);
    absl::StatusOr<std::string> reply = server.HandleClientFirst(full.substr(0, n));
    // A prefix that still ends in a non-empty nonce is a well-formed message with another nonce.
    bool well_formed = n > std::string_view("n,,n=,r=").size();
    EXPECT_EQ(reply.ok(), well_formed) << n;
    if (!reply.ok()) EXPECT_EQ(reply.status().code(), absl::StatusCode::kInvalidArgument) << n;
  }
}

TEST(ScramMalformedTest, TruncatedOrTamperedClientFinalIsRejected) {
  Started reference;
  std::string full = reference.client.HandleServerFirst(reference.server_first).value();
  for (size_t n = 0; n < full.size(); ++n) {
    Started s;
    absl::StatusOr<std::string> reply = s.server.HandleClientFinal(full.substr(0, n));
    ASSERT_FALSE(reply.ok()) << n;
    EXPECT_EQ(reply.status().code(), absl::StatusCode::kInvalidArgument) << full.substr(0, n);
  }
  for (size_t i = 0; i < full.size(); ++i) {
    Started s;
    std::string tampered = full;
    tampered[i] = static_cast<char>(tampered[i] ^ 1);
    absl::StatusOr<std::string> reply = s.server.HandleClientFinal(tampered);
    ASSERT_FALSE(reply.ok()) << tampered;
    EXPECT_TRUE(IsRejection(reply.status())) << reply.status();
    EXPECT_FALSE(s.server.client_key().has_value());
  }
  Started s;
  EXPECT_TRUE(s.server.HandleClientFinal(full).ok());  // the untampered message is accepted
}

TEST(ScramMalformedTest, TruncatedServerFirstNeverAuthenticates) {
  Started reference;
  for (size_t n = 0; n < reference.server_first.size(); ++n) {
    Started s;
    absl::StatusOr<std::string> client_final =
        s.client.HandleServerFirst(reference.server_first.substr(0, n));
    if (!client_final.ok()) {
      EXPECT_EQ(client_final.status().code(), absl::StatusCode::kInvalidArgument) << n;
      continue;
    }
    // Cutting the iteration count short still parses, but the proof then cannot match.
    EXPECT_TRUE(IsRejection(s.server.HandleClientFinal(*client_final).status())) << n;
  }
}

TEST(ScramMalformedTest, TruncatedOrTamperedServerFinalIsRejected) {
  Started reference;
  std::string client_final = reference.client.HandleServerFirst(reference.server_first).value();
  std::string full = reference.server.HandleClientFinal(client_final).value();
  for (size_t n = 0; n < full.size(); ++n) {
    EXPECT_EQ(reference.client.HandleServerFinal(full.substr(0, n)).code(),
              absl::StatusCode::kInvalidArgument)
        << n;
  }
  for (size_t i = 0; i < full.size(); ++i) {
    std::string tampered = full;
    tampered[i] = static_cast<char>(tampered[i] ^ 1);
    EXPECT_TRUE(IsRejection(reference.client.HandleServerFinal(tampered))) << tampered;
  }
  EXPECT_TRUE(reference.client.HandleServerFinal(full).ok());
}

TEST(ScramMalformedTest, ClientFirstVariants) {
  struct Case {
    std::string message;
    bool ok;
    std::string error;
  };
  const Case cases[] = {
      {"n,,n=,r=abc", true, ""},
      {"y,,n=,r=abc", true, ""},  // client could bind but thinks we cannot: fine
      {"n,,n=user,r=abc,x=extension", true, ""},
      {"p=tls-server-end-point,,n=,r=abc", false, "SCRAM-SHA-256-PLUS"},
      {"n,a=admin,n=,r=abc", false, "authorization identit"},
      {"n,,m=ext,n=,r=abc", false, "unsupported SCRAM extension"},
      {"n,,n=,r=", false, "invalid nonce"},
      {"n,,n=,r=a\x01", false, "invalid nonce"},
      {"n,,r=abc", false, "expected n=<user>,r=<nonce>"},
      {"n,,n=", false, "expected n=<user>,r=<nonce>"},
      {"x,,n=,r=abc", false, "GS2 header"},
      {"n,x,n=,r=abc", false, "GS2 header"},
      {"n,,n=,r=abc,", false, "attributes"},
      {"n,,n=,,r=abc", false, "attributes"},
      {internal::Cat("n,,n=,r=", std::string(3000, 'a')), false, "too long"},
  };
  for (const Case& c : cases) {
    ScramServer server(MakeVerifier("secret", kSalt, 1), kServerNonce);
    absl::StatusOr<std::string> reply = server.HandleClientFirst(c.message);
    EXPECT_EQ(reply.ok(), c.ok) << c.message;
    if (!c.ok) {
      EXPECT_EQ(reply.status().code(), absl::StatusCode::kInvalidArgument) << c.message;
      EXPECT_THAT(reply.status().message(), HasSubstr(c.error)) << c.message;
    }
  }
}

TEST(ScramMalformedTest, ChannelBindingMustRepeatTheGs2Header) {
  // A "y,," client echoes "y,," (eSws); "biws" would mean the header was altered.
  ScramVerifier verifier = MakeVerifier("secret", kSalt, 16);
  ScramServer server(verifier, kServerNonce);
  absl::StatusOr<std::string> server_first = server.HandleClientFirst("y,,n=,r=abc");
  ASSERT_TRUE(server_first.ok());
  absl::StatusOr<scram_internal::ClientStep> step = scram_internal::RespondToServerFirst(
      std::string("secret"), std::nullopt, "n=,r=abc", "abc", *server_first);
  ASSERT_TRUE(step.ok());
  ASSERT_THAT(step->client_final, ::testing::StartsWith("c=biws,"));
  absl::StatusOr<std::string> reply = server.HandleClientFinal(step->client_final);
  EXPECT_EQ(reply.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(reply.status().message(), HasSubstr("channel binding"));
}

TEST(ScramMalformedTest, ServerFirstVariants) {
  const std::string nonce = internal::Base64Encode(kClientNonce);
  const std::string salt = internal::Base64Encode(kSalt);
  struct Case {
    std::string message;
    std::string error;
  };
  const Case cases[] = {
      {internal::Cat("r=", nonce, ",s=", salt, ",i=4096"), "does not extend"},  // no server part
      {internal::Cat("r=X", nonce, ",s=", salt, ",i=4096"), "does not extend"},
      {internal::Cat("r=", nonce, "x,s=", salt, ",i=0"), "iteration count"},
      {internal::Cat("r=", nonce, "x,s=", salt, ",i=-1"), "iteration count"},
      {internal::Cat("r=", nonce, "x,s=", salt, ",i=4k"), "iteration count"},
      {internal::Cat("r=", nonce, "x,s=", salt, ",i=99999999999"), "iteration count"},
      {internal::Cat("r=", nonce, "x,s=", salt, ",i=10000001"), "iteration count"},
      {internal::Cat("r=", nonce, "x,s=not base64,i=4096"), "salt"},
      {internal::Cat("r=", nonce, "x,s=,i=4096"), "salt"},
      {internal::Cat("r=", nonce, "x,i=4096,s=", salt), "expected r=<nonce>,s=<salt>"},
      {internal::Cat("m=ext,r=", nonce, "x,s=", salt, ",i=4096"), "unsupported SCRAM extension"},
      {"", "attributes"},
  };
  for (const Case& c : cases) {
    ScramClient client("secret", kClientNonce);
    client.ClientFirst();
    absl::StatusOr<std::string> reply = client.HandleServerFirst(c.message);
    ASSERT_FALSE(reply.ok()) << c.message;
    EXPECT_EQ(reply.status().code(), absl::StatusCode::kInvalidArgument) << c.message;
    EXPECT_THAT(reply.status().message(), HasSubstr(c.error)) << c.message;
  }
}

TEST(ScramMalformedTest, MessagesOutOfTurnAreErrors) {
  // A server that skips or repeats a step must not crash the proxy.
  ScramClient early("secret", kClientNonce);
  EXPECT_EQ(early.HandleServerFirst("r=x,s=c2FsdA==,i=1").status().code(),
            absl::StatusCode::kInvalidArgument);
  Started s;
  EXPECT_EQ(s.client.HandleServerFinal("v=AAAA").code(), absl::StatusCode::kInvalidArgument);
  std::string client_final = s.client.HandleServerFirst(s.server_first).value();
  EXPECT_EQ(s.client.HandleServerFirst(s.server_first).status().code(),
            absl::StatusCode::kInvalidArgument);
  // Nor may a client.
  ScramServer fresh(MakeVerifier("secret", kSalt, 1), kServerNonce);
  EXPECT_EQ(fresh.HandleClientFinal(client_final).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.server.HandleClientFirst("n,,n=,r=abc").status().code(),
            absl::StatusCode::kInvalidArgument);
  std::string server_final = s.server.HandleClientFinal(client_final).value();
  EXPECT_EQ(s.server.HandleClientFinal(client_final).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(s.client.HandleServerFinal(server_final).ok());  // the real exchange still works
}

TEST(ScramMalformedTest, OneProofPerExchange) {
  // After a wrong proof the exchange is spent: a second guess is refused even if it is right.
  Started s;
  std::string client_final = s.client.HandleServerFirst(s.server_first).value();
  std::string wrong = client_final;
  wrong[wrong.size() - 5] = wrong[wrong.size() - 5] == 'A' ? 'B' : 'A';
  EXPECT_EQ(s.server.HandleClientFinal(wrong).status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(s.server.HandleClientFinal(client_final).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(s.server.client_key().has_value());
}

RC_GTEST_PROP(ScramMalformedTest, ArbitraryMessagesNeverCrash, ()) {
  Started s;
  std::string junk = *rc::gen::arbitrary<std::string>();
  absl::StatusOr<std::string> client_final = s.client.HandleServerFirst(junk);
  RC_ASSERT(!client_final.ok());
  RC_ASSERT(!s.server.HandleClientFinal(junk).ok());
  ScramServer fresh(MakeVerifier("secret", kSalt, 1), kServerNonce);
  (void)fresh.HandleClientFirst(junk);  // may be well-formed; must not crash
}

}  // namespace
}  // namespace switchyard::auth
