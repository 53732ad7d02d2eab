// Shared helpers for the replay tests: protocol messages in a line, and a builder of captured
// sessions that produces real trace records (encoded with trace::TraceEncoder and read back),
// so the tests go through the same path as a capture file.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/protocol/messages.h"
#include "core/trace/encoder.h"
#include "core/trace/reader.h"
#include "core/trace/record.h"
#include "replay/capture.h"

namespace switchyard::replay::testing {

inline std::string Q(std::string sql) { return pg::Query{.sql = std::move(sql)}.Encode(); }
inline std::string Z(char status = 'I') { return pg::ReadyForQuery{.status = status}.Encode(); }
inline std::string Tag(std::string tag) {
  return pg::CommandComplete{.tag = std::move(tag)}.Encode();
}
inline std::string Columns(std::vector<std::string> names, uint32_t table_oid = 0) {
  pg::RowDescription description;
  int16_t column = 1;
  for (std::string& name : names) {
    description.fields.push_back(pg::RowDescription::Field{.name = std::move(name),
                                                           .table_oid = table_oid,
                                                           .column = column++,
                                                           .type_oid = 25,
                                                           .type_size = -1,
                                                           .type_modifier = -1,
                                                           .format = 0});
  }
  return description.Encode();
}
inline std::string Row(std::vector<std::optional<std::string>> values) {
  return pg::DataRow{.values = std::move(values)}.Encode();
}
inline std::string Error(std::string sqlstate, std::string message) {
  return pg::BuildError("ERROR", sqlstate, message);
}
inline std::string AuthOk() { return pg::Authentication{.code = pg::Authentication::kOk}.Encode(); }
inline std::string Key(int32_t pid, int32_t secret) {
  return pg::BackendKeyData{.pid = pid, .secret = secret}.Encode();
}

// Records of a capture, session by session, with per-session sequence numbers; Encode() makes
// the file, Capture() reads it back through trace::ReadTrace and a CaptureBuilder.
class TraceBuilder {
 public:
  static constexpr int64_t kCaptureStartUnixUs = 1'700'000'000'000'000;

  void Open(uint64_t session, int64_t time_us, std::string user = "alice",
            std::string database = "shop") {
    trace::Record record = Base(session, time_us, trace::Direction::kNone);
    record.body = trace::SessionOpen{
        .client_address = "10.0.0.9:50000",
        .user = user,
        .database = database,
        .startup_parameters = {
            {"user", user}, {"database", database}, {"application_name", "test"}}};
    records_.push_back(std::move(record));
  }
  // A session-open, its startup packet and a trust login's answers.
  void OpenWithLogin(uint64_t session, int64_t time_us) {
    Open(session, time_us);
    pg::StartupMessage startup;
    startup.parameters = {{"user", "alice"}, {"database", "shop"}};
    Client(session, time_us, startup.Encode());
    Answer(session, time_us, AuthOk());
    Answer(session, time_us,
           pg::ParameterStatus{.name = "server_version", .value = "15.4"}.Encode());
    Answer(session, time_us, Key(4242, 99));
    Answer(session, time_us, Z());
  }
  void Snapshot(uint64_t session, int64_t time_us, trace::Snapshot snapshot) {
    trace::Record record = Base(session, time_us, trace::Direction::kNone);
    record.body = std::move(snapshot);
    records_.push_back(std::move(record));
  }
  void Client(uint64_t session, int64_t time_us, std::string message, bool redacted = false) {
    Message(session, time_us, trace::Direction::kClientToProxy, std::move(message), redacted);
  }
  void Answer(uint64_t session, int64_t time_us, std::string message) {
    Message(session, time_us, trace::Direction::kProxyToClient, std::move(message), false);
  }
  void Message(uint64_t session, int64_t time_us, trace::Direction direction, std::string message,
               bool redacted) {
    trace::Record record = Base(session, time_us, direction);
    record.flags = redacted ? trace::kFlagRedacted : 0;
    record.body = trace::Message{std::move(message)};
    records_.push_back(std::move(record));
  }
  void Cancel(uint64_t session, int64_t time_us) {
    trace::Record record = Base(session, time_us, trace::Direction::kClientToProxy);
    record.body = trace::Cancel{.forwarded = true};
    records_.push_back(std::move(record));
  }
  void Close(uint64_t session, int64_t time_us, std::string reason = "client terminated") {
    trace::Record record = Base(session, time_us, trace::Direction::kNone);
    record.body = trace::SessionClose{.reason = std::move(reason)};
    records_.push_back(std::move(record));
  }
  // Skips a sequence number of `session`, as a dropped record would.
  void Drop(uint64_t session) { ++sequence_[session]; }

  std::string Encode(int64_t capture_start_unix_us = kCaptureStartUnixUs) const {
    trace::TraceHeader header;
    header.capture_start_unix_us = capture_start_unix_us;
    header.record_body_size_max = 1 << 20;
    header.proxy_id = "test";
    std::string out;
    EXPECT_TRUE(trace::AppendHeader(header, out).ok());
    trace::TraceEncoder encoder(header.record_body_size_max);
    for (const trace::Record& record : records_) EXPECT_TRUE(encoder.Append(record, out).ok());
    return out;
  }

  // The capture as the replay sees it, read back from the encoded file.
  replay::Capture Capture() const {
    trace::TraceContents contents = trace::ReadTrace(Encode());
    EXPECT_TRUE(contents.status.ok()) << contents.status;
    CaptureBuilder builder;
    builder.BeginFile("test.syt", *contents.header);
    for (size_t i = 0; i < contents.records.size(); ++i) builder.Add(contents.records[i], i);
    return std::move(builder).Finish();
  }

  std::vector<trace::Record>& records() { return records_; }

 private:
  trace::Record Base(uint64_t session, int64_t time_us, trace::Direction direction) {
    trace::Record record;
    record.direction = direction;
    record.session = session;
    record.sequence = sequence_[session]++;
    record.time_us = time_us;
    record.connection = session;
    return record;
  }

  std::vector<trace::Record> records_;
  std::map<uint64_t, uint64_t> sequence_;
};

}  // namespace switchyard::replay::testing
