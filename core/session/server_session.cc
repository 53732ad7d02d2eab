// ServerSession: login, ReadyForQuery accounting, ParameterStatus cache, reset before reuse.
#include "core/session/server_session.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>

#include "core/base/check.h"
#include "core/base/strings.h"

namespace switchyard {
namespace {

bool IsIdentifierChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '$';
}

// Skips whitespace and SQL comments at the start of `sql`.
std::string_view SkipSpaceAndComments(std::string_view sql) {
  for (;;) {
    size_t i = 0;
    while (i < sql.size() && std::isspace(static_cast<unsigned char>(sql[i]))) ++i;
    sql.remove_prefix(i);
    if (sql.starts_with("--")) {
      size_t end = sql.find('\n');
      sql.remove_prefix(end == std::string_view::npos ? sql.size() : end + 1);
    } else if (sql.starts_with("/*")) {
      size_t end = sql.find("*/");
      sql.remove_prefix(end == std::string_view::npos ? sql.size() : end + 2);
    } else {
      return sql;
    }
  }
}

bool StartsWithKeyword(std::string_view sql, std::string_view keyword) {
  if (sql.size() < keyword.size()) return false;
  if (!EqualsIgnoreCase(sql.substr(0, keyword.size()), keyword)) return false;
  return sql.size() == keyword.size() || !IsIdentifierChar(sql[keyword.size()]);
}

std::string LoginError(std::string_view sqlstate, std::string_view message) {
  return pg::BuildError("FATAL", sqlstate, message);
}

}  // namespace

bool IsCommitStatement(std::string_view sql) {
  sql = SkipSpaceAndComments(sql);
  return StartsWithKeyword(sql, "commit") || StartsWithKeyword(sql, "end");
}

std::string_view ServerStateName(ServerSession::State state) {
  switch (state) {
    case ServerSession::State::kConnecting:
      return "connecting";
    case ServerSession::State::kStartup:
      return "startup";
    case ServerSession::State::kLogin:
      return "login";
    case ServerSession::State::kReady:
      return "ready";
    case ServerSession::State::kQuery:
      return "query";
    case ServerSession::State::kReplaying:
      return "replaying";
    case ServerSession::State::kReset:
      return "reset";
    case ServerSession::State::kBroken:
      return "broken";
  }
  return "unknown";
}

ServerSession::ServerSession(ConnId conn, PoolKey key, size_t message_size_max)
    : conn_(conn),
      key_(std::move(key)),
      state_(State::kConnecting),
      reader_(pg::Direction::kBackend, message_size_max) {}

ServerSession::ServerSession(PooledConnection pooled, size_t message_size_max)
    : conn_(pooled.conn),
      key_(std::move(pooled.key)),
      state_(State::kReady),
      reader_(pg::Direction::kBackend, message_size_max),
      parameters_(std::move(pooled.parameters)),
      backend_pid_(pooled.backend_pid),
      backend_secret_(pooled.backend_secret) {}

void ServerSession::TransitionTo(State next) {
  // The legal edges; everything may break.
  bool legal = next == State::kBroken;
  switch (state_) {
    case State::kConnecting:
      legal |= next == State::kStartup;
      break;
    case State::kStartup:
      legal |= next == State::kLogin;
      break;
    case State::kLogin:
      legal |= next == State::kReady;
      break;
    case State::kReady:
      legal |= next == State::kQuery || next == State::kReset || next == State::kReplaying;
      break;
    case State::kReplaying:
      legal |= next == State::kReady;
      break;
    case State::kQuery:
      legal |= next == State::kReady || next == State::kReset;
      break;
    case State::kReset:
      legal |= next == State::kReady;
      break;
    case State::kBroken:
      legal = false;
      break;
  }
  CHECK(legal) << "illegal server session transition " << ServerStateName(state_) << " -> "
               << ServerStateName(next);
  state_ = next;
}

void ServerSession::OnConnected(const pg::StartupMessage& startup) {
  CHECK(state_ == State::kConnecting);
  output_ += startup.Encode();
  TransitionTo(State::kStartup);
}

