// The simulated clients: one SimClient per slot runs its sessions one after another; each
// session logs in, draws its statements from the client's own decision stream, parses every
// answer and reports it to the observer.
#include "sim/workload.h"

#include <algorithm>
#include <cstdio>
#include <map>
#include <set>
#include <utility>

#include "absl/strings/str_format.h"
#include "core/base/check.h"
#include "core/base/strings.h"
#include "core/protocol/framing.h"
#include "io_sim/decision.h"
#include "io_sim/prng.h"
#include "sim/workload_script.h"

namespace switchyard::sim {
namespace {

constexpr uint32_t kClientPeerBase = 1;
constexpr uint32_t kProbePeerBase = 100'000;
constexpr size_t kReadChunkBytes = size_t{64} << 10;
// More rows than the workload's table can hold means the proxy mixed answers up.
constexpr std::string_view kDatabase = "app";
constexpr std::string_view kSearchPathDefault = "\"$user\", public";
// Sessions that never got in are retried, up to this many per client slot, this far apart.
constexpr int kFailedLoginsMax = 50;
constexpr int64_t kLoginRetryUsMax = 50'000;

}  // namespace

std::string WorkloadOptions::Describe() const {
  return absl::StrFormat(
      "clients=%d sessions_per_client=%d requests_per_session=%d..%d keys=%d "
      "weights=read:%d,write:%d,transaction:%d,set:%d,show:%d,sleep:%d,scan:%d,"
      "locking_read:%d,batch:%d,read_only_transaction:%d follow_up_percent=%d "
      "rollback_percent=%d transaction_statements_max=%d think_us_max=%d sleep_us_max=%d "
      "cancel_ppm=%d disconnect_ppm=%d slow_reader_ppm=%d slow_pause_us_max=%d "
      "application_names=%d value_bytes_max=%d",
      clients, sessions_per_client, requests_per_session_min, requests_per_session_max, keys,
      weight_read, weight_write, weight_transaction, weight_set, weight_show, weight_sleep,
      weight_scan, weight_locking_read, weight_batch, weight_read_only_transaction,
      follow_up_percent, rollback_percent, transaction_statements_max, think_us_max, sleep_us_max,
      cancel_ppm, disconnect_ppm, slow_reader_ppm, slow_pause_us_max, application_names,
      value_bytes_max);
}

std::string ClientInfo::Name() const { return Cat("c", client, ".s", session); }

std::string_view HowName(Ending::How how) {
  switch (how) {
    case Ending::How::kServerClosed:
      return "server_closed";
    case Ending::How::kReset:
      return "reset";
    case Ending::How::kClientLeft:
      return "client_left";
    case Ending::How::kClientAborted:
      return "client_aborted";
    case Ending::How::kFatalNotClosed:
      return "fatal_not_closed";
    case Ending::How::kStillOpen:
      return "still_open";
  }
  return "?";
}

std::string RouteTag::Request() const { return Cat("c", client, ".s", session, "#", seq); }

std::string FormatRouteTag(const RouteTag& tag) {
  return Cat(" /* sim ", tag.Request(), ".", tag.index, tag.primary_only ? " P" : " A", " */");
}

std::optional<RouteTag> ParseRouteTag(std::string_view sql) {
  const size_t at = sql.rfind(" /* sim c");
  if (at == std::string_view::npos) return std::nullopt;
  RouteTag tag;
  unsigned long long seq = 0;
  char where = 0;
  const std::string text(sql.substr(at));
  if (std::sscanf(text.c_str(), " /* sim c%u.s%u#%llu.%u %c */", &tag.client, &tag.session, &seq,
                  &tag.index, &where) != 5 ||
      (where != 'P' && where != 'A')) {
    return std::nullopt;
  }
  tag.seq = seq;
  tag.primary_only = where == 'P';
  return tag;
}

// ---------------------------------------------------------------- SimClient

class SimClient final : public io_sim::Peer {
 public:
  SimClient(Workload& workload, uint32_t index, bool probe)
      : w_(workload),
        index_(index),
        probe_(probe),
        peer_{probe ? kProbePeerBase + index : kClientPeerBase + index},
        decisions_(io_sim::DeriveSeed(workload.seed_, Cat("client/", index))),
        sessions_left_(probe ? 1 : workload.options_.sessions_per_client),
        script_(workload.options_, index, decisions_) {
    const int names = w_.options_.application_names;
    if (names > 0) {
      application_name_ = Cat("app", probe ? 0 : static_cast<int>(index) % names);
    }
  }

