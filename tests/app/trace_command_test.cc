// `switchyard trace show` and `trace stats` on captures built with the real encoder: the lines a
// person reads, the filters, the statement statistics, and what a cut or damaged file does.
#include "app/trace_command.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "app/trace_render.h"
#include "app/trace_stats.h"
#include "core/protocol/messages.h"
#include "core/trace/encoder.h"
#include "core/trace/record.h"

namespace switchyard::app {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using trace::Direction;
using trace::Record;

constexpr Direction kIn = Direction::kClientToProxy;
constexpr Direction kOut = Direction::kProxyToClient;

// A capture being written: records appended with per-session sequence numbers, and where each
// record begins in the file.
class CaptureBuilder {
 public:
  CaptureBuilder() {
    trace::TraceHeader header;
    header.capture_start_unix_us = 1700000000123456;
    header.record_body_size_max = 1 << 16;
    header.proxy_id = "proxy-a";
    header.settings = {{"sample_rate", "1.0"}, {"redact", "none"}};
    EXPECT_TRUE(trace::AppendHeader(header, bytes_).ok());
  }

  void Add(uint64_t session, int64_t time_us, Direction direction, trace::RecordBody body) {
    Record record{.direction = direction,
                  .session = session,
                  .sequence = session == 0 ? 0 : sequences_[session]++,
                  .time_us = time_us,
                  .body = std::move(body)};
    if (direction == Direction::kProxyToServer || direction == Direction::kServerToProxy) {
      record.node = 1;
      record.backend_pid = 4242;
    }
    offsets_.push_back(bytes_.size());
    EXPECT_TRUE(encoder_.Append(record, bytes_).ok());
  }
  void Message(uint64_t session, int64_t time_us, Direction direction, std::string raw) {
    Add(session, time_us, direction, trace::Message{std::move(raw)});
  }

  const std::string& bytes() const { return bytes_; }
  uint64_t offset(size_t record) const { return offsets_.at(record); }
  size_t records() const { return offsets_.size(); }

