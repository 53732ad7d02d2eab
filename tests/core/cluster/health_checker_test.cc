// HealthChecker against scripted servers: login (trust, md5, SCRAM), answers from a primary and a
// replica, and every way a poll fails (error, bad bytes, bad values, close, refused connect,
// timeout), then reconnecting at the next interval and never polling a node twice at once.
#include "core/cluster/health_checker.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <limits>
#include <map>
#include <string>
#include <vector>

#include "core/auth/md5.h"
#include "core/auth/scram.h"
#include "core/protocol/framing.h"
#include "core/protocol/messages.h"

namespace switchyard {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;

class FakeEnvironment : public Environment {
 public:
  ConnId NewConnId() override { return ConnId{next_conn_++, 1}; }
  void RandomBytes(char* out, size_t n) override {
    for (size_t i = 0; i < n; ++i) out[i] = static_cast<char>(random_state_++ * 37 + 11);
  }
  uint32_t next_conn_ = 100;
  uint32_t random_state_ = 1;
};

// What the checker sent on a connection, one entry per message: "startup user=... database=...",
// "Q:<sql>", "p:<password payload>", "X".
class Harness {
 public:
  explicit Harness(HealthConfig config) : checker_(std::move(config), env_) {}

  static HealthConfig Config(std::vector<NodeId> nodes = {NodeId{0}}) {
    HealthConfig config;
    config.nodes = std::move(nodes);
    config.user = "health";
    return config;
  }

  void Deliver(const Event& event) {
    checker_.Handle(now_, event);
    while (auto action = checker_.PollAction()) Record(std::move(*action));
    checker_.CheckInvariants();
    for (auto& result : checker_.TakeResults()) results_.push_back(std::move(result));
  }
  // Moves the clock, firing the timer when it is due (once: the checker handles all that is due).
  void AdvanceToMs(int64_t ms) {
    now_ = Instant::FromMs(ms);
    auto deadline = checker_.NextDeadline();
    if (deadline && *deadline <= now_) Deliver(TimerFired{});
  }
  void Start() { Deliver(TimerFired{}); }
  void Connected(ConnId conn) { Deliver(switchyard::Connected{conn}); }
  void Receive(ConnId conn, std::string_view bytes) { Deliver(Received{conn, bytes}); }
  void ReceiveByteByByte(ConnId conn, std::string_view bytes) {
    for (char c : bytes) Receive(conn, std::string_view(&c, 1));
  }

  // Connect, Connected, trust login: returns the connection, which has the poll query pending.
  ConnId ConnectAndLogIn(size_t connect_index) {
    ConnId conn = connects_.at(connect_index).conn;
    Connected(conn);
    Receive(conn, LoginOk());
    return conn;
  }

  static std::string LoginOk() {
    return pg::Authentication{pg::Authentication::kOk, ""}.Encode() +
           pg::ParameterStatus{"server_version", "15.4"}.Encode() +
           pg::BackendKeyData{4242, 7}.Encode() + pg::ReadyForQuery{'I'}.Encode();
  }
  static std::string Columns() {
    pg::RowDescription description;
    for (const char* name : {"pg_is_in_recovery", "lsn", "pg_walfile_name"}) {
      description.fields.push_back(pg::RowDescription::Field{.name = name});
    }
    return description.Encode();
  }
  static std::string Answer(std::optional<std::string> recovery, std::optional<std::string> lsn,
                            std::optional<std::string> wal_file, char status = 'I') {
    return Columns() + pg::DataRow{{recovery, lsn, wal_file}}.Encode() +
           pg::CommandComplete{"SELECT 1"}.Encode() + pg::ReadyForQuery{status}.Encode();
  }
  static std::string PrimaryAnswer() {
    return Answer("f", "0/3000060", "000000020000000000000003");
  }
  static std::string ReplicaAnswer() { return Answer("t", "0/2FFFF00", std::nullopt); }

  std::vector<std::string> TakeSent(ConnId conn) {
    std::vector<std::string> sent;
    sent.swap(sent_[conn]);
    return sent;
  }
  std::vector<ClusterView::PollResult> TakeResults() {
    std::vector<ClusterView::PollResult> results;
    results.swap(results_);
    return results;
  }

