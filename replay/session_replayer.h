// Replays one captured session on one connection, without touching it: the driver (a poll loop
// over real sockets, or the simulator) feeds it what happened with the current time and drains
// what it wants done (connect, send, cancel, close), like the core's sessions (DESIGN.md
// section 2).
//
// It logs in with the replay's credentials, brings a snapshot session up to its captured state
// (not compared), then sends each captured client message once its capture time is due and the
// replay has received as much of the answers as the captured client had (so pipelining is
// kept), compares each answer unit with the captured one, and reports divergences, errors,
// latencies and stalls to a ReplayReport. A session that waits for an answer longer than the
// stall timeout is cancelled; one that still gets no answer is closed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/base/types.h"
#include "core/protocol/framing.h"
#include "core/protocol/messages.h"
#include "replay/capture.h"
#include "replay/login.h"
#include "replay/normalize.h"
#include "replay/plan.h"
#include "replay/report.h"
#include "replay/statements.h"

namespace switchyard::replay {

// A replayed answer unit larger than this is not kept, nor compared.
inline constexpr size_t kUnitBytesMax = size_t{256} << 20;
inline constexpr int64_t kStallTimeoutMsDefault = 30'000;

struct ReplaySettings {
  std::string user;      // "" keeps each session's captured user
  std::string database;  // "" keeps each session's captured database
  std::optional<std::string> password;
  int64_t stall_timeout_us = kStallTimeoutMsDefault * 1000;
  // Set by a target that injects faults (--target sim): whether a server connection may have
  // been lost by now. An answer that then fails with 08006/08007 where the capture did not, the
  // rest of the transaction it aborted (25P02 until ROLLBACK, COMMIT answering ROLLBACK), and a
  // session the proxy ends with 08006 are counted as consequences of the fault, not as
  // divergences or errors. Unset: nothing is explained.
  std::function<bool()> connection_loss_possible;
};

struct ReplayAction {
  enum class Kind {
    kConnect,  // open the session's connection to the target
    kSend,     // write `bytes` on it
    kCancel,   // send a CancelRequest for `key` on a new connection
    kClose,    // close the session's connection; the session is finished
  };
  Kind kind = Kind::kSend;
  std::string bytes;
  pg::BackendKeyData key;
};

// The messages that bring a new connection to a snapshot's state before its session is
// replayed: its prepared statements (Parse, or the captured PREPARE), its settings
// (set_config), and its transaction (BEGIN, then a failing statement if it had failed), with the
// number of ReadyForQuery messages that answer them. Names and values holding a NUL byte cannot
// be sent and are left out.
struct SnapshotSetup {
  std::vector<std::string> messages;
  size_t ready_expected = 0;
};
SnapshotSetup BuildSnapshotSetup(const trace::Snapshot& snapshot);

// A SQL string literal for `text` (E'' when it holds a backslash).
std::string SqlLiteral(std::string_view text);

class SessionReplayer {
 public:
  // `session`, `pacer` and `report` must outlive the replayer. `scram_nonce`: random bytes for a
  // SCRAM login. `replay_start`: the instant capture time `pacer`'s origin is due.
  SessionReplayer(const CapturedSession& session, const SessionPlan& plan,
                  const ReplaySettings& settings, const Pacer& pacer, Instant replay_start,
                  std::string scram_nonce, ReplayReport& report);

  // When the session's connection is due to open.
  Instant StartDue() const;

  void Start(Instant now);
  void OnConnected(Instant now);
  void OnConnectFailed(Instant now, std::string_view why);
  void OnReceived(Instant now, std::string_view bytes);
  void OnClosed(Instant now, std::string_view why);
  // The connection to the target broke by a fault a simulated network injected (--target sim):
  // the session ends, counted as a consequence of the fault rather than as a failure.
  void OnCutByFault(Instant now, std::string_view why);
  // Sends what has become due and fires the stall timeout.
  void OnTime(Instant now);
  // The target has not taken any of the bytes waiting for it for longer than the stall timeout.
  void OnWriteStalled(Instant now);

  std::optional<ReplayAction> PollAction();
  std::optional<Instant> NextDeadline() const;
  bool finished() const { return state_ == State::kFinished; }
  uint64_t id() const { return session_.id; }

 private:
  enum class State { kIdle, kConnecting, kLoggingIn, kSetup, kRunning, kFinished };

  void TransitionTo(State next);
  void Emit(ReplayAction::Kind kind, std::string bytes = {});
  void OnMessage(Instant now, std::string_view message);
  void OnLoginMessage(Instant now, std::string_view message);
  void StartSetup(Instant now);
  void OnSetupMessage(Instant now, std::string_view message);
  void OnAnswer(Instant now, std::string_view message);
  void CompleteUnit(Instant now, char terminator);
  void CompareUnit(const AnswerUnit& captured);
  bool ExplainedByFault(const AnswerUnit& captured);
  bool LossPossible() const;
  void SkipCapturedUnit();
  void ResetReplayUnit();
  void TrySend(Instant now);
  bool StepReady(const ClientStep& step) const;
  void SendStep(Instant now, const ClientStep& step);
  void MaybeFinish();
  bool Awaiting() const;
  void Refresh(Instant now);
  void OnStall(Instant now);
  void Fail(const std::string& what, const std::string& sqlstate);
  void Finish();
  std::string Phase() const;
  void ReportCapturedLatencies();
  Instant Due(int64_t capture_time_us) const;

  const CapturedSession& session_;
  SessionPlan plan_;
  const ReplaySettings& settings_;
  const Pacer& pacer_;
  Instant replay_start_;
  ReplayReport& report_;
  State state_ = State::kIdle;
  std::deque<ReplayAction> outbox_;

  LoginClient login_;
  pg::FrameReader reader_{pg::Direction::kBackend};
  std::optional<pg::BackendKeyData> key_;
  size_t setup_ready_left_ = 0;  // ReadyForQuery messages the setup still waits for

  size_t next_step_ = 0;
  uint32_t units_done_ = 0;  // captured units answered (or skipped) so far
  bool terminate_sent_ = false;
  bool in_copy_in_ = false;  // the replay's last unit ended with CopyInResponse

  // The replay's answer unit being received: normalized messages, the statement of each result.
  std::vector<std::string> replay_unit_;
  size_t replay_unit_messages_ = 0;  // also counts messages not kept
  size_t replay_unit_bytes_ = 0;
  bool replay_unit_dropped_ = false;  // too large to keep
  bool replay_unit_cancelled_ = false;
  std::vector<std::string> replay_texts_;
  std::vector<std::string> replay_errors_;  // SQLSTATEs of the unit's errors
  char replay_status_ = 'I';                // of the unit's ReadyForQuery
  // A lost server connection aborted the replay's transaction (ExplainedByFault).
  bool fault_transaction_ = false;

  StatementTracker tracker_;
  Normalizer captured_normalizer_;
  Normalizer replay_normalizer_;

  // Stall detection.
  bool awaiting_ = false;
  Instant last_progress_;
  bool cancel_sent_ = false;
};

}  // namespace switchyard::replay
