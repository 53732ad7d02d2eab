// Session reconstruction from trace records: login answers set aside, client messages with what
// the client had received before each, answer units, snapshots, rotation, gaps, redaction; and
// the file reading, damaged and truncated files included.
#include "replay/capture.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "replay/trace_files.h"
#include "tests/replay/replay_test_util.h"

namespace switchyard::replay {
namespace {

using testing::Columns;
using testing::Q;
using testing::Row;
using testing::Tag;
using testing::TraceBuilder;
using testing::Z;

TEST(CaptureTest, LoginIsSetAsideAndAnswersFormUnits) {
  TraceBuilder trace;
  trace.OpenWithLogin(7, 10);
  trace.Client(7, 1000, Q("SELECT name FROM items"));
  trace.Answer(7, 1500, Columns({"name"}));
  trace.Answer(7, 1500, Row({"apple"}));
  trace.Answer(7, 1600, Tag("SELECT 1"));
  trace.Answer(7, 1600, Z());
  trace.Client(7, 5000, pg::Terminate{}.Encode());
  trace.Close(7, 5000);
  Capture capture = trace.Capture();
  ASSERT_EQ(capture.sessions.size(), 1u);
  const CapturedSession& session = capture.sessions[0];
  EXPECT_EQ(session.id, 7u);
  EXPECT_EQ(session.open.user, "alice");
  EXPECT_EQ(session.start_time_us, 10);
  EXPECT_FALSE(session.login_failed);
  EXPECT_EQ(session.close_reason, "client terminated");
  // The startup packet and the login's answers are not replayed.
  ASSERT_EQ(session.steps.size(), 2u);
  EXPECT_EQ(session.steps[0].message, Q("SELECT name FROM items"));
  EXPECT_EQ(session.steps[0].time_us, 1000);
  EXPECT_EQ(session.steps[0].units_before, 0u);
  EXPECT_EQ(session.steps[1].units_before, 1u);
  ASSERT_EQ(session.units.size(), 1u);
  EXPECT_TRUE(session.units[0].complete);
  EXPECT_EQ(session.units[0].messages.size(), 4u);
  EXPECT_EQ(session.units[0].terminator(), 'Z');
  EXPECT_EQ(session.units[0].request, 1u);
}

TEST(CaptureTest, PipelinedMessagesWaitForNothing) {
  TraceBuilder trace;
  trace.Open(1, 0);  // a capture without the login's answers
  for (int i = 0; i < 2; ++i) {
    trace.Client(1, 100, pg::Parse{.name = "", .query = "SELECT 1"}.Encode());
    trace.Client(1, 100, pg::Bind{}.Encode());
    trace.Client(1, 100, pg::Execute{}.Encode());
    trace.Client(1, 100, pg::Sync{}.Encode());
  }
  for (int i = 0; i < 2; ++i) {
    trace.Answer(1, 200, pg::ParseComplete{}.Encode());
    trace.Answer(1, 200, pg::BindComplete{}.Encode());
    trace.Answer(1, 200, Row({"1"}));
    trace.Answer(1, 200, Tag("SELECT 1"));
    trace.Answer(1, 200, Z());
  }
  Capture capture = trace.Capture();
  const CapturedSession& session = capture.sessions.at(0);
  ASSERT_EQ(session.steps.size(), 8u);
  for (const ClientStep& step : session.steps) {
    EXPECT_EQ(step.units_before, 0u);
    EXPECT_EQ(step.messages_before, 0u);
  }
  ASSERT_EQ(session.units.size(), 2u);
  EXPECT_EQ(session.units[1].request, 2u);
}

TEST(CaptureTest, MessagesSentMidAnswerRecordHowMuchHadArrived) {
  TraceBuilder trace;
  trace.Open(1, 0);
  trace.Client(1, 10, pg::Parse{.name = "s", .query = "SELECT $1"}.Encode());
  trace.Client(1, 10, pg::Describe{.kind = 'S', .name = "s"}.Encode());
  trace.Client(1, 10, pg::Flush{}.Encode());
  trace.Answer(1, 20, pg::ParseComplete{}.Encode());
  trace.Answer(1, 20, pg::ParameterDescription{.type_oids = {23}}.Encode());
  trace.Answer(1, 20, pg::NoData{}.Encode());
  trace.Client(1, 30, pg::Sync{}.Encode());
  trace.Answer(1, 40, Z());
  Capture capture = trace.Capture();
  const CapturedSession& session = capture.sessions.at(0);
  ASSERT_EQ(session.steps.size(), 4u);
  EXPECT_EQ(session.steps[3].units_before, 0u);
  EXPECT_EQ(session.steps[3].messages_before, 3u);
}

TEST(CaptureTest, CopyFromStdinSplitsTheAnswerAtCopyInResponse) {
  TraceBuilder trace;
  trace.Open(1, 0);
  trace.Client(1, 10, Q("COPY items FROM STDIN"));
  trace.Answer(1, 20, pg::CopyResponse{.type = 'G', .format = 0, .column_formats = {0}}.Encode());
  trace.Client(1, 30, pg::CopyData{.data = "1\tapple\n"}.Encode());
  trace.Client(1, 31, pg::CopyDone{}.Encode());
  trace.Answer(1, 40, Tag("COPY 1"));
  trace.Answer(1, 40, Z());
  Capture capture = trace.Capture();
  const CapturedSession& session = capture.sessions.at(0);
  ASSERT_EQ(session.units.size(), 2u);
  EXPECT_EQ(session.units[0].terminator(), 'G');
  EXPECT_EQ(session.units[1].terminator(), 'Z');
  // Both halves answer the one Query.
  EXPECT_EQ(session.units[0].request, 1u);
  EXPECT_EQ(session.units[1].request, 1u);
  EXPECT_EQ(session.steps[1].units_before, 1u);
  EXPECT_EQ(session.steps[2].units_before, 1u);
}

TEST(CaptureTest, SnapshotStartsASessionWithoutLoginAndLaterSnapshotsAreIgnored) {
  trace::Snapshot snapshot;
  snapshot.session.user = "bob";
  snapshot.session.database = "db";
  snapshot.transaction_status = 'T';
  snapshot.prepared_statements.push_back(
      trace::PreparedStatement{.name = "p1", .query = "SELECT $1", .parameter_types = {23}});
  TraceBuilder trace;
  trace.Snapshot(3, 0, snapshot);
  trace.Answer(3, 5, Z());  // would be a login answer in a session-open session
  trace.Client(3, 10, Q("SELECT 1"));
  trace.Snapshot(3, 12, snapshot);
  Capture capture = trace.Capture();
  ASSERT_EQ(capture.sessions.size(), 1u);
  const CapturedSession& session = capture.sessions[0];
  ASSERT_TRUE(session.snapshot.has_value());
  EXPECT_EQ(session.snapshot->prepared_statements.size(), 1u);
  EXPECT_EQ(session.open.user, "bob");
  EXPECT_EQ(session.units.size(), 1u);
  EXPECT_EQ(session.steps.size(), 1u);
  EXPECT_FALSE(session.cut);
}

TEST(CaptureTest, RotatedFilesContinueSessionsOnOneTimeline) {
  TraceBuilder first;
  first.Open(1, 100);
  first.Client(1, 200, Q("SELECT 1"));
  // The second file starts 1 s later; its snapshot of session 1 continues the sequence.
  TraceBuilder second;
  second.Drop(1);
  second.Drop(1);
  trace::Snapshot snapshot;
  snapshot.session.user = "alice";
  second.Snapshot(1, 0, snapshot);
  second.Answer(1, 50, Z());
  second.Client(1, 60, Q("SELECT 2"));
  CaptureBuilder builder;
  for (const auto* file : {&first, &second}) {
    int64_t start = TraceBuilder::kCaptureStartUnixUs + (file == &second ? 1'000'000 : 0);
    trace::TraceContents contents = trace::ReadTrace(file->Encode(start));
    ASSERT_TRUE(contents.status.ok());
    builder.BeginFile(file == &first ? "a" : "b", *contents.header);
    for (size_t i = 0; i < contents.records.size(); ++i) builder.Add(contents.records[i], i);
  }
  Capture capture = std::move(builder).Finish();
  ASSERT_EQ(capture.sessions.size(), 1u);
  const CapturedSession& session = capture.sessions[0];
  EXPECT_FALSE(session.snapshot.has_value());  // it began with its session-open
  ASSERT_EQ(session.steps.size(), 2u);
  EXPECT_EQ(session.steps[1].time_us, 1'000'060);
  EXPECT_EQ(session.steps[1].units_before, 1u);
  EXPECT_FALSE(session.cut);
  EXPECT_EQ(capture.capture_start_unix_us, TraceBuilder::kCaptureStartUnixUs);
}

TEST(CaptureTest, ASequenceGapCutsTheSession) {
  TraceBuilder trace;
  trace.Open(1, 0);
  trace.Client(1, 10, Q("SELECT 1"));
  trace.Answer(1, 20, Z());
  trace.Drop(1);
  trace.Client(1, 30, Q("SELECT 2"));
  trace.Close(1, 40, "server lost");
  Capture capture = trace.Capture();
  const CapturedSession& session = capture.sessions.at(0);
  EXPECT_TRUE(session.cut);
  EXPECT_EQ(session.steps.size(), 1u);
  EXPECT_EQ(session.close_reason, "server lost");
}

TEST(CaptureTest, AFailedLoginIsMarked) {
  TraceBuilder trace;
  trace.Open(1, 0);
  trace.Answer(
      1, 1, pg::Authentication{.code = pg::Authentication::kMd5Password, .data = "salt"}.Encode());
  trace.Client(1, 2, pg::PasswordMessage{.password = "md5..."}.Encode());
  trace.Answer(1, 3, pg::BuildError("FATAL", "28P01", "password authentication failed"));
  trace.Close(1, 4);
  Capture capture = trace.Capture();
  EXPECT_TRUE(capture.sessions.at(0).login_failed);
  EXPECT_TRUE(capture.sessions.at(0).steps.empty());
}

TEST(CaptureTest, ARedactedMessageMarksOnlyTheUnitAnsweringIt) {
  TraceBuilder trace;
  trace.Open(1, 0);
  trace.Client(1, 10, Q("SELECT 1"));
  trace.Client(1, 10, Q("SELECT 'secret'"), /*redacted=*/true);
  trace.Client(1, 10, Q("SELECT 3"));
  for (int i = 0; i < 3; ++i) {
    trace.Answer(1, 20, Tag("SELECT 1"));
    trace.Answer(1, 20, Z());
  }
  Capture capture = trace.Capture();
  const CapturedSession& session = capture.sessions.at(0);
  ASSERT_EQ(session.units.size(), 3u);
  EXPECT_FALSE(session.units[0].redacted);
  EXPECT_TRUE(session.units[1].redacted);
  EXPECT_FALSE(session.units[2].redacted);
  EXPECT_TRUE(session.steps[1].redacted);
}

TEST(CaptureTest, ServerSideTrafficAndOtherSessionsStayApart) {
  TraceBuilder trace;
  trace.Open(1, 0);
  trace.Open(2, 5);
  trace.Client(1, 10, Q("SELECT 1"));
  trace.Message(1, 11, trace::Direction::kProxyToServer, Q("SELECT 1"), false);
  trace.Message(1, 12, trace::Direction::kServerToProxy, Z(), false);
  trace.Client(2, 13, Q("SELECT 2"));
  trace.Answer(1, 14, Z());
  trace.Answer(2, 15, Z());
  Capture capture = trace.Capture();
  ASSERT_EQ(capture.sessions.size(), 2u);
  EXPECT_EQ(capture.sessions[0].id, 1u);
  EXPECT_EQ(capture.sessions[0].units.size(), 1u);
  EXPECT_EQ(capture.sessions[0].units[0].messages.size(), 1u);
  EXPECT_EQ(capture.sessions[1].steps.at(0).message, Q("SELECT 2"));
}

std::string WriteTemp(const std::string& name, const std::string& bytes) {
  std::string path = ::testing::TempDir() + "/" + name;
  std::ofstream(path, std::ios::binary) << bytes;
  return path;
}

TEST(TraceFilesTest, ReadsFilesInOrder) {
  TraceBuilder trace;
  trace.Open(1, 0);
  trace.Client(1, 10, Q("SELECT 1"));
  std::string path = WriteTemp("good.syt", trace.Encode());
  absl::StatusOr<Capture> capture = LoadTraceFiles({path, path});
  ASSERT_TRUE(capture.ok()) << capture.status();
  EXPECT_EQ(capture->files.size(), 2u);
  EXPECT_EQ(capture->records, 4u);
  // The second copy opens session 1 again: two sessions, the first cut at its re-opening.
  EXPECT_EQ(capture->sessions.size(), 2u);
}

TEST(TraceFilesTest, ADamagedByteIsReportedWithFileRecordAndOffset) {
  TraceBuilder trace;
  trace.Open(1, 0);
  trace.Client(1, 10, Q("SELECT 1"));
  trace.Client(1, 20, Q("SELECT 2"));
  std::string bytes = trace.Encode();
  bytes[bytes.size() - 12] ^= 0x40;  // inside the last record's body
  std::string path = WriteTemp("damaged.syt", bytes);
  absl::StatusOr<Capture> capture = LoadTraceFiles({path});
  ASSERT_FALSE(capture.ok());
  EXPECT_EQ(capture.status().code(), absl::StatusCode::kDataLoss);
  std::string message(capture.status().message());
  EXPECT_NE(message.find(path), std::string::npos) << message;
  EXPECT_NE(message.find("record 2 at byte offset"), std::string::npos) << message;
}

TEST(TraceFilesTest, TruncationAndMissingFilesAreErrors) {
  TraceBuilder trace;
  trace.Open(1, 0);
  std::string bytes = trace.Encode();
  std::string path = WriteTemp("cut.syt", bytes.substr(0, bytes.size() - 3));
  absl::StatusOr<Capture> capture = LoadTraceFiles({path});
  ASSERT_FALSE(capture.ok());
  EXPECT_TRUE(trace::IsTruncated(capture.status())) << capture.status();
  EXPECT_FALSE(LoadTraceFiles({::testing::TempDir() + "/missing.syt"}).ok());
  EXPECT_EQ(LoadTraceFiles({WriteTemp("big.syt", bytes)}, 10).status().code(),
            absl::StatusCode::kResourceExhausted);
}

}  // namespace
}  // namespace switchyard::replay