  HealthChecker& checker() { return checker_; }
  FakeEnvironment& env() { return env_; }
  const std::vector<Connect>& connects() const { return connects_; }
  const std::vector<Close>& closes() const { return closes_; }
  Instant now() const { return now_; }

 private:
  void Record(Action action) {
    if (auto* send = std::get_if<Send>(&action)) {
      EXPECT_TRUE(send->conn.valid());
      Decode(send->conn, send->bytes);
    } else if (auto* connect = std::get_if<Connect>(&action)) {
      connects_.push_back(*connect);
    } else if (auto* close = std::get_if<Close>(&action)) {
      closes_.push_back(*close);
    } else {
      ADD_FAILURE() << "unexpected action " << action.index();
    }
  }
  void Decode(ConnId conn, std::string_view bytes) {
    auto [it, fresh] = readers_.try_emplace(conn, pg::Direction::kFrontend);
    pg::FrameReader& reader = it->second;
    reader.Append(bytes);
    if (fresh) {
      auto startup = reader.NextStartup();
      ASSERT_TRUE(startup.ok() && startup->has_value());
      auto message = pg::StartupMessage::Decode((**startup).payload);
      ASSERT_TRUE(message.ok());
      std::string line = "startup";
      for (const auto& [name, value] : message->parameters) line += " " + name + "=" + value;
      sent_[conn].push_back(line);
    }
    while (true) {
      auto frame = reader.Next();
      ASSERT_TRUE(frame.ok()) << frame.status();
      if (!frame->has_value()) return;
      const pg::Frame& f = **frame;
      if (f.type == 'Q') {
        sent_[conn].push_back("Q:" + pg::Query::Decode(f.payload)->sql);
      } else if (f.type == 'p') {
        sent_[conn].push_back("p:" + std::string(f.payload));
      } else {
        sent_[conn].push_back(std::string(1, f.type));
      }
    }
  }

