// One captured session replayed against a scripted server, in memory: what is sent when
// (pipelining, waiting, pacing), comparisons and their report, COPY in both directions of
// mismatch, snapshots, stalls and cancels, failed logins and lost connections.
#include "replay/session_replayer.h"

#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tests/replay/replay_test_util.h"

namespace switchyard::replay {
namespace {

using testing::Columns;
using testing::Error;
using testing::Q;
using testing::Row;
using testing::Tag;
using testing::TraceBuilder;
using testing::Z;

constexpr int64_t kStallUs = 1'000'000;

PacingOptions NoWaiting() {
  PacingOptions pacing;
  pacing.no_waiting = true;
  return pacing;
}

// A replayer of the capture's first session, with a server the test scripts.
class Harness {
 public:
  explicit Harness(Capture capture, PacingOptions pacing = NoWaiting())
      : capture_(std::move(capture)) {
    std::vector<SessionPlan> plans;
    for (const CapturedSession& session : capture_.sessions) {
      plans.push_back(PlanSession(session, pacing));
    }
    plan_ = plans.at(0);
    pacer_.emplace(pacing, ScheduledTimes(capture_, plans));
    settings_.user = "replayer";
    settings_.stall_timeout_us = kStallUs;
    replayer_ = std::make_unique<SessionReplayer>(capture_.sessions[0], plan_, settings_, *pacer_,
                                                  Instant{0}, "nonce-nonce-nonce-123", report_);
  }

  void StartAndLogin(Instant now = Instant{0}) {
    replayer_->Start(now);
    Drain();
    EXPECT_EQ(connects_, 1);
    replayer_->OnConnected(now);
    Drain();
    ASSERT_EQ(sent_.size(), 1u);  // the startup packet
    auto startup = pg::StartupMessage::Decode(std::string_view(sent_[0]).substr(4));
    ASSERT_TRUE(startup.ok());
    EXPECT_EQ(*startup->Find("user"), "replayer");
    sent_.clear();
    Answer({testing::AuthOk(), testing::Key(5, 6), Z()}, now);
  }

  void Answer(const std::vector<std::string>& messages, Instant now = Instant{0}) {
    std::string bytes;
    for (const std::string& message : messages) bytes += message;
    replayer_->OnReceived(now, bytes);
    Drain();
  }

  void Tick(Instant now) {
    replayer_->OnTime(now);
    Drain();
  }

  std::vector<std::string> TakeSent() { return std::exchange(sent_, {}); }

  SessionReplayer& replayer() { return *replayer_; }
  ReplayReport& report() { return report_; }
  const std::vector<pg::BackendKeyData>& cancels() const { return cancels_; }
  bool closed() const { return closed_; }

 private:
  void Drain() {
    while (std::optional<ReplayAction> action = replayer_->PollAction()) {
      switch (action->kind) {
        case ReplayAction::Kind::kConnect:
          ++connects_;
          break;
        case ReplayAction::Kind::kSend:
          EXPECT_FALSE(closed_) << "sent after close";
          sent_.push_back(action->bytes);
          break;
        case ReplayAction::Kind::kCancel:
          cancels_.push_back(action->key);
          break;
        case ReplayAction::Kind::kClose:
          closed_ = true;
          break;
      }
    }
  }