  void ScheduleSession(int64_t delay_us) {
    w_.timeline_.ScheduleAfter(delay_us, [this] { BeginSession(); });
  }
  bool finished() const { return sessions_left_ == 0 && state_ == State::kIdle; }
  bool logged_in() const { return logged_in_; }
  bool answered() const { return seq_ > 0 && !outstanding_; }
  std::string Describe() const;
  void ReportIfOpen();
  // A probe leaves once every probe is in (or gone).
  void Leave();

  void OnConnected(io_sim::LinkId link) override;
  void OnReadable(io_sim::LinkId link) override;

 private:
  enum class State { kIdle, kConnecting, kStartup, kReady, kBusy };

  bool FatalSeen() const { return !answer_.errors.empty() && answer_.errors.back().fatal; }
  ClientInfo Info() const {
    return ClientInfo{probe_ ? kProbeClientBase + index_ : index_, session_};
  }
  Instant Now() const { return w_.timeline_.now(); }
  void BeginSession();
  void Consume();
  void HandleStartup(const pg::Frame& frame);
  void HandleSession(const pg::Frame& frame);
  void NoteAnswerMessage(const pg::Frame& frame);
  void NoteError(const pg::Frame& frame);
  void Complete(char status);
  void ScheduleNext();
  // A probe is in (its read answered) or gone: once every probe is, those in leave together.
  void CountProbe();
  void Act();
  void Send(Request request);
  void ArmClientFaults(const Request& request);
  void SendCancel(uint64_t generation, uint64_t seq);
  void Abort(uint64_t generation, uint64_t seq);
  void EndSession(Ending::How how, std::string why);
  void ScheduleAfter(const Ending& ending);
  // Counts the client as done once, for Workload::Done().
  void NoteIfFinished();
  void NoteBatchMessage(const pg::Frame& frame);
  // The bytes of a request: a Query, or a Sync batch; every statement carries its route tag.
  std::string Encode(const Request& request) const;
  // A FATAL came: the proxy must close the connection; if it does not, the client leaves.
  void AwaitCloseAfterFatal();

  Workload& w_;
  uint32_t index_;
  bool probe_;
  io_sim::PeerId peer_;
  io_sim::PrngDecisions decisions_;
  int sessions_left_;
  std::string application_name_;