  FakeEnvironment env_;
  HealthChecker checker_;
  Instant now_;
  std::vector<Connect> connects_;
  std::vector<Close> closes_;
  std::map<ConnId, std::vector<std::string>> sent_;
  std::map<ConnId, pg::FrameReader> readers_;
  std::vector<ClusterView::PollResult> results_;
};

const std::string kPoll = "Q:" + std::string(kHealthPollQuery);

TEST(HealthCheckerTest, TrustLoginThenPrimaryAnswerIsParsed) {
  Harness h(Harness::Config({NodeId{3}}));
  EXPECT_EQ(h.checker().NextDeadline(), Instant{std::numeric_limits<int64_t>::min()})
      << "due at once before the first round";
  h.Start();
  ASSERT_THAT(h.connects(), SizeIs(1));
  EXPECT_EQ(h.connects()[0].node, NodeId{3});
  const ConnId conn = h.connects()[0].conn;
  EXPECT_THAT(h.checker().Conns(), ElementsAre(conn));
  h.AdvanceToMs(5);
  h.Connected(conn);
  EXPECT_THAT(h.TakeSent(conn), ElementsAre("startup user=health database=postgres "
                                            "application_name=switchyard health check"));
  h.AdvanceToMs(10);
  h.Receive(conn, Harness::LoginOk());
  EXPECT_THAT(h.TakeSent(conn), ElementsAre(kPoll));
  EXPECT_THAT(h.TakeResults(), IsEmpty());
  h.AdvanceToMs(12);
  h.Receive(conn, Harness::PrimaryAnswer());
  auto results = h.TakeResults();
  ASSERT_THAT(results, SizeIs(1));
  EXPECT_EQ(results[0].node, NodeId{3});
  EXPECT_TRUE(results[0].ok) << results[0].error;
  EXPECT_FALSE(results[0].in_recovery);
  EXPECT_EQ(results[0].lsn, 0x3000060u);
  EXPECT_EQ(results[0].timeline, 2u);
  EXPECT_EQ(results[0].began, Instant::FromMs(0));
  EXPECT_EQ(results[0].finished, Instant::FromMs(12));
  EXPECT_THAT(h.closes(), IsEmpty());
}

TEST(HealthCheckerTest, ReplicaAnswerIsParsedEvenOneByteAtATime) {
  Harness h(Harness::Config());
  h.Start();
  const ConnId conn = h.connects()[0].conn;
  h.Connected(conn);
  h.ReceiveByteByByte(conn, Harness::LoginOk());
  EXPECT_THAT(h.TakeSent(conn), ElementsAre(::testing::StartsWith("startup"), kPoll));
  h.ReceiveByteByByte(conn, Harness::ReplicaAnswer());
  auto results = h.TakeResults();
  ASSERT_THAT(results, SizeIs(1));
  EXPECT_TRUE(results[0].ok) << results[0].error;
  EXPECT_TRUE(results[0].in_recovery);
  EXPECT_EQ(results[0].lsn, 0x2FFFF00u);
  EXPECT_EQ(results[0].timeline, 0u) << "a replica's timeline is unknown";
}

TEST(HealthCheckerTest, ReplicaThatNeverReplayedHasLsnZero) {
  Harness h(Harness::Config());
  h.Start();
  const ConnId conn = h.ConnectAndLogIn(0);
  h.Receive(conn, Harness::Answer("t", std::nullopt, std::nullopt));
  auto results = h.TakeResults();
  ASSERT_THAT(results, SizeIs(1));
  EXPECT_TRUE(results[0].ok) << results[0].error;
  EXPECT_EQ(results[0].lsn, 0u);
}

TEST(HealthCheckerTest, Md5LoginAnswersTheSaltWithThePassword) {
  HealthConfig config = Harness::Config();
  auth::UserSecret secret = *auth::ParseSecret("s3cret");
  config.secret = &secret;
  Harness h(config);
  h.Start();
  const ConnId conn = h.connects()[0].conn;
  h.Connected(conn);
  h.TakeSent(conn);
  const std::string salt("\x01\x02\x03\x04", 4);
  h.Receive(conn, pg::Authentication{pg::Authentication::kMd5Password, salt}.Encode());
  const std::string expected = auth::Md5Response("health", "s3cret", salt);
  EXPECT_THAT(h.TakeSent(conn), ElementsAre("p:" + expected + std::string(1, '\0')));
  h.Receive(conn, Harness::LoginOk());
  EXPECT_THAT(h.TakeSent(conn), ElementsAre(kPoll));
  h.Receive(conn, Harness::PrimaryAnswer());
  ASSERT_THAT(h.TakeResults(), SizeIs(1));
}

TEST(HealthCheckerTest, Md5HashFromTheUsersFileWorksToo) {
  HealthConfig config = Harness::Config();
  auth::UserSecret secret = *auth::ParseSecret(auth::Md5Hash("health", "s3cret"));
  config.secret = &secret;
  Harness h(config);
  h.Start();
  const ConnId conn = h.connects()[0].conn;
  h.Connected(conn);
  h.TakeSent(conn);
  const std::string salt = "salt";
  h.Receive(conn, pg::Authentication{pg::Authentication::kMd5Password, salt}.Encode());
  EXPECT_THAT(h.TakeSent(conn),
              ElementsAre("p:" + auth::Md5Response("health", "s3cret", salt) + '\0'));
}

TEST(HealthCheckerTest, ScramLoginIsAcceptedByARealScramServer) {
  HealthConfig config = Harness::Config();
  auth::UserSecret secret = *auth::ParseSecret("pencil");
  config.secret = &secret;
  Harness h(config);
  h.Start();
  const ConnId conn = h.connects()[0].conn;
  h.Connected(conn);
  h.TakeSent(conn);
  h.Receive(conn, pg::Authentication::Sasl({"SCRAM-SHA-256"}).Encode());
  auto sent = h.TakeSent(conn);
  ASSERT_THAT(sent, SizeIs(1));
  auto initial = pg::SaslInitialResponse::Decode(sent[0].substr(2));
  ASSERT_TRUE(initial.ok());
  auth::ScramServer server(auth::MakeVerifier("pencil", "0123456789abcdef", 4096),
                           "server-nonce-bytes-xx");
  auto server_first = server.HandleClientFirst(initial->data.value_or(""));
  ASSERT_TRUE(server_first.ok());
  h.Receive(conn, pg::Authentication{pg::Authentication::kSaslContinue, *server_first}.Encode());
  sent = h.TakeSent(conn);
  ASSERT_THAT(sent, SizeIs(1));
  auto response = pg::SaslResponse::Decode(sent[0].substr(2));
  auto server_final = server.HandleClientFinal(response->data);
  ASSERT_TRUE(server_final.ok()) << server_final.status();
  h.Receive(conn, pg::Authentication{pg::Authentication::kSaslFinal, *server_final}.Encode() +
                      Harness::LoginOk());
  EXPECT_THAT(h.TakeSent(conn), ElementsAre(kPoll));
  h.Receive(conn, Harness::ReplicaAnswer());
  auto results = h.TakeResults();
  ASSERT_THAT(results, SizeIs(1));
  EXPECT_TRUE(results[0].ok) << results[0].error;
}

TEST(HealthCheckerTest, RefusedLoginIsAFailedPollWithTheServersWords) {
  Harness h(Harness::Config());
  h.Start();
  const ConnId conn = h.connects()[0].conn;
  h.Connected(conn);
  h.Receive(conn, pg::BuildError("FATAL", "28000", "no pg_hba.conf entry for host"));
  auto results = h.TakeResults();
  ASSERT_THAT(results, SizeIs(1));
  EXPECT_FALSE(results[0].ok);
  EXPECT_THAT(results[0].error, HasSubstr("login failed: FATAL 28000: no pg_hba.conf entry"));
  ASSERT_THAT(h.closes(), SizeIs(1));
  EXPECT_EQ(h.closes()[0].conn, conn);
  EXPECT_THAT(h.checker().Conns(), IsEmpty());
}

TEST(HealthCheckerTest, PasswordRequestWithoutASecretFailsThePoll) {
  Harness h(Harness::Config());
  h.Start();
  const ConnId conn = h.connects()[0].conn;
  h.Connected(conn);
  h.Receive(conn, pg::Authentication{pg::Authentication::kMd5Password, "salt"}.Encode());
  auto results = h.TakeResults();
  ASSERT_THAT(results, SizeIs(1));
  EXPECT_FALSE(results[0].ok);
  EXPECT_THAT(results[0].error, HasSubstr("28P01"));
}

TEST(HealthCheckerTest, ConnectionPersistsAndIsPolledEveryInterval) {
  Harness h(Harness::Config());
  h.Start();
  const ConnId conn = h.ConnectAndLogIn(0);
  h.TakeSent(conn);
  h.Receive(conn, Harness::PrimaryAnswer());
  EXPECT_EQ(h.checker().NextDeadline(), Instant::FromMs(1000));
  h.AdvanceToMs(999);
  EXPECT_THAT(h.TakeSent(conn), IsEmpty());
  h.AdvanceToMs(1000);
  EXPECT_THAT(h.TakeSent(conn), ElementsAre(kPoll));
  EXPECT_THAT(h.connects(), SizeIs(1)) << "the same connection";
  h.AdvanceToMs(1004);
  h.Receive(conn, Harness::Answer("f", "0/3000100", "000000020000000000000003"));
  auto results = h.TakeResults();
  ASSERT_THAT(results, SizeIs(2));
  EXPECT_EQ(results[1].began, Instant::FromMs(1000));
  EXPECT_EQ(results[1].lsn, 0x3000100u);
}

TEST(HealthCheckerTest, ErrorResponseFailsThePollAndTheNextIntervalReconnects) {
  Harness h(Harness::Config());
  h.Start();
  const ConnId conn = h.ConnectAndLogIn(0);
  h.TakeSent(conn);
  h.Receive(conn, pg::BuildError("ERROR", "42883", "function pg_walfile_name does not exist") +
                      pg::ReadyForQuery{'I'}.Encode());
  auto results = h.TakeResults();
  ASSERT_THAT(results, SizeIs(1));
  EXPECT_FALSE(results[0].ok);
  EXPECT_THAT(results[0].error, HasSubstr("42883"));
  EXPECT_THAT(h.TakeSent(conn), ElementsAre("X")) << "a polite Terminate before the Close";
  ASSERT_THAT(h.closes(), SizeIs(1));
  EXPECT_EQ(h.closes()[0].conn, conn);
  h.AdvanceToMs(1000);
  ASSERT_THAT(h.connects(), SizeIs(2));
  EXPECT_NE(h.connects()[1].conn, conn);
  EXPECT_THAT(h.checker().Conns(), ElementsAre(h.connects()[1].conn));
}

TEST(HealthCheckerTest, BadBytesAreAFailedPollNotACrash) {
  Harness h(Harness::Config());
  h.Start();
  const ConnId conn = h.ConnectAndLogIn(0);
  h.Receive(conn, std::string("\x01\xff\xff\xff\xff garbage", 14));
  auto results = h.TakeResults();
  ASSERT_THAT(results, SizeIs(1));
  EXPECT_FALSE(results[0].ok);
  EXPECT_THAT(results[0].error, HasSubstr("bad bytes"));
  EXPECT_THAT(h.closes(), SizeIs(1));
}

TEST(HealthCheckerTest, AnswersItDoesNotUnderstandAreFailedPolls) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"bool", Harness::Answer("yes", "0/1", "000000010000000000000001")},
      {"lsn", Harness::Answer("f", "zz/1", "000000010000000000000001")},
      {"primary without lsn", Harness::Answer("f", std::nullopt, "000000010000000000000001")},
      {"primary without file", Harness::Answer("f", "0/1", std::nullopt)},
      {"short file", Harness::Answer("f", "0/1", "00000001")},
      {"timeline zero", Harness::Answer("f", "0/1", "000000000000000000000001")},
      {"in transaction", Harness::Answer("f", "0/1", "000000010000000000000001", 'T')},
      {"no row", pg::CommandComplete{"SELECT 0"}.Encode() + pg::ReadyForQuery{'I'}.Encode()},
      {"two rows", Harness::Columns() + pg::DataRow{{"t", "0/1", std::nullopt}}.Encode() +
                       pg::DataRow{{"t", "0/1", std::nullopt}}.Encode() +
                       pg::CommandComplete{"SELECT 2"}.Encode() + pg::ReadyForQuery{'I'}.Encode()},
      {"two columns", pg::RowDescription{{{.name = "a"}, {.name = "b"}}}.Encode()},
      {"copy", pg::CopyResponse{'G', 0, {}}.Encode()},
  };
  for (const auto& [name, answer] : cases) {
    Harness h(Harness::Config());
    h.Start();
    const ConnId conn = h.ConnectAndLogIn(0);
    h.Receive(conn, answer);
    auto results = h.TakeResults();
    ASSERT_THAT(results, SizeIs(1)) << name;
    EXPECT_FALSE(results[0].ok) << name;
    EXPECT_THAT(h.closes(), SizeIs(1)) << name;
  }
}

