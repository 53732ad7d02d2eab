// The reader against damaged input: a sample file cut at every byte and flipped at every bit,
// the version rule, the bounds on every length (checked before anything is allocated), and
// bodies that pass their CRC but break the format.
#include "core/trace/reader.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "core/base/strings.h"
#include "core/trace/bytes.h"
#include "core/trace/crc32c.h"
#include "core/trace/encoder.h"
#include "tests/core/trace/trace_test_util.h"

namespace switchyard::trace {
namespace {

using testing::EncodeFile;
using testing::FrameBody;
using testing::Metadata;
using testing::SampleHeader;
using testing::SampleRecords;

std::string HeaderBytes(const TraceHeader& header = SampleHeader()) {
  std::string out;
  EXPECT_TRUE(AppendHeader(header, out).ok());
  return out;
}

// Rewrites the header's version word and, if asked, its CRC so that only the version differs.
std::string WithVersion(std::string file, uint32_t version, bool fix_crc) {
  const size_t header_size = HeaderBytes().size();
  bytes::StoreU32(file, 8, version);
  if (fix_crc) {
    bytes::StoreU32(file, header_size - 4,
                    Crc32c(std::string_view(file).substr(0, header_size - 4)));
  }
  return file;
}

std::string RecordAt(size_t index, size_t offset) {
  return absl::StrFormat("record %u at byte offset %u", index, offset);
}

bool Contains(const absl::Status& status, std::string_view text) {
  return AsView(status.message()).find(text) != std::string_view::npos;
}

TEST(TraceReaderTest, ReadsBackTheHeaderAndEveryRecord) {
  TraceContents contents = ReadTrace(EncodeFile(SampleHeader(), SampleRecords()));
  ASSERT_TRUE(contents.status.ok()) << contents.status;
  ASSERT_TRUE(contents.header.has_value());
  EXPECT_EQ(*contents.header, SampleHeader());
  EXPECT_EQ(contents.records, SampleRecords());
}

TEST(TraceReaderTest, FedOneByteAtATime) {
  std::vector<size_t> starts;
  const std::string file = EncodeFile(SampleHeader(), SampleRecords(), &starts);
  TraceReader reader;
  std::vector<Record> records;
  for (size_t i = 0; i < file.size(); ++i) {
    reader.Feed(file.substr(i, 1));
    absl::StatusOr<std::optional<Record>> next = reader.Next();
    ASSERT_TRUE(next.ok()) << next.status();
    // The header is known exactly when its last byte has arrived.
    EXPECT_EQ(reader.header().has_value(), i + 1 >= starts[0]) << i;
    if (next->has_value()) {
      EXPECT_EQ(i + 1, starts[records.size() + 1]) << "record complete only at its last byte";
      records.push_back(**next);
    }
  }
  EXPECT_TRUE(reader.Finish().ok());
  EXPECT_EQ(records, SampleRecords());
  EXPECT_EQ(reader.offset(), file.size());
}

TEST(TraceReaderTest, TruncationAtEveryByte) {
  std::vector<size_t> starts;
  const std::string file = EncodeFile(SampleHeader(), SampleRecords(), &starts);
  const std::vector<Record> written = SampleRecords();
  for (size_t cut = 0; cut <= file.size(); ++cut) {
    SCOPED_TRACE(cut);
    TraceContents contents = ReadTrace(std::string_view(file).substr(0, cut));
    if (cut < starts[0]) {
      EXPECT_TRUE(IsTruncated(contents.status)) << contents.status;
      EXPECT_TRUE(Contains(contents.status, cut == 0 ? "empty" : "header")) << contents.status;
      EXPECT_FALSE(contents.header.has_value());
      EXPECT_TRUE(contents.records.empty());
      continue;
    }
    size_t complete = 0;
    while (starts[complete + 1] <= cut) ++complete;  // starts has one entry past the last record
    EXPECT_EQ(contents.records, std::vector<Record>(written.begin(), written.begin() + complete));
    if (cut == starts[complete]) {
      // Between two records: a shorter but whole file, as rotation would leave it.
      EXPECT_TRUE(contents.status.ok()) << contents.status;
    } else {
      EXPECT_TRUE(IsTruncated(contents.status)) << contents.status;
      EXPECT_TRUE(Contains(contents.status, RecordAt(complete, starts[complete])))
          << contents.status;
    }
  }
}

TEST(TraceReaderTest, CorruptionOfEveryBitAndByteIsReportedAtItsRecord) {
  std::vector<size_t> starts;
  const std::string file = EncodeFile(SampleHeader(), SampleRecords(), &starts);
  const std::vector<Record> written = SampleRecords();
  const std::vector<uint8_t> masks = {0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80, 0xff};
  for (size_t at = 0; at < file.size(); ++at) {
    for (uint8_t mask : masks) {
      SCOPED_TRACE(absl::StrFormat("byte %u mask 0x%02x", at, mask));
      std::string damaged = file;
      damaged[at] = static_cast<char>(damaged[at] ^ mask);
      TraceContents contents = ReadTrace(damaged);
      ASSERT_FALSE(contents.status.ok());
      if (at < starts[0]) {
        EXPECT_FALSE(contents.header.has_value());
        EXPECT_TRUE(contents.records.empty());
        continue;
      }
      size_t index = 0;
      while (starts[index + 1] <= at) ++index;
      // Every record before the damaged one comes back as written, and nothing after it. A
      // damaged length word that points past the end reads as truncation at that same record.
      EXPECT_EQ(contents.records, std::vector<Record>(written.begin(), written.begin() + index));
      EXPECT_TRUE(absl::IsDataLoss(contents.status) || IsTruncated(contents.status))
          << contents.status;
      EXPECT_TRUE(Contains(contents.status, RecordAt(index, starts[index]))) << contents.status;
    }
  }
}

TEST(TraceReaderTest, ErrorsAreStickyAndNamedByPosition) {
  std::vector<size_t> starts;
  std::string file = EncodeFile(SampleHeader(), SampleRecords(), &starts);
  file[starts[2] + 10] ^= 0x20;
  TraceReader reader;
  reader.Feed(file);
  ASSERT_TRUE(reader.Next().ok());
  ASSERT_TRUE(reader.Next().ok());
  absl::StatusOr<std::optional<Record>> third = reader.Next();
  ASSERT_FALSE(third.ok());
  EXPECT_TRUE(absl::IsDataLoss(third.status()));
  EXPECT_TRUE(Contains(third.status(), "CRC32C mismatch")) << third.status();
  EXPECT_EQ(reader.records_read(), 2u);
  EXPECT_EQ(reader.offset(), starts[2]);
  reader.Feed(file);
  EXPECT_EQ(reader.Next().status(), third.status());
  EXPECT_EQ(reader.Finish(), third.status());
}

TEST(TraceVersionTest, NewerVersionIsRefusedWithAnUpgradeHint) {
  const std::string file = EncodeFile(SampleHeader(), SampleRecords());
  TraceContents contents = ReadTrace(WithVersion(file, 2, /*fix_crc=*/true));
  EXPECT_TRUE(absl::IsFailedPrecondition(contents.status)) << contents.status;
  EXPECT_EQ(contents.status.message(),
            "trace format version 2 is newer than this switchyard understands (1); upgrade "
            "switchyard");
  EXPECT_TRUE(contents.records.empty());
}

TEST(TraceVersionTest, NewerVersionWithALargerHeaderIsStillRefusedAsNewer) {
  std::string file = WithVersion(HeaderBytes(), 7, /*fix_crc=*/false);
  bytes::StoreU32(file, 12, 1u << 20);  // beyond version 1's header bound
  TraceContents contents = ReadTrace(file.substr(0, kHeaderPrefixSize));
  EXPECT_TRUE(absl::IsFailedPrecondition(contents.status)) << contents.status;
  EXPECT_TRUE(Contains(contents.status, "version 7 is newer")) << contents.status;
}

TEST(TraceVersionTest, DamagedVersionWordIsDamageNotNews) {
  const std::string file = EncodeFile(SampleHeader(), SampleRecords());
  TraceContents contents = ReadTrace(WithVersion(file, 2, /*fix_crc=*/false));
  EXPECT_TRUE(absl::IsDataLoss(contents.status)) << contents.status;
  contents = ReadTrace(WithVersion(file, 0, /*fix_crc=*/true));
  EXPECT_TRUE(absl::IsDataLoss(contents.status)) << contents.status;
  EXPECT_TRUE(Contains(contents.status, "format version 0")) << contents.status;
  contents = ReadTrace(WithVersion(file, 1, /*fix_crc=*/true));
  EXPECT_TRUE(contents.status.ok()) << contents.status;
  EXPECT_EQ(contents.header->version, 1u);
}

TEST(TraceBoundsTest, HugeRecordLengthIsRefusedFromItsLengthWordAlone) {
  const std::string header = HeaderBytes();
  for (uint32_t length :
       {0xFFFFFFFFu, uint32_t{kRecordBodySizeMax} + 1, SampleHeader().record_body_size_max + 1,
        uint32_t{kRecordMetadataSize} - 1, 0u}) {
    SCOPED_TRACE(length);
    std::string file = header;
    bytes::Writer(file).U32(length);
    TraceReader reader;
    reader.Feed(file);  // no body follows: the reader must not wait for (or reserve) one
    absl::StatusOr<std::optional<Record>> next = reader.Next();
    ASSERT_FALSE(next.ok());
    EXPECT_TRUE(absl::IsDataLoss(next.status())) << next.status();
    EXPECT_TRUE(Contains(next.status(), RecordAt(0, header.size()))) << next.status();
    EXPECT_TRUE(Contains(next.status(), "outside")) << next.status();
  }
}

TEST(TraceBoundsTest, LengthAtTheBoundWaitsForTheRecord) {
  std::string file = HeaderBytes();
  bytes::Writer(file).U32(SampleHeader().record_body_size_max);
  TraceReader reader;
  reader.Feed(file);
  absl::StatusOr<std::optional<Record>> next = reader.Next();
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_FALSE(next->has_value());
  absl::Status end = reader.Finish();
  EXPECT_TRUE(IsTruncated(end)) << end;
  EXPECT_TRUE(Contains(end, "4 of 4104 bytes present")) << end;
}

TEST(TraceBoundsTest, HugeHeaderSizeIsRefusedFromTheHeaderPrefix) {
  std::string prefix = HeaderBytes().substr(0, kHeaderPrefixSize);
  bytes::StoreU32(prefix, 12, 0xFFFFFFFF);
  TraceReader reader;
  reader.Feed(prefix);
  absl::StatusOr<std::optional<Record>> next = reader.Next();
  ASSERT_FALSE(next.ok());
  EXPECT_TRUE(absl::IsDataLoss(next.status())) << next.status();
  EXPECT_TRUE(Contains(next.status(), "body size 4294967295 is outside")) << next.status();
}

// A header whose CRC is right but whose record bound exceeds the format's.
TEST(TraceBoundsTest, HeaderCannotRaiseTheRecordBoundPastTheFormats) {
  std::string file = HeaderBytes();
  bytes::StoreU32(file, kHeaderPrefixSize + 8, uint32_t{kRecordBodySizeMax} + 1);
  bytes::StoreU32(file, file.size() - 4, Crc32c(std::string_view(file).substr(0, file.size() - 4)));
  TraceContents contents = ReadTrace(file);
  EXPECT_TRUE(absl::IsDataLoss(contents.status)) << contents.status;
  EXPECT_TRUE(Contains(contents.status, "record size bound")) << contents.status;
}

// Counts and string lengths inside a body that passes its CRC are bounded by the bytes left
// before anything is reserved (the sanitized build would abort on a 4-billion-entry reserve).
TEST(TraceBoundsTest, HugeCountsInsideAValidRecordAreRefusedBeforeAllocation) {
  std::string huge_count = Metadata(2, 0);
  bytes::Writer writer(huge_count);
  writer.String("addr");
  writer.String("user");
  writer.String("db");
  writer.U32(0xFFFFFFFF);  // startup parameter count
  std::string huge_string = Metadata(6, 0);
  bytes::Writer(huge_string).U32(0xFFFFFFF0);  // marker text length
  std::string huge_oids = Metadata(7, 0);
  bytes::Writer oids(huge_oids);
  for (int i = 0; i < 3; ++i) oids.String("");
  oids.U32(0);   // startup parameters
  oids.U8('I');  // transaction status
  oids.U32(1);   // one prepared statement
  oids.U8(0);    // protocol Parse
  oids.String("s");
  oids.String("q");
  oids.U32(0x40000000);  // parameter type OIDs
  for (const auto& [body, why] : std::vector<std::pair<std::string, std::string>>{
           {huge_count, "startup parameter count 4294967295"},
           {huge_string, "marker text needs 4294967280 bytes"},
           {huge_oids, "parameter type count 1073741824"}}) {
    TraceContents contents = ReadTrace(HeaderBytes() + FrameBody(body));
    EXPECT_TRUE(absl::IsDataLoss(contents.status)) << contents.status;
    EXPECT_TRUE(Contains(contents.status, why)) << contents.status;
  }
}

TEST(TraceMalformedTest, BodiesThatPassTheirCrcButBreakTheFormat) {
  const std::string query = testing::RawMessage('Q', std::string("x\0", 2));
  const struct {
    std::string body;
    std::string why;
  } cases[] = {
      {Metadata(0, 0), "unknown kind 0"},
      {Metadata(8, 0), "unknown kind 8"},
      {Metadata(6, 5) + std::string(4, '\0'), "unknown direction 5"},
      {Metadata(6, 0, 0x0002) + std::string(4, '\0'), "unknown flags 0x0002"},
      {Metadata(6, 0, 0, -1) + std::string(4, '\0'), "negative time"},
      {Metadata(1, 0) + query, "no direction"},
      {Metadata(1, 1) + query.substr(0, query.size() - 1), "disagrees"},
      {Metadata(1, 1), "message is empty"},
      {Metadata(6, 0) + std::string(4, '\0') + "!", "1 trailing bytes"},
      {Metadata(4, 1) + std::string(1, '\2'), "forwarded is 2"},
      {Metadata(3, 0) + std::string(2, '\0'), "reason needs 4 bytes, 2 left"},
      {Metadata(7, 0) + std::string(16, '\0') + "X", "transaction status 0x58"},
      {Metadata(7, 0) + std::string(16, '\0') + "I" + std::string("\1\0\0\0\2", 5) +
           std::string(12, '\0'),
       "unknown prepared statement source 2"},
  };
  const size_t header_size = HeaderBytes().size();
  for (const auto& c : cases) {
    SCOPED_TRACE(c.why);
    TraceContents contents = ReadTrace(HeaderBytes() + FrameBody(c.body));
    EXPECT_TRUE(absl::IsDataLoss(contents.status)) << contents.status;
    EXPECT_TRUE(Contains(contents.status, RecordAt(0, header_size))) << contents.status;
    EXPECT_TRUE(Contains(contents.status, c.why)) << contents.status;
    EXPECT_TRUE(contents.records.empty());
  }
}

TEST(TraceReaderTest, NotATraceIsSaidSoAtOnce) {
  TraceReader reader;
  reader.Feed("PGDMP");
  absl::StatusOr<std::optional<Record>> next = reader.Next();
  EXPECT_TRUE(absl::IsInvalidArgument(next.status())) << next.status();
  EXPECT_TRUE(Contains(next.status(), "not a switchyard trace file")) << next.status();
}

TEST(TraceReaderTest, ShortInputsAreTruncation) {
  EXPECT_EQ(ReadTrace("").status.message(), "trace truncated: the file is empty");
  EXPECT_EQ(ReadTrace(kMagic.substr(0, 3)).status.message(),
            "trace truncated inside the file header: 3 bytes present, 16 needed");
  const std::string header = HeaderBytes();
  EXPECT_EQ(ReadTrace(std::string_view(header).substr(0, 20)).status.message(),
            absl::StrFormat("trace truncated inside the file header: 20 bytes present, %u needed",
                            header.size()));
  EXPECT_EQ(ReadTrace(header + "\1\2").status.message(),
            absl::StrFormat("trace truncated: record 0 at byte offset %u is incomplete (2 of its "
                            "4 length bytes present)",
                            header.size()));
}

}  // namespace
}  // namespace switchyard::trace