void ServerSession::ApplyParameterStatus(const pg::Frame& frame) {
  auto status = pg::ParameterStatus::Decode(frame.payload);
  if (!status.ok()) return;
  for (auto& [name, value] : parameters_) {
    if (name == status->name) {
      value = std::move(status->value);
      return;
    }
  }
  parameters_.emplace_back(std::move(status->name), std::move(status->value));
}

ServerSession::LoginResult ServerSession::HandleLoginFrame(const pg::Frame& frame,
                                                           const ServerCredentials& credentials,
                                                           const std::string& nonce) {
  CHECK(state_ == State::kStartup || state_ == State::kLogin);
  LoginResult result;
  auto fail = [&](std::string_view sqlstate, std::string message) {
    result.step = LoginStep::kFailed;
    result.error_for_client = LoginError(sqlstate, message);
    return result;
  };
  switch (frame.type) {
    case 'E':
      // The server refused this login (unknown database, bad role, ...): that is the client's
      // own startup failing, so the client sees the server's words.
      result.step = LoginStep::kFailed;
      result.error_for_client = std::string(frame.raw);
      return result;
    case 'S':
      ApplyParameterStatus(frame);
      return result;
    case 'K': {
      auto key = pg::BackendKeyData::Decode(frame.payload);
      if (!key.ok()) return fail("08P01", "server sent a malformed BackendKeyData");
      backend_pid_ = key->pid;
      backend_secret_ = key->secret;
      return result;
    }
    case 'N':
    case 'v':
      return result;
    case 'Z': {
      if (state_ != State::kLogin) return fail("08P01", "server sent ReadyForQuery before login");
      auto ready = pg::ReadyForQuery::Decode(frame.payload);
      if (!ready.ok()) return fail("08P01", "server sent a malformed ReadyForQuery");
      transaction_status_ = ready->status;
      TransitionTo(State::kReady);
      result.step = LoginStep::kReady;
      return result;
    }
    case 'R':
      break;
    default:
      return fail("08P01", Cat("server sent unexpected ",
                               pg::TypeName(pg::Direction::kBackend, frame.type), " during login"));
  }
  if (state_ != State::kStartup) return fail("08P01", "server repeated authentication");
  auto request = pg::Authentication::Decode(frame.payload);
  if (!request.ok()) return fail("08P01", "server sent a malformed authentication request");
  const auth::UserSecret* secret = credentials.secret;
  const bool plain = secret != nullptr && secret->kind == auth::UserSecret::Kind::kPlain;
  auto no_password = [&](std::string_view what) {
    return fail("28P01", Cat("switchyard cannot log in to the server as user \"", credentials.user,
                             "\": the server asks for ", what,
                             " and the users file has no usable password for it"));
  };
  switch (request->code) {
    case pg::Authentication::kOk:
      TransitionTo(State::kLogin);
      return result;
    case pg::Authentication::kCleartextPassword:
      if (!plain) return no_password("a cleartext password");
      output_ += pg::PasswordMessage{secret->text}.Encode();
      return result;
    case pg::Authentication::kMd5Password:
      if (secret == nullptr || secret->kind == auth::UserSecret::Kind::kScram) {
        return no_password("an MD5 password");
      }
      output_ +=
          pg::PasswordMessage{auth::Md5Response(credentials.user, secret->text, request->data)}
              .Encode();
      return result;
    case pg::Authentication::kSasl: {
      auto mechanisms = request->SaslMechanisms();
      if (std::find(mechanisms.begin(), mechanisms.end(), auth::kScramMechanism) ==
          mechanisms.end()) {
        return fail("28000", "server offers no SASL mechanism switchyard supports");
      }
      if (plain) {
        scram_.emplace(secret->text, nonce);
      } else if (secret != nullptr && secret->verifier.has_value() &&
                 credentials.scram_client_key.has_value()) {
        scram_.emplace(
            auth::ScramClient::Keys{*credentials.scram_client_key, secret->verifier->server_key},
            nonce);
      } else if (secret != nullptr && secret->kind == auth::UserSecret::Kind::kScram) {
        return fail("28P01", Cat("user \"", credentials.user,
                                 "\" has only a SCRAM verifier in the users file; switchyard can "
                                 "log in to the server for it only when the client itself "
                                 "authenticated with SCRAM-SHA-256"));
      } else {
        return no_password("a SCRAM-SHA-256 password");
      }
      output_ += pg::SaslInitialResponse{std::string(auth::kScramMechanism), scram_->ClientFirst()}
                     .Encode();
      return result;
    }
    case pg::Authentication::kSaslContinue: {
      if (!scram_) return fail("08P01", "server sent SASLContinue without SASL");
      auto final_message = scram_->HandleServerFirst(request->data);
      if (!final_message.ok()) {
        return fail("08P01", Cat("SCRAM exchange with the server failed: ",
                                 final_message.status().message()));
      }
      output_ += pg::SaslResponse{*final_message}.Encode();
      return result;
    }
    case pg::Authentication::kSaslFinal: {
      if (!scram_) return fail("08P01", "server sent SASLFinal without SASL");
      absl::Status verified = scram_->HandleServerFinal(request->data);
      if (!verified.ok()) {
        return fail("28000", Cat("server failed SCRAM verification: ", verified.message()));
      }
      return result;
    }
    default:
      return fail("28000", Cat("server asks for an authentication method switchyard "
                               "does not support (code ",
                               request->code, ")"));
  }
}