  Capture capture_;
  SessionPlan plan_;
  std::optional<Pacer> pacer_;
  ReplaySettings settings_;
  ReplayReport report_;
  std::unique_ptr<SessionReplayer> replayer_;
  std::vector<std::string> sent_;
  std::vector<pg::BackendKeyData> cancels_;
  int connects_ = 0;
  bool closed_ = false;
};

const std::vector<std::string> kSelectAnswer = {Columns({"name"}), Row({"apple"}), Tag("SELECT 1"),
                                                Z()};

Capture OneSelect() {
  TraceBuilder trace;
  trace.OpenWithLogin(1, 0);
  trace.Client(1, 1000, Q("SELECT name FROM items"));
  for (const std::string& message : kSelectAnswer) trace.Answer(1, 1100, message);
  trace.Client(1, 2000, pg::Terminate{}.Encode());
  trace.Close(1, 2000);
  return trace.Capture();
}

TEST(SessionReplayerTest, IdenticalAnswersReplayCleanly) {
  Harness harness(OneSelect());
  harness.StartAndLogin();
  EXPECT_EQ(harness.TakeSent(), std::vector<std::string>{Q("SELECT name FROM items")});
  EXPECT_FALSE(harness.closed());
  harness.Answer(kSelectAnswer);
  EXPECT_EQ(harness.TakeSent(), std::vector<std::string>{pg::Terminate{}.Encode()});
  EXPECT_TRUE(harness.closed());
  EXPECT_TRUE(harness.replayer().finished());
  EXPECT_EQ(harness.report().SummaryLine(),
            "sessions=1 messages=2 divergences=0 errors=0 stalls=0");
}

TEST(SessionReplayerTest, ADifferentRowIsReportedWithItsStatement) {
  Harness harness(OneSelect());
  harness.StartAndLogin();
  harness.Answer({Columns({"name"}), Row({"pear"}), Tag("SELECT 1"), Z()});
  ASSERT_EQ(harness.report().divergences(), 1u);
  const DivergenceRecord& record = harness.report().divergence_records().at(0);
  EXPECT_EQ(record.session, 1u);
  EXPECT_EQ(record.divergence.kind, DivergenceKind::kRowValues);
  EXPECT_EQ(record.divergence.statement, "SELECT name FROM items");
  EXPECT_EQ(record.divergence.captured, "('apple')");
  EXPECT_EQ(record.divergence.replayed, "('pear')");
  EXPECT_NE(harness.report().Text().find("SELECT name FROM items"), std::string::npos);
}

TEST(SessionReplayerTest, PipelinedMessagesGoTogetherAndWaitingMessagesWait) {
  TraceBuilder trace;
  trace.Open(1, 0);
  trace.Client(1, 10, Q("SELECT 1"));
  trace.Client(1, 10, Q("SELECT 2"));  // sent before the first answer
  trace.Answer(1, 20, Tag("SELECT 1"));
  trace.Answer(1, 20, Z());
  trace.Answer(1, 21, Tag("SELECT 1"));
  trace.Answer(1, 21, Z());
  trace.Client(1, 30, Q("SELECT 3"));  // sent after both
  Harness harness(trace.Capture());
  harness.StartAndLogin();
  EXPECT_EQ(harness.TakeSent(), (std::vector<std::string>{Q("SELECT 1"), Q("SELECT 2")}));
  harness.Answer({Tag("SELECT 1"), Z()});
  EXPECT_TRUE(harness.TakeSent().empty());
  harness.Answer({Tag("SELECT 1"), Z()});
  // The capture holds no answer to SELECT 3, so the session ends right after it.
  EXPECT_EQ(harness.TakeSent(),
            (std::vector<std::string>{Q("SELECT 3"), pg::Terminate{}.Encode()}));
}

TEST(SessionReplayerTest, CapturedGapsAreKept) {
  TraceBuilder trace;
  trace.Open(1, 0);
  trace.Client(1, 1'000'000, Q("SELECT 1"));
  trace.Answer(1, 1'000'100, Z());
  trace.Client(1, 3'000'000, Q("SELECT 2"));
  Harness harness(trace.Capture(), PacingOptions{});
  harness.StartAndLogin();
  EXPECT_TRUE(harness.TakeSent().empty());
  EXPECT_EQ(harness.replayer().NextDeadline(), Instant{1'000'000});
  harness.Tick(Instant{999'999});
  EXPECT_TRUE(harness.TakeSent().empty());
  harness.Tick(Instant{1'000'000});
  EXPECT_EQ(harness.TakeSent(), std::vector<std::string>{Q("SELECT 1")});
  harness.Answer({Z()}, Instant{1'000'200});
  harness.Tick(Instant{2'000'000});
  EXPECT_TRUE(harness.TakeSent().empty());
  harness.Tick(Instant{3'000'000});
  EXPECT_EQ(harness.TakeSent(),
            (std::vector<std::string>{Q("SELECT 2"), pg::Terminate{}.Encode()}));
}

Capture OneSleep() {
  TraceBuilder trace;
  trace.Open(1, 0);
  trace.Client(1, 10, Q("SELECT pg_sleep(10)"));
  trace.Answer(1, 20, Tag("SELECT 1"));
  trace.Answer(1, 20, Z());
  trace.Client(1, 30, Q("SELECT 2"));
  trace.Answer(1, 40, Tag("SELECT 1"));
  trace.Answer(1, 40, Z());
  return trace.Capture();
}

TEST(SessionReplayerTest, AStallIsCancelledReportedAndTheSessionGoesOn) {
  Harness harness(OneSleep());
  harness.StartAndLogin();
  harness.TakeSent();
  EXPECT_EQ(harness.replayer().NextDeadline(), Instant{kStallUs});
  harness.Tick(Instant{kStallUs - 1});
  EXPECT_TRUE(harness.cancels().empty());
  harness.Tick(Instant{kStallUs});
  ASSERT_EQ(harness.cancels().size(), 1u);
  EXPECT_EQ(harness.cancels()[0].pid, 5);
  EXPECT_EQ(harness.cancels()[0].secret, 6);
  ASSERT_EQ(harness.report().stall_records().size(), 1u);
  EXPECT_EQ(harness.report().stall_records()[0].statement, "SELECT pg_sleep(10)");
  // The cancelled statement's error is the replay's doing: neither a divergence nor an error.
  harness.Answer({Error("57014", "canceling statement due to user request"), Z()},
                 Instant{kStallUs + 10});
  EXPECT_EQ(harness.TakeSent(), std::vector<std::string>{Q("SELECT 2")});
  harness.Answer({Tag("SELECT 1"), Z()}, Instant{kStallUs + 20});
  EXPECT_TRUE(harness.closed());
  EXPECT_EQ(harness.report().SummaryLine(),
            "sessions=1 messages=2 divergences=0 errors=0 stalls=1");
}

TEST(SessionReplayerTest, NoAnswerEvenAfterTheCancelClosesTheSession) {
  Harness harness(OneSleep());
  harness.StartAndLogin();
  harness.Tick(Instant{kStallUs});
  EXPECT_FALSE(harness.closed());
  harness.Tick(Instant{2 * kStallUs});
  EXPECT_TRUE(harness.closed());
  EXPECT_TRUE(harness.replayer().finished());
  EXPECT_EQ(harness.report().stalls(), 1u);
  EXPECT_FALSE(harness.replayer().NextDeadline().has_value());
}

TEST(SessionReplayerTest, AConnectThatNeverFinishesIsAStall) {
  Harness harness(OneSleep());
  harness.replayer().Start(Instant{0});
  harness.Tick(Instant{kStallUs});
  EXPECT_TRUE(harness.closed());
  EXPECT_EQ(harness.report().stalls(), 1u);
}

Capture CopyCapture() {
  TraceBuilder trace;
  trace.Open(1, 0);
  trace.Client(1, 10, Q("COPY items FROM STDIN"));
  trace.Answer(1, 20, pg::CopyResponse{.type = 'G', .format = 0, .column_formats = {0}}.Encode());
  trace.Client(1, 30, pg::CopyData{.data = "1\tapple\n"}.Encode());
  trace.Client(1, 30, pg::CopyDone{}.Encode());
  trace.Answer(1, 40, Tag("COPY 1"));
  trace.Answer(1, 40, Z());
  trace.Client(1, 50, Q("SELECT 1"));
  trace.Answer(1, 60, Tag("SELECT 1"));
  trace.Answer(1, 60, Z());
  return trace.Capture();
}

TEST(SessionReplayerTest, CopyDataFollowsTheCopyInResponse) {
  Harness harness(CopyCapture());
  harness.StartAndLogin();
  EXPECT_EQ(harness.TakeSent(), std::vector<std::string>{Q("COPY items FROM STDIN")});
  harness.Answer({pg::CopyResponse{.type = 'G', .format = 0, .column_formats = {0}}.Encode()});
  EXPECT_EQ(harness.TakeSent(),
            (std::vector<std::string>{pg::CopyData{.data = "1\tapple\n"}.Encode(),
                                      pg::CopyDone{}.Encode()}));
  // Waiting for the client's COPY data is not a stall.
  harness.Answer({Tag("COPY 1"), Z()});
  EXPECT_EQ(harness.TakeSent(), std::vector<std::string>{Q("SELECT 1")});
  harness.Answer({Tag("SELECT 1"), Z()});
  EXPECT_EQ(harness.report().SummaryLine(),
            "sessions=1 messages=4 divergences=0 errors=0 stalls=0");
}

TEST(SessionReplayerTest, ACopyThatFailsInTheReplayStillLetsTheSessionGoOn) {
  Harness harness(CopyCapture());
  harness.StartAndLogin();
  harness.TakeSent();
  harness.Answer({Error("42P01", "relation \"items\" does not exist"), Z()});
  // The captured COPY data goes out (the server ignores it) and the session goes on.
  EXPECT_EQ(harness.TakeSent().size(), 3u);
  harness.Answer({Tag("SELECT 1"), Z()});
  EXPECT_EQ(harness.report().divergences(), 1u);
  EXPECT_EQ(harness.report().divergence_records().at(0).divergence.kind,
            DivergenceKind::kErrorStatus);
  EXPECT_EQ(harness.report().errors(), 1u);
  EXPECT_TRUE(harness.closed());
}

TEST(SessionReplayerTest, ACopyTheCaptureDidNotStartIsRefused) {
  TraceBuilder trace;
  trace.Open(1, 0);
  trace.Client(1, 10, Q("COPY items FROM STDIN"));
  trace.Answer(1, 20, Error("42P01", "relation \"items\" does not exist"));
  trace.Answer(1, 20, Z());
  Harness harness(trace.Capture());
  harness.StartAndLogin();
  harness.TakeSent();
  harness.Answer({pg::CopyResponse{.type = 'G'}.Encode()});
  std::vector<std::string> sent = harness.TakeSent();
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0][0], 'f');  // CopyFail
  harness.Answer({Error("57014", "COPY from stdin failed"), Z()});
  EXPECT_EQ(harness.report().divergences(), 1u);
  EXPECT_TRUE(harness.closed());
}

TEST(SessionReplayerTest, ASnapshotSessionIsBroughtToItsStateFirst) {
  trace::Snapshot snapshot;
  snapshot.session.user = "bob";
  snapshot.transaction_status = 'T';
  snapshot.prepared_statements = {
      trace::PreparedStatement{.name = "p1", .query = "SELECT $1", .parameter_types = {23}},
      trace::PreparedStatement{.source = trace::PreparedStatement::Source::kSql,
                               .name = "p2",
                               .query = "PREPARE p2 AS SELECT 2"}};
  snapshot.settings = {{"search_path", "a, b"}};
  TraceBuilder trace;
  trace.Snapshot(1, 0, snapshot);
  trace.Client(1, 10, Q("EXECUTE p2"));
  trace.Answer(1, 20, Tag("SELECT 1"));
  trace.Answer(1, 20, Z('T'));
  Harness harness(trace.Capture());
  harness.StartAndLogin();
  std::vector<std::string> setup = harness.TakeSent();
  ASSERT_EQ(setup.size(), 5u);
  EXPECT_EQ(setup[0],
            (pg::Parse{.name = "p1", .query = "SELECT $1", .parameter_types = {23}}.Encode()));
  EXPECT_EQ(setup[1], pg::Sync{}.Encode());
  EXPECT_EQ(setup[2], Q("PREPARE p2 AS SELECT 2"));
  EXPECT_EQ(setup[3], Q("SELECT pg_catalog.set_config('search_path', 'a, b', false)"));
  EXPECT_EQ(setup[4], Q("BEGIN"));
  // Setup answers are not compared, and the session's own steps wait for them.
  harness.Answer({pg::ParseComplete{}.Encode(), Z(), Tag("PREPARE"), Z(), Row({"a, b"}),
                  Tag("SELECT 1"), Z()});
  EXPECT_TRUE(harness.TakeSent().empty());
  harness.Answer({Tag("BEGIN"), Z('T')});
  EXPECT_EQ(harness.TakeSent(), std::vector<std::string>{Q("EXECUTE p2")});
  harness.Answer({Tag("SELECT 1"), Z('T')});
  EXPECT_EQ(harness.report().SummaryLine(),
            "sessions=1 messages=1 divergences=0 errors=0 stalls=0");
}

TEST(SessionReplayerTest, ARefusedLoginIsAnError) {
  Harness harness(OneSelect());
  harness.replayer().Start(Instant{0});
  harness.replayer().OnConnected(Instant{0});
  harness.Answer({pg::BuildError("FATAL", "28P01", "password authentication failed")});
  EXPECT_TRUE(harness.closed());
  EXPECT_EQ(harness.report().errors_by_sqlstate().at("28P01").new_errors, 1u);
  EXPECT_NE(harness.report().Text().find("login failed"), std::string::npos);
}

TEST(SessionReplayerTest, ALostConnectionIsAnError) {
  Harness harness(OneSelect());
  harness.StartAndLogin();
  harness.replayer().OnClosed(Instant{5}, "end of stream");
  EXPECT_TRUE(harness.replayer().finished());
  EXPECT_EQ(harness.report().errors_by_sqlstate().at("08006").new_errors, 1u);
}

TEST(SessionReplayerTest, RedactedUnitsAreNotCompared) {
  TraceBuilder trace;
  trace.Open(1, 0);
  trace.Client(1, 10, Q("SELECT 'xxxxxx'"), /*redacted=*/true);
  trace.Answer(1, 20, Row({"xxxxxx"}));
  trace.Answer(1, 20, Tag("SELECT 1"));
  trace.Answer(1, 20, Z());
  Harness harness(trace.Capture());
  harness.StartAndLogin();
  harness.Answer({Row({"secret"}), Tag("SELECT 1"), Z()});
  EXPECT_EQ(harness.report().divergences(), 0u);
  EXPECT_NE(harness.report().Text().find("redacted"), std::string::npos);
}

TEST(SessionReplayerTest, ACapturedCancelIsReplayed) {
  TraceBuilder trace;
  trace.Open(1, 0);
  trace.Client(1, 10, Q("SELECT pg_sleep(60)"));
  trace.Cancel(1, 20);
  trace.Answer(1, 30, Error("57014", "canceling statement due to user request"));
  trace.Answer(1, 30, Z());
  Harness harness(trace.Capture());
  harness.StartAndLogin();
  EXPECT_EQ(harness.cancels().size(), 1u);
  harness.Answer({Error("57014", "canceling statement due to user request"), Z()});
  EXPECT_EQ(harness.report().SummaryLine(),
            "sessions=1 messages=1 divergences=0 errors=0 stalls=0");
}

TEST(SnapshotSetupTest, LiteralsAreQuoted) {
  EXPECT_EQ(SqlLiteral("it's"), "'it''s'");
  EXPECT_EQ(SqlLiteral("a\\b"), "E'a\\\\b'");
}

}  // namespace
}  // namespace switchyard::replay
