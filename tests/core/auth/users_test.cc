// Tests of the users file parser and of secret classification (core/auth/users.h).
#include "core/auth/users.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include <string>

#include "core/auth/crypto.h"
#include "core/auth/scram.h"

namespace switchyard::auth {
namespace {

using ::testing::HasSubstr;

// Made by PostgreSQL 15 for `CREATE ROLE ... PASSWORD 'pencil'` (password_encryption
// scram-sha-256).
constexpr std::string_view kPostgresVerifier =
    "SCRAM-SHA-256$4096:rDl49Ew7nwR3ZwyIusRZtg==$8JO4XxVXxcugguQL9ZCd2jWw3XLK9+pW6EsOuAe+/I8=:"
    "aJ6JzNByDlQhTwrxWebQqtu9cVhNPkV/sxiuOas282E=";

TEST(ParseUsersFileTest, ReadsEachSecretKind) {
  std::string text = internal::Cat(
      "\"alice\" \"plain secret\"\n"
      "\"bob\"\t\"md5807f0498c1247381d8b9f4676ca614a3\"\n"
      "\"carol\" \"",
      kPostgresVerifier, "\"\n");
  absl::StatusOr<Users> users = ParseUsersFile(text);
  ASSERT_TRUE(users.ok()) << users.status();
  ASSERT_EQ(users->size(), 3u);
  EXPECT_EQ(users->at("alice").kind, UserSecret::Kind::kPlain);
  EXPECT_EQ(users->at("alice").text, "plain secret");
  EXPECT_FALSE(users->at("alice").verifier.has_value());
  EXPECT_EQ(users->at("bob").kind, UserSecret::Kind::kMd5);
  EXPECT_EQ(users->at("bob").text, "md5807f0498c1247381d8b9f4676ca614a3");
  const UserSecret& carol = users->at("carol");
  EXPECT_EQ(carol.kind, UserSecret::Kind::kScram);
  EXPECT_EQ(carol.text, kPostgresVerifier);
  ASSERT_TRUE(carol.verifier.has_value());
  EXPECT_EQ(carol.verifier->iterations, 4096);
  EXPECT_EQ(carol.verifier->salt.size(), 16u);
  EXPECT_EQ(carol.verifier->stored_key.size(), 32u);
  EXPECT_EQ(carol.verifier->server_key.size(), 32u);
}

TEST(ParseUsersFileTest, DoubledQuotesAreLiteralQuotes) {
  absl::StatusOr<Users> users = ParseUsersFile(R"("we""ird" "pa""ss""" "ignored" field)");
  ASSERT_TRUE(users.ok()) << users.status();
  ASSERT_EQ(users->count("we\"ird"), 1u);
  EXPECT_EQ(users->at("we\"ird").text, "pa\"ss\"");
}

TEST(ParseUsersFileTest, SkipsCommentsAndBlankLinesAndAcceptsCrlf) {
  absl::StatusOr<Users> users = ParseUsersFile(
      "; pgbouncer comment\r\n"
      "# shell-style comment \"x\" \"y\"\n"
      "\n"
      "   \t\n"
      "  \"u1\" \"p1\"\r\n"
      "  ; indented comment\n"
      "\"u2\" \"\"\n");
  ASSERT_TRUE(users.ok()) << users.status();
  ASSERT_EQ(users->size(), 2u);
  EXPECT_EQ(users->at("u1").text, "p1");  // no stray '\r'
  EXPECT_EQ(users->at("u2").text, "");
  EXPECT_EQ(users->at("u2").kind, UserSecret::Kind::kPlain);
}

TEST(ParseUsersFileTest, DocumentationExampleParses) {
  // The example in docs/authentication.md.
  absl::StatusOr<Users> users = ParseUsersFile(
      internal::Cat("; comments start with ';' or '#'\n"
                    "\"alice\"  \"plain password\"\n"
                    "\"bob\"    \"md521f3163f8f86fa10bdefbfbd502a8f06\"\n"
                    "\"carol\"  \"",
                    kPostgresVerifier,
                    "\"\n"
                    "# a quote inside a field is written twice: this user is named  say \"hi\"\n"
                    "\"say \"\"hi\"\"\" \"pw\"\n"));
  ASSERT_TRUE(users.ok()) << users.status();
  ASSERT_EQ(users->size(), 4u);
  EXPECT_EQ(users->at("alice").kind, UserSecret::Kind::kPlain);
  EXPECT_EQ(users->at("bob").kind, UserSecret::Kind::kMd5);
  EXPECT_EQ(users->at("carol").kind, UserSecret::Kind::kScram);
  EXPECT_EQ(users->at("say \"hi\"").text, "pw");
}

TEST(ParseUsersFileTest, EmptyFileHasNoUsers) {
  absl::StatusOr<Users> users = ParseUsersFile("");
  ASSERT_TRUE(users.ok());
  EXPECT_TRUE(users->empty());
}

struct BadLine {
  std::string line;
  std::string error;
};

TEST(ParseUsersFileTest, BadLinesNameTheirLineNumber) {
  const BadLine cases[] = {
      {"alice \"pw\"", "line 3: expected the quoted user name"},
      {"\"alice\"", "line 3: expected the quoted password after the user name"},
      {"\"alice\" pw", "line 3: expected the quoted password after the user name"},
      {"\"alice \"pw\"", "line 3: expected the quoted password after the user name"},
      {"\"alice", "line 3: unterminated quote in the user name"},
      {"\"alice\" \"pw", "line 3: unterminated quote in the password"},
      {"\"\" \"pw\"", "line 3: empty user name"},
      {"\"a\" \"SCRAM-SHA-256$4096:c2FsdA==$bad\"", "line 3: malformed SCRAM-SHA-256 verifier"},
      {std::string("\"a\0b\" \"pw\"", 10), "line 3: NUL byte in the user name"},
      {internal::Cat("\"", std::string(129, 'u'), "\" \"pw\""), "line 3: user name longer than"},
      {internal::Cat("\"u\" \"", std::string(2049, 'p'), "\""), "line 3: password longer than"},
  };
  for (const BadLine& c : cases) {
    absl::StatusOr<Users> users =
        ParseUsersFile(internal::Cat("# header\n\"ok\" \"pw\"\n", c.line));
    ASSERT_FALSE(users.ok()) << c.line;
    EXPECT_EQ(users.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(users.status().message(), HasSubstr(c.error)) << c.line;
  }
}

TEST(ParseUsersFileTest, DuplicateUserIsAnErrorNamingBothLines) {
  absl::StatusOr<Users> users = ParseUsersFile("\"a\" \"1\"\n\"b\" \"2\"\n\"a\" \"3\"\n");
  ASSERT_FALSE(users.ok());
  EXPECT_THAT(users.status().message(),
              HasSubstr("line 3: user \"a\" is already defined on line 1"));
}

TEST(ParseUsersFileTest, ErrorsNeverQuoteThePassword) {
  absl::StatusOr<Users> users =
      ParseUsersFile("\"a\" \"SCRAM-SHA-256$4096:c2FsdA==$topsecretvalue:more\"");
  ASSERT_FALSE(users.ok());
  EXPECT_THAT(std::string(users.status().message()), ::testing::Not(HasSubstr("topsecret")));
}

// Writes a name the way the file quotes it.
std::string Quote(std::string_view s) {
  std::string quoted = "\"";
  for (char c : s) quoted += c == '"' ? std::string("\"\"") : std::string(1, c);
  return quoted + "\"";
}

RC_GTEST_PROP(ParseUsersFileTest, QuotedNamesRoundTrip, ()) {
  // Any bytes but NUL and line breaks, which a one-line field cannot hold.
  auto field = rc::gen::container<std::string>(rc::gen::suchThat(
      rc::gen::arbitrary<char>(), [](char c) { return c != '\0' && c != '\n' && c != '\r'; }));
  std::string user = *rc::gen::resize(40, rc::gen::nonEmpty(field));
  std::string password = *rc::gen::resize(40, field);
  RC_PRE(!password.starts_with("SCRAM-SHA-256$"));
  absl::StatusOr<Users> users = ParseUsersFile(internal::Cat(Quote(user), " ", Quote(password)));
  RC_ASSERT(users.ok());
  RC_ASSERT(users->size() == 1u);
  RC_ASSERT(users->begin()->first == user);
  RC_ASSERT(users->begin()->second.text == password);
}

TEST(ParseSecretTest, Md5NeedsExactlyThirtyTwoLowercaseHexDigits) {
  EXPECT_EQ(ParseSecret("md53175bce1d3201d16594cebf9d7eb3f9d")->kind, UserSecret::Kind::kMd5);
  // As in PostgreSQL, anything else is a plaintext password.
  EXPECT_EQ(ParseSecret("md53175BCE1D3201D16594CEBF9D7EB3F9D")->kind, UserSecret::Kind::kPlain);
  EXPECT_EQ(ParseSecret("md53175bce1d3201d16594cebf9d7eb3f9")->kind, UserSecret::Kind::kPlain);
  EXPECT_EQ(ParseSecret("md53175bce1d3201d16594cebf9d7eb3f9dd")->kind, UserSecret::Kind::kPlain);
  EXPECT_EQ(ParseSecret("md53175bce1d3201d16594cebf9d7eb3f9g")->kind, UserSecret::Kind::kPlain);
  EXPECT_EQ(ParseSecret("")->kind, UserSecret::Kind::kPlain);
}

TEST(ParseSecretTest, ScramVerifierMatchesWhatMakeVerifierComputes) {
  absl::StatusOr<UserSecret> secret = ParseSecret(kPostgresVerifier);
  ASSERT_TRUE(secret.ok()) << secret.status();
  ASSERT_TRUE(secret->verifier.has_value());
  EXPECT_EQ(*secret->verifier, MakeVerifier("pencil", secret->verifier->salt, 4096));
  EXPECT_EQ(FormatVerifier(*secret->verifier), kPostgresVerifier);
}

TEST(ParseSecretTest, RejectsMalformedScramVerifiers) {
  const std::string key = "8JO4XxVXxcugguQL9ZCd2jWw3XLK9+pW6EsOuAe+/I8=";
  const std::string short_key = "8JO4XxVXxcugguQL9ZCd2jWw3XLK9+pW6EsOuAe+";  // 30 bytes
  const std::string bad[] = {
      "SCRAM-SHA-256$",
      internal::Cat("SCRAM-SHA-256$0:c2FsdA==$", key, ":", key),
      internal::Cat("SCRAM-SHA-256$-1:c2FsdA==$", key, ":", key),
      internal::Cat("SCRAM-SHA-256$+4096:c2FsdA==$", key, ":", key),
      internal::Cat("SCRAM-SHA-256$99999999999:c2FsdA==$", key, ":", key),
      internal::Cat("SCRAM-SHA-256$4096:$", key, ":", key),
      internal::Cat("SCRAM-SHA-256$4096:c2FsdA=$", key, ":", key),
      internal::Cat("SCRAM-SHA-256$4096:c2FsdA==$", key, ":", short_key),
      internal::Cat("SCRAM-SHA-256$4096:c2FsdA==$", short_key, ":", key),
      internal::Cat("SCRAM-SHA-256$4096:c2FsdA==$", key),
      internal::Cat("SCRAM-SHA-256$4096$", key, ":", key),
      internal::Cat("SCRAM-SHA-256$4096:c2FsdA==$", key, ":", key, "$"),
      internal::Cat("SCRAM-SHA-256$4096:c2FsdA==$", key, ":", key, ":"),
  };
  for (const std::string& text : bad) {
    absl::StatusOr<UserSecret> secret = ParseSecret(text);
    EXPECT_FALSE(secret.ok()) << text;
    EXPECT_EQ(secret.status().code(), absl::StatusCode::kInvalidArgument) << text;
  }
  // Not a verifier at all (wrong mechanism spelling): a plaintext password, as in PostgreSQL.
  EXPECT_EQ(ParseSecret("SCRAM-SHA-1$4096:x$y:z")->kind, UserSecret::Kind::kPlain);
}

RC_GTEST_PROP(ParseSecretTest, FormatVerifierRoundTrips, ()) {
  ScramVerifier v;
  v.iterations = *rc::gen::inRange(1, 1 << 30);
  v.salt = *rc::gen::nonEmpty(rc::gen::arbitrary<std::string>());
  v.stored_key = *rc::gen::container<std::string>(32, rc::gen::arbitrary<char>());
  v.server_key = *rc::gen::container<std::string>(32, rc::gen::arbitrary<char>());
  absl::StatusOr<UserSecret> secret = ParseSecret(FormatVerifier(v));
  RC_ASSERT(secret.ok());
  RC_ASSERT(secret->kind == UserSecret::Kind::kScram);
  RC_ASSERT(*secret->verifier == v);
}

TEST(AuthTypeTest, ParsesAndNamesEachType) {
  for (AuthType type : {AuthType::kTrust, AuthType::kMd5, AuthType::kScramSha256}) {
    absl::StatusOr<AuthType> parsed = ParseAuthType(AuthTypeName(type));
    ASSERT_TRUE(parsed.ok());
    EXPECT_EQ(*parsed, type);
  }
  EXPECT_EQ(AuthTypeName(AuthType::kScramSha256), "scram-sha-256");
  EXPECT_EQ(*ParseAuthType("SCRAM-SHA-256"), AuthType::kScramSha256);
  absl::StatusOr<AuthType> bad = ParseAuthType("password");
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.status().message(), HasSubstr("trust, md5 or scram-sha-256"));
}

}  // namespace
}  // namespace switchyard::auth