void ServerSession::NoteClientMessage(char type, std::string_view payload) {
  CHECK(state_ == State::kReady || state_ == State::kQuery);
  switch (type) {
    case 'Q': {
      auto query = pg::Query::Decode(payload);
      if (query.ok() && IsCommitStatement(query->sql)) commit_in_flight_ = true;
      ++ready_owed_;
      unsynced_ = false;
      break;
    }
    case 'S':
      ++ready_owed_;
      unsynced_ = false;
      break;
    case 'F':
      ++ready_owed_;
      break;
    case 'P': {
      auto parse = pg::Parse::Decode(payload);
      if (parse.ok() && IsCommitStatement(parse->query)) commit_in_flight_ = true;
      unsynced_ = true;
      break;
    }
    case 'B':
    case 'E':
    case 'D':
    case 'C':
    case 'H':
      unsynced_ = true;
      break;
    case 'c':
    case 'f':
      copy_in_ = false;
      break;
    default:
      break;
  }
  if (ready_owed_ > 0 && state_ == State::kReady) TransitionTo(State::kQuery);
}

bool ServerSession::NoteServerMessage(const pg::Frame& frame) {
  CHECK(state_ == State::kReady || state_ == State::kQuery);
  switch (frame.type) {
    case 'Z': {
      auto ready = pg::ReadyForQuery::Decode(frame.payload);
      if (!ready.ok() || ready_owed_ == 0) return false;
      --ready_owed_;
      transaction_status_ = ready->status;
      copy_in_ = false;
      copy_out_ = false;
      if (ready_owed_ == 0) {
        commit_in_flight_ = false;
        if (state_ == State::kQuery) TransitionTo(State::kReady);
      }
      return true;
    }
    case 'S':
      ApplyParameterStatus(frame);
      return true;
    case 'E': {
      auto error = pg::ErrorFields::Decode('E', frame.payload);
      if (!error.ok() || error->IsFatal()) return false;
      copy_in_ = false;
      copy_out_ = false;
      return true;
    }
    case 'G':
      copy_in_ = true;
      return true;
    case 'H':
      copy_out_ = true;
      return true;
    case 'W':
      copy_in_ = true;
      copy_out_ = true;
      return true;
    case 'c':
      copy_out_ = false;
      return true;
    case 'R':
    case 'K':
      return false;
    default:
      return true;
  }
}

void ServerSession::BeginReset(bool skip_discard) {
  CHECK(state_ == State::kReady || state_ == State::kQuery);
  TransitionTo(State::kReset);
  reset_discard_ = !skip_discard;
  reset_sent_ = false;
  if (copy_in_) {
    output_ += pg::CopyFail{"client disconnected"}.Encode();
    copy_in_ = false;
  }
  if (unsynced_) {
    output_ += pg::Sync{}.Encode();
    ++ready_owed_;
    unsynced_ = false;
  }
  MaybeSendResetStatements();
}

