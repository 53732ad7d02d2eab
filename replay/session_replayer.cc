// Replays one captured session (see session_replayer.h).
#include "replay/session_replayer.h"

#include <algorithm>
#include <cctype>
#include <utility>

#include "absl/strings/str_format.h"
#include "core/base/check.h"
#include "replay/compare.h"

namespace switchyard::replay {
namespace {

constexpr std::string_view kCopyRefusal =
    "switchyard replay: the captured statement did not start COPY FROM STDIN";
constexpr std::string_view kFailedTransaction =
    "DO $$BEGIN RAISE EXCEPTION 'switchyard replay: the captured transaction had already "
    "failed'; END$$";

bool HasNul(std::string_view text) { return text.find('\0') != std::string_view::npos; }

bool IsConnectionLoss(std::string_view sqlstate) {
  return sqlstate == "08006" || sqlstate == "08007";
}

// Whether the captured unit holds an error with `sqlstate`.
bool CapturedError(const AnswerUnit& unit, std::string_view sqlstate) {
  for (const AnswerMessage& message : unit.messages) {
    if (message.bytes[0] != 'E') continue;
    auto fields = pg::ErrorFields::Decode('E', Payload(message.bytes));
    if (fields.ok() && fields->sqlstate() == sqlstate) return true;
  }
  return false;
}

// Whether a captured PREPARE's text is the whole statement rather than its body.
bool IsPrepareStatement(std::string_view query) {
  size_t begin = query.find_first_not_of(" \t\r\n");
  if (begin == std::string_view::npos || query.size() - begin < 7) return false;
  std::string word(query.substr(begin, 7));
  for (char& c : word) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return word == "PREPARE";
}

LoginSettings MakeLoginSettings(const CapturedSession& session, const ReplaySettings& settings) {
  LoginSettings login;
  login.user = settings.user.empty() ? session.open.user : settings.user;
  login.database = settings.database.empty() ? session.open.database : settings.database;
  login.password = settings.password;
  for (const auto& [name, value] : session.open.startup_parameters) {
    if (!HasNul(name) && !HasNul(value)) login.parameters.emplace_back(name, value);
  }
  return login;
}

}  // namespace

std::string SqlLiteral(std::string_view text) {
  bool backslash = text.find('\\') != std::string_view::npos;
  std::string out = backslash ? "E'" : "'";
  for (char c : text) {
    if (c == '\'')
      out += "''";
    else if (c == '\\')
      out += "\\\\";
    else
      out.push_back(c);
  }
  return out + "'";
}

SnapshotSetup BuildSnapshotSetup(const trace::Snapshot& snapshot) {
  SnapshotSetup setup;
  // Protocol-level Parses first, closed by their Sync: an error in one makes the server skip to
  // the Sync, which must not swallow the SQL statements that follow.
  for (const trace::PreparedStatement& statement : snapshot.prepared_statements) {
    if (HasNul(statement.name) || HasNul(statement.query)) continue;
    if (statement.source == trace::PreparedStatement::Source::kSql &&
        IsPrepareStatement(statement.query)) {
      continue;
    }
    // Protocol-level and SQL prepared statements share one namespace on the server.
    setup.messages.push_back(pg::Parse{.name = statement.name,
                                       .query = statement.query,
                                       .parameter_types = statement.parameter_types}
                                 .Encode());
  }
  if (!setup.messages.empty()) {
    setup.messages.push_back(pg::Sync{}.Encode());
    ++setup.ready_expected;
  }
  for (const trace::PreparedStatement& statement : snapshot.prepared_statements) {
    if (HasNul(statement.query) || statement.source != trace::PreparedStatement::Source::kSql ||
        !IsPrepareStatement(statement.query)) {
      continue;
    }
    setup.messages.push_back(pg::Query{.sql = statement.query}.Encode());
    ++setup.ready_expected;
  }
  for (const auto& [name, value] : snapshot.settings) {
    if (HasNul(name) || HasNul(value)) continue;
    // set_config parses the value as the setting's own syntax (lists included), as SET does.
    std::string sql = absl::StrFormat("SELECT pg_catalog.set_config(%s, %s, false)",
                                      SqlLiteral(name), SqlLiteral(value));
    setup.messages.push_back(pg::Query{.sql = sql}.Encode());
    ++setup.ready_expected;
  }
  if (snapshot.transaction_status == 'T' || snapshot.transaction_status == 'E') {
    setup.messages.push_back(pg::Query{.sql = "BEGIN"}.Encode());
    ++setup.ready_expected;
  }
  if (snapshot.transaction_status == 'E') {
    setup.messages.push_back(pg::Query{.sql = std::string(kFailedTransaction)}.Encode());
    ++setup.ready_expected;
  }
  return setup;
}

SessionReplayer::SessionReplayer(const CapturedSession& session, const SessionPlan& plan,
                                 const ReplaySettings& settings, const Pacer& pacer,
                                 Instant replay_start, std::string scram_nonce,
                                 ReplayReport& report)
    : session_(session),
      plan_(plan),
      settings_(settings),
      pacer_(pacer),
      replay_start_(replay_start),
      report_(report),
      login_(MakeLoginSettings(session, settings), std::move(scram_nonce)) {
  CHECK(plan_.replay) << "session " << session_.id << " is not to be replayed";
  CHECK_LE(plan_.end_step, session_.steps.size());
  CHECK_LE(plan_.end_unit, session_.units.size());
}

Instant SessionReplayer::StartDue() const { return Due(plan_.start_time_us); }

Instant SessionReplayer::Due(int64_t capture_time_us) const {
  return replay_start_ + pacer_.DueOffsetUs(capture_time_us);
}

void SessionReplayer::TransitionTo(State next) {
  bool legal =
      next == State::kFinished || (state_ == State::kIdle && next == State::kConnecting) ||
      (state_ == State::kConnecting && next == State::kLoggingIn) ||
      (state_ == State::kLoggingIn && (next == State::kSetup || next == State::kRunning)) ||
      (state_ == State::kSetup && next == State::kRunning);
  CHECK(legal) << "session " << session_.id << ": illegal transition " << static_cast<int>(state_)
               << " -> " << static_cast<int>(next);
  state_ = next;
}

void SessionReplayer::Emit(ReplayAction::Kind kind, std::string bytes) {
  ReplayAction action;
  action.kind = kind;
  action.bytes = std::move(bytes);
  outbox_.push_back(std::move(action));
}

std::optional<ReplayAction> SessionReplayer::PollAction() {
  if (outbox_.empty()) return std::nullopt;
  ReplayAction action = std::move(outbox_.front());
  outbox_.pop_front();
  return action;
}

void SessionReplayer::Start(Instant now) {
  CHECK(state_ == State::kIdle) << "session " << session_.id << " started twice";
  report_.AddSessionReplayed();
  ReportCapturedLatencies();
  // The normalizer follows row descriptions from the start of the session.
  for (uint32_t u = 0; u < plan_.first_unit; ++u) {
    for (const AnswerMessage& message : session_.units[u].messages) {
      captured_normalizer_.Normalize(message.bytes);
    }
  }
  units_done_ = plan_.first_unit;
  next_step_ = plan_.first_step;
  TransitionTo(State::kConnecting);
  Emit(ReplayAction::Kind::kConnect);
  Refresh(now);
}

void SessionReplayer::OnConnected(Instant now) {
  if (state_ != State::kConnecting) return;
  TransitionTo(State::kLoggingIn);
  Emit(ReplayAction::Kind::kSend, login_.StartupPacket());
  last_progress_ = now;
}

void SessionReplayer::OnConnectFailed(Instant /*now*/, std::string_view why) {
  if (state_ == State::kFinished) return;
  Fail(absl::StrFormat("cannot connect to the target: %s", why), "08001");
}

void SessionReplayer::OnReceived(Instant now, std::string_view bytes) {
  if (state_ == State::kFinished) return;
  last_progress_ = now;
  reader_.Append(bytes);
  while (state_ != State::kFinished) {
    absl::StatusOr<std::optional<pg::Frame>> frame = reader_.Next();
    if (!frame.ok()) {
      Fail(absl::StrFormat("the target broke the protocol: %s", frame.status().message()), "08P01");
      break;
    }
    if (!frame->has_value()) break;
    OnMessage(now, (*frame)->raw);
  }
  TrySend(now);
  Refresh(now);
}

void SessionReplayer::OnClosed(Instant /*now*/, std::string_view why) {
  if (state_ == State::kFinished) return;
  if (!terminate_sent_ && LossPossible() &&
      std::find(replay_errors_.begin(), replay_errors_.end(), "08006") != replay_errors_.end()) {
    // The proxy lost a connection holding state it cannot restore (a pinned session).
    report_.AddFaultConsequence("session(s) ended by the proxy after a lost server connection");
    Finish();
    return;
  }
  // A FATAL error usually comes just before the close.
  for (const std::string& sqlstate : replay_errors_) report_.AddError(sqlstate, false);
  replay_errors_.clear();
  if (terminate_sent_) {
    Finish();
    return;
  }
  Fail(absl::StrFormat("the target closed the connection while %s: %s", Phase(), why), "08006");
}

void SessionReplayer::OnCutByFault(Instant now, std::string_view why) {
  if (state_ == State::kFinished) return;
  if (!LossPossible()) return OnClosed(now, why);
  report_.AddFaultConsequence("session(s) cut by an injected network fault on its connection");
  Finish();
}

void SessionReplayer::OnTime(Instant now) {
  if (state_ == State::kIdle || state_ == State::kFinished) return;
  if (awaiting_ && now.us >= last_progress_.us + settings_.stall_timeout_us) {
    OnStall(now);
    if (state_ == State::kFinished) return;
  }
  TrySend(now);
  Refresh(now);
}

void SessionReplayer::OnWriteStalled(Instant /*now*/) {
  if (state_ == State::kFinished) return;
  report_.AddStall(StallRecord{.session = session_.id,
                               .statement = tracker_.CurrentText(),
                               .waited_ms = settings_.stall_timeout_us / 1000,
                               .outcome = "the target stopped reading; connection closed"});
  Finish();
}

std::optional<Instant> SessionReplayer::NextDeadline() const {
  if (state_ == State::kIdle || state_ == State::kFinished) return std::nullopt;
  std::optional<Instant> deadline;
  if (awaiting_) deadline = last_progress_ + settings_.stall_timeout_us;
  if (state_ == State::kRunning && next_step_ < plan_.end_step &&
      StepReady(session_.steps[next_step_])) {
    Instant due = Due(session_.steps[next_step_].time_us);
    deadline = deadline.has_value() ? std::min(*deadline, due) : due;
  }
  return deadline;
}

void SessionReplayer::OnMessage(Instant now, std::string_view message) {
  switch (state_) {
    case State::kLoggingIn:
      OnLoginMessage(now, message);
      return;
    case State::kSetup:
      OnSetupMessage(now, message);
      return;
    case State::kRunning:
      OnAnswer(now, message);
      return;
    default:
      return;
  }
}

void SessionReplayer::OnLoginMessage(Instant now, std::string_view message) {
  absl::StatusOr<std::string> reply = login_.OnMessage(message);
  if (!reply.ok()) {
    std::string sqlstate = login_.sqlstate().empty() ? "28000" : login_.sqlstate();
    if (IsConnectionLoss(sqlstate) && LossPossible()) {
      report_.AddFaultConsequence("login(s) failed with 08006 (server connection lost)");
      Finish();
      return;
    }
    Fail(absl::StrFormat("login failed: %s", reply.status().message()), sqlstate);
    return;
  }
  if (!reply->empty()) Emit(ReplayAction::Kind::kSend, std::move(*reply));
  if (login_.done()) {
    key_ = login_.key();
    StartSetup(now);
  }
}

void SessionReplayer::StartSetup(Instant /*now*/) {
  if (!session_.snapshot.has_value()) {
    TransitionTo(State::kRunning);
    return;
  }
  for (const trace::PreparedStatement& statement : session_.snapshot->prepared_statements) {
    tracker_.Prepare(statement.name, statement.query);
  }
  SnapshotSetup setup = BuildSnapshotSetup(*session_.snapshot);
  if (setup.ready_expected == 0) {
    TransitionTo(State::kRunning);
    return;
  }
  for (std::string& message : setup.messages) {
    Emit(ReplayAction::Kind::kSend, std::move(message));
  }
  setup_ready_left_ = setup.ready_expected;
  TransitionTo(State::kSetup);
}

void SessionReplayer::OnSetupMessage(Instant /*now*/, std::string_view message) {
  if (message[0] == 'E') {
    auto fields = pg::ErrorFields::Decode('E', Payload(message));
    std::string sqlstate = fields.ok() ? std::string(fields->sqlstate()) : "";
    report_.AddSessionFailure(
        SessionFailure{.session = session_.id,
                       .what = absl::StrFormat("restoring the snapshot's state failed: %s",
                                               FormatError(message))},
        sqlstate);
  }
  if (message[0] == 'Z' && --setup_ready_left_ == 0) TransitionTo(State::kRunning);
}

void SessionReplayer::OnAnswer(Instant now, std::string_view message) {
  std::optional<Response> response = tracker_.OnServerMessage(message, now.us);
  if (response.has_value()) {
    replay_texts_.push_back(response->text);
    if (response->error) replay_errors_.push_back(response->sqlstate);
    if (response->is_statement() && !response->text.empty()) {
      report_.AddLatency(response->text, false, response->end_us - response->start_us);
    }
  }
  ++replay_unit_messages_;
  replay_unit_bytes_ += message.size();
  if (message[0] == 'Z' && message.size() > pg::kHeaderSize) replay_status_ = message[5];
  std::string normalized = replay_normalizer_.Normalize(message);
  if (replay_unit_bytes_ > kUnitBytesMax && !replay_unit_dropped_) {
    replay_unit_dropped_ = true;
    replay_unit_.clear();
    replay_unit_.shrink_to_fit();
  }
  if (!replay_unit_dropped_) replay_unit_.push_back(std::move(normalized));
  if (IsUnitTerminator(message[0])) CompleteUnit(now, message[0]);
}

void SessionReplayer::CompleteUnit(Instant /*now*/, char terminator) {
  in_copy_in_ = terminator != 'Z';
  if (units_done_ >= plan_.end_unit) {
    // The capture has no complete answer to compare with (cut short, or after --to).
    report_.AddUnitNotCompared("no complete captured answer");
    if (!replay_unit_cancelled_) {
      for (const std::string& sqlstate : replay_errors_) report_.AddError(sqlstate, false);
    }
    ResetReplayUnit();
    return;
  }
  const AnswerUnit& captured = session_.units[units_done_];
  if (terminator != 'Z' && captured.terminator() == 'Z') {
    // The replay entered COPY FROM STDIN where the capture did not, so there is no captured
    // data to send: refuse it, and let this unit go on to its ReadyForQuery.
    Emit(ReplayAction::Kind::kSend, pg::CopyFail{.message = std::string(kCopyRefusal)}.Encode());
    in_copy_in_ = false;
    return;
  }
  if (!ExplainedByFault(captured)) CompareUnit(captured);
  ++units_done_;
  if (terminator == 'Z' && captured.terminator() != 'Z' && units_done_ < plan_.end_unit) {
    // The capture entered COPY and the replay did not: the captured data goes to a server that
    // ignores it, and the capture's answer to the end of the COPY has no counterpart.
    SkipCapturedUnit();
  }
  ResetReplayUnit();
}

void SessionReplayer::CompareUnit(const AnswerUnit& captured) {
  std::vector<std::string> normalized;
  normalized.reserve(captured.messages.size());
  for (const AnswerMessage& message : captured.messages) {
    normalized.push_back(captured_normalizer_.Normalize(message.bytes));
  }
  if (replay_unit_cancelled_) {
    report_.AddUnitNotCompared("cancelled after a stall");
    return;
  }
  if (replay_unit_dropped_) {
    report_.AddUnitNotCompared("replayed answer too large to keep");
    for (const std::string& sqlstate : replay_errors_) report_.AddError(sqlstate, false);
    return;
  }
  UnitComparison comparison = CompareUnits(normalized, replay_unit_, replay_texts_);
  for (const ReplayError& error : comparison.errors)
    report_.AddError(error.sqlstate, error.captured);
  if (captured.redacted) {
    report_.AddUnitNotCompared("redacted in the capture");
    return;
  }
  report_.AddUnitCompared();
  if (comparison.divergence.has_value()) {
    report_.AddDivergence(DivergenceRecord{.session = session_.id,
                                           .origin = session_.origin,
                                           .unit = units_done_,
                                           .divergence = std::move(*comparison.divergence)});
  }
}

bool SessionReplayer::LossPossible() const {
  return settings_.connection_loss_possible && settings_.connection_loss_possible();
}

namespace {

// The transaction status the captured unit ended with ('I', 'T', 'E'), or 0 without one.
char CapturedStatus(const AnswerUnit& captured) {
  for (auto it = captured.messages.rbegin(); it != captured.messages.rend(); ++it) {
    if (it->bytes.size() > 5 && it->bytes[0] == 'Z') return it->bytes[5];
  }
  return 0;
}

}  // namespace

bool SessionReplayer::ExplainedByFault(const AnswerUnit& captured) {
  if (!settings_.connection_loss_possible) return false;
  std::string loss;
  bool only_fault_errors = true;
  for (const std::string& sqlstate : replay_errors_) {
    if (IsConnectionLoss(sqlstate) && !CapturedError(captured, sqlstate)) loss = sqlstate;
    if (!IsConnectionLoss(sqlstate) && sqlstate != "25P02") only_fault_errors = false;
  }
  std::string what;
  if (!loss.empty() && LossPossible()) {
    what = absl::StrFormat("answer(s) failed with %s (server connection lost)", loss);
    // The transaction the loss hit, on either side: the replay's (now aborted), or the
    // captured one whose BEGIN the loss failed (the replay then runs its statements outside
    // any transaction until the captured one ends).
    fault_transaction_ = replay_status_ != 'I' || CapturedStatus(captured) == 'T';
  } else if (fault_transaction_ && only_fault_errors) {
    what = "answer(s) in a transaction that a lost server connection aborted";
    const char captured_status = CapturedStatus(captured);
    if (replay_status_ == 'I' && captured_status != 'T' && captured_status != 'E') {
      fault_transaction_ = false;
    }
  } else {
    fault_transaction_ = false;
    return false;
  }
  // The captured side's normalizer still follows its row descriptions.
  for (const AnswerMessage& message : captured.messages) {
    captured_normalizer_.Normalize(message.bytes);
  }
  report_.AddFaultConsequence(what);
  return true;
}

void SessionReplayer::SkipCapturedUnit() {
  for (const AnswerMessage& message : session_.units[units_done_].messages) {
    captured_normalizer_.Normalize(message.bytes);
  }
  report_.AddUnitNotCompared("the end of a captured COPY the replay did not start");
  ++units_done_;
}

void SessionReplayer::ResetReplayUnit() {
  replay_unit_.clear();
  replay_texts_.clear();
  replay_errors_.clear();
  replay_unit_messages_ = 0;
  replay_unit_bytes_ = 0;
  replay_unit_dropped_ = false;
  replay_unit_cancelled_ = false;
  cancel_sent_ = false;
}

bool SessionReplayer::StepReady(const ClientStep& step) const {
  if (units_done_ != step.units_before) return units_done_ > step.units_before;
  return replay_unit_messages_ >= step.messages_before;
}

void SessionReplayer::TrySend(Instant now) {
  if (state_ != State::kRunning) return;
  while (next_step_ < plan_.end_step) {
    const ClientStep& step = session_.steps[next_step_];
    if (!StepReady(step) || now < Due(step.time_us)) break;
    SendStep(now, step);
    ++next_step_;
  }
  MaybeFinish();
}

void SessionReplayer::SendStep(Instant now, const ClientStep& step) {
  if (step.kind == ClientStep::Kind::kCancel) {
    // The captured client cancelled here; so does the replay, if it has a query running.
    if (key_.has_value() && tracker_.requests_outstanding() > 0) {
      ReplayAction action;
      action.kind = ReplayAction::Kind::kCancel;
      action.key = *key_;
      outbox_.push_back(std::move(action));
    }
    return;
  }
  Emit(ReplayAction::Kind::kSend, step.message);
  tracker_.OnClientMessage(step.message, now.us);
  report_.AddMessageSent();
  if (step.message[0] == 'X') terminate_sent_ = true;
}

void SessionReplayer::MaybeFinish() {
  if (state_ != State::kRunning || next_step_ < plan_.end_step) return;
  if (units_done_ < plan_.end_unit) return;  // answers still due
  if (!terminate_sent_) {
    Emit(ReplayAction::Kind::kSend, pg::Terminate{}.Encode());
    terminate_sent_ = true;
  }
  Finish();
}

bool SessionReplayer::Awaiting() const {
  switch (state_) {
    case State::kConnecting:
    case State::kLoggingIn:
    case State::kSetup:
      return true;
    case State::kRunning:
      break;
    default:
      return false;
  }
  // Inside COPY FROM STDIN the server waits for the client, which may take its time.
  if (tracker_.requests_outstanding() > 0 && !in_copy_in_) return true;
  if (next_step_ < plan_.end_step) return !StepReady(session_.steps[next_step_]);
  return units_done_ < plan_.end_unit;
}

void SessionReplayer::Refresh(Instant now) {
  bool awaiting = Awaiting();
  if (awaiting && !awaiting_) last_progress_ = now;
  awaiting_ = awaiting;
}

void SessionReplayer::OnStall(Instant now) {
  int64_t waited_ms = (now.us - last_progress_.us) / 1000;
  if (state_ == State::kRunning && key_.has_value() && !cancel_sent_) {
    report_.AddStall(StallRecord{.session = session_.id,
                                 .statement = tracker_.CurrentText(),
                                 .waited_ms = waited_ms,
                                 .outcome = "cancelled"});
    ReplayAction action;
    action.kind = ReplayAction::Kind::kCancel;
    action.key = *key_;
    outbox_.push_back(std::move(action));
    cancel_sent_ = true;
    replay_unit_cancelled_ = true;
    last_progress_ = now;
    return;
  }
  if (cancel_sent_) {
    report_.AddUnitNotCompared("session closed: no answer after a cancel");
  } else {
    report_.AddStall(
        StallRecord{.session = session_.id,
                    .statement = tracker_.CurrentText(),
                    .waited_ms = waited_ms,
                    .outcome = absl::StrFormat("no answer while %s; connection closed", Phase())});
  }
  Finish();
}

void SessionReplayer::Fail(const std::string& what, const std::string& sqlstate) {
  report_.AddSessionFailure(SessionFailure{.session = session_.id, .what = what}, sqlstate);
  Finish();
}

void SessionReplayer::Finish() {
  if (state_ == State::kFinished) return;
  Emit(ReplayAction::Kind::kClose);
  TransitionTo(State::kFinished);
  awaiting_ = false;
}

std::string SessionReplayer::Phase() const {
  switch (state_) {
    case State::kIdle:
      return "waiting to start";
    case State::kConnecting:
      return "connecting";
    case State::kLoggingIn:
      return "logging in";
    case State::kSetup:
      return "restoring the snapshot's state";
    case State::kRunning:
      return "replaying";
    case State::kFinished:
      return "finished";
  }
  return "?";
}

void SessionReplayer::ReportCapturedLatencies() {
  // Runs the capture through a tracker in the order it happened: each client message goes
  // before the answer message the captured client had not yet received when it sent it.
  StatementTracker tracker;
  if (session_.snapshot.has_value()) {
    for (const auto& statement : session_.snapshot->prepared_statements) {
      tracker.Prepare(statement.name, statement.query);
    }
  }
  const std::vector<ClientStep>& steps = session_.steps;
  size_t step = 0;
  for (uint32_t u = 0; u < plan_.end_unit; ++u) {
    const std::vector<AnswerMessage>& messages = session_.units[u].messages;
    for (size_t m = 0; m < messages.size(); ++m) {
      while (step < steps.size() &&
             (steps[step].units_before < u ||
              (steps[step].units_before == u && steps[step].messages_before <= m))) {
        if (steps[step].kind == ClientStep::Kind::kMessage) {
          tracker.OnClientMessage(steps[step].message, steps[step].time_us);
        }
        ++step;
      }
      std::optional<Response> response =
          tracker.OnServerMessage(messages[m].bytes, messages[m].time_us);
      if (u >= plan_.first_unit && response.has_value() && response->is_statement() &&
          !response->text.empty()) {
        report_.AddLatency(response->text, true, response->end_us - response->start_us);
      }
    }
  }
}

}  // namespace switchyard::replay
