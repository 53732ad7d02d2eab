// Shared helpers for the trace tests: sample records of every kind, whole-file encoding with the
// offset of each record, and hand framing for bodies the encoder would refuse to write.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/protocol/messages.h"
#include "core/trace/bytes.h"
#include "core/trace/crc32c.h"
#include "core/trace/encoder.h"
#include "core/trace/record.h"

namespace switchyard::trace::testing {

inline void AppendBigEndian32(std::string& out, uint32_t value) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>(value >> shift));
}

// A typed message as on the wire: type byte, length word, payload.
inline std::string RawMessage(char type, std::string_view payload) {
  std::string out(1, type);
  AppendBigEndian32(out, static_cast<uint32_t>(payload.size() + 4));
  out.append(payload);
  return out;
}

// An untyped startup-family packet: length word, code, rest.
inline std::string StartupPacket(int32_t code, std::string_view rest) {
  std::string out;
  AppendBigEndian32(out, static_cast<uint32_t>(rest.size() + 8));
  AppendBigEndian32(out, static_cast<uint32_t>(code));
  out.append(rest);
  return out;
}

inline TraceHeader SampleHeader() {
  TraceHeader header;
  header.capture_start_unix_us = 1700000000123456;
  header.record_body_size_max = 4096;
  header.proxy_id = "proxy-a";
  header.settings = {{"sample_rate", "1.0"}, {"redact", "none"}};
  return header;
}

// One record of every kind, in kind order, for session 7 (the dropped count and the marker are
// about no session).
inline std::vector<Record> SampleRecords() {
  std::vector<Record> records;
  Record open{.direction = Direction::kNone,
              .session = 7,
              .sequence = 0,
              .time_us = 10,
              .connection = 0x100000003,
              .body = {}};
  open.body = SessionOpen{.client_address = "10.0.0.9:50000",
                          .user = "alice",
                          .database = "shop",
                          .startup_parameters = {{"user", "alice"}, {"database", "shop"}}};
  records.push_back(open);
  Record query = open;
  query.direction = Direction::kClientToProxy;
  query.sequence = 1;
  query.time_us = 1000;
  query.body = Message{pg::Query{.sql = "SELECT 1"}.Encode()};
  records.push_back(query);
  Record forwarded = query;
  forwarded.direction = Direction::kProxyToServer;
  forwarded.sequence = 2;
  forwarded.node = 1;
  forwarded.backend_pid = 4242;
  forwarded.flags = kFlagRedacted;
  records.push_back(forwarded);
  Record cancel = forwarded;
  cancel.flags = 0;
  cancel.direction = Direction::kClientToProxy;
  cancel.sequence = 3;
  cancel.body = Cancel{.forwarded = true};
  records.push_back(cancel);
  records.push_back(Record{.time_us = 2000, .body = RecordsDropped{.count = 12}});
  records.push_back(Record{.time_us = 2001, .body = Marker{.text = "failover begins"}});
  Record snapshot = open;
  snapshot.sequence = 4;
  snapshot.time_us = 3000;
  snapshot.body = Snapshot{.session = std::get<SessionOpen>(open.body),
                           .transaction_status = 'T',
                           .prepared_statements = {{.source = PreparedStatement::Source::kProtocol,
                                                    .name = "s1",
                                                    .query = "SELECT $1",
                                                    .parameter_types = {23}}},
                           .settings = {{"search_path", "app"}}};
  records.push_back(snapshot);
  Record close = open;
  close.sequence = 5;
  close.time_us = 4000;
  close.body = SessionClose{.reason = "client terminated"};
  records.push_back(close);
  return records;
}

// The header, then every record; `starts` (if given) receives each record's byte offset, and
// one more entry for the end of the file.
inline std::string EncodeFile(const TraceHeader& header, const std::vector<Record>& records,
                              std::vector<size_t>* starts = nullptr) {
  std::string file;
  EXPECT_TRUE(AppendHeader(header, file).ok());
  TraceEncoder encoder(header.record_body_size_max);
  for (const Record& record : records) {
    if (starts != nullptr) starts->push_back(file.size());
    EXPECT_TRUE(encoder.Append(record, file).ok());
  }
  if (starts != nullptr) starts->push_back(file.size());
  return file;
}

// Frames a hand-built record body with a correct length word and CRC32C, as a writer with a bug
// (or a forger) would: the reader must refuse what is inside on its own merits.
inline std::string FrameBody(std::string_view body) {
  std::string out;
  bytes::Writer writer(out);
  writer.U32(static_cast<uint32_t>(body.size()));
  writer.Raw(body);
  writer.U32(Crc32c(out));
  return out;
}

// The 44 metadata bytes of a record body with the given kind, direction, flags and time.
inline std::string Metadata(uint8_t kind, uint8_t direction, uint16_t flags = 0,
                            int64_t time_us = 0) {
  std::string out;
  bytes::Writer writer(out);
  writer.U8(kind);
  writer.U8(direction);
  writer.U16(flags);
  writer.U64(7);  // session
  writer.U64(1);  // sequence
  writer.I64(time_us);
  writer.U64(0);  // connection
  writer.U32(0);  // node
  writer.I32(0);  // backend pid
  return out;
}

}  // namespace switchyard::trace::testing
