// TraceNode and TraceScript: a PostgreSQL node that answers from a capture (see trace_node.h).
#include "sim/trace_node.h"

#include <algorithm>
#include <cctype>
#include <utility>

#include "absl/strings/str_format.h"
#include "core/base/check.h"
#include "core/base/strings.h"
#include "core/cluster/health_checker.h"
#include "core/protocol/messages.h"
#include "core/route/lexer.h"

namespace switchyard::sim {
namespace {

// One read(2) of a backend.
constexpr size_t kReadChunkBytes = size_t{64} << 10;
// The WAL one write adds on a primary: enough for replicas to fall visibly behind.
constexpr uint64_t kWriteWalBytes = 0x100;
// A request the capture has no answer to, and which is not the proxy's own.
constexpr std::string_view kNoAnswerState = "0A000";
constexpr std::string_view kAdminShutdown = "57P01";

bool IsRequestEnd(char type) { return type == 'Q' || type == 'S' || type == 'F'; }

std::string Upper(std::string_view text) {
  std::string out(text.substr(0, 64));
  for (char& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

// `upper` begins with the words `words`, as a whole word.
bool StartsWithWords(std::string_view upper, std::string_view words) {
  if (!upper.starts_with(words)) return false;
  if (upper.size() == words.size()) return true;
  const unsigned char next = static_cast<unsigned char>(upper[words.size()]);
  return !std::isalnum(next) && next != '_';
}

// The statements of a simple Query: split at semicolons outside literals, quoted names and
// comments (core/route's lexer draws those), each trimmed.
std::vector<std::string_view> SplitSql(std::string_view sql) {
  std::vector<std::string_view> out;
  size_t start = 0;
  size_t pos = 0;
  while (pos < sql.size()) {
    const route::Token token = route::NextToken(sql, pos);
    if (token.kind == route::TokenKind::kOther && sql[token.begin] == ';') {
      std::string_view statement = route::TrimStatement(sql.substr(start, token.begin - start));
      if (!statement.empty()) out.push_back(statement);
      start = token.end;
    }
    pos = std::max(token.end, pos + 1);
  }
  std::string_view tail = route::TrimStatement(sql.substr(std::min(start, sql.size())));
  if (!tail.empty()) out.push_back(tail);
  return out;
}

// The CommandComplete tag of a statement the proxy sends on its own (session state it replays,
// a reset), with the transaction status after it; nullopt for anything else.
std::optional<std::string> OwnStatementTag(std::string_view statement, char* status) {
  const std::string upper = Upper(statement);
  for (std::string_view word : {"SET", "RESET", "LISTEN", "UNLISTEN", "PREPARE"}) {
    if (StartsWithWords(upper, word)) return std::string(word);
  }
  if (StartsWithWords(upper, "DISCARD ALL")) return "DISCARD ALL";
  if (StartsWithWords(upper, "DEALLOCATE ALL")) return "DEALLOCATE ALL";
  if (StartsWithWords(upper, "DEALLOCATE")) return "DEALLOCATE";
  if (StartsWithWords(upper, "ROLLBACK") || StartsWithWords(upper, "ABORT")) {
    *status = 'I';
    return "ROLLBACK";
  }
  if (StartsWithWords(upper, "BEGIN") || StartsWithWords(upper, "START TRANSACTION")) {
    *status = 'T';
    return "BEGIN";
  }
  if (StartsWithWords(upper, "COMMIT") || StartsWithWords(upper, "END")) {
    const bool failed = *status == 'E';
    *status = 'I';
    return failed ? "ROLLBACK" : "COMMIT";
  }
  return std::nullopt;
}

// The status a captured answer's ReadyForQuery should carry on this connection, which was in
// `before`: the capture's status is right only where the replayed session stands where the
// captured one did. A statement outside a transaction here (its BEGIN failed in a fault, say)
// leaves none open, whatever the captured session was in.
char ReplayedStatus(char before, char captured, std::string_view text) {
  const std::string upper = Upper(route::TrimStatement(text));
  if (StartsWithWords(upper, "BEGIN") || StartsWithWords(upper, "START TRANSACTION") ||
      StartsWithWords(upper, "COMMIT") || StartsWithWords(upper, "END") ||
      StartsWithWords(upper, "ROLLBACK") || StartsWithWords(upper, "ABORT")) {
    return captured;
  }
  return before == 'I' ? 'I' : captured;
}

std::string FormatWalLsn(uint64_t lsn) {
  return absl::StrFormat("%X/%X", static_cast<uint32_t>(lsn >> 32), static_cast<uint32_t>(lsn));
}

std::string NoAnswer(std::string_view node, std::string_view what) {
  return pg::BuildError("ERROR", kNoAnswerState,
                        Cat("trace node ", node, ": the capture holds no answer to ", what));
}

}  // namespace

// ---------------------------------------------------------------- TraceScript

size_t TraceScript::AddSession(std::vector<ScriptRequest> requests) {
  sessions_.push_back(Session{.requests = std::move(requests), .outstanding = {}});
  return sessions_.size() - 1;
}

void TraceScript::OnClientSent(size_t session, size_t index) {
  Session& s = sessions_.at(session);
  CHECK_LT(index, s.requests.size()) << "session " << session << " sent an unknown request";
  s.outstanding.push_back(Outstanding{.index = index, .sent_seq = next_seq_++, .deliveries = 0});
}

void TraceScript::OnClientAnswered(size_t session) {
  Session& s = sessions_.at(session);
  if (!s.outstanding.empty()) s.outstanding.pop_front();
}

void TraceScript::OnClientGone(size_t session) { sessions_.at(session).outstanding.clear(); }

void TraceScript::Reset() {
  for (Session& s : sessions_) s.outstanding.clear();
  next_seq_ = 1;
}

std::optional<TraceScript::Match> TraceScript::Claim(std::string_view bytes) {
  Outstanding* best = nullptr;
  size_t best_session = 0;
  for (size_t i = 0; i < sessions_.size(); ++i) {
    for (Outstanding& o : sessions_[i].outstanding) {
      if (sessions_[i].requests[o.index].bytes != bytes) continue;
      const bool better =
          best == nullptr || (o.deliveries == 0 && best->deliveries > 0) ||
          ((o.deliveries == 0) == (best->deliveries == 0) && o.sent_seq < best->sent_seq);
      if (better) {
        best = &o;
        best_session = i;
      }
    }
  }
  if (best == nullptr) return std::nullopt;
  Match match{.session = best_session, .index = best->index, .deliveries = best->deliveries};
  ++best->deliveries;
  return match;
}

// ---------------------------------------------------------------- TraceNode: connections

TraceNode::TraceNode(TraceScript& script, io_sim::SimNetwork& network, io_sim::Timeline& timeline,
                     TraceNodeOptions options)
    : script_(script),
      network_(network),
      timeline_(timeline),
      options_(std::move(options)),
      replica_(options_.replica),
      next_pid_(options_.first_pid) {
  network_.Listen(options_.node, options_.peer, this);
  network_.SetNodeUp(options_.node, true);
}

TraceNode::~TraceNode() = default;

void TraceNode::OnAccepted(io_sim::LinkId link) {
  CHECK(!links_.contains(link)) << "link accepted twice: " << link.value;
  links_.emplace(link, Link{});
  if (trace_) Trace(Cat("node.open link=", link.value));
}

void TraceNode::OnReadable(io_sim::LinkId id) {
  auto it = links_.find(id);
  if (it == links_.end()) return;  // forgotten: crashed, or closed by the node
  Link& link = it->second;
  if (paused_) {
    link.unread = true;
    return;
  }
  link.unread = false;
  for (;;) {
    io_sim::ReadResult read = network_.PeerRead(id, kReadChunkBytes);
    if (read.kind == io_sim::ReadResult::Kind::kData) {
      link.reader.Append(read.bytes);
      continue;
    }
    if (read.kind == io_sim::ReadResult::Kind::kEmpty) break;
    // The proxy closed its end or the connection broke: the backend exits.
    if (trace_) Trace(Cat("node.peer_gone link=", id.value));
    links_.erase(it);
    network_.PeerClose(id);
    return;
  }
  Pump(id, link);
}

void TraceNode::OnWritable(io_sim::LinkId id) {
  auto it = links_.find(id);
  if (it != links_.end()) Flush(id, it->second);
}

void TraceNode::Pump(io_sim::LinkId id, Link& link) {
  if (link.phase == Phase::kStartup && !OnStartup(id, link)) return;
  while (!link.close_after) {
    absl::StatusOr<std::optional<pg::Frame>> frame = link.reader.Next();
    if (!frame.ok()) {
      Send(id, link, pg::BuildError("FATAL", "08P01", std::string(frame.status().message())));
      link.close_after = true;
      break;
    }
    if (!frame->has_value()) break;
    OnFrame(id, link, **frame);
  }
  Flush(id, link);
}

// Answers the startup packet; false while it is incomplete or when the connection ends.
bool TraceNode::OnStartup(io_sim::LinkId id, Link& link) {
  while (link.phase == Phase::kStartup) {
    absl::StatusOr<std::optional<pg::StartupFrame>> frame = link.reader.NextStartup();
    if (!frame.ok() || !frame->has_value()) {
      if (!frame.ok()) link.close_after = true;
      Flush(id, link);
      return false;
    }
    absl::StatusOr<pg::StartupPacket> packet = pg::DecodeStartupPacket((*frame)->payload);
    if (!packet.ok()) {
      link.close_after = true;
      Flush(id, link);
      return false;
    }
    if (std::holds_alternative<pg::SslRequest>(*packet) ||
        std::holds_alternative<pg::GssEncRequest>(*packet)) {
      Send(id, link, "N");
      continue;
    }
    if (const auto* cancel = std::get_if<pg::CancelRequest>(&*packet)) {
      // Every answer leaves at once: there is never a query to cancel.
      Notify(
          TraceNodeEvent{.kind = TraceNodeEvent::Kind::kCancel, .text = Cat("pid ", cancel->pid)});
      link.close_after = true;
      Flush(id, link);
      return false;
    }
    const auto& startup = std::get<pg::StartupMessage>(*packet);
    link.pid = next_pid_++;
    std::string out = pg::Authentication{}.Encode();
    const std::string* application = startup.Find("application_name");
    for (const std::string& message : script_.login_parameters()) {
      absl::StatusOr<pg::ParameterStatus> status =
          pg::ParameterStatus::Decode(std::string_view(message).substr(pg::kHeaderSize));
      if (!status.ok()) continue;
      if (status->name == "in_hot_standby") status->value = replica_ ? "on" : "off";
      if (status->name == "application_name") status->value = application ? *application : "";
      out += status->Encode();
    }
    out += pg::BackendKeyData{.pid = link.pid, .secret = link.pid * 7919}.Encode();
    out += pg::ReadyForQuery{'I'}.Encode();
    Send(id, link, std::move(out));
    link.phase = Phase::kReady;
  }
  return true;
}

void TraceNode::OnFrame(io_sim::LinkId id, Link& link, const pg::Frame& frame) {
  if (frame.type == 'X') {
    link.close_after = true;
    return;
  }
  const bool copy_message = frame.type == 'd' || frame.type == 'c' || frame.type == 'f';
  if (link.phase == Phase::kCopyIn) {
    // The data itself is not looked at: the captured answer to the COPY follows its end.
    if (frame.type == 'c' || frame.type == 'f') SendHeld(id, link);
    return;
  }
  if (copy_message) return;  // outside COPY PostgreSQL ignores them too
  link.request.append(frame.raw);
  if (IsRequestEnd(frame.type)) OnRequest(id, link);
}

// ---------------------------------------------------------------- answers

void TraceNode::OnRequest(io_sim::LinkId id, Link& link) {
  std::string request = std::move(link.request);
  link.request.clear();
  if (std::optional<TraceScript::Match> match = script_.Claim(request)) {
    return AnswerFromCapture(id, link, *match);
  }
  AnswerOwn(id, link, request);
}

void TraceNode::AnswerFromCapture(io_sim::LinkId id, Link& link, const TraceScript::Match& match) {
  const ScriptRequest& request = script_.request(match.session, match.index);
  TraceNodeEvent event{.kind = TraceNodeEvent::Kind::kClientRequest,
                       .node = options_.node.index,
                       .match = match,
                       .read_only = request.read_only,
                       .in_recovery = replica_,
                       .text = request.text};
  if (replica_ && !request.read_only) {
    // What a hot standby says to a write; the proxy then retries on the primary.
    event.refused = true;
    Notify(std::move(event));
    if (link.status == 'T') link.status = 'E';
    Send(id, link,
         pg::BuildError("ERROR", "25006", "cannot execute a write in a read-only transaction") +
             pg::ReadyForQuery{link.status}.Encode());
    return;
  }
  Notify(std::move(event));
  if (!replica_ && !request.read_only) lsn_ += kWriteWalBytes;
  std::string out;
  const char before = link.status;
  for (std::string message : request.answer) {
    if (message[0] == 'Z' && message.size() > pg::kHeaderSize) {
      message[5] = ReplayedStatus(before, message[5], request.text);
    }
    if (link.phase == Phase::kCopyIn) {
      link.held.push_back(message);
      continue;
    }
    out += message;
    if (message[0] == 'G') link.phase = Phase::kCopyIn;
    if (message[0] == 'Z' && message.size() > pg::kHeaderSize) link.status = message[5];
  }
  Send(id, link, std::move(out));
}

void TraceNode::SendHeld(io_sim::LinkId id, Link& link) {
  link.phase = Phase::kReady;
  std::string out;
  while (!link.held.empty() && link.phase == Phase::kReady) {
    std::string message = std::move(link.held.front());
    link.held.pop_front();
    if (message[0] == 'G') link.phase = Phase::kCopyIn;
    if (message[0] == 'Z' && message.size() > pg::kHeaderSize) link.status = message[5];
    out += message;
  }
  Send(id, link, std::move(out));
}

// What the proxy sends by itself: a Query of its own statements, or Parse/Close with their
// Sync; anything else is answered with an error.
void TraceNode::AnswerOwn(io_sim::LinkId id, Link& link, std::string_view request) {
  pg::FrameReader reader(pg::Direction::kFrontend);
  reader.Append(request);
  std::string out;
  bool known = true;
  std::string what;
  for (;;) {
    absl::StatusOr<std::optional<pg::Frame>> frame = reader.Next();
    if (!frame.ok() || !frame->has_value()) break;
    const pg::Frame& message = **frame;
    if (message.type == 'S') {
      link.skip_to_sync = false;
      out += pg::ReadyForQuery{link.status}.Encode();
      continue;
    }
    if (link.skip_to_sync) continue;
    switch (message.type) {
      case 'Q': {
        absl::StatusOr<pg::Query> query = pg::Query::Decode(message.payload);
        what = query.ok() ? query->sql : "an undecodable Query";
        out += AnswerQuery(link, what, &known);
        break;
      }
      case 'P':
        out += pg::ParseComplete{}.Encode();
        break;
      case 'C':
        out += pg::CloseComplete{}.Encode();
        break;
      case 'H':
        break;
      default:
        known = false;
        what = Cat("an extended-protocol batch (",
                   pg::TypeName(pg::Direction::kFrontend, message.type), ")");
        out += NoAnswer(options_.name, what);
        if (link.status == 'T') link.status = 'E';
        link.skip_to_sync = message.type != 'F';
        if (message.type == 'F') out += pg::ReadyForQuery{link.status}.Encode();
        break;
    }
  }
  Notify(TraceNodeEvent{
      .kind = known ? TraceNodeEvent::Kind::kOwnStatement : TraceNodeEvent::Kind::kUnknown,
      .node = options_.node.index,
      .in_recovery = replica_,
      .text = what});
  Send(id, link, std::move(out));
}

std::string TraceNode::AnswerQuery(Link& link, std::string_view sql, bool* known) {
  if (sql == kHealthPollQuery) return HealthRow() + pg::ReadyForQuery{link.status}.Encode();
  std::vector<std::string_view> statements = SplitSql(sql);
  std::string out;
  if (statements.empty()) out += pg::EmptyQueryResponse{}.Encode();
  for (std::string_view statement : statements) {
    if (Upper(statement).starts_with("SELECT PG_CATALOG.SET_CONFIG(")) {
      // A replay's snapshot setup: one row, its value unknown here (the setup is not compared).
      out +=
          pg::RowDescription{{{.name = "set_config", .type_oid = 25, .type_size = -1}}}.Encode() +
          pg::DataRow{{std::string()}}.Encode() + pg::CommandComplete{"SELECT 1"}.Encode();
      continue;
    }
    std::optional<std::string> tag = OwnStatementTag(statement, &link.status);
    if (!tag) {
      *known = false;
      out += NoAnswer(options_.name, Cat("\"", statement.substr(0, 200), "\""));
      if (link.status == 'T') link.status = 'E';
      break;
    }
    out += pg::CommandComplete{*tag}.Encode();
  }
  return out + pg::ReadyForQuery{link.status}.Encode();
}

// The answer to core/cluster's poll: the role, the LSN and, on a primary, the WAL file name that
// carries the timeline.
std::string TraceNode::HealthRow() const {
  pg::RowDescription description;
  description.fields = {{.name = "pg_is_in_recovery", .type_oid = 16, .type_size = 1},
                        {.name = "lsn", .type_oid = 3220, .type_size = 8},
                        {.name = "walfile", .type_oid = 25, .type_size = -1}};
  pg::DataRow row;
  row.values.push_back(std::string(replica_ ? "t" : "f"));
  row.values.push_back(FormatWalLsn(lsn_));
  if (replica_) {
    row.values.push_back(std::nullopt);
  } else {
    row.values.push_back(absl::StrFormat("%08X%08X%08X", timeline_id_,
                                         static_cast<uint32_t>(lsn_ >> 32),
                                         static_cast<uint32_t>(lsn_ & 0xffffffffu) >> 24));
  }
  return description.Encode() + row.Encode() + pg::CommandComplete{"SELECT 1"}.Encode();
}

// ---------------------------------------------------------------- output

void TraceNode::Send(io_sim::LinkId id, Link& link, std::string bytes) {
  if (bytes.empty()) return;
  const Instant now = timeline_.now();
  const Instant due = std::max(now + slowness_us_, link.busy_until);
  link.busy_until = due;
  if (due <= now) {
    link.pending.append(bytes);
    return;  // the caller flushes
  }
  // A slow node: the answer leaves later, after every answer before it on this connection.
  timeline_.Schedule(due, [this, id, epoch = epoch_, bytes = std::move(bytes)]() mutable {
    auto it = links_.find(id);
    if (epoch != epoch_ || it == links_.end()) return;
    it->second.pending.append(bytes);
    Flush(id, it->second);
  });
}

void TraceNode::Flush(io_sim::LinkId id, Link& link) {
  while (link.pending_pos < link.pending.size()) {
    std::string_view unsent = std::string_view(link.pending).substr(link.pending_pos);
    io_sim::WriteResult write = network_.PeerWrite(id, unsent);
    if (write.broken) {
      link.pending.clear();
      link.pending_pos = 0;
      return;  // the read side hears of the reset
    }
    if (write.accepted == 0) return;  // the window is full: OnWritable resumes
    link.pending_pos += write.accepted;
  }
  link.pending.clear();
  link.pending_pos = 0;
  if (link.close_after && link.busy_until <= timeline_.now()) {
    if (trace_) Trace(Cat("node.close link=", id.value));
    links_.erase(id);
    network_.PeerClose(id);
  }
}

// ---------------------------------------------------------------- faults and roles

void TraceNode::CloseAll(std::string_view fatal) {
  std::vector<io_sim::LinkId> ids;
  for (auto& [id, link] : links_) {
    if (!fatal.empty()) {
      link.busy_until = Instant{};
      link.pending.append(pg::BuildError("FATAL", kAdminShutdown, fatal));
    }
    link.close_after = true;
    ids.push_back(id);
  }
  for (io_sim::LinkId id : ids) {
    auto it = links_.find(id);
    if (it != links_.end()) Flush(id, it->second);
  }
}

void TraceNode::Crash() {
  Trace(Cat("node.crash links=", links_.size()));
  up_ = false;
  ++epoch_;
  links_.clear();
  network_.SetNodeUp(options_.node, false);
  network_.ResetPeer(options_.peer, "node crashed");
}

void TraceNode::Shutdown() {
  Trace(Cat("node.shutdown links=", links_.size()));
  up_ = false;
  ++epoch_;
  network_.SetNodeUp(options_.node, false);
  CloseAll("terminating connection due to administrator command");
}

void TraceNode::Restart() {
  if (up_) return;
  Trace("node.restart");
  up_ = true;
  network_.SetNodeUp(options_.node, true);
}

void TraceNode::Pause(bool paused) {
  Trace(paused ? "node.pause" : "node.unpause");
  paused_ = paused;
  if (paused) return;
  std::vector<io_sim::LinkId> unread;
  for (const auto& [id, link] : links_) {
    if (link.unread) unread.push_back(id);
  }
  for (io_sim::LinkId id : unread) OnReadable(id);
}

void TraceNode::SetSlowness(int64_t extra_us_per_request) { slowness_us_ = extra_us_per_request; }

bool TraceNode::TerminateSession(uint64_t pick) {
  std::vector<io_sim::LinkId> candidates;
  for (const auto& [id, link] : links_) {
    if (link.phase != Phase::kStartup && !link.close_after) candidates.push_back(id);
  }
  if (candidates.empty()) return false;
  const io_sim::LinkId victim = candidates[pick % candidates.size()];
  Trace(Cat("node.terminate link=", victim.value));
  Link& link = links_.at(victim);
  link.busy_until = Instant{};
  link.pending.append(pg::BuildError("FATAL", kAdminShutdown,
                                     "terminating connection due to administrator command"));
  link.close_after = true;
  Flush(victim, link);
  return true;
}

void TraceNode::Promote() {
  Trace("node.promote");
  CHECK(replica_) << options_.name << " promoted while a primary";
  replica_ = false;
  ++timeline_id_;
  std::vector<io_sim::LinkId> ids;
  for (auto& [id, link] : links_) {
    if (link.phase == Phase::kStartup || link.close_after) continue;
    link.pending.append(pg::ParameterStatus{"in_hot_standby", "off"}.Encode());
    ids.push_back(id);
  }
  for (io_sim::LinkId id : ids) Flush(id, links_.at(id));
}

void TraceNode::RebuildAsReplica(uint64_t lsn, uint32_t timeline) {
  Trace(Cat("node.rebuild links=", links_.size()));
  ++epoch_;
  links_.clear();
  network_.SetNodeUp(options_.node, false);
  network_.ResetPeer(options_.peer, "node rebuilt");
  replica_ = true;
  timeline_id_ = timeline;
  lsn_ = lsn;
  up_ = true;
  network_.SetNodeUp(options_.node, true);
}

void TraceNode::Notify(TraceNodeEvent event) {
  event.node = options_.node.index;
  if (observer_) observer_(event);
}

void TraceNode::Trace(std::string_view line) const {
  if (trace_) trace_(Cat("t=", timeline_.now().us, " ", options_.name, " ", line));
}

}  // namespace switchyard::sim
