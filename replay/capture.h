// The captured client sessions of a trace, rebuilt from its records: for each session how it
// began (session-open or snapshot), the messages its client sent with their capture times and
// what the client had received before each, and the answers it got, cut into units at every
// point where the server waited for the client. Pure: records in, sessions out (the file
// reading is in replay/trace_files.h). Both `replay` targets (a real server, the simulator)
// start from this.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "core/trace/record.h"

namespace switchyard::replay {

// One message the captured client sent, with what it had received before sending it: the
// replay sends it once it has received as much (so a client that pipelined is replayed
// pipelined, and one that waited is replayed waiting).
struct ClientStep {
  enum class Kind { kMessage, kCancel };
  Kind kind = Kind::kMessage;
  std::string message;  // the typed message as on the wire (empty for kCancel)
  int64_t time_us = 0;  // capture time, since the first file's capture start
  // Answer units the capture had completed before this message, and messages of the next one.
  uint32_t units_before = 0;
  uint32_t messages_before = 0;
  bool redacted = false;
};

struct AnswerMessage {
  std::string bytes;  // the typed message as on the wire
  int64_t time_us = 0;
};

// The answers between two points where the server waits for the client: a unit ends with
// ReadyForQuery ('Z'), CopyInResponse ('G') or CopyBothResponse ('W'). The last unit of a
// session may be incomplete (the capture ended, or the server closed the connection).
struct AnswerUnit {
  std::vector<AnswerMessage> messages;
  bool complete = false;
  // A redacted message went into it, or came out of it: the replay does not compare it.
  bool redacted = false;
  // 1-based index of the ReadyForQuery that ends the request this unit answers; a unit that
  // ends with CopyInResponse shares it with the unit that follows. Used to cut windows.
  uint32_t request = 0;

  char terminator() const { return complete ? messages.back().bytes[0] : '\0'; }
};

struct CapturedSession {
  uint64_t id = 0;
  // The session-open record, or the session part of the snapshot it began from.
  trace::SessionOpen open;
  // Set when the session was already live when its first file began: the replay brings a new
  // connection to this state (prepared statements, SETs, transaction) before its first step.
  std::optional<trace::Snapshot> snapshot;
  int64_t start_time_us = 0;
  std::vector<ClientStep> steps;
  std::vector<AnswerUnit> units;
  // The capture lost records of this session (a sequence gap): steps and units stop there.
  bool cut = false;
  // The captured login failed: there is nothing to replay.
  bool login_failed = false;
  std::optional<std::string> close_reason;
  // The ParameterStatus messages of the captured login, as sent (--target sim's trace-backed
  // servers log the proxy in with them).
  std::vector<std::string> login_parameter_messages;
  std::string origin;  // "FILE record N", where the session began, for the report
};

struct Capture {
  int64_t capture_start_unix_us = 0;      // the first file's
  std::vector<CapturedSession> sessions;  // by start time, then id
  uint64_t records = 0;
  uint64_t records_dropped = 0;  // as records-dropped records said
  std::vector<std::string> files;
};

// Rebuilds sessions from records fed in file order. Records of other directions (proxy<->server)
// and markers are context only.
class CaptureBuilder {
 public:
  // Starts the next file of the capture. Its record times are moved onto the first file's
  // capture start, so files of one rotated capture (or of several) share one timeline.
  void BeginFile(std::string_view name, const trace::TraceHeader& header);
  void Add(const trace::Record& record, uint64_t record_index);
  Capture Finish() &&;

 private:
  struct Building {
    CapturedSession session;
    uint64_t last_sequence = 0;
    bool startup_pending = false;          // began with session-open: login answers may follow
    bool startup_answering = false;        // the login answers are being captured
    uint32_t ready_received = 0;           // ReadyForQuery messages in completed units
    uint32_t requests_sent = 0;            // Query, Sync and FunctionCall messages sent
    std::set<uint32_t> redacted_requests;  // requests whose answers are not compared
    bool closed = false;
  };

  void Open(const trace::Record& record, const trace::SessionOpen& open,
            const trace::Snapshot* snapshot, uint64_t record_index);
  void AddMessage(Building& building, const trace::Record& record, int64_t time_us);
  void AddClientMessage(Building& building, const trace::Record& record, int64_t time_us);
  void AddAnswer(Building& building, const trace::Record& record, int64_t time_us);
  void AddCancel(Building& building, int64_t time_us);
  bool CheckSequence(Building& building, const trace::Record& record);
  void Retire(Building& building);

  std::string file_;
  int64_t time_shift_us_ = 0;  // added to this file's record times
  std::optional<int64_t> first_start_unix_us_;
  std::map<uint64_t, Building> live_;  // by session id
  Capture capture_;
};

// Whether a unit terminator type (ReadyForQuery, CopyInResponse, CopyBothResponse).
inline bool IsUnitTerminator(char type) { return type == 'Z' || type == 'G' || type == 'W'; }

// Whether a client message makes the server answer with a ReadyForQuery of its own.
inline bool IsRequestEnd(char type) { return type == 'Q' || type == 'S' || type == 'F'; }

}  // namespace switchyard::replay