TEST(HealthCheckerTest, ClosedMidPollFailsWithoutAClose) {
  Harness h(Harness::Config());
  h.Start();
  const ConnId conn = h.ConnectAndLogIn(0);
  h.AdvanceToMs(40);
  h.Deliver(Closed{conn, "connection reset"});
  auto results = h.TakeResults();
  ASSERT_THAT(results, SizeIs(1));
  EXPECT_FALSE(results[0].ok);
  EXPECT_THAT(results[0].error, HasSubstr("connection reset"));
  EXPECT_EQ(results[0].finished, Instant::FromMs(40));
  EXPECT_THAT(h.closes(), IsEmpty()) << "the driver already released it";
  h.AdvanceToMs(1000);
  EXPECT_THAT(h.connects(), SizeIs(2));
}

TEST(HealthCheckerTest, ClosedBetweenPollsReconnectsAtTheNextIntervalWithoutAVerdict) {
  Harness h(Harness::Config());
  h.Start();
  const ConnId conn = h.ConnectAndLogIn(0);
  h.Receive(conn, Harness::PrimaryAnswer());
  h.TakeResults();
  h.AdvanceToMs(300);
  h.Receive(conn, pg::BuildError("FATAL", "57P01", "terminating connection"));
  EXPECT_THAT(h.TakeResults(), IsEmpty()) << "no poll was running: the next one judges the node";
  EXPECT_THAT(h.checker().Conns(), IsEmpty());
  EXPECT_THAT(h.closes(), SizeIs(1));
  h.AdvanceToMs(1000);
  ASSERT_THAT(h.connects(), SizeIs(2));
}

