// The shrinking property's clients: queued intents become statements one at a time; answers are
// parsed and judged by the observer the moment they complete.
#include "tests/sim_shrink/scripted_client.h"

#include <utility>

#include "absl/strings/str_format.h"
#include "core/base/check.h"
#include "core/base/strings.h"
#include "core/protocol/messages.h"

namespace switchyard::sim {
namespace {

// Peer ids of their own, apart from sim/workload's clients (1...) and probes (100000...).
constexpr uint32_t kPeerBase = 50'000;
constexpr size_t kReadChunkBytes = size_t{64} << 10;
// A session that ended with intents left logs in again this much later; after this many failed
// logins in a row the intent that wanted the session is given up.
constexpr int64_t kReconnectUs = 10'000;
constexpr int kFailedLoginsMax = 3;
constexpr std::string_view kUser = "app";
constexpr std::string_view kDatabase = "app";
constexpr std::string_view kSearchPathDefault = "\"$user\", public";

std::string KeyName(int index) { return absl::StrFormat("k%02d", index); }
std::string_view GucName(int arg) { return arg % 2 == 0 ? "search_path" : "application_name"; }

}  // namespace

std::string Intent::Describe() const {
  switch (kind) {
    case Kind::kRead:
      return Cat("read ", KeyName(arg));
    case Kind::kScan:
      return "scan";
    case Kind::kInsert:
      return Cat("insert ", KeyName(arg));
    case Kind::kUpdate:
      return Cat("update ", KeyName(arg));
    case Kind::kDelete:
      return Cat("delete ", KeyName(arg));
    case Kind::kBegin:
      return "begin";
    case Kind::kCommit:
      return "commit";
    case Kind::kRollback:
      return "rollback";
    case Kind::kSet:
      return Cat("set ", GucName(arg));
    case Kind::kSetLocal:
      return Cat("set local ", GucName(arg));
    case Kind::kShow:
      return Cat("show ", GucName(arg));
    case Kind::kSleep:
      return Cat("sleep ", arg, "ms");
    case Kind::kLeave:
      return "leave";
  }
  return "?";
}

ScriptedClient::ScriptedClient(uint32_t index, int keys, std::string application_name,
                               io_sim::SimNetwork& network, io_sim::Timeline& timeline,
                               ClientObserver& observer, std::function<uint64_t()> wal_position)
    : index_(index),
      keys_(keys),
      application_name_(std::move(application_name)),
      network_(network),
      timeline_(timeline),
      observer_(observer),
      wal_position_(std::move(wal_position)),
      peer_{kPeerBase + index} {
  CHECK(keys_ >= 1 && keys_ <= 100) << "keys=" << keys_;
}

void ScriptedClient::Add(Intent intent) {
  if (intents_.size() >= kIntentsMax) return;  // a scenario this long says nothing more
  intents_.push_back(intent);
  Poke();
}

void ScriptedClient::WindDown() {
  // Leaving mid-transaction is the proxy's to clean up (a ROLLBACK, then a reset).
  intents_.push_back(Intent{Intent::Kind::kLeave});
  // One more session, to look at its settings: a pooled connection must come back as new, so
  // whatever the last session set must not show.
  intents_.push_back(Intent{Intent::Kind::kShow, 0});
  intents_.push_back(Intent{Intent::Kind::kShow, 1});
  intents_.push_back(Intent{Intent::Kind::kLeave});
  Poke();
}

// Takes up the next intent if the client can act now.
void ScriptedClient::Poke() {
  if (state_ == State::kIdle) {
    // Leaving needs no session.
    while (!intents_.empty() && intents_.front().kind == Intent::Kind::kLeave) intents_.pop_front();
    if (!intents_.empty() && !reconnect_scheduled_) BeginSession();
    return;
  }
  // A session that got a FATAL is over, even before the close arrives.
  if (state_ != State::kReady || FatalSeen()) return;
  while (!intents_.empty()) {
    const Intent intent = intents_.front();
    intents_.pop_front();
    if (intent.kind == Intent::Kind::kLeave) return Leave();
    if (std::optional<Request> request = ToRequest(intent)) return Send(std::move(*request));
    ++skipped_;
  }
}

void ScriptedClient::BeginSession() {
  CHECK(state_ == State::kIdle);
  ++session_;
  ++generation_;
  state_ = State::kConnecting;
  reader_ = pg::FrameReader(pg::Direction::kBackend);
  model_.emplace(std::map<std::string, std::string>{
      {"search_path", std::string(kSearchPathDefault)}, {"application_name", application_name_}});
  welcome_ = Welcome{};
  welcome_.expected_application_name = application_name_;
  logged_in_ = false;
  seq_ = 0;
  outstanding_.reset();
  answer_ = Answer{};
  after_fatal_.clear();
  transaction_key_min_ = 0;
  link_ = network_.ConnectToProxy(peer_, this);
}

void ScriptedClient::OnConnected(io_sim::LinkId link) {
  if (auto cancel = cancel_links_.find(link); cancel != cancel_links_.end()) {
    network_.PeerSend(link, cancel->second.Encode());
    network_.PeerClose(link);
    cancel_links_.erase(cancel);
    return;
  }
  if (link != link_ || state_ != State::kConnecting) return;
  pg::StartupMessage startup;
  startup.parameters = {{"user", std::string(kUser)},
                        {"database", std::string(kDatabase)},
                        {"application_name", application_name_}};
  network_.PeerSend(link_, startup.Encode());
  state_ = State::kStartup;
}

void ScriptedClient::OnReadable(io_sim::LinkId link) {
  if (link != link_ || state_ == State::kIdle) {
    // A cancel connection (refused, or closed after the request) or an abandoned one.
    if (cancel_links_.erase(link) > 0) network_.PeerClose(link);
    return;
  }
  for (;;) {
    io_sim::ReadResult read = network_.PeerRead(link_, kReadChunkBytes);
    switch (read.kind) {
      case io_sim::ReadResult::Kind::kData:
        reader_.Append(read.bytes);
        continue;
      case io_sim::ReadResult::Kind::kEmpty:
        return Consume();
      case io_sim::ReadResult::Kind::kEof:
        Consume();
        if (state_ == State::kIdle) return;
        return EndSession(Ending::How::kServerClosed, "end of stream");
      case io_sim::ReadResult::Kind::kReset:
        Consume();
        if (state_ == State::kIdle) return;
        return EndSession(Ending::How::kReset, read.why);
    }
  }
}

void ScriptedClient::Consume() {
  const uint64_t generation = generation_;
  while (state_ != State::kIdle && generation == generation_) {
    auto frame = reader_.Next();
    if (!frame.ok()) {
      observer_.OnStray(Info(),
                        Cat("undecodable bytes from the proxy: ", frame.status().message()));
      const io_sim::LinkId link = std::exchange(link_, io_sim::LinkId{});
      network_.PeerReset(link, "client gave up on undecodable bytes");
      return EndSession(Ending::How::kClientAborted, "undecodable bytes");
    }
    if (!frame->has_value()) return;
    if (state_ == State::kStartup) {
      HandleStartup(**frame);
    } else {
      HandleSession(**frame);
    }
  }
}

void ScriptedClient::HandleStartup(const pg::Frame& frame) {
  switch (frame.type) {
    case 'R': {
      auto auth = pg::Authentication::Decode(frame.payload);
      if (!auth.ok() || auth->code != pg::Authentication::kOk) {
        observer_.OnStray(Info(), "an authentication request under trust");
      }
      return;
    }
    case 'S': {
      auto status = pg::ParameterStatus::Decode(frame.payload);
      if (status.ok()) welcome_.parameters.emplace_back(status->name, status->value);
      return;
    }
    case 'K': {
      auto key = pg::BackendKeyData::Decode(frame.payload);
      if (key.ok()) {
        welcome_.pid = key->pid;
        welcome_.secret = key->secret;
      }
      return;
    }
    case 'E':
      return NoteError(frame);
    case 'N':
    case 'v':
      return;
    case 'Z': {
      auto ready = pg::ReadyForQuery::Decode(frame.payload);
      welcome_.status = ready.ok() ? ready->status : '?';
      logged_in_ = true;
      state_ = State::kReady;
      answer_ = Answer{};
      observer_.OnWelcome(Info(), welcome_);
      return Poke();
    }
    default:
      observer_.OnStray(Info(), Cat("message '", std::string(1, frame.type),
                                    "' before the client was logged in"));
  }
}

void ScriptedClient::NoteError(const pg::Frame& frame) {
  auto error = pg::ErrorFields::Decode('E', frame.payload);
  ErrorInfo info;
  if (error.ok()) {
    info.severity = std::string(error->severity());
    info.sqlstate = std::string(error->sqlstate());
    info.message = std::string(error->Field('M'));
    info.fatal = error->IsFatal();
  } else {
    info.severity = "?";
    info.message = "undecodable ErrorResponse";
  }
  answer_.errors.push_back(std::move(info));
}

void ScriptedClient::HandleSession(const pg::Frame& frame) {
  if (FatalSeen()) {
    if (after_fatal_.empty()) after_fatal_ = std::string(1, frame.type);
    return;
  }
  if (frame.type == 'S' || frame.type == 'N' || frame.type == 'A') return;
  if (frame.type == 'E') {
    NoteError(frame);
    if (state_ != State::kBusy && !FatalSeen()) {
      observer_.OnStray(Info(), "an ErrorResponse with no request outstanding");
    }
    return;
  }
  if (state_ == State::kBusy) return NoteAnswerMessage(frame);
  observer_.OnStray(Info(),
                    Cat("message '", std::string(1, frame.type), "' with no request outstanding"));
}

void ScriptedClient::NoteAnswerMessage(const pg::Frame& frame) {
  if (std::optional<char> status = answer_.Note(frame)) Complete(*status);
}

void ScriptedClient::Complete(char status) {
  CHECK(outstanding_.has_value());
  answer_.status = status;
  answer_.at = Now();
  answer_.pos = wal_position_();
  ++answers_;
  observer_.OnAnswer(Info(), *model_, *outstanding_, answer_);
  model_->Apply(*outstanding_, answer_);
  outstanding_.reset();
  answer_ = Answer{};
  state_ = State::kReady;
  // The next statement goes out from its own event, not from inside this read.
  const uint64_t generation = generation_;
  timeline_.ScheduleAfter(0, [this, generation] {
    if (generation == generation_) Poke();
  });
}

void ScriptedClient::Leave() {
  CHECK(state_ == State::kReady);
  network_.PeerSend(link_, pg::Terminate{}.Encode());
  network_.PeerClose(link_);
  EndSession(Ending::How::kClientLeft, "terminate");
}

void ScriptedClient::Send(Request request) {
  request.seq = ++seq_;
  request.sent_at = Now();
  request.sent_pos = wal_position_();
  network_.PeerSend(link_, pg::Query{request.sql}.Encode());
  state_ = State::kBusy;
  answer_ = Answer{};
  outstanding_ = std::move(request);
  observer_.OnRequest(Info(), *outstanding_);
  if (cancel_next_us_) ScheduleCancel(*std::exchange(cancel_next_us_, std::nullopt));
}

void ScriptedClient::Disconnect(bool abortive) {
  if (state_ == State::kIdle) return;
  // The network tells a resetting peer of its own reset: forget the link first.
  const io_sim::LinkId link = std::exchange(link_, io_sim::LinkId{});
  if (abortive) {
    network_.PeerReset(link, "client disconnected");
  } else {
    network_.PeerClose(link);
  }
  EndSession(Ending::How::kClientAborted, "client disconnected");
}

void ScriptedClient::Cancel(int64_t delay_us) {
  if (state_ == State::kBusy) return ScheduleCancel(delay_us);
  cancel_next_us_ = delay_us;
}

void ScriptedClient::ScheduleCancel(int64_t delay_us) {
  CHECK(outstanding_.has_value());
  const uint64_t generation = generation_;
  const uint64_t seq = outstanding_->seq;
  timeline_.ScheduleAfter(delay_us, [this, generation, seq] {
    if (generation != generation_ || !outstanding_ || outstanding_->seq != seq) return;
    outstanding_->cancel_sent = true;
    cancel_links_.emplace(network_.ConnectToProxy(peer_, this),
                          pg::CancelRequest{welcome_.pid, welcome_.secret});
    observer_.OnCancelSent(Info(), *outstanding_);
  });
}

void ScriptedClient::EndSession(Ending::How how, std::string why) {
  CHECK(state_ != State::kIdle);
  Ending ending;
  ending.how = how;
  ending.why = std::move(why);
  ending.logged_in = logged_in_;
  ending.outstanding = std::move(outstanding_);
  ending.trailing = std::move(answer_);
  ending.after_fatal = after_fatal_;
  if (link_.valid() && (how == Ending::How::kServerClosed || how == Ending::How::kReset)) {
    network_.PeerClose(link_);
  }
  state_ = State::kIdle;
  ++generation_;
  link_ = io_sim::LinkId{};
  outstanding_.reset();
  answer_ = Answer{};
  observer_.OnEnded(Info(), *model_, ending);
  if (how == Ending::How::kStillOpen) return intents_.clear();
  // Failed logins use up the intent that wanted them, so a node that stays down cannot keep a
  // client retrying for ever.
  const bool refused = how == Ending::How::kServerClosed || how == Ending::How::kReset;
  failed_logins_ = refused && !ending.logged_in ? failed_logins_ + 1 : 0;
  if (failed_logins_ >= kFailedLoginsMax && !intents_.empty()) {
    intents_.pop_front();
    ++dropped_;
    failed_logins_ = 0;
  }
  if (intents_.empty()) return;
  reconnect_scheduled_ = true;
  timeline_.ScheduleAfter(kReconnectUs, [this] {
    reconnect_scheduled_ = false;
    Poke();
  });
}

void ScriptedClient::ReportIfOpen() {
  if (state_ != State::kIdle) EndSession(Ending::How::kStillOpen, "the run ended");
  intents_.clear();
}

std::string ScriptedClient::Describe() const {
  static constexpr std::string_view kStates[] = {"idle", "connecting", "startup", "ready", "busy"};
  std::string text = Cat(Info().Name(), " state=", kStates[static_cast<int>(state_)],
                         " intents=", intents_.size());
  if (outstanding_) {
    text += Cat(" waiting for #", outstanding_->seq, " `", outstanding_->sql,
                "` sent at t=", outstanding_->sent_at.us, "us");
  }
  return text;
}

// ---------------------------------------------------------------- intents to statements

std::optional<Request> ScriptedClient::ToRequest(const Intent& intent) {
  const char status = model_->status();
  const int key = intent.arg % keys_;
  switch (intent.kind) {
    case Intent::Kind::kRead:
      return Request{.op = Op::kRead,
                     .key = KeyName(key),
                     .sql = Cat("SELECT v FROM kv WHERE k = '", KeyName(key), "'")};
    case Intent::Kind::kScan:
      return Request{.op = Op::kScan, .sql = "SELECT k, v FROM kv"};
    case Intent::Kind::kInsert:
    case Intent::Kind::kUpdate:
    case Intent::Kind::kDelete:
      return Write(intent.kind, key);
    case Intent::Kind::kBegin:
      if (status != 'I') return std::nullopt;
      transaction_key_min_ = 0;
      return Request{.op = Op::kBegin, .sql = "BEGIN"};
    case Intent::Kind::kCommit:
      if (status == 'I') return std::nullopt;
      return Request{.op = Op::kCommit, .sql = "COMMIT"};
    case Intent::Kind::kRollback:
      if (status == 'I') return std::nullopt;
      return Request{.op = Op::kRollback, .sql = "ROLLBACK"};
    case Intent::Kind::kSet:
    case Intent::Kind::kSetLocal: {
      const bool local = intent.kind == Intent::Kind::kSetLocal;
      if (local && status != 'T') return std::nullopt;
      const bool path = intent.arg % 2 == 0;
      const std::string value = Cat(path ? "s" : "a", index_, "_", ++tokens_);
      return Request{
          .op = local ? Op::kSetLocal : Op::kSet,
          .value = value,
          .guc = std::string(GucName(intent.arg)),
          .sql = Cat(local ? "SET LOCAL " : "SET ", GucName(intent.arg), " = '", value, "'")};
    }
    case Intent::Kind::kShow:
      return Request{.op = Op::kShow,
                     .guc = std::string(GucName(intent.arg)),
                     .sql = Cat("SHOW ", GucName(intent.arg))};
    case Intent::Kind::kSleep: {
      const int64_t us = int64_t{intent.arg} * 1'000;
      return Request{
          .op = Op::kSleep,
          .sql = absl::StrFormat("SELECT pg_sleep(%d.%06d)", us / 1'000'000, us % 1'000'000)};
    }
    case Intent::Kind::kLeave:
      break;
  }
  return std::nullopt;
}

Request ScriptedClient::Write(Intent::Kind kind, int key_index) {
  if (model_->status() == 'T') {
    // Inside a transaction, rows are taken in ascending key order, so two transactions never
    // wait for each other in a cycle (deadlock detection is not what this test checks).
    key_index = std::max(key_index, transaction_key_min_);
    transaction_key_min_ = key_index;
  }
  const std::string key = KeyName(key_index);
  const std::string token = Cat("t", index_, "_", ++tokens_);
  switch (kind) {
    case Intent::Kind::kInsert:
      return Request{.op = Op::kInsert, .key = key, .value = token, .sql = InsertSql(key, token)};
    case Intent::Kind::kUpdate:
      return Request{.op = Op::kUpdate, .key = key, .value = token, .sql = UpdateSql(key, token)};
    default:
      return Request{.op = Op::kDelete, .key = key, .sql = DeleteSql(key)};
  }
}

}  // namespace switchyard::sim
