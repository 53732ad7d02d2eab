// Rebuilds captured client sessions from trace records (see capture.h).
#include "replay/capture.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_format.h"

namespace switchyard::replay {
namespace {

// The first answer of a login: authentication requests, a protocol version negotiation, or
// (with trust) the backend key. Anything else means the capture holds no login answers.
bool IsLoginAnswer(char type) { return type == 'R' || type == 'v' || type == 'K'; }

// An open unit to append to: the last one, unless it is complete (or there is none).
AnswerUnit& OpenUnit(CapturedSession& session) {
  if (session.units.empty() || session.units.back().complete) session.units.emplace_back();
  return session.units.back();
}

uint32_t CompleteUnits(const CapturedSession& session) {
  size_t count = session.units.size();
  if (count > 0 && !session.units.back().complete) --count;
  return static_cast<uint32_t>(count);
}

uint32_t OpenUnitMessages(const CapturedSession& session) {
  if (session.units.empty() || session.units.back().complete) return 0;
  return static_cast<uint32_t>(session.units.back().messages.size());
}

}  // namespace

void CaptureBuilder::BeginFile(std::string_view name, const trace::TraceHeader& header) {
  file_ = std::string(name);
  capture_.files.push_back(file_);
  if (!first_start_unix_us_.has_value()) first_start_unix_us_ = header.capture_start_unix_us;
  time_shift_us_ = header.capture_start_unix_us - *first_start_unix_us_;
}

void CaptureBuilder::Add(const trace::Record& record, uint64_t record_index) {
  ++capture_.records;
  auto it = live_.find(record.session);
  Building* building = it == live_.end() ? nullptr : &it->second;
  int64_t time_us = record.time_us + time_shift_us_;
  switch (record.kind()) {
    case trace::RecordKind::kRecordsDropped:
      capture_.records_dropped += std::get<trace::RecordsDropped>(record.body).count;
      return;
    case trace::RecordKind::kMarker:
      return;
    case trace::RecordKind::kSessionOpen:
      if (building != nullptr) {
        // A second open for a live id: the first session's end was lost.
        building->session.cut = true;
        Retire(*building);
      }
      Open(record, std::get<trace::SessionOpen>(record.body), nullptr, record_index);
      return;
    case trace::RecordKind::kSnapshot: {
      const auto& snapshot = std::get<trace::Snapshot>(record.body);
      if (building == nullptr) {
        Open(record, snapshot.session, &snapshot, record_index);
      } else {
        // A new file of a capture we are already reading: the session simply continues.
        building->last_sequence = std::max(building->last_sequence, record.sequence);
      }
      return;
    }
    default:
      break;
  }
  // The rest concern a session we know; records of a session whose beginning is in no file
  // given cannot be replayed.
  if (building == nullptr || !CheckSequence(*building, record)) return;
  switch (record.kind()) {
    case trace::RecordKind::kSessionClose:
      building->session.close_reason = std::get<trace::SessionClose>(record.body).reason;
      Retire(*building);
      return;
    case trace::RecordKind::kCancel:
      AddCancel(*building, time_us);
      return;
    case trace::RecordKind::kMessage:
      AddMessage(*building, record, time_us);
      return;
    default:
      return;
  }
}

Capture CaptureBuilder::Finish() && {
  // Sessions still live when the capture ended; std::map iterates by id, so this is stable.
  while (!live_.empty()) Retire(live_.begin()->second);
  std::stable_sort(capture_.sessions.begin(), capture_.sessions.end(),
                   [](const CapturedSession& a, const CapturedSession& b) {
                     if (a.start_time_us != b.start_time_us) {
                       return a.start_time_us < b.start_time_us;
                     }
                     return a.id < b.id;
                   });
  capture_.capture_start_unix_us = first_start_unix_us_.value_or(0);
  return std::move(capture_);
}

void CaptureBuilder::Open(const trace::Record& record, const trace::SessionOpen& open,
                          const trace::Snapshot* snapshot, uint64_t record_index) {
  Building building;
  building.session.id = record.session;
  building.session.open = open;
  if (snapshot != nullptr) building.session.snapshot = *snapshot;
  building.session.start_time_us = record.time_us + time_shift_us_;
  building.session.origin = absl::StrFormat("%s record %u", file_, record_index);
  building.last_sequence = record.sequence;
  building.startup_pending = snapshot == nullptr;
  live_[record.session] = std::move(building);
}

bool CaptureBuilder::CheckSequence(Building& building, const trace::Record& record) {
  // A gap means the capture dropped records of this session: what follows cannot be replayed
  // faithfully, so the session stops there (it still closes normally).
  if (record.sequence != building.last_sequence + 1) building.session.cut = true;
  building.last_sequence = std::max(building.last_sequence, record.sequence);
  return record.kind() == trace::RecordKind::kSessionClose || !building.session.cut;
}

void CaptureBuilder::AddMessage(Building& building, const trace::Record& record, int64_t time_us) {
  switch (record.direction) {
    case trace::Direction::kClientToProxy:
      AddClientMessage(building, record, time_us);
      return;
    case trace::Direction::kProxyToClient:
      AddAnswer(building, record, time_us);
      return;
    default:
      return;  // proxy<->server traffic: context only
  }
}

void CaptureBuilder::AddClientMessage(Building& building, const trace::Record& record,
                                      int64_t time_us) {
  const std::string& bytes = std::get<trace::Message>(record.body).bytes;
  // The startup family (StartupMessage, SSLRequest, ...) begins with a zero length byte: the
  // replay logs in with its own credentials, so neither it nor password messages are replayed.
  if (bytes.empty() || bytes[0] == '\0') return;
  char type = bytes[0];
  if (building.startup_pending) {
    if (type == 'p') return;
    if (!building.startup_answering) building.startup_pending = false;
  }
  CapturedSession& session = building.session;
  ClientStep step;
  step.message = bytes;
  step.time_us = time_us;
  step.units_before = CompleteUnits(session);
  step.messages_before = OpenUnitMessages(session);
  step.redacted = record.redacted();
  if (IsRequestEnd(type)) ++building.requests_sent;
  if (step.redacted) {
    // Its answer ends with the ReadyForQuery of its own request, or of the next one.
    building.redacted_requests.insert(building.requests_sent + (IsRequestEnd(type) ? 0 : 1));
  }
  session.steps.push_back(std::move(step));
}

void CaptureBuilder::AddAnswer(Building& building, const trace::Record& record, int64_t time_us) {
  const std::string& bytes = std::get<trace::Message>(record.body).bytes;
  if (bytes.empty() || bytes[0] == '\0') return;
  char type = bytes[0];
  if (building.startup_pending && !building.startup_answering) {
    building.startup_answering = IsLoginAnswer(type);
    if (!building.startup_answering) building.startup_pending = false;
  }
  if (building.startup_answering) {
    if (type == 'E') building.session.login_failed = true;
    if (type == 'S') building.session.login_parameter_messages.push_back(bytes);
    if (type == 'Z') building.startup_pending = building.startup_answering = false;
    return;
  }
  AnswerUnit& unit = OpenUnit(building.session);
  unit.messages.push_back(AnswerMessage{.bytes = bytes, .time_us = time_us});
  if (record.redacted()) unit.redacted = true;
  if (!IsUnitTerminator(type)) return;
  unit.complete = true;
  unit.request = building.ready_received + 1;
  if (type == 'Z') ++building.ready_received;
  auto& redacted = building.redacted_requests;
  if (redacted.count(unit.request) > 0) unit.redacted = true;
  // Requests answered by now can no longer match a unit.
  redacted.erase(redacted.begin(), redacted.lower_bound(unit.request));
}

void CaptureBuilder::AddCancel(Building& building, int64_t time_us) {
  CapturedSession& session = building.session;
  ClientStep step;
  step.kind = ClientStep::Kind::kCancel;
  step.time_us = time_us;
  step.units_before = CompleteUnits(session);
  step.messages_before = OpenUnitMessages(session);
  session.steps.push_back(std::move(step));
}

void CaptureBuilder::Retire(Building& building) {
  CapturedSession& session = building.session;
  if (!session.units.empty() && !session.units.back().complete &&
      session.units.back().messages.empty()) {
    session.units.pop_back();
  }
  uint64_t id = session.id;
  capture_.sessions.push_back(std::move(session));
  live_.erase(id);
}

}  // namespace switchyard::replay