TEST(HealthCheckerTest, ConnectFailureIsAFailedPollAndRetriedNextInterval) {
  Harness h(Harness::Config());
  h.Start();
  h.AdvanceToMs(3);
  h.Deliver(ConnectFailed{h.connects()[0].conn, "connection refused"});
  auto results = h.TakeResults();
  ASSERT_THAT(results, SizeIs(1));
  EXPECT_FALSE(results[0].ok);
  EXPECT_THAT(results[0].error, HasSubstr("connection refused"));
  EXPECT_THAT(h.closes(), IsEmpty());
  h.AdvanceToMs(1000);
  ASSERT_THAT(h.connects(), SizeIs(2));
}

TEST(HealthCheckerTest, NoAnswerWithinTheTimeoutFailsThePoll) {
  HealthConfig config = Harness::Config();
  config.timeout_ms = 500;
  Harness h(config);
  h.Start();
  const ConnId conn = h.ConnectAndLogIn(0);
  EXPECT_EQ(h.checker().NextDeadline(), Instant::FromMs(500));
  h.AdvanceToMs(499);
  EXPECT_THAT(h.TakeResults(), IsEmpty());
  h.AdvanceToMs(500);
  auto results = h.TakeResults();
  ASSERT_THAT(results, SizeIs(1));
  EXPECT_FALSE(results[0].ok);
  EXPECT_EQ(results[0].error, "no answer within 500 ms");
  EXPECT_EQ(results[0].finished, Instant::FromMs(500));
  ASSERT_THAT(h.closes(), SizeIs(1));
  EXPECT_EQ(h.closes()[0].conn, conn);
  // A late answer on the closed connection is ignored.
  h.Receive(conn, Harness::PrimaryAnswer());
  EXPECT_THAT(h.TakeResults(), IsEmpty());
  h.AdvanceToMs(1000);
  EXPECT_THAT(h.connects(), SizeIs(2));
}

