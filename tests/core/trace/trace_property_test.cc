// RapidCheck properties: every record kind and the header survive encode then read unchanged;
// a random file read in random pieces yields exactly its records; and a random file cut or
// damaged anywhere yields the records before the damage and then an error at the damaged record.
#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include <algorithm>
#include <limits>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "core/base/strings.h"
#include "core/trace/encoder.h"
#include "core/trace/reader.h"
#include "tests/core/trace/trace_test_util.h"

namespace switchyard::trace {
namespace {

using testing::EncodeFile;

rc::Gen<KeyValues> Pairs() {
  return rc::gen::container<KeyValues>(
      rc::gen::pair(rc::gen::arbitrary<std::string>(), rc::gen::arbitrary<std::string>()));
}

// A typed message, or (first byte 0) an untyped startup-family packet.
rc::Gen<Message> AnyMessage() {
  return rc::gen::exec([] {
    const std::string rest = *rc::gen::arbitrary<std::string>();
    if (*rc::gen::inRange(0, 8) == 0) {
      return Message{testing::StartupPacket(*rc::gen::arbitrary<int32_t>(), rest)};
    }
    const char type = *rc::gen::distinctFrom(rc::gen::arbitrary<char>(), '\0');
    return Message{testing::RawMessage(type, rest)};
  });
}

rc::Gen<SessionOpen> AnySessionOpen() {
  return rc::gen::exec([] {
    return SessionOpen{.client_address = *rc::gen::arbitrary<std::string>(),
                       .user = *rc::gen::arbitrary<std::string>(),
                       .database = *rc::gen::arbitrary<std::string>(),
                       .startup_parameters = *Pairs()};
  });
}

rc::Gen<PreparedStatement> AnyPrepared() {
  return rc::gen::exec([] {
    return PreparedStatement{.source = *rc::gen::element(PreparedStatement::Source::kProtocol,
                                                         PreparedStatement::Source::kSql),
                             .name = *rc::gen::arbitrary<std::string>(),
                             .query = *rc::gen::arbitrary<std::string>(),
                             .parameter_types = *rc::gen::arbitrary<std::vector<uint32_t>>()};
  });
}

rc::Gen<Snapshot> AnySnapshot() {
  return rc::gen::exec([] {
    return Snapshot{
        .session = *AnySessionOpen(),
        .transaction_status = *rc::gen::element('I', 'T', 'E'),
        .prepared_statements = *rc::gen::container<std::vector<PreparedStatement>>(AnyPrepared()),
        .settings = *Pairs()};
  });
}

rc::Gen<RecordBody> BodyOfKind(RecordKind kind) {
  switch (kind) {
    case RecordKind::kMessage:
      return rc::gen::cast<RecordBody>(AnyMessage());
    case RecordKind::kSessionOpen:
      return rc::gen::cast<RecordBody>(AnySessionOpen());
    case RecordKind::kSessionClose:
      return rc::gen::map(rc::gen::arbitrary<std::string>(),
                          [](std::string reason) { return RecordBody(SessionClose{reason}); });
    case RecordKind::kCancel:
      return rc::gen::map(rc::gen::arbitrary<bool>(),
                          [](bool forwarded) { return RecordBody(Cancel{forwarded}); });
    case RecordKind::kRecordsDropped:
      return rc::gen::map(rc::gen::arbitrary<uint64_t>(),
                          [](uint64_t count) { return RecordBody(RecordsDropped{count}); });
    case RecordKind::kMarker:
      return rc::gen::map(rc::gen::arbitrary<std::string>(),
                          [](std::string text) { return RecordBody(Marker{text}); });
    case RecordKind::kSnapshot:
      return rc::gen::cast<RecordBody>(AnySnapshot());
  }
  RC_FAIL("unreachable kind");
}

rc::Gen<Record> RecordOfKind(RecordKind kind) {
  return rc::gen::exec([kind] {
    Record record;
    const uint8_t direction_min = kind == RecordKind::kMessage ? 1 : 0;
    record.direction =
        static_cast<Direction>(*rc::gen::inRange<int>(direction_min, kDirectionMax + 1));
    record.flags = *rc::gen::element(uint16_t{0}, kFlagRedacted);
    record.session = *rc::gen::arbitrary<uint64_t>();
    record.sequence = *rc::gen::arbitrary<uint64_t>();
    record.time_us = *rc::gen::inRange<int64_t>(0, std::numeric_limits<int64_t>::max());
    record.connection = *rc::gen::arbitrary<uint64_t>();
    record.node = *rc::gen::arbitrary<uint32_t>();
    record.backend_pid = *rc::gen::arbitrary<int32_t>();
    record.body = *BodyOfKind(kind);
    return record;
  });
}

rc::Gen<Record> AnyRecord() {
  return rc::gen::exec([] {
    const auto kind = static_cast<RecordKind>(*rc::gen::inRange<int>(1, kRecordKindMax + 1));
    return *RecordOfKind(kind);
  });
}

TraceHeader PropertyHeader() {
  TraceHeader header = testing::SampleHeader();
  header.record_body_size_max = kRecordBodySizeMaxDefault;
  return header;
}

void CheckRoundTrip(RecordKind kind) {
  const Record record = *RecordOfKind(kind);
  RC_ASSERT(record.kind() == kind);
  TraceContents contents = ReadTrace(EncodeFile(PropertyHeader(), {record}));
  RC_ASSERT(contents.status.ok());
  RC_ASSERT(contents.records.size() == 1u);
  RC_ASSERT(contents.records[0] == record);
}

RC_GTEST_PROP(TraceRoundTrip, Message, ()) { CheckRoundTrip(RecordKind::kMessage); }
RC_GTEST_PROP(TraceRoundTrip, SessionOpen, ()) { CheckRoundTrip(RecordKind::kSessionOpen); }
RC_GTEST_PROP(TraceRoundTrip, SessionClose, ()) { CheckRoundTrip(RecordKind::kSessionClose); }
RC_GTEST_PROP(TraceRoundTrip, Cancel, ()) { CheckRoundTrip(RecordKind::kCancel); }
RC_GTEST_PROP(TraceRoundTrip, RecordsDropped, ()) { CheckRoundTrip(RecordKind::kRecordsDropped); }
RC_GTEST_PROP(TraceRoundTrip, Marker, ()) { CheckRoundTrip(RecordKind::kMarker); }
RC_GTEST_PROP(TraceRoundTrip, Snapshot, ()) { CheckRoundTrip(RecordKind::kSnapshot); }

RC_GTEST_PROP(TraceRoundTrip, Header, ()) {
  TraceHeader header;
  header.capture_start_unix_us = *rc::gen::arbitrary<int64_t>();
  header.record_body_size_max = *rc::gen::inRange<uint32_t>(
      kRecordMetadataSize, static_cast<uint32_t>(kRecordBodySizeMax) + 1);
  header.proxy_id = *rc::gen::arbitrary<std::string>();
  header.settings = *Pairs();
  TraceContents contents = ReadTrace(EncodeFile(header, {}));
  RC_ASSERT(contents.status.ok());
  RC_ASSERT(contents.header.has_value());
  RC_ASSERT(*contents.header == header);
}

RC_GTEST_PROP(TraceStream, RecordsFedInRandomPiecesComeBackInOrder, ()) {
  const auto records = *rc::gen::container<std::vector<Record>>(AnyRecord());
  const std::string file = EncodeFile(PropertyHeader(), records);
  TraceReader reader;
  std::vector<Record> read;
  size_t fed = 0;
  while (fed < file.size()) {
    const size_t piece = *rc::gen::inRange<size_t>(1, file.size() - fed + 1);
    reader.Feed(std::string_view(file).substr(fed, piece));
    fed += piece;
    while (true) {
      absl::StatusOr<std::optional<Record>> next = reader.Next();
      RC_ASSERT(next.ok());
      if (!next->has_value()) break;
      read.push_back(**std::move(next));
    }
  }
  RC_ASSERT(reader.Finish().ok());
  RC_ASSERT(read == records);
}

// Shared by the cut and damage properties: what came back is a prefix of what was written, and
// the error names the record at `index`, which starts at `start`.
void CheckStopsAt(const TraceContents& contents, const std::vector<Record>& written, size_t index,
                  size_t start) {
  RC_ASSERT(contents.records.size() == index);
  RC_ASSERT(std::equal(contents.records.begin(), contents.records.end(), written.begin()));
  const std::string where = absl::StrFormat("record %u at byte offset %u", index, start);
  RC_ASSERT(AsView(contents.status.message()).find(where) != std::string_view::npos);
}

RC_GTEST_PROP(TraceStream, CutAnywhereYieldsThePrefixThenTruncation, ()) {
  const auto records = *rc::gen::nonEmpty(rc::gen::container<std::vector<Record>>(AnyRecord()));
  std::vector<size_t> starts;
  const std::string file = EncodeFile(PropertyHeader(), records, &starts);
  const size_t cut = *rc::gen::inRange<size_t>(starts[0], file.size());
  TraceContents contents = ReadTrace(std::string_view(file).substr(0, cut));
  size_t index = 0;
  while (starts[index + 1] <= cut) ++index;
  if (cut == starts[index]) {
    RC_ASSERT(contents.status.ok());
    RC_ASSERT(contents.records.size() == index);
    return;
  }
  RC_ASSERT(IsTruncated(contents.status));
  CheckStopsAt(contents, records, index, starts[index]);
}

RC_GTEST_PROP(TraceStream, DamageAnywhereIsReportedAtItsRecord, ()) {
  const auto records = *rc::gen::nonEmpty(rc::gen::container<std::vector<Record>>(AnyRecord()));
  std::vector<size_t> starts;
  std::string file = EncodeFile(PropertyHeader(), records, &starts);
  const size_t at = *rc::gen::inRange<size_t>(starts[0], file.size());
  const auto mask = *rc::gen::inRange<int>(1, 256);
  file[at] = static_cast<char>(file[at] ^ mask);
  TraceContents contents = ReadTrace(file);
  RC_ASSERT(!contents.status.ok());
  size_t index = 0;
  while (starts[index + 1] <= at) ++index;
  CheckStopsAt(contents, records, index, starts[index]);
}

}  // namespace
}  // namespace switchyard::trace
