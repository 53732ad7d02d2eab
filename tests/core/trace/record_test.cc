// The byte layout docs/trace-format.md promises (golden bytes), names and one-line rendering, and
// the encoder's refusals: records over the bound, oversized headers, and malformed records.
#include "core/trace/record.h"

#include <gtest/gtest.h>

#include <string>

#include "core/trace/crc32c.h"
#include "core/trace/encoder.h"
#include "core/trace/reader.h"
#include "tests/core/trace/trace_test_util.h"

namespace switchyard::trace {
namespace {

using testing::RawMessage;
using testing::SampleRecords;
using testing::StartupPacket;

// "89 53 0a" -> bytes; spaces and newlines are ignored.
std::string FromHex(std::string_view hex) {
  std::string out;
  int pending = -1;
  for (char c : hex) {
    if (c == ' ' || c == '\n') continue;
    const int digit = (c >= '0' && c <= '9') ? c - '0' : (c | 0x20) - 'a' + 10;
    if (pending < 0) {
      pending = digit;
    } else {
      out.push_back(static_cast<char>(pending * 16 + digit));
      pending = -1;
    }
  }
  return out;
}

std::string WithCrc(std::string bytes) {
  const uint32_t crc = Crc32c(bytes);
  for (int i = 0; i < 4; ++i) bytes.push_back(static_cast<char>(crc >> (8 * i)));
  return bytes;
}

TEST(TraceLayoutTest, HeaderBytesAreAsDocumented) {
  TraceHeader header{.capture_start_unix_us = 1,
                     .record_body_size_max = 100,
                     .proxy_id = "p",
                     .settings = {{"k", "v"}}};
  std::string out;
  ASSERT_TRUE(AppendHeader(header, out).ok());
  // The same bytes, CRC included, are the example in docs/trace-format.md.
  EXPECT_EQ(out, FromHex("89 53 59 54 0d 0a 1a 0a"  // magic
                         "01 00 00 00"              // version 1
                         "1f 00 00 00"              // body size 31
                         "01 00 00 00 00 00 00 00"  // capture start, µs since epoch
                         "64 00 00 00"              // record body bound 100
                         "01 00 00 00 70"           // proxy id "p"
                         "01 00 00 00"              // one setting
                         "01 00 00 00 6b"           // "k"
                         "01 00 00 00 76"           // "v"
                         "25 9d 98 33"));           // CRC32C of all the above
}

TEST(TraceLayoutTest, MessageRecordBytesAreAsDocumented) {
  Record record{.direction = Direction::kClientToProxy,
                .session = 7,
                .sequence = 1,
                .time_us = 1000,
                .connection = 0x0000000200000005,
                .node = 3,
                .backend_pid = -2,
                .body = Message{RawMessage('Q', std::string("SELECT 1\0", 9))}};
  std::string out;
  ASSERT_TRUE(TraceEncoder().Append(record, out).ok());
  EXPECT_EQ(out, FromHex("3a 00 00 00"              // body size 58
                         "01 01 00 00"              // message, client->proxy, no flags
                         "07 00 00 00 00 00 00 00"  // session 7
                         "01 00 00 00 00 00 00 00"  // sequence 1
                         "e8 03 00 00 00 00 00 00"  // time 1000 µs
                         "05 00 00 00 02 00 00 00"  // connection
                         "03 00 00 00"              // node 3
                         "fe ff ff ff"              // backend pid -2
                         "51 00 00 00 0d 53 45 4c 45 43 54 20 31 00"  // Query
                         "ea ac 00 53"));  // CRC32C of the length word and body
}

TEST(TraceLayoutTest, SnapshotRecordBytesAreAsDocumented) {
  Record record{.session = 1,
                .body = Snapshot{.session = {.client_address = "a", .user = "u", .database = "d"},
                                 .transaction_status = 'I',
                                 .prepared_statements = {{.source = PreparedStatement::Source::kSql,
                                                          .name = "s",
                                                          .query = "q",
                                                          .parameter_types = {25}}},
                                 .settings = {{"x", "y"}}}};
  std::string out;
  ASSERT_TRUE(TraceEncoder().Append(record, out).ok());
  const std::string metadata = FromHex(
      "07 00 00 00  01 00 00 00 00 00 00 00  00 00 00 00 00 00 00 00  00 00 00 00 00 00 00 00"
      "00 00 00 00 00 00 00 00  00 00 00 00  00 00 00 00");
  const std::string fields = FromHex(
      "01 00 00 00 61  01 00 00 00 75  01 00 00 00 64  00 00 00 00"  // session, no parameters
      "49"                                                           // status 'I'
      "01 00 00 00  01  01 00 00 00 73  01 00 00 00 71  01 00 00 00  19 00 00 00"  // PREPARE s
      "01 00 00 00  01 00 00 00 78  01 00 00 00 79");                              // x = y
  std::string expected;
  bytes::Writer(expected).U32(static_cast<uint32_t>(metadata.size() + fields.size()));
  EXPECT_EQ(out, WithCrc(expected + metadata + fields));
}

TEST(TraceNamesTest, KindsAndDirections) {
  EXPECT_EQ(KindName(RecordKind::kMessage), "message");
  EXPECT_EQ(KindName(RecordKind::kSessionOpen), "session-open");
  EXPECT_EQ(KindName(RecordKind::kSessionClose), "session-close");
  EXPECT_EQ(KindName(RecordKind::kCancel), "cancel");
  EXPECT_EQ(KindName(RecordKind::kRecordsDropped), "records-dropped");
  EXPECT_EQ(KindName(RecordKind::kMarker), "marker");
  EXPECT_EQ(KindName(RecordKind::kSnapshot), "snapshot");
  EXPECT_EQ(KindName(static_cast<RecordKind>(99)), "unknown");
  EXPECT_EQ(DirectionName(Direction::kNone), "-");
  EXPECT_EQ(DirectionName(Direction::kClientToProxy), "client->proxy");
  EXPECT_EQ(DirectionName(Direction::kProxyToServer), "proxy->server");
  EXPECT_EQ(DirectionName(Direction::kServerToProxy), "server->proxy");
  EXPECT_EQ(DirectionName(Direction::kProxyToClient), "proxy->client");
  EXPECT_EQ(DirectionName(static_cast<Direction>(9)), "unknown");
}

TEST(TraceNamesTest, MessagesAreNamedBySenderSide) {
  // 'D' is Describe from a client and DataRow from a server; 'S' is Sync or ParameterStatus.
  EXPECT_EQ(MessageName(Direction::kClientToProxy, RawMessage('D', "S\0")), "Describe");
  EXPECT_EQ(MessageName(Direction::kProxyToServer, RawMessage('S', "")), "Sync");
  EXPECT_EQ(MessageName(Direction::kServerToProxy, RawMessage('D', "")), "DataRow");
  EXPECT_EQ(MessageName(Direction::kProxyToClient, RawMessage('S', "")), "ParameterStatus");
  EXPECT_EQ(MessageName(Direction::kClientToProxy, RawMessage('Q', "")), "Query");
  EXPECT_EQ(MessageName(Direction::kClientToProxy, StartupPacket(pg::kProtocolVersion3, "")),
            "StartupMessage");
  EXPECT_EQ(MessageName(Direction::kClientToProxy, StartupPacket(pg::kSslRequestCode, "")),
            "SSLRequest");
  EXPECT_EQ(MessageName(Direction::kClientToProxy, StartupPacket(pg::kCancelRequestCode, "")),
            "CancelRequest");
  EXPECT_EQ(MessageName(Direction::kProxyToServer, StartupPacket(pg::kGssEncRequestCode, "")),
            "GSSENCRequest");
  EXPECT_EQ(MessageName(Direction::kServerToProxy, RawMessage('?', "")), "Unknown");
  EXPECT_EQ(MessageName(Direction::kNone, RawMessage('Q', "")), "Unknown");
  EXPECT_EQ(MessageName(Direction::kClientToProxy, ""), "Unknown");
}

TEST(TraceRenderTest, OneLinePerRecordKind) {
  const std::vector<std::string> expected = {
      R"(0.000010 s7 #0 session-open client="10.0.0.9:50000" user="alice" database="shop" )"
      R"(parameters=2)",
      "0.001000 s7 #1 client->proxy Query 14 bytes",
      "0.001000 s7 #2 proxy->server Query 14 bytes node=1 pid=4242 redacted",
      "0.001000 s7 #3 cancel forwarded node=1 pid=4242",
      "0.002000 s0 #0 records-dropped count=12",
      R"(0.002001 s0 #0 marker "failover begins")",
      R"(0.003000 s7 #4 snapshot user="alice" database="shop" status=T prepared=1 settings=1)",
      R"(0.004000 s7 #5 session-close reason="client terminated")",
  };
  const std::vector<Record> records = SampleRecords();
  ASSERT_EQ(records.size(), expected.size());
  for (size_t i = 0; i < records.size(); ++i) EXPECT_EQ(FormatRecordLine(records[i]), expected[i]);
}

TEST(TraceRenderTest, TimeIsExactAndTextStaysOnOneLine) {
  Record record{.session = 3,
                .sequence = 9,
                .time_us = 12345678901,
                .body = Marker{.text = std::string("a\nb\"\0c\\", 7)}};
  EXPECT_EQ(FormatRecordLine(record), R"(12345.678901 s3 #9 marker "a\nb\"\x00c\\")");
  record.body = Marker{.text = std::string(500, 'x')};
  const std::string line = FormatRecordLine(record);
  EXPECT_EQ(line.find('\n'), std::string::npos);
  EXPECT_NE(line.find("...(500 bytes)"), std::string::npos) << line;
  EXPECT_LT(line.size(), 200u);
}

TEST(TraceEncoderTest, RecordOverTheBoundIsRefusedWhole) {
  TraceEncoder encoder(100);
  std::string out = "earlier records";
  // 44 bytes of metadata plus a 56-byte message is exactly the bound.
  Record record{.direction = Direction::kProxyToClient,
                .body = Message{RawMessage('d', std::string(51, 'x'))}};
  ASSERT_TRUE(encoder.Append(record, out).ok());
  EXPECT_EQ(out.size(), 15u + 4 + 100 + 4);
  out = "earlier records";
  record.body = Message{RawMessage('d', std::string(52, 'x'))};
  absl::Status status = encoder.Append(record, out);
  EXPECT_TRUE(absl::IsResourceExhausted(status)) << status;
  EXPECT_EQ(out, "earlier records");
}

TEST(TraceEncoderTest, HeaderOverTheBoundIsRefused) {
  std::string out = "x";
  TraceHeader header;
  header.proxy_id = std::string(kHeaderBodySizeMax, 'p');
  EXPECT_TRUE(absl::IsInvalidArgument(AppendHeader(header, out)));
  EXPECT_EQ(out, "x");
  header.proxy_id = "p";
  header.record_body_size_max = kRecordMetadataSize - 1;
  EXPECT_TRUE(absl::IsInvalidArgument(AppendHeader(header, out)));
  header.record_body_size_max = kRecordBodySizeMax + 1;
  EXPECT_TRUE(absl::IsInvalidArgument(AppendHeader(header, out)));
  EXPECT_EQ(out, "x");
}

TEST(TraceEncoderTest, EveryAppendLeavesAFileThatEndsCleanly) {
  // Rotation may cut between any two Append() calls: each such prefix is a whole file.
  std::string file;
  ASSERT_TRUE(AppendHeader(testing::SampleHeader(), file).ok());
  TraceEncoder encoder(testing::SampleHeader().record_body_size_max);
  size_t count = 0;
  for (const Record& record : SampleRecords()) {
    ASSERT_TRUE(encoder.Append(record, file).ok());
    ++count;
    TraceContents contents = ReadTrace(file);
    EXPECT_TRUE(contents.status.ok()) << contents.status;
    EXPECT_EQ(contents.records.size(), count);
  }
}

using TraceEncoderDeathTest = ::testing::Test;

TEST_F(TraceEncoderDeathTest, MalformedRecordsAreOurBug) {
  std::string out;
  TraceEncoder encoder;
  Record record{.direction = Direction::kClientToProxy, .body = Message{RawMessage('Q', "")}};
  Record negative_time = record;
  negative_time.time_us = -1;
  EXPECT_DEATH((void)encoder.Append(negative_time, out), "before capture start");
  Record no_direction = record;
  no_direction.direction = Direction::kNone;
  EXPECT_DEATH((void)encoder.Append(no_direction, out), "needs a direction");
  Record unframed = record;
  unframed.body = Message{std::string("Q\0\0\0\x09xyz", 8)};  // length 9, size 8
  EXPECT_DEATH((void)encoder.Append(unframed, out), "disagrees");
  Record unknown_flag = record;
  unknown_flag.flags = 0x8000;
  EXPECT_DEATH((void)encoder.Append(unknown_flag, out), "unknown trace record flags");
  Record bad_status{.body = Snapshot{.transaction_status = 'X'}};
  EXPECT_DEATH((void)encoder.Append(bad_status, out), "transaction status");
}

}  // namespace
}  // namespace switchyard::trace
