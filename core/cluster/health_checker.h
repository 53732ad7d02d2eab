// HealthChecker: polls every node over one persistent server connection each, and reports what
// it learned as ClusterView::PollResults. Driven like a scheduling unit (Handle / PollAction /
// NextDeadline); owns no socket, clock or randomness (DESIGN.md sections 2 and 5).
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/auth/users.h"
#include "core/base/types.h"
#include "core/cluster/cluster_view.h"
#include "core/io.h"
#include "core/protocol/framing.h"
#include "core/protocol/messages.h"
#include "core/session/server_session.h"

namespace switchyard {

// The one statement a poll sends. It works on either role because PostgreSQL evaluates only the
// CASE branch taken: the recovery flag, the LSN (replayed on a replica, inserted on a primary, so
// commits made with synchronous_commit off count), and on a primary the current WAL file name,
// whose first 8 hex digits are the timeline that fences an old primary.
inline constexpr std::string_view kHealthPollQuery =
    "SELECT pg_is_in_recovery(), CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() "
    "ELSE pg_current_wal_insert_lsn() END, CASE WHEN pg_is_in_recovery() THEN NULL ELSE "
    "pg_walfile_name(pg_current_wal_insert_lsn()) END";

// What a poll's answer says, parsed from the three text columns of its DataRow.
struct HealthAnswer {
  bool in_recovery = false;
  uint64_t lsn = 0;
  uint32_t timeline = 0;
};
// Bad values are a Status (the server's bytes are untrusted), never a crash.
absl::StatusOr<HealthAnswer> ParseHealthRow(const pg::DataRow& row);

// A poll's answer is a few hundred bytes; login messages are small too.
inline constexpr size_t kHealthMessageSizeMaxDefault = size_t{1} << 20;

struct HealthConfig {
  std::vector<NodeId> nodes;
  std::string user;
  std::string database = "postgres";
  // The health user's entry in the users file (null: no password, for trust). For SCRAM the
  // entry must hold the plaintext password: there is no client whose key could be reused.
  const auth::UserSecret* secret = nullptr;
  int64_t interval_ms = 1000;
  // From a poll's start (including a connect and login it needed) to its complete answer.
  int64_t timeout_ms = 2000;
  size_t message_size_max = kHealthMessageSizeMaxDefault;
};

class HealthChecker {
 public:
  HealthChecker(HealthConfig config, Environment& env);

  // The first call starts the first round of polls, whatever the event (drivers usually send
  // TimerFired, as NextDeadline() is due at once). Expects the previous actions drained.
  void Handle(Instant now, const Event& event);
  std::optional<Action> PollAction();
  // The next interval tick or poll timeout. Before the first Handle it is the earliest Instant:
  // due at once.
  std::optional<Instant> NextDeadline() const;
  // The connections this checker owns, in node order.
  std::vector<ConnId> Conns() const;
  // Polls completed since the last call, in the order they completed. The driver applies them to
  // the ClusterView; it must call this after every Handle.
  std::vector<ClusterView::PollResult> TakeResults();
  void CheckInvariants() const;

 private:
  // One node: its connection (if any) and the poll in flight on it (if any).
  struct Probe {
    NodeId node;
    // None: no connection; the next tick opens one.
    std::optional<ServerSession> session;
    // Set while a poll is in flight: connecting, logging in, or waiting for the answer.
    std::optional<Instant> poll_began;
    // The answer so far.
    bool row_description_seen = false;
    std::optional<pg::DataRow> row;
    bool command_complete_seen = false;
  };

  void StartRound(Instant now);
  void StartPoll(Instant now, Probe& probe);
  void SendQuery(Probe& probe);
  void ExpirePolls(Instant now);

  void OnConnected(Instant now, ConnId conn);
  void OnConnectFailed(Instant now, ConnId conn, std::string_view why);
  void OnReceived(Instant now, ConnId conn, std::string_view bytes);
  void OnClosed(Instant now, ConnId conn, std::string_view why);

  void PumpLogin(Instant now, Probe& probe);
  void PumpAnswer(Instant now, Probe& probe);
  // One frame of the poll's answer; a Status means the poll failed.
  absl::Status HandleAnswerFrame(Instant now, Probe& probe, const pg::Frame& frame);
  void PumpIdle(Probe& probe);

  void Succeed(Instant now, Probe& probe, const HealthAnswer& answer);
  // Ends the poll in flight with a failure, and gives up the connection: Close it unless the
  // driver already has.
  void Fail(Instant now, Probe& probe, std::string error, bool already_closed);
  void DropConnection(Probe& probe, std::string_view why, bool already_closed);
  void FlushOutput(Probe& probe);
  Probe* FindByConn(ConnId conn);

  HealthConfig config_;
  Environment& env_;
  std::vector<Probe> probes_;  // in node order
  std::optional<Instant> next_round_;
  std::deque<Action> actions_;
  std::vector<ClusterView::PollResult> results_;
};

}  // namespace switchyard