  // Per session.
  State state_ = State::kIdle;
  uint32_t session_ = 0;
  uint64_t generation_ = 0;  // timers of an older session find a different value
  io_sim::LinkId link_;
  pg::FrameReader reader_{pg::Direction::kBackend};
  std::optional<SessionModel> model_;
  Welcome welcome_;
  bool logged_in_ = false;
  bool paused_ = false;
  uint64_t seq_ = 0;
  std::optional<Request> outstanding_;
  Answer answer_;
  std::string after_fatal_;
  Script script_;
  // Cancel connections and the key each carries: the key of the session that sent the cancel,
  // even if a new session has logged in by the time the connection is up.
  std::map<io_sim::LinkId, pg::CancelRequest> cancel_links_;
  int failed_logins_ = 0;
  bool counted_finished_ = false;
  bool probe_counted_ = false;
};

void SimClient::BeginSession() {
  CHECK(state_ == State::kIdle && sessions_left_ > 0);
  if (w_.winding_down_ && !probe_) {
    sessions_left_ = 0;
    return NoteIfFinished();
  }
  --sessions_left_;
  ++session_;
  ++generation_;
  state_ = State::kConnecting;
  reader_ = pg::FrameReader(pg::Direction::kBackend);
  std::map<std::string, std::string> defaults{{"search_path", std::string(kSearchPathDefault)},
                                              {"application_name", application_name_}};
  model_.emplace(std::move(defaults));
  welcome_ = Welcome{};
  welcome_.expected_application_name = application_name_;
  logged_in_ = false;
  paused_ = false;
  seq_ = 0;
  outstanding_.reset();
  answer_ = Answer{};
  after_fatal_.clear();
  script_.BeginSession();
  w_.observer_.OnConnect(Info());
  link_ = w_.network_.ConnectToProxy(peer_, this);
}

void SimClient::OnConnected(io_sim::LinkId link) {
  if (auto cancel = cancel_links_.find(link); cancel != cancel_links_.end()) {
    w_.network_.PeerSend(link, cancel->second.Encode());
    w_.network_.PeerClose(link);
    cancel_links_.erase(cancel);
    return;
  }
  if (link != link_ || state_ != State::kConnecting) return;
  pg::StartupMessage startup;
  startup.parameters = {{"user", std::string(kClientUser)}, {"database", std::string(kDatabase)}};
  if (!application_name_.empty()) {
    startup.parameters.emplace_back("application_name", application_name_);
  }
  w_.network_.PeerSend(link_, startup.Encode());
  state_ = State::kStartup;
}

void SimClient::OnReadable(io_sim::LinkId link) {
  if (link != link_ || state_ == State::kIdle) {
    // A cancel connection (refused, or answered with a close) or an abandoned one.
    if (cancel_links_.erase(link) > 0) w_.network_.PeerClose(link);
    return;
  }
  if (paused_) return;
  for (;;) {
    io_sim::ReadResult read = w_.network_.PeerRead(link_, kReadChunkBytes);
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

void SimClient::Consume() {
  const uint64_t generation = generation_;
  while (state_ != State::kIdle && generation == generation_) {
    auto frame = reader_.Next();
    if (!frame.ok()) {
      w_.observer_.OnStray(Info(),
                           Cat("undecodable bytes from the proxy: ", frame.status().message()));
      const io_sim::LinkId link = link_;
      link_ = io_sim::LinkId{};
      w_.network_.PeerReset(link, "client gave up on undecodable bytes");
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

void SimClient::HandleStartup(const pg::Frame& frame) {
  switch (frame.type) {
    case 'R': {
      auto auth = pg::Authentication::Decode(frame.payload);
      if (!auth.ok() || auth->code != pg::Authentication::kOk) {
        w_.observer_.OnStray(Info(), "an authentication request under trust");
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
      w_.observer_.OnWelcome(Info(), welcome_);
      if (probe_) return Act();
      return ScheduleNext();
    }
    default:
      w_.observer_.OnStray(Info(), Cat("message '", std::string(1, frame.type),
                                       "' before the client was logged in"));
  }
}

void SimClient::NoteError(const pg::Frame& frame) {
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

void SimClient::HandleSession(const pg::Frame& frame) {
  if (FatalSeen()) {
    if (after_fatal_.empty()) after_fatal_ = std::string(1, frame.type);
    return;
  }
  if (frame.type == 'S' || frame.type == 'N' || frame.type == 'A') return;
  if (frame.type == 'E') {
    NoteError(frame);
    if (FatalSeen()) return AwaitCloseAfterFatal();
    if (state_ != State::kBusy) {
      w_.observer_.OnStray(Info(), "an ErrorResponse with no request outstanding");
    }
    return;
  }
  if (state_ == State::kBusy) return NoteAnswerMessage(frame);
  w_.observer_.OnStray(
      Info(), Cat("message '", std::string(1, frame.type), "' with no request outstanding"));
}

void SimClient::AwaitCloseAfterFatal() {
  constexpr int64_t kCloseAfterFatalUsMax = 1'000'000;
  const uint64_t generation = generation_;
  w_.timeline_.ScheduleAfter(kCloseAfterFatalUsMax, [this, generation] {
    if (generation != generation_ || state_ == State::kIdle) return;
    const io_sim::LinkId link = link_;
    link_ = io_sim::LinkId{};
    w_.network_.PeerClose(link);
    EndSession(Ending::How::kFatalNotClosed, "the proxy kept the connection open after a FATAL");
  });
}

void SimClient::NoteBatchMessage(const pg::Frame& frame) {
  Answer& a = answer_;
  auto malformed = [&](std::string_view why) {
    if (a.malformed.empty()) a.malformed = std::string(why);
  };
  // Messages after an error, or for more statements than were sent, are out of place.
  const bool open = a.errors.empty() && a.parts.size() < outstanding_->statements.size();
  switch (frame.type) {
    case '1':
      if (!open) malformed("a ParseComplete out of place");
      return;
    case '2':
      if (!open) malformed("a BindComplete out of place");
      a.parts.emplace_back();
      return;
    case 'T':
    case 'n':
      if (!a.errors.empty() || a.parts.empty() || a.parts.back().described ||
          !a.parts.back().tag.empty()) {
        return malformed("a RowDescription out of place");
      }
      a.parts.back().described = true;
      return;
    case 'D': {
      if (a.parts.empty() || !a.parts.back().described || !a.parts.back().tag.empty()) {
        return malformed("a DataRow out of place");
      }
      if (a.parts.back().rows.size() >= Answer::kRowsMax) return malformed("too many rows");
      auto row = pg::DataRow::Decode(frame.payload);
      if (!row.ok()) return malformed("an undecodable DataRow");
      a.parts.back().rows.push_back(std::move(row->values));
      return;
    }
    case 'C': {
      if (a.parts.empty() || !a.parts.back().tag.empty()) return malformed("a stray completion");
      auto complete = pg::CommandComplete::Decode(frame.payload);
      a.parts.back().tag = complete.ok() ? complete->tag : "?";
      return;
    }
    case 'Z': {
      // A statement bound but not completed was the one that failed.
      if (!a.parts.empty() && a.parts.back().tag.empty()) a.parts.pop_back();
      auto ready = pg::ReadyForQuery::Decode(frame.payload);
      return Complete(ready.ok() ? ready->status : '?');
    }
    default:
      malformed(Cat("message '", std::string(1, frame.type), "' in a batch's answer"));
  }
}

void SimClient::NoteAnswerMessage(const pg::Frame& frame) {
  if (outstanding_->op == Op::kBatch) return NoteBatchMessage(frame);
  if (std::optional<char> status = answer_.Note(frame)) Complete(*status);
}

void SimClient::Complete(char status) {
  CHECK(outstanding_.has_value());
  answer_.status = status;
  answer_.at = Now();
  answer_.pos = w_.wal_position_();
  ++w_.answers_;
  if (w_.hash_ != nullptr) {
    const ErrorInfo* error = answer_.error();
    w_.hash_->Record("client.answer", Now(),
                     {Info().client, session_, static_cast<int64_t>(outstanding_->seq), status,
                      static_cast<int64_t>(answer_.rows.size())},
                     error ? error->sqlstate : (answer_.tags.empty() ? "" : answer_.tags.back()));
  }
  w_.observer_.OnAnswer(Info(), *model_, *outstanding_, answer_);
  if (!probe_) script_.NoteAnswer(model_->status(), *outstanding_, answer_);
  model_->Apply(*outstanding_, answer_);
  outstanding_.reset();
  answer_ = Answer{};
  state_ = State::kReady;
  if (probe_) return CountProbe();
  ScheduleNext();
}

void SimClient::CountProbe() {
  if (probe_counted_) return;
  probe_counted_ = true;
  if (++w_.probes_counted_ == static_cast<int>(w_.probes_.size())) {
    for (auto& probe : w_.probes_) probe->Leave();
  }
}

void SimClient::ScheduleNext() {
  const int64_t think = decisions_.Between(0, w_.options_.think_us_max, "wl.think");
  const uint64_t generation = generation_;
  w_.timeline_.ScheduleAfter(think, [this, generation] {
    if (generation == generation_ && state_ == State::kReady) Act();
  });
}

void SimClient::Act() {
  // The session is over once a FATAL came, even if the close has not arrived yet.
  if (FatalSeen()) return;
  std::optional<Request> next = probe_ ? (seq_ > 0 ? std::nullopt : std::optional(script_.Probe()))
                                       : script_.Next(model_->status(), w_.winding_down_);
  if (!next) return Leave();
  Send(std::move(*next));
}

void SimClient::Leave() {
  if (state_ != State::kReady) return;
  w_.network_.PeerSend(link_, pg::Terminate{}.Encode());
  w_.network_.PeerClose(link_);
  EndSession(Ending::How::kClientLeft, "terminate");
}

void SimClient::Send(Request request) {
  request.seq = ++seq_;
  request.sent_at = Now();
  request.sent_pos = w_.wal_position_();
  w_.network_.PeerSend(link_, Encode(request));
  ++w_.requests_;
  state_ = State::kBusy;
  answer_ = Answer{};
  outstanding_ = std::move(request);
  w_.observer_.OnRequest(Info(), *outstanding_);
  if (!probe_) ArmClientFaults(*outstanding_);
}

void SimClient::ArmClientFaults(const Request& request) {
  const auto& o = w_.options_;
  const uint64_t generation = generation_;
  const uint64_t seq = request.seq;
  if (request.op == Op::kSleep && decisions_.Chance(o.cancel_ppm, io_sim::kPpm, "wl.cancel")) {
    const int64_t delay = decisions_.Between(0, o.sleep_us_max, "wl.cancel_delay");
    w_.timeline_.ScheduleAfter(delay, [this, generation, seq] { SendCancel(generation, seq); });
  }
  if (decisions_.Chance(o.disconnect_ppm, io_sim::kPpm, "wl.disconnect")) {
    const int64_t delay = decisions_.Between(0, o.think_us_max, "wl.disconnect_delay");
    w_.timeline_.ScheduleAfter(delay, [this, generation, seq] { Abort(generation, seq); });
  }
  if (!paused_ && decisions_.Chance(o.slow_reader_ppm, io_sim::kPpm, "wl.slow")) {
    paused_ = true;
    w_.observer_.OnReadingPaused(Info(), welcome_.pid);
    const int64_t pause = decisions_.Between(1, o.slow_pause_us_max, "wl.slow_pause");
    w_.timeline_.ScheduleAfter(pause, [this, generation] {
      if (generation != generation_ || !paused_) return;
      w_.observer_.OnReadingResumed(Info(), welcome_.pid);
      paused_ = false;
      OnReadable(link_);
    });
  }
}

void SimClient::SendCancel(uint64_t generation, uint64_t seq) {
  if (generation != generation_ || !outstanding_ || outstanding_->seq != seq) return;
  outstanding_->cancel_sent = true;
  cancel_links_.emplace(w_.network_.ConnectToProxy(peer_, this),
                        pg::CancelRequest{welcome_.pid, welcome_.secret});
  w_.observer_.OnCancelSent(Info(), *outstanding_);
}

void SimClient::Abort(uint64_t generation, uint64_t seq) {
  if (generation != generation_ || !outstanding_ || outstanding_->seq != seq) return;
  // The network tells a resetting peer of its own reset: forget the link first.
  const io_sim::LinkId link = link_;
  link_ = io_sim::LinkId{};
  if (decisions_.Chance(1, 2, "wl.abort_kind")) {
    w_.network_.PeerReset(link, "client disconnected");
  } else {
    w_.network_.PeerClose(link);
  }
  EndSession(Ending::How::kClientAborted, "client disconnected mid-request");
}

void SimClient::EndSession(Ending::How how, std::string why) {
  CHECK(state_ != State::kIdle);
  Ending ending;
  ending.how = how;
  ending.why = std::move(why);
  ending.logged_in = logged_in_;
  ending.outstanding = std::move(outstanding_);
  ending.trailing = std::move(answer_);
  ending.after_fatal = after_fatal_;
  if (link_.valid() && (how == Ending::How::kServerClosed || how == Ending::How::kReset)) {
    w_.network_.PeerClose(link_);
  }
  state_ = State::kIdle;
  ++generation_;
  link_ = io_sim::LinkId{};
  outstanding_.reset();
  answer_ = Answer{};
  paused_ = false;
  if (w_.hash_ != nullptr) {
    w_.hash_->Record("client.ended", Now(), {Info().client, session_, static_cast<int64_t>(how)},
                     ending.why);
  }
  w_.observer_.OnEnded(Info(), *model_, ending);
  ScheduleAfter(ending);
  NoteIfFinished();
  // A probe that failed is reported already; the others must not wait for it forever.
  if (probe_ && how != Ending::How::kStillOpen) CountProbe();
}

void SimClient::ScheduleAfter(const Ending& ending) {
  if (ending.how == Ending::How::kStillOpen) return;
  if (w_.winding_down_ && !probe_) {
    sessions_left_ = 0;
    return;
  }
  if (!ending.logged_in && !probe_ && failed_logins_ < kFailedLoginsMax) {
    // Like an application's connection retry: a session that never got in does not count, so
    // a node that is down for a while does not use up the whole script.
    ++failed_logins_;
    ++sessions_left_;
    ScheduleSession(decisions_.Between(1, kLoginRetryUsMax, "wl.retry"));
    return;
  }
  if (sessions_left_ > 0) {
    ScheduleSession(decisions_.Between(0, w_.options_.session_gap_us_max, "wl.gap"));
  }
}

void SimClient::NoteIfFinished() {
  if (counted_finished_ || !finished()) return;
  counted_finished_ = true;
  if (!probe_) ++w_.clients_finished_;
}

void SimClient::ReportIfOpen() {
  if (state_ == State::kIdle) return;
  sessions_left_ = 0;
  EndSession(Ending::How::kStillOpen, "the run ended");
}

std::string SimClient::Describe() const {
  static constexpr std::string_view kStates[] = {"idle", "connecting", "startup", "ready", "busy"};
  std::string text = Cat(Info().Name(), " state=", kStates[static_cast<int>(state_)],
                         " paused=", paused_ ? "yes" : "no");
  if (outstanding_) {
    text += Cat(" waiting for #", outstanding_->seq, " `", outstanding_->sql,
                "` sent at t=", outstanding_->sent_at.us, "us");
  }
  return text;
}

// ---------------------------------------------------------------- the wire

std::string SimClient::Encode(const Request& request) const {
  RouteTag tag{.client = Info().client, .session = session_, .seq = request.seq};
  if (request.op != Op::kBatch) {
    tag.primary_only = !request.replica_ok;
    return pg::Query{request.sql + FormatRouteTag(tag)}.Encode();
  }
  std::string bytes;
  for (const Request& statement : request.statements) {
    tag.primary_only = !statement.replica_ok;
    bytes += pg::Parse{"", statement.sql + FormatRouteTag(tag), {}}.Encode();
    bytes += pg::Bind{"", "", {}, {}, {}}.Encode();
    bytes += pg::Describe{'P', ""}.Encode();
    bytes += pg::Execute{"", 0}.Encode();
    ++tag.index;
  }
  return bytes + pg::Sync{}.Encode();
}

// ---------------------------------------------------------------- Workload

Workload::Workload(WorkloadOptions options, uint64_t seed, io_sim::SimNetwork& network,
                   io_sim::Timeline& timeline, ClientObserver& observer,
                   std::function<uint64_t()> wal_position, io_sim::RunHash* hash)
    : options_(std::move(options)),
      seed_(seed),
      network_(network),
      timeline_(timeline),
      observer_(observer),
      wal_position_(std::move(wal_position)),
      hash_(hash) {
  CHECK(options_.keys >= 1 && options_.keys <= 100) << "keys=" << options_.keys;
  CHECK(options_.requests_per_session_min <= options_.requests_per_session_max);
  for (int i = 0; i < options_.clients; ++i) {
    clients_.push_back(std::make_unique<SimClient>(*this, static_cast<uint32_t>(i), false));
  }
}

Workload::~Workload() = default;

void Workload::Start() {
  io_sim::PrngDecisions starts(io_sim::DeriveSeed(seed_, "starts"));
  for (auto& client : clients_) {
    client->ScheduleSession(starts.Between(0, options_.start_spread_us, "wl.start"));
  }
}

void Workload::WindDown() { winding_down_ = true; }

bool Workload::Done() const { return clients_finished_ == clients_.size(); }

void Workload::StartProbes(int count) {
  CHECK(probes_.empty()) << "probes run once";
  for (int i = 0; i < count; ++i) {
    probes_.push_back(std::make_unique<SimClient>(*this, static_cast<uint32_t>(i), true));
  }
  for (auto& probe : probes_) probe->ScheduleSession(0);
}

bool Workload::ProbesDone() const {
  return !probes_.empty() && std::all_of(probes_.begin(), probes_.end(),
                                         [](const auto& probe) { return probe->finished(); });
}

std::vector<std::string> Workload::OpenSessions() const {
  std::vector<std::string> open;
  for (const auto* list : {&clients_, &probes_}) {
    for (const auto& client : *list) {
      if (!client->finished()) open.push_back(client->Describe());
    }
  }
  return open;
}

void Workload::ReportOpenSessions() {
  for (auto* list : {&clients_, &probes_}) {
    for (auto& client : *list) client->ReportIfOpen();
  }
}

}  // namespace switchyard::sim