void ServerSession::MaybeSendResetStatements() {
  if (reset_sent_ || ready_owed_ > 0) return;
  reset_sent_ = true;
  if (transaction_status_ != 'I') {
    output_ += pg::Query{"ROLLBACK"}.Encode();
    ++ready_owed_;
  }
  if (reset_discard_) {
    output_ += pg::Query{"DISCARD ALL"}.Encode();
    ++ready_owed_;
  }
}

void ServerSession::BeginReplay(std::string messages, int ready_count) {
  CHECK(state_ == State::kReady);
  CHECK_GT(ready_count, 0);
  TransitionTo(State::kReplaying);
  output_ += messages;
  ready_owed_ += ready_count;
}

ServerSession::ReplayStep ServerSession::HandleReplayFrame(const pg::Frame& frame) {
  CHECK(state_ == State::kReplaying);
  switch (frame.type) {
    case 'Z': {
      auto ready = pg::ReadyForQuery::Decode(frame.payload);
      if (!ready.ok() || ready_owed_ == 0) return ReplayStep::kFailed;
      --ready_owed_;
      transaction_status_ = ready->status;
      if (ready_owed_ > 0) return ReplayStep::kContinue;
      if (transaction_status_ != 'I') return ReplayStep::kFailed;
      TransitionTo(State::kReady);
      return ReplayStep::kDone;
    }
    case 'S':
      ApplyParameterStatus(frame);
      return ReplayStep::kContinue;
    case 'E':
      // The connection would no longer hold the state the client's statements expect.
      return ReplayStep::kFailed;
    case 'R':
    case 'K':
    case 'G':
    case 'H':
    case 'W':
      return ReplayStep::kFailed;
    default:
      return ReplayStep::kContinue;
  }
}

ServerSession::ResetStep ServerSession::HandleResetFrame(const pg::Frame& frame) {
  CHECK(state_ == State::kReset);
  switch (frame.type) {
    case 'Z': {
      auto ready = pg::ReadyForQuery::Decode(frame.payload);
      if (!ready.ok() || ready_owed_ == 0) return ResetStep::kFailed;
      --ready_owed_;
      transaction_status_ = ready->status;
      copy_in_ = false;
      copy_out_ = false;
      if (ready_owed_ > 0) return ResetStep::kContinue;
      if (!reset_sent_) {
        MaybeSendResetStatements();
        if (ready_owed_ > 0) return ResetStep::kContinue;
      }
      if (transaction_status_ != 'I') return ResetStep::kFailed;
      commit_in_flight_ = false;
      TransitionTo(State::kReady);
      return ResetStep::kDone;
    }
    case 'S':
      ApplyParameterStatus(frame);
      return ResetStep::kContinue;
    case 'E': {
      auto error = pg::ErrorFields::Decode('E', frame.payload);
      if (!error.ok() || error->IsFatal()) return ResetStep::kFailed;
      // An error from the client's own cancelled work is expected; one from the reset
      // statements themselves means the connection is not in a known state.
      return reset_sent_ ? ResetStep::kFailed : ResetStep::kContinue;
    }
    case 'G':
      output_ += pg::CopyFail{"client disconnected"}.Encode();
      return ResetStep::kContinue;
    case 'R':
    case 'K':
      return ResetStep::kFailed;
    default:
      return ResetStep::kContinue;
  }
}

PooledConnection ServerSession::ToPooled(Instant now) const {
  CHECK(state_ == State::kReady);
  CHECK(ready_owed_ == 0 && transaction_status_ == 'I');
  return PooledConnection{conn_, key_, parameters_, backend_pid_, backend_secret_, now};
}

void ServerSession::CheckInvariants() const {
  CHECK_GE(ready_owed_, 0);
  if (state_ == State::kReady) CHECK_EQ(ready_owed_, 0);
  if (state_ == State::kConnecting) CHECK(output_.empty());
}

}  // namespace switchyard
