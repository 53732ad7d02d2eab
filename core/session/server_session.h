// ServerSession: one connection from the proxy to a PostgreSQL server. It logs in, caches the
// server's ParameterStatus set, counts the ReadyForQuery messages it is owed, and resets itself
// before it goes back to the pool (DESIGN.md section 4).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "core/auth/md5.h"
#include "core/auth/scram.h"
#include "core/auth/users.h"
#include "core/base/types.h"
#include "core/protocol/framing.h"
#include "core/protocol/messages.h"
#include "core/service.h"

namespace switchyard {

// What the proxy logs in to a server with.
struct ServerCredentials {
  std::string user;
  const auth::UserSecret* secret = nullptr;  // from the users file; null when none
  // ClientKey recovered from the client's own SCRAM exchange, for verifier-only entries.
  std::optional<std::string> scram_client_key;
};

class ServerSession {
 public:
  enum class State {
    kConnecting,  // TCP connect in progress
    kStartup,     // StartupMessage sent, authentication exchange
    kLogin,       // authenticated, receiving ParameterStatus/BackendKeyData until ReadyForQuery
    kReady,       // ReadyForQuery seen, nothing owed
    kQuery,       // owed one or more ReadyForQuery
    kReplaying,   // the proxy's own statements (session-state replay) in flight
    kReset,       // client gone; ROLLBACK/CopyFail/Sync then DISCARD ALL in flight
    kBroken,      // lost: closed, FATAL, bad bytes, or failed reset
  };

  // A new connection that the unit is opening.
  ServerSession(ConnId conn, PoolKey key, size_t message_size_max);
  // A pooled connection that is logged in and idle.
  ServerSession(PooledConnection pooled, size_t message_size_max);

  State state() const { return state_; }
  ConnId conn() const { return conn_; }
  const PoolKey& key() const { return key_; }
  const pg::Parameters& parameters() const { return parameters_; }
  int32_t backend_pid() const { return backend_pid_; }
  int32_t backend_secret() const { return backend_secret_; }
  char transaction_status() const { return transaction_status_; }
  int ready_owed() const { return ready_owed_; }
  bool in_copy_in() const { return copy_in_; }
  bool in_copy_out() const { return copy_out_; }
  // Messages sent since the last Sync or Query: the server will not answer them with a
  // ReadyForQuery until a Sync comes.
  bool unsynced() const { return unsynced_; }

  // Bytes to write to the server; the unit moves them into Send actions.
  std::string& output() { return output_; }
  pg::FrameReader& reader() { return reader_; }

  // --- Login ---
  void OnConnected(const pg::StartupMessage& startup);
  enum class LoginStep { kContinue, kReady, kFailed };
  struct LoginResult {
    LoginStep step = LoginStep::kContinue;
    // On kFailed: the bytes to hand the client (the server's own ErrorResponse for a startup
    // failure, or one the proxy built).
    std::string error_for_client;
  };
  // Handles one frame during kStartup/kLogin. `random` supplies a SCRAM nonce when needed.
  LoginResult HandleLoginFrame(const pg::Frame& frame, const ServerCredentials& credentials,
                               const std::string& nonce);

  // --- Query phase: the unit forwards client bytes and tells the session what they were. ---
  void NoteClientMessage(char type, std::string_view payload);
  // A frame from the server in the query phase. Returns false when the frame means the server
  // is lost (a FATAL ErrorResponse); the unit then handles the loss.
  bool NoteServerMessage(const pg::Frame& frame);
  // Whether the in-flight work includes a COMMIT (a loss then means 08007).
  bool commit_in_flight() const { return commit_in_flight_; }

  // --- Session-state replay (DESIGN.md section 4) ---
  // From kReady: sends `messages` (complete protocol messages, including their Sync or Query)
  // that owe `ready_count` ReadyForQuery. Their answers are the proxy's own, never a client's.
  void BeginReplay(std::string messages, int ready_count);
  enum class ReplayStep { kContinue, kDone, kFailed };
  // Any ErrorResponse, or ending outside an idle transaction state, fails the replay: the
  // connection no longer has a state we know, and the unit gives it up.
  ReplayStep HandleReplayFrame(const pg::Frame& frame);

  // --- Reset before reuse ---
  // Starts the reset: CopyFail if mid-COPY-IN, Sync if unsynced, ROLLBACK when in a transaction,
  // then DISCARD ALL (unless `skip_discard`, a mutant). The caller cancels a running query.
  void BeginReset(bool skip_discard);
  enum class ResetStep { kContinue, kDone, kFailed };
  ResetStep HandleResetFrame(const pg::Frame& frame);
  PooledConnection ToPooled(Instant now) const;

  void MarkBroken() { state_ = State::kBroken; }
  void CheckInvariants() const;

 private:
  void TransitionTo(State next);
  void ApplyParameterStatus(const pg::Frame& frame);
  // Sends ROLLBACK (if needed) and DISCARD ALL once nothing else is owed.
  void MaybeSendResetStatements();

  ConnId conn_;
  PoolKey key_;
  State state_;
  pg::FrameReader reader_;
  std::string output_;
  pg::Parameters parameters_;
  int32_t backend_pid_ = 0;
  int32_t backend_secret_ = 0;
  char transaction_status_ = 'I';
  int ready_owed_ = 0;
  bool unsynced_ = false;
  bool copy_in_ = false;
  bool copy_out_ = false;
  bool commit_in_flight_ = false;
  bool reset_discard_ = true;
  bool reset_sent_ = false;
  std::optional<auth::ScramClient> scram_;
};

std::string_view ServerStateName(ServerSession::State state);

// Whether `sql` starts with COMMIT or END (the statements a lost connection leaves in doubt).
bool IsCommitStatement(std::string_view sql);

}  // namespace switchyard