TEST(HealthCheckerTest, ConnectThatNeverCompletesTimesOut) {
  HealthConfig config = Harness::Config();
  config.timeout_ms = 300;
  Harness h(config);
  h.Start();
  h.AdvanceToMs(300);
  auto results = h.TakeResults();
  ASSERT_THAT(results, SizeIs(1));
  EXPECT_FALSE(results[0].ok);
  ASSERT_THAT(h.closes(), SizeIs(1));
  EXPECT_EQ(h.closes()[0].conn, h.connects()[0].conn);
}

TEST(HealthCheckerTest, ANodeIsNeverPolledTwiceAtOnce) {
  HealthConfig config = Harness::Config();
  config.timeout_ms = 2500;
  Harness h(config);
  h.Start();
  const ConnId conn = h.ConnectAndLogIn(0);
  EXPECT_THAT(h.TakeSent(conn), SizeIs(2));  // startup, poll
  h.AdvanceToMs(1000);
  h.AdvanceToMs(2000);
  EXPECT_THAT(h.TakeSent(conn), IsEmpty()) << "the first poll is still unanswered";
  EXPECT_THAT(h.connects(), SizeIs(1));
  h.AdvanceToMs(2100);
  h.Receive(conn, Harness::PrimaryAnswer());
  auto results = h.TakeResults();
  ASSERT_THAT(results, SizeIs(1));
  EXPECT_EQ(results[0].began, Instant::FromMs(0));
  h.AdvanceToMs(3000);
  EXPECT_THAT(h.TakeSent(conn), ElementsAre(kPoll));
}