 private:
  trace::TraceEncoder encoder_{1 << 16};
  std::string bytes_;
  std::vector<uint64_t> offsets_;
  std::map<uint64_t, uint64_t> sequences_;
};

std::string WriteFile(const std::string& name, const std::string& bytes) {
  const std::string path = ::testing::TempDir() + "/trace_command_test_" + name;
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
  return path;
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

std::string Row(std::vector<std::optional<std::string>> values) {
  return pg::DataRow{.values = std::move(values)}.Encode();
}

std::string Columns(std::vector<std::string> names) {
  pg::RowDescription description;
  for (std::string& name : names) description.fields.push_back({.name = std::move(name)});
  return description.Encode();
}

std::string Ready(char status = 'I') { return pg::ReadyForQuery{.status = status}.Encode(); }

// Session 1 (alice) opens, runs two SELECTs differing only in a literal (2 ms and 4 ms), one
// failing SELECT (1 ms), an extended INSERT (8 ms) and a COPY FROM STDIN (5 ms), and closes.
// Session 2 (bob) appears by snapshot and runs its prepared statement (1 ms). A marker, a cancel
// and a records-dropped note are in between.
CaptureBuilder SampleCapture() {
  CaptureBuilder capture;
  capture.Add(1, 0, Direction::kNone,
              trace::SessionOpen{.client_address = "10.0.0.9:50000",
                                 .user = "alice",
                                 .database = "shop",
                                 .startup_parameters = {{"user", "alice"}, {"database", "shop"}}});
  capture.Message(1, 100, kOut, pg::Authentication{}.Encode());
  capture.Message(1, 200, kOut, Ready());  // ends the startup, answers no statement
  capture.Message(1, 1000, kIn, pg::Query{.sql = "SELECT * FROM users WHERE id = 1"}.Encode());
  capture.Message(1, 1100, Direction::kProxyToServer,
                  pg::Query{.sql = "SELECT * FROM users WHERE id = 1"}.Encode());
  capture.Message(1, 2000, kOut, Columns({"id", "name"}));
  capture.Message(1, 2000, kOut, Row({"1", "alice"}));
  capture.Message(1, 2000, kOut, pg::CommandComplete{.tag = "SELECT 1"}.Encode());
  capture.Message(1, 3000, kOut, Ready());
  trace::Snapshot snapshot{
      .session = {.client_address = "unix", .user = "bob", .database = "shop"},
      .transaction_status = 'I',
      .prepared_statements = {{.name = "q", .query = "SELECT name FROM users WHERE id = $1"}},
      .settings = {{"search_path", "app"}}};
  capture.Add(2, 5000, Direction::kNone, snapshot);
  capture.Message(2, 6000, kIn,
                  pg::Bind{.statement = "q", .parameters = {std::string("7")}}.Encode());
  capture.Message(2, 6000, kIn, pg::Execute{}.Encode());
  capture.Message(2, 6000, kIn, pg::Sync{}.Encode());
  capture.Message(2, 6500, kOut, Row({"bob", std::nullopt}));
  capture.Message(2, 7000, kOut, Ready());
  capture.Add(0, 8000, Direction::kNone, trace::Marker{.text = "failover begins"});
  capture.Message(1, 10000, kIn, pg::Query{.sql = "SELECT * FROM users WHERE id = 2"}.Encode());
  capture.Message(1, 14000, kOut, Ready());
  capture.Message(1, 20000, kIn, pg::Query{.sql = "SELECT * FROM nope"}.Encode());
  capture.Add(1, 20500, Direction::kNone, trace::Cancel{.forwarded = false});
  capture.Message(1, 20500, kOut,
                  pg::BuildError("ERROR", "42P01", "relation \"nope\" does not exist"));
  capture.Message(1, 21000, kOut, Ready());
  capture.Add(0, 25000, Direction::kNone, trace::RecordsDropped{.count = 3});
  capture.Message(1, 30000, kIn,
                  pg::Parse{.name = "ins", .query = "INSERT INTO t VALUES ($1)"}.Encode());
  capture.Message(1, 30000, kIn,
                  pg::Bind{.statement = "ins", .parameters = {std::string("7")}}.Encode());
  capture.Message(1, 30000, kIn, pg::Describe{.kind = 'P'}.Encode());
  capture.Message(1, 30000, kIn, pg::Execute{}.Encode());
  capture.Message(1, 30010, kIn, pg::Sync{}.Encode());
  capture.Message(1, 38000, kOut, pg::CommandComplete{.tag = "INSERT 0 1"}.Encode());
  capture.Message(1, 38010, kOut, Ready());
  capture.Message(1, 40000, kIn, pg::Query{.sql = "COPY t FROM STDIN"}.Encode());
  capture.Message(1, 40500, kOut, pg::CopyResponse{.type = 'G'}.Encode());
  capture.Message(1, 41000, kIn, pg::CopyData{.data = "1\n2\n"}.Encode());
  capture.Message(1, 41000, kIn, pg::CopyDone{}.Encode());
  capture.Message(1, 44000, kOut, pg::CommandComplete{.tag = "COPY 2"}.Encode());
  capture.Message(1, 45000, kOut, Ready());
  capture.Add(1, 50000, Direction::kNone, trace::SessionClose{.reason = "client terminated"});
  return capture;
}

struct Output {
  int exit_code = -1;
  std::string out;
  std::string error;
};

Output Show(const std::vector<std::string>& files, const TraceShowFilter& filter = {}) {
  std::ostringstream out;
  std::ostringstream error;
  Output run;
  run.exit_code = ShowTrace(files, filter, out, error);
  run.out = out.str();
  run.error = error.str();
  return run;
}

Output Stats(const std::vector<std::string>& files) {
  std::ostringstream out;
  std::ostringstream error;
  Output run;
  run.exit_code = PrintTraceStats(files, out, error);
  run.out = out.str();
  run.error = error.str();
  return run;
}

// ---------------------------------------------------------------- show

TEST(TraceShowTest, PrintsOneReadableLinePerRecord) {
  const CaptureBuilder capture = SampleCapture();
  const Output run = Show({WriteFile("show", capture.bytes())});
  EXPECT_EQ(run.exit_code, 0);
  EXPECT_THAT(run.error, IsEmpty());
  const std::vector<std::string> lines = Lines(run.out);
  ASSERT_EQ(lines.size(), capture.records());
  EXPECT_EQ(lines[0],
            "0.000000 s1 #0 session-open client=\"10.0.0.9:50000\" user=\"alice\" "
            "database=\"shop\" parameters=2");
  EXPECT_EQ(lines[1], "0.000100 s1 #1 proxy->client Authentication 9 bytes request=Ok");
  EXPECT_EQ(lines[3],
            "0.001000 s1 #3 client->proxy Query 38 bytes sql=\"SELECT * FROM users WHERE id = 1\"");
  EXPECT_EQ(lines[4],
            "0.001100 s1 #4 proxy->server Query 38 bytes node=1 pid=4242 "
            "sql=\"SELECT * FROM users WHERE id = 1\"");
  EXPECT_EQ(lines[5],
            "0.002000 s1 #5 proxy->client RowDescription 51 bytes columns=[\"id\",\"name\"]");
  EXPECT_EQ(lines[6], "0.002000 s1 #6 proxy->client DataRow 21 bytes values=[\"1\",\"alice\"]");
  EXPECT_EQ(lines[7], "0.002000 s1 #7 proxy->client CommandComplete 14 bytes tag=\"SELECT 1\"");
  EXPECT_EQ(lines[8], "0.003000 s1 #8 proxy->client ReadyForQuery 6 bytes status=I");
  EXPECT_EQ(lines[9],
            "0.005000 s2 #0 snapshot user=\"bob\" database=\"shop\" status=I prepared=1 "
            "settings=1 statements=[\"q\":\"SELECT name FROM users WHERE id = $1\"] "
            "set=[search_path=\"app\"]");
  EXPECT_EQ(lines[10],
            "0.006000 s2 #1 client->proxy Bind 19 bytes portal=\"\" statement=\"q\" "
            "parameters=[\"7\"]");
  EXPECT_EQ(lines[11], "0.006000 s2 #2 client->proxy Execute 10 bytes portal=\"\"");
  EXPECT_EQ(lines[12], "0.006000 s2 #3 client->proxy Sync 5 bytes");
  EXPECT_EQ(lines[13], "0.006500 s2 #4 proxy->client DataRow 18 bytes values=[\"bob\",NULL]");
  EXPECT_EQ(lines[15], "0.008000 s0 #0 marker \"failover begins\"");
  EXPECT_EQ(lines[19], "0.020500 s1 #12 cancel not-forwarded");
  EXPECT_EQ(lines[20],
            "0.020500 s1 #13 proxy->client ErrorResponse 59 bytes severity=ERROR sqlstate=42P01 "
            "message=\"relation \\\"nope\\\" does not exist\"");
  EXPECT_EQ(lines[22], "0.025000 s0 #0 records-dropped count=3");
  EXPECT_EQ(lines[23],
            "0.030000 s1 #15 client->proxy Parse 37 bytes statement=\"ins\" "
            "sql=\"INSERT INTO t VALUES ($1)\"");
  EXPECT_EQ(lines[25], "0.030000 s1 #17 client->proxy Describe 7 bytes portal=\"\"");
  EXPECT_EQ(lines[31],
            "0.040500 s1 #23 proxy->client CopyInResponse 8 bytes format=text columns=0");
  EXPECT_EQ(lines[32], "0.041000 s1 #24 client->proxy CopyData 9 bytes data=\"1\\n2\\n\"");
  EXPECT_EQ(lines[36], "0.050000 s1 #28 session-close reason=\"client terminated\"");
}

TEST(TraceShowTest, CutsLongTextAndManyValuesSoARecordStaysOneLine) {
  CaptureBuilder capture;
  capture.Message(1, 0, kIn, pg::Query{.sql = std::string(500, 'x') + "\n;"}.Encode());
  std::vector<std::optional<std::string>> values(20, std::string(100, 'v'));
  capture.Message(1, 0, kOut, Row(values));
  const Output run = Show({WriteFile("long", capture.bytes())});
  const std::vector<std::string> lines = Lines(run.out);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_THAT(lines[0],
              HasSubstr("sql=\"" + std::string(kRenderedTextSizeMax, 'x') + "\"...(502 bytes)"));
  EXPECT_THAT(lines[1], HasSubstr(",...(20 values)]"));
  EXPECT_THAT(lines[1],
              HasSubstr("\"" + std::string(kRenderedValueSizeMax, 'v') + "\"...(100 bytes)"));
  EXPECT_LT(lines[1].size(), 800u);
}

TEST(TraceShowTest, NeverPrintsPasswordsOrCancelSecrets) {
  CaptureBuilder capture;
  capture.Message(1, 0, kIn, pg::PasswordMessage{.password = "hunter2"}.Encode());
  capture.Message(1, 0, kIn, pg::CancelRequest{.pid = 77, .secret = 987654321}.Encode());
  const Output run = Show({WriteFile("secret", capture.bytes())});
  EXPECT_THAT(run.out, Not(HasSubstr("hunter2")));
  EXPECT_THAT(run.out, Not(HasSubstr("987654321")));
  EXPECT_THAT(Lines(run.out), ElementsAre(HasSubstr("PasswordMessage"),
                                          HasSubstr("CancelRequest 16 bytes pid=77")));
}

std::string RenderMessage(Direction direction, std::string raw) {
  return RenderRecordContent(
      Record{.direction = direction, .session = 1, .body = trace::Message{std::move(raw)}});
}

TEST(TraceShowTest, RendersWhatEachMessageSays) {
  EXPECT_EQ(
      RenderMessage(kIn,
                    pg::Parse{.name = "s", .query = "SELECT $1", .parameter_types = {23}}.Encode()),
      "statement=\"s\" sql=\"SELECT $1\" types=[23]");
  EXPECT_EQ(RenderMessage(kIn, pg::Close{.kind = 'S', .name = "s"}.Encode()), "statement=\"s\"");
  EXPECT_EQ(RenderMessage(kIn, pg::Execute{.portal = "p", .max_rows = 50}.Encode()),
            "portal=\"p\" max_rows=50");
  EXPECT_EQ(RenderMessage(kIn, pg::StartupMessage{.parameters = {{"user", "alice"}}}.Encode()),
            "protocol=3.0 parameters=[user=\"alice\"]");
  EXPECT_EQ(RenderMessage(kOut, pg::BuildError("WARNING", "01000", "careful", 'N')),
            "severity=WARNING sqlstate=01000 message=\"careful\"");
  EXPECT_EQ(RenderMessage(kOut, pg::ParameterStatus{.name = "TimeZone", .value = "UTC"}.Encode()),
            "name=\"TimeZone\" value=\"UTC\"");
  EXPECT_EQ(RenderMessage(kOut, pg::Authentication::Sasl({"SCRAM-SHA-256"}).Encode()),
            "request=SASL mechanisms=[\"SCRAM-SHA-256\"]");
  EXPECT_EQ(RenderMessage(kOut, pg::BackendKeyData{.pid = 9, .secret = 123456}.Encode()), "pid=9");
  EXPECT_EQ(RenderMessage(kOut, pg::ParseComplete{}.Encode()), "");
  // 'D' is Describe from a client and DataRow from a server.
  EXPECT_EQ(RenderMessage(kIn, pg::Describe{.kind = 'S', .name = "s"}.Encode()), "statement=\"s\"");
  // A ReadyForQuery with two status bytes does not decode; the line says so.
  std::string bad = pg::ReadyForQuery{}.Encode();
  bad[4] = 6;
  bad.push_back('I');
  EXPECT_THAT(RenderMessage(kOut, bad), HasSubstr("undecodable=\""));
}

TEST(TraceShowTest, FiltersBySessionAndTime) {
  const CaptureBuilder capture = SampleCapture();
  const std::string file = WriteFile("filter", capture.bytes());

  const Output session = Show({file}, {.session = 2});
  const std::vector<std::string> lines = Lines(session.out);
  ASSERT_EQ(lines.size(), 6u);
  for (const std::string& line : lines) EXPECT_THAT(line, HasSubstr(" s2 #"));

  // Inclusive at both ends: 0.010000 and 0.021000 are in.
  const Output window = Show({file}, {.from_us = 10000, .to_us = 21000});
  EXPECT_THAT(Lines(window.out),
              ElementsAre(HasSubstr("0.010000 s1 #9 client->proxy Query"),
                          HasSubstr("0.014000 s1 #10 proxy->client ReadyForQuery"),
                          HasSubstr("0.020000 s1 #11 client->proxy Query"),
                          HasSubstr("0.020500 s1 #12 cancel"),
                          HasSubstr("0.020500 s1 #13 proxy->client ErrorResponse"),
                          HasSubstr("0.021000 s1 #14 proxy->client ReadyForQuery")));

  const Output both = Show({file}, {.session = 2, .from_us = 6500});
  EXPECT_THAT(Lines(both.out), ElementsAre(HasSubstr("s2 #4 proxy->client DataRow"),
                                           HasSubstr("s2 #5 proxy->client ReadyForQuery")));
}

TEST(TraceShowTest, ReadsTheFilesOfARotatedCaptureInOrder) {
  CaptureBuilder first;
  first.Message(1, 1000, kIn, pg::Query{.sql = "SELECT 1"}.Encode());
  CaptureBuilder second;
  second.Message(1, 2000, kOut, Ready());
  const Output run =
      Show({WriteFile("rotated.0", first.bytes()), WriteFile("rotated.1", second.bytes())});
  EXPECT_EQ(run.exit_code, 0);
  EXPECT_THAT(Lines(run.out), ElementsAre(HasSubstr("0.001000 s1 #0 client->proxy Query"),
                                          HasSubstr("0.002000 s1 #0 proxy->client ReadyForQuery")));
}

// ---------------------------------------------------------------- damage

// Flipping a byte in the middle of record 20 (of 37): records 0..19 are printed, then the error
// names the file, record 20 and its offset.
TEST(TraceShowTest, StopsAtADamagedRecordAndSaysWhere) {
  const CaptureBuilder capture = SampleCapture();
  constexpr size_t kDamaged = 20;
  std::string bytes = capture.bytes();
  const size_t middle = (capture.offset(kDamaged) + capture.offset(kDamaged + 1)) / 2;
  bytes[middle] = static_cast<char>(bytes[middle] ^ 0x40);
  const std::string file = WriteFile("damaged", bytes);

  const Output run = Show({file, file});
  EXPECT_EQ(run.exit_code, 1);
  const std::vector<std::string> lines = Lines(run.out);
  ASSERT_EQ(lines.size(), kDamaged);
  EXPECT_THAT(lines.back(), HasSubstr("0.020500 s1 #12 cancel"));
  EXPECT_THAT(run.error, AllOf(HasSubstr(file + ": "),
                               HasSubstr(absl::StrFormat("record %u at byte offset %u", kDamaged,
                                                         capture.offset(kDamaged))),
                               HasSubstr("CRC32C mismatch")));
  EXPECT_EQ(Lines(run.error).size(), 1u);
}

TEST(TraceShowTest, StopsAtATruncatedRecordAndSaysWhere) {
  const CaptureBuilder capture = SampleCapture();
  const std::string file =
      WriteFile("truncated", capture.bytes().substr(0, capture.offset(30) + 11));
  const Output run = Show({file});
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_EQ(Lines(run.out).size(), 30u);
  EXPECT_THAT(run.error,
              AllOf(HasSubstr(file + ": trace truncated"),
                    HasSubstr(absl::StrFormat("record 30 at byte offset %u", capture.offset(30)))));
}

TEST(TraceShowTest, MissingFileAndNotATraceAreErrors) {
  const Output missing = Show({::testing::TempDir() + "/trace_command_test_no_such_file"});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_THAT(missing.error, HasSubstr("no_such_file: cannot open"));

  const Output directory = Show({::testing::TempDir()});
  EXPECT_EQ(directory.exit_code, 1);
  EXPECT_THAT(directory.error, HasSubstr("is a directory"));

  const Output garbage = Show({WriteFile("garbage", "hello, this is not a trace")});
  EXPECT_EQ(garbage.exit_code, 1);
  EXPECT_THAT(garbage.error, HasSubstr("not a switchyard trace file"));
  EXPECT_THAT(garbage.out, IsEmpty());
}

// ---------------------------------------------------------------- stats

TEST(TraceStatsTest, SummarizesHeaderSessionsAndMessages) {
  const CaptureBuilder capture = SampleCapture();
  const std::string file = WriteFile("stats", capture.bytes());
  const Output run = Stats({file});
  EXPECT_EQ(run.exit_code, 0);
  EXPECT_THAT(run.error, IsEmpty());
  const std::vector<std::string> lines = Lines(run.out);
  EXPECT_THAT(run.out, HasSubstr("  start       2023-11-14 22:13:20.123456 UTC\n"));
  EXPECT_THAT(run.out, HasSubstr("  proxy       \"proxy-a\"\n"));
  EXPECT_THAT(run.out, HasSubstr("  settings    sample_rate=\"1.0\" redact=\"none\"\n"));
  EXPECT_THAT(run.out, HasSubstr("    " + file + "  37 records\n"));
  EXPECT_THAT(run.out, HasSubstr("  records     37, from 0.000000 s to 0.050000 s\n"));
  EXPECT_THAT(run.out,
              HasSubstr("  events      1 markers, 1 cancels, 1 snapshots, 3 records dropped\n"));
  EXPECT_THAT(run.out, HasSubstr("  total       2 (1 opened, 1 from snapshots, 1 closed)\n"));
  EXPECT_THAT(run.out, HasSubstr("  users       \"alice\" 1, \"bob\" 1\n"));
  EXPECT_THAT(run.out, HasSubstr("  databases   \"shop\" 2\n"));
  // 4 Queries from the client, of 38, 38, 24 and 23 bytes; the one the proxy sent on is counted
  // under its own direction.
  EXPECT_THAT(run.out, HasSubstr(absl::StrFormat("  %-14s %-24s %10u %14u\n", "client->proxy",
                                                 "Query", 4, 38 + 38 + 24 + 23)));
  EXPECT_THAT(run.out, HasSubstr(absl::StrFormat("  %-14s %-24s %10u %14u\n", "proxy->server",
                                                 "Query", 1, 38)));
  EXPECT_THAT(run.out, HasSubstr(absl::StrFormat("  %-14s %-24s %10u %14u\n", "proxy->client",
                                                 "ReadyForQuery", 7, 7 * 6)));
}

TEST(TraceStatsTest, GroupsStatementsByFingerprintWithLatencies) {
  const Output run = Stats({WriteFile("statements", SampleCapture().bytes())});
  ASSERT_EQ(run.exit_code, 0);
  EXPECT_THAT(run.out, HasSubstr("\"SELECT * FROM users WHERE id = $1\""));
  EXPECT_THAT(run.out, Not(HasSubstr("id = 1\"")));
  EXPECT_THAT(run.out, Not(HasSubstr("id = 2\"")));
  EXPECT_THAT(run.out, Not(HasSubstr("got no ReadyForQuery")));
  const std::vector<std::string> lines = Lines(run.out);
  const auto row = [&lines](std::string_view text) {
    for (const std::string& line : lines) {
      if (line.find(text) != std::string::npos) return line;
    }
    return std::string("(no row for ") + std::string(text) + ")";
  };
  // count, errors, p50, p90, p99, max (ms).
  EXPECT_THAT(row("id = $1\""),
              HasSubstr("       2       0      2.000      4.000      4.000      4.000  "));
  EXPECT_THAT(row("FROM nope"),
              HasSubstr("       1       1      1.000      1.000      1.000      1.000  "));
  EXPECT_THAT(row("INSERT INTO t"),
              HasSubstr("       1       0      8.000      8.000      8.000      8.000  "));
  EXPECT_THAT(row("COPY t FROM STDIN"),
              HasSubstr("       1       0      5.000      5.000      5.000      5.000  "));
  // Session 2's Bind named a statement only its snapshot knew.
  EXPECT_THAT(row("SELECT name FROM users"), HasSubstr("       1       0      1.000      1.000"));
}

// ---------------------------------------------------------------- statement timing

Record MessageRecord(uint64_t session, int64_t time_us, Direction direction, std::string raw) {
  return Record{.direction = direction,
                .session = session,
                .time_us = time_us,
                .body = trace::Message{std::move(raw)}};
}

TEST(TraceStatsTest, PercentilesAreNearestRankOverKnownLatencies) {
  TraceStatistics statistics;
  // 100 statements differing only in their literal, taking 0.1 ms, 0.2 ms, ... 10 ms, spread
  // over two sessions and added out of latency order.
  for (int i = 100; i >= 1; --i) {
    const uint64_t session = 1 + i % 2;
    const int64_t start_us = int64_t{1000000} * i;
    statistics.Add(MessageRecord(session, start_us, kIn,
                                 pg::Query{.sql = absl::StrFormat("SELECT %d", i)}.Encode()));
    statistics.Add(MessageRecord(session, start_us + 100 * i, kOut, Ready()));
  }
  const std::vector<StatementSummary> statements = statistics.Statements();
  ASSERT_EQ(statements.size(), 1u);
  EXPECT_EQ(statements[0].text, "SELECT $1");
  EXPECT_NE(statements[0].fingerprint, "-");
  EXPECT_EQ(statements[0].count, 100u);
  EXPECT_EQ(statements[0].p50_us, 5000);
  EXPECT_EQ(statements[0].p90_us, 9000);
  EXPECT_EQ(statements[0].p99_us, 9900);
  EXPECT_EQ(statements[0].max_us, 10000);
}

TEST(TraceStatsTest, PercentileOfFewValues) {
  EXPECT_EQ(PercentileNearestRank({}, 500), 0);
  EXPECT_EQ(PercentileNearestRank({7}, 990), 7);
  EXPECT_EQ(PercentileNearestRank({1, 2}, 500), 1);
  EXPECT_EQ(PercentileNearestRank({1, 2}, 501), 2);
  EXPECT_EQ(PercentileNearestRank({1, 2, 3}, 990), 3);
}

TEST(TraceStatsTest, PipelinedRequestsAreAnsweredInOrder) {
  TraceStatistics statistics;
  // Two extended batches and a Query sent before any answer.
  statistics.Add(MessageRecord(1, 0, kIn, pg::Parse{.query = "SELECT a FROM t"}.Encode()));
  statistics.Add(MessageRecord(1, 0, kIn, pg::Bind{}.Encode()));
  statistics.Add(MessageRecord(1, 0, kIn, pg::Execute{}.Encode()));
  statistics.Add(MessageRecord(1, 0, kIn, pg::Sync{}.Encode()));
  statistics.Add(MessageRecord(1, 100, kIn, pg::Parse{.query = "SELECT b FROM t"}.Encode()));
  statistics.Add(MessageRecord(1, 100, kIn, pg::Bind{}.Encode()));
  statistics.Add(MessageRecord(1, 100, kIn, pg::Execute{}.Encode()));
  statistics.Add(MessageRecord(1, 100, kIn, pg::Sync{}.Encode()));
  statistics.Add(MessageRecord(1, 200, kIn, pg::Query{.sql = "SELECT c FROM t"}.Encode()));
  statistics.Add(MessageRecord(1, 1000, kOut, Ready()));
  statistics.Add(MessageRecord(1, 1500, kOut, pg::BuildError("ERROR", "22012", "division")));
  statistics.Add(MessageRecord(1, 2000, kOut, Ready()));
  statistics.Add(MessageRecord(1, 5000, kOut, Ready()));
  std::map<std::string, std::pair<int64_t, uint64_t>> latency_and_errors;
  for (const StatementSummary& statement : statistics.Statements()) {
    latency_and_errors[statement.text] = {statement.max_us, statement.errors};
  }
  EXPECT_EQ(latency_and_errors["SELECT a FROM t"], std::make_pair(int64_t{1000}, uint64_t{0}));
  EXPECT_EQ(latency_and_errors["SELECT b FROM t"], std::make_pair(int64_t{1900}, uint64_t{1}));
  EXPECT_EQ(latency_and_errors["SELECT c FROM t"], std::make_pair(int64_t{4800}, uint64_t{0}));
}

// libpq sends Parse/Bind/Execute/Sync for a COPY, and another Sync after CopyDone because the
// server ignores the first one in COPY mode: one statement, one ReadyForQuery.
TEST(TraceStatsTest, ExtendedCopyIsOneStatement) {
  TraceStatistics statistics;
  statistics.Add(MessageRecord(1, 0, kIn, pg::Parse{.query = "COPY t FROM STDIN"}.Encode()));
  statistics.Add(MessageRecord(1, 0, kIn, pg::Bind{}.Encode()));
  statistics.Add(MessageRecord(1, 0, kIn, pg::Execute{}.Encode()));
  statistics.Add(MessageRecord(1, 0, kIn, pg::Sync{}.Encode()));
  statistics.Add(MessageRecord(1, 100, kOut, pg::CopyResponse{.type = 'G'}.Encode()));
  statistics.Add(MessageRecord(1, 200, kIn, pg::CopyData{.data = "1\n"}.Encode()));
  statistics.Add(MessageRecord(1, 300, kIn, pg::CopyDone{}.Encode()));
  statistics.Add(MessageRecord(1, 300, kIn, pg::Sync{}.Encode()));
  statistics.Add(MessageRecord(1, 900, kOut, pg::CommandComplete{.tag = "COPY 1"}.Encode()));
  statistics.Add(MessageRecord(1, 1000, kOut, Ready()));
  statistics.Add(MessageRecord(1, 2000, kIn, pg::Query{.sql = "SELECT 1"}.Encode()));
  statistics.Add(MessageRecord(1, 2500, kOut, Ready()));
  const std::vector<StatementSummary> statements = statistics.Statements();
  ASSERT_EQ(statements.size(), 2u);
  std::map<std::string, int64_t> latency;
  for (const StatementSummary& statement : statements) latency[statement.text] = statement.max_us;
  EXPECT_EQ(latency["COPY t FROM STDIN"], 1000);
  EXPECT_EQ(latency["SELECT $1"], 500);
}

TEST(TraceStatsTest, StatementsWithoutReadyForQueryAreCountedAsUnfinished) {
  TraceStatistics statistics;
  statistics.Add(MessageRecord(1, 0, kIn, pg::Query{.sql = "SELECT pg_sleep(100)"}.Encode()));
  statistics.Add(MessageRecord(2, 0, kIn, pg::Query{.sql = "SELECT 1"}.Encode()));
  statistics.Add(Record{.session = 2, .time_us = 10, .body = trace::SessionClose{.reason = "x"}});
  EXPECT_THAT(statistics.Statements(), IsEmpty());
  std::ostringstream out;
  statistics.Print(out);
  EXPECT_THAT(out.str(), HasSubstr("  2 statement(s) got no ReadyForQuery"));
}

TEST(TraceStatsTest, TextThatIsNotSqlIsGroupedAsItIs) {
  TraceStatistics statistics;
  for (int i = 0; i < 2; ++i) {
    statistics.Add(MessageRecord(1, 0, kIn, pg::Query{.sql = "SELEC oops 1"}.Encode()));
    statistics.Add(MessageRecord(1, 10, kOut, Ready()));
  }
  statistics.Add(MessageRecord(1, 20, kIn, pg::Query{.sql = "SELEC oops 2"}.Encode()));
  statistics.Add(MessageRecord(1, 30, kOut, Ready()));
  const std::vector<StatementSummary> statements = statistics.Statements();
  ASSERT_EQ(statements.size(), 2u);
  EXPECT_EQ(statements[0].text, "SELEC oops 1");
  EXPECT_EQ(statements[0].fingerprint, "-");
  EXPECT_EQ(statements[0].count, 2u);
}

TEST(TraceStatsTest, ADamagedFileStillGetsTheStatisticsOfWhatCameBefore) {
  const CaptureBuilder capture = SampleCapture();
  std::string bytes = capture.bytes();
  // Record 16 is the second SELECT on users; damage its CRC.
  bytes[capture.offset(17) - 1] = static_cast<char>(bytes[capture.offset(17) - 1] ^ 1);
  const std::string file = WriteFile("stats_damaged", bytes);
  const Output run = Stats({file});
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_THAT(run.out, HasSubstr("  records     16, from 0.000000 s to 0.008000 s\n"));
  EXPECT_THAT(run.out, HasSubstr("       1       0      2.000      2.000      2.000      2.000  "));
  EXPECT_THAT(run.error,
              AllOf(HasSubstr(file + ": "),
                    HasSubstr(absl::StrFormat("record 16 at byte offset %u", capture.offset(16)))));
}

// ---------------------------------------------------------------- command line

struct Parsed {
  CLI::App app{"test"};
  TraceCommand trace;
  Parsed() { AddTraceCommand(app, trace); }
};

// CLI11 takes the arguments of parse() in reverse order.
Output Execute(std::vector<std::string> arguments) {
  Parsed parsed;
  std::reverse(arguments.begin(), arguments.end());
  parsed.app.parse(arguments);
  std::ostringstream out;
  std::ostringstream error;
  Output run;
  run.exit_code = RunTrace(parsed.trace, out, error);
  run.out = out.str();
  run.error = error.str();
  return run;
}

TEST(TraceCommandTest, RunsShowAndStatsFromTheCommandLine) {
  const std::string file = WriteFile("cli", SampleCapture().bytes());
  const Output show = Execute({"trace", "show", "--session", "2", "--from", "0.0065", file});
  EXPECT_EQ(show.exit_code, 0);
  EXPECT_THAT(Lines(show.out),
              ElementsAre(HasSubstr("0.006500 s2 #4 proxy->client DataRow"),
                          HasSubstr("0.007000 s2 #5 proxy->client ReadyForQuery")));
  const Output to = Execute({"trace", "show", "--to", "0.0001", file});
  EXPECT_THAT(Lines(to.out), ElementsAre(HasSubstr("s1 #0 session-open"),
                                         HasSubstr("s1 #1 proxy->client Authentication")));

  const Output stats = Execute({"trace", "stats", file, file});
  EXPECT_EQ(stats.exit_code, 0);
  EXPECT_THAT(stats.out, HasSubstr("  files       2\n"));
  EXPECT_THAT(stats.out, HasSubstr("  records     74, "));
}

TEST(TraceCommandTest, UsageErrors) {
  EXPECT_THROW(Execute({"trace", "show"}), CLI::ParseError);  // no file
  EXPECT_THROW(Execute({"trace", "show", "--from", "-1", "f"}), CLI::ParseError);
  EXPECT_THROW(Execute({"trace"}), CLI::ParseError);  // no verb
  EXPECT_THROW(Execute({"trace", "stats", "--session", "1", "f"}), CLI::ParseError);
  const Output reversed = Execute({"trace", "show", "--from", "2", "--to", "1", "f"});
  EXPECT_EQ(reversed.exit_code, 2);
  EXPECT_THAT(reversed.error, HasSubstr("--to must not be before --from"));
}

}  // namespace
}  // namespace switchyard::app
