// Unit: traffic capture (DESIGN.md section 6). The unit turns what its client and servers say
// into trace records: the session's opening, every message in each direction, cancels, a
// snapshot whenever a capture file begins mid-session, and the close. The call sites in unit.cc
// and unit_server.cc are one line each; everything else is here. Nothing of the login is ever
// recorded but the session-open record: no password, SASL or startup packet.
#include <algorithm>

#include "core/base/check.h"
#include "core/base/strings.h"
#include "core/trace/encoder.h"
#include "core/unit_internal.h"

namespace switchyard {
namespace {

uint32_t ReadBigEndian32(std::string_view bytes) {
  return (uint32_t{static_cast<uint8_t>(bytes[0])} << 24) |
         (uint32_t{static_cast<uint8_t>(bytes[1])} << 16) |
         (uint32_t{static_cast<uint8_t>(bytes[2])} << 8) | uint32_t{static_cast<uint8_t>(bytes[3])};
}

// Messages that are never written, whatever the settings: the startup family, password, SASL
// and GSS messages from a client, and authentication requests other than AuthenticationOk
// (salts, SASL challenges and the server's signature) to one.
bool NeverCaptured(trace::Direction direction, std::string_view raw) {
  if (raw.empty() || raw[0] == '\0') return true;
  switch (direction) {
    case trace::Direction::kClientToProxy:
    case trace::Direction::kProxyToServer:
      return raw[0] == 'p';
    case trace::Direction::kServerToProxy:
    case trace::Direction::kProxyToClient:
      return raw[0] == 'R' && raw.substr(1) != std::string_view("\0\0\0\x08\0\0\0\0", 8);
    case trace::Direction::kNone:
      break;
  }
  return true;
}

trace::PreparedStatement ToTrace(const std::string& name, const PreparedStatement& statement,
                                 Redact redact) {
  trace::PreparedStatement out;
  out.source = statement.origin == PreparedStatement::Origin::kSql
                   ? trace::PreparedStatement::Source::kSql
                   : trace::PreparedStatement::Source::kProtocol;
  out.name = name;
  out.query = redact == Redact::kAllValues ? RedactSqlLiterals(statement.text) : statement.text;
  out.parameter_types = statement.param_oids;
  return out;
}

}  // namespace

void Unit::Impl::OnCaptureChanged(const CaptureChanged& change) {
  if (!change.on) {
    TraceFlush();
    capture_.on = false;
    capture_.recording = false;
    return;
  }
  // Epochs only grow: a notice of an older file than the one this unit already writes to (the
  // driver's broadcast, overtaken by the worker's) changes nothing.
  if (capture_.on && change.epoch < capture_.epoch) return;
  const bool new_file = !capture_.on || change.epoch != capture_.epoch;
  const bool was_recording = capture_.recording;
  TraceFlush();  // what was made so far belongs to the file it was made for
  capture_.on = true;
  capture_.epoch = change.epoch;
  capture_.start = change.start;
  if (!new_file || !capture_.opened || !client_open_ || !Sampled(config_.capture, id_)) return;
  capture_.recording = true;
  // Logged in but not welcomed yet: nothing has happened a replay would need, and the welcome
  // (the login's answers) is still to come, as after a session-open.
  if (!welcomed_ && !was_recording) return RecordSessionOpen();
  // A session that began before this file did: its snapshot takes the place of session-open.
  RecordSnapshot();
}

void Unit::Impl::TraceSessionOpen() {
  capture_.opened = true;
  if (!capture_.on || !Sampled(config_.capture, id_)) return;
  capture_.recording = true;
  RecordSessionOpen();
}

void Unit::Impl::RecordSessionOpen() {
  trace::Record record = NewRecord(trace::Direction::kNone, nullptr);
  record.body = SessionOpenBody();
  EmitRecord(record);
}

trace::SessionOpen Unit::Impl::SessionOpenBody() const {
  trace::SessionOpen open;
  open.client_address = capture_.peer;
  open.user = client_.user();
  open.database = client_.database();
  // The startup packet holds no password: those come later, in messages never captured.
  open.startup_parameters = client_.startup().parameters;
  return open;
}

void Unit::Impl::RecordSnapshot() {
  trace::Record record = NewRecord(trace::Direction::kNone, nullptr);
  trace::Snapshot snapshot;
  snapshot.session = SessionOpenBody();
  snapshot.transaction_status = txn_status_;
  std::vector<std::pair<const std::string*, const PreparedStatement*>> prepared;
  for (const auto& [name, statement] : history_.CommittedPrepared()) {
    prepared.emplace_back(&name, &statement);
  }
  // In the order the client made them, which is the order a replay must make them in.
  std::sort(prepared.begin(), prepared.end(),
            [](const auto& a, const auto& b) { return a.second->seq < b.second->seq; });
  for (const auto& [name, statement] : prepared) {
    snapshot.prepared_statements.push_back(ToTrace(*name, *statement, config_.capture.redact));
    if (snapshot.prepared_statements.back().query != statement->text) {
      record.flags |= trace::kFlagRedacted;
    }
  }
  // The history keeps SQL text (SET name TO <text>); the trace holds values, as set_config
  // takes them.
  for (auto& [name, text] : history_.CommittedSettings()) {
    snapshot.settings.emplace_back(name, SettingValue(name, text));
  }
  record.body = std::move(snapshot);
  EmitRecord(record);
}

void Unit::Impl::RecordFromClient(const pg::Frame& message) {
  capture_.last_client_type = message.type;
  RecordMessage(trace::Direction::kClientToProxy, message.raw, nullptr);
}

void Unit::Impl::RecordToServer(const ServerSlot& slot) {
  const ServerSession::State state = slot.session->state();
  // The startup packet and the password or SASL messages of a login are never captured.
  if (state == ServerSession::State::kConnecting || state == ServerSession::State::kStartup ||
      state == ServerSession::State::kLogin) {
    return;
  }
  RecordMessages(trace::Direction::kProxyToServer, slot.session->output(), &slot);
}

void Unit::Impl::RecordFromServer(const ServerSlot& slot, const pg::Frame& message) {
  RecordMessage(trace::Direction::kServerToProxy, message.raw, &slot);
}

void Unit::Impl::RecordMessages(trace::Direction direction, std::string_view bytes,
                                const ServerSlot* slot) {
  // Output buffers hold whole typed messages only (the unit appends frames and encodings).
  while (bytes.size() >= 5) {
    const uint32_t length = ReadBigEndian32(bytes.substr(1, 4));
    CHECK_GE(length, 4u) << "a malformed message in an output buffer";
    CHECK_LE(length + size_t{1}, bytes.size()) << "a partial message in an output buffer";
    RecordMessage(direction, bytes.substr(0, length + 1), slot);
    bytes.remove_prefix(length + 1);
  }
  CHECK(bytes.empty()) << "a partial message in an output buffer";
}

void Unit::Impl::RecordMessage(trace::Direction direction, std::string_view raw,
                               const ServerSlot* slot) {
  if (NeverCaptured(direction, raw)) return;
  trace::Record record = NewRecord(direction, slot);
  if (config_.capture.redact == Redact::kNone) [[likely]] {
    return AppendMessage(record, raw);
  }
  std::optional<std::string> redacted = RedactMessage(config_.capture.redact, direction, raw);
  if (redacted && *redacted != raw) {
    record.flags |= trace::kFlagRedacted;
    return AppendMessage(record, *redacted);
  }
  AppendMessage(record, raw);
}

void Unit::Impl::AppendMessage(const trace::Record& metadata, std::string_view message) {
  if (AppendMessageRecord(metadata, message, config_.capture.record_body_size_max,
                          capture_.pending)) {
    ++capture_.pending_count;
  } else {
    ++capture_.pending_refused;
  }
}

void Unit::Impl::EmitRecord(const trace::Record& record) {
  const trace::TraceEncoder encoder(config_.capture.record_body_size_max);
  if (encoder.Append(record, capture_.pending).ok()) {
    ++capture_.pending_count;
  } else {
    ++capture_.pending_refused;
  }
}

void Unit::Impl::EmitTrace() {
  Emit(Trace{capture_.epoch, std::move(capture_.pending), capture_.pending_count,
             capture_.pending_refused});
  capture_.pending.clear();
  capture_.pending_count = 0;
  capture_.pending_refused = 0;
}

void Unit::Impl::RecordSessionClose(std::string_view what, std::string_view why) {
  trace::Record record = NewRecord(trace::Direction::kNone, nullptr);
  std::string reason;
  if (capture_.last_client_type == 'X') {
    reason = "client terminated";
  } else {
    reason = why.empty() ? std::string(what) : Cat(what, ": ", why);
  }
  record.body = trace::SessionClose{std::move(reason)};
  EmitRecord(record);
  capture_.recording = false;
  capture_.opened = false;
}

void Unit::Impl::RecordCancel() {
  // The same test OnCancelDelivered makes: forwarded only while a query runs on a server.
  ServerSlot* slot = inflight_.empty() ? nullptr : SlotFor(inflight_.front().node);
  const bool forwarded =
      client_open_ && slot != nullptr && slot->session->state() == ServerSession::State::kQuery;
  trace::Record record = NewRecord(trace::Direction::kNone, forwarded ? slot : nullptr);
  record.body = trace::Cancel{forwarded};
  EmitRecord(record);
}

trace::Record Unit::Impl::NewRecord(trace::Direction direction, const ServerSlot* slot) {
  trace::Record record;
  record.direction = direction;
  record.session = id_.value;
  record.sequence = capture_.sequence++;
  record.time_us = std::max<int64_t>(0, capture_.now.us - capture_.start.us);
  if (slot != nullptr) {
    record.connection = slot->session->conn().packed();
    record.node = slot->node.index;
    record.backend_pid = slot->session->backend_pid();
  } else {
    record.connection = client_.conn().packed();
  }
  return record;
}

}  // namespace switchyard