TEST(HealthCheckerTest, ALoginInProgressIsNotStartedAgain) {
  HealthConfig config = Harness::Config();
  config.timeout_ms = 2500;
  Harness h(config);
  h.Start();
  h.Connected(h.connects()[0].conn);
  h.AdvanceToMs(1000);
  h.AdvanceToMs(2000);
  EXPECT_THAT(h.connects(), SizeIs(1));
  h.AdvanceToMs(2500);
  ASSERT_THAT(h.TakeResults(), SizeIs(1));
}

TEST(HealthCheckerTest, AllNodesArePolledAtTheSameTickAndReportedInCompletionOrder) {
  Harness h(Harness::Config({NodeId{2}, NodeId{0}, NodeId{1}}));
  h.Start();
  ASSERT_THAT(h.connects(), SizeIs(3));
  EXPECT_EQ(h.connects()[0].node, NodeId{0});
  EXPECT_EQ(h.connects()[2].node, NodeId{2});
  std::vector<ConnId> conns;
  for (size_t i = 0; i < 3; ++i) conns.push_back(h.ConnectAndLogIn(i));
  EXPECT_EQ(h.checker().Conns(), conns);
  h.AdvanceToMs(7);
  h.Receive(conns[2], Harness::ReplicaAnswer());
  h.Receive(conns[0], Harness::PrimaryAnswer());
  h.Deliver(Closed{conns[1], "reset by peer"});
  auto results = h.TakeResults();
  ASSERT_THAT(results, SizeIs(3));
  EXPECT_EQ(results[0].node, NodeId{2});
  EXPECT_EQ(results[1].node, NodeId{0});
  EXPECT_EQ(results[2].node, NodeId{1});
  for (const auto& result : results) EXPECT_EQ(result.began, Instant::FromMs(0));
}

TEST(HealthCheckerTest, EventsForUnknownConnectionsAreIgnored) {
  Harness h(Harness::Config());
  h.Start();
  const ConnId stranger{9999, 1};
  h.Receive(stranger, "garbage");
  h.Deliver(Closed{stranger, "x"});
  h.Deliver(switchyard::Connected{stranger});
  EXPECT_THAT(h.TakeResults(), IsEmpty());
  EXPECT_THAT(h.closes(), IsEmpty());
}

TEST(HealthCheckerTest, NoticesAndParameterChangesBetweenPollsAreHarmless) {
  Harness h(Harness::Config());
  h.Start();
  const ConnId conn = h.ConnectAndLogIn(0);
  h.Receive(conn, Harness::PrimaryAnswer() + pg::ParameterStatus{"TimeZone", "UTC"}.Encode() +
                      pg::BuildError("WARNING", "01000", "hello", 'N'));
  ASSERT_THAT(h.TakeResults(), SizeIs(1));
  EXPECT_THAT(h.checker().Conns(), ElementsAre(conn));
  EXPECT_THAT(h.closes(), IsEmpty());
}

TEST(HealthCheckerTest, ParseHealthRowReadsTimelineFromTheWalFileName) {
  auto answer = ParseHealthRow(pg::DataRow{{"f", "1F/A0", "0000000A0000001F00000000"}});
  ASSERT_TRUE(answer.ok()) << answer.status();
  EXPECT_FALSE(answer->in_recovery);
  EXPECT_EQ(answer->lsn, 0x1F'000000A0u);
  EXPECT_EQ(answer->timeline, 10u);
  EXPECT_FALSE(ParseHealthRow(pg::DataRow{{"f", "0/1"}}).ok());
  EXPECT_FALSE(ParseHealthRow(pg::DataRow{{std::nullopt, "0/1", std::nullopt}}).ok());
  EXPECT_FALSE(ParseHealthRow(pg::DataRow{{"f", "0/1", "0000000A0000001F0000000G"}}).ok());
}

}  // namespace
}  // namespace switchyard
