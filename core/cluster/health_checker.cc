// HealthChecker: one connection per node, logged in with the health user, one poll per interval
// on each; every failure (connect, login, error, bad bytes, close, timeout) is a failed poll.
#include "core/cluster/health_checker.h"

#include <algorithm>
#include <limits>
#include <type_traits>
#include <utility>
#include <variant>

#include "absl/status/status.h"
#include "core/base/check.h"
#include "core/base/strings.h"

namespace switchyard {
namespace {

// Same as the client-facing SCRAM code: PostgreSQL's own nonce length.
constexpr size_t kScramNonceBytes = 18;
// Text a server put in a poll's error is cut here: it goes to logs and to the ClusterView.
constexpr size_t kServerTextSizeMax = 200;
// Results wait here only until the driver's next TakeResults(); a driver that never drains is
// a bug of ours, caught by this bound.
constexpr size_t kResultsPendingMax = 4096;
constexpr std::string_view kApplicationName = "switchyard health check";
// A WAL file name is timeline, log and segment, 8 hex digits each.
constexpr size_t kWalFileNameSize = 24;

std::string Truncated(std::string_view text) {
  return std::string(text.substr(0, kServerTextSizeMax));
}

absl::Status Invalid(std::string_view what) {
  return absl::InvalidArgumentError(absl::string_view(what.data(), what.size()));
}

std::optional<uint32_t> ParseHex8(std::string_view text) {
  if (text.size() != 8) return std::nullopt;
  uint32_t value = 0;
  for (char c : text) {
    int digit;
    if (c >= '0' && c <= '9') {
      digit = c - '0';
    } else if (c >= 'A' && c <= 'F') {
      digit = c - 'A' + 10;
    } else if (c >= 'a' && c <= 'f') {
      digit = c - 'a' + 10;
    } else {
      return std::nullopt;
    }
    value = value << 4 | static_cast<uint32_t>(digit);
  }
  return value;
}

// The timeline of a WAL file name: its first 8 of 24 hex digits. Timelines start at 1.
std::optional<uint32_t> TimelineOfWalFile(std::string_view file) {
  if (file.size() != kWalFileNameSize) return std::nullopt;
  std::optional<uint32_t> timeline = ParseHex8(file.substr(0, 8));
  if (!timeline || *timeline == 0) return std::nullopt;
  if (!ParseHex8(file.substr(8, 8)) || !ParseHex8(file.substr(16, 8))) return std::nullopt;
  return timeline;
}

// "SQLSTATE: message" of an ErrorResponse payload, for the poll's error.
std::string DescribeServerError(std::string_view payload) {
  auto error = pg::ErrorFields::Decode('E', payload);
  if (!error.ok()) return "malformed ErrorResponse";
  return Truncated(Cat(error->severity(), " ", error->sqlstate(), ": ", error->Field('M')));
}

// The same for a whole message (type and length included), as a failed login hands it back.
std::string DescribeServerErrorMessage(std::string_view message) {
  if (message.size() < pg::kHeaderSize) return "login failed";
  return DescribeServerError(message.substr(pg::kHeaderSize));
}

}  // namespace

absl::StatusOr<HealthAnswer> ParseHealthRow(const pg::DataRow& row) {
  if (row.values.size() != 3) {
    return Invalid(Cat("poll answer has ", row.values.size(), " columns, expected 3"));
  }
  HealthAnswer answer;
  const std::optional<std::string>& recovery = row.values[0];
  if (!recovery || (*recovery != "t" && *recovery != "f")) {
    return Invalid("pg_is_in_recovery() is neither t nor f");
  }
  answer.in_recovery = *recovery == "t";
  // A replica that never replayed anything has no replay LSN yet: 0 keeps it behind everyone.
  if (const std::optional<std::string>& lsn = row.values[1]) {
    std::optional<uint64_t> parsed = ParseWalLsn(*lsn);
    if (!parsed) return Invalid(Cat("LSN \"", Truncated(*lsn), "\" is not X/Y hex"));
    answer.lsn = *parsed;
  } else if (!answer.in_recovery) {
    return Invalid("a primary reported no current WAL LSN");
  }
  // Only a primary reports a WAL file name: a replica's timeline is left unknown (0).
  if (const std::optional<std::string>& file = row.values[2]) {
    std::optional<uint32_t> timeline = TimelineOfWalFile(*file);
    if (!timeline) {
      return Invalid(Cat("WAL file name \"", Truncated(*file), "\" names no timeline"));
    }
    answer.timeline = *timeline;
  } else if (!answer.in_recovery) {
    return Invalid("a primary reported no WAL file name");
  }
  return answer;
}

HealthChecker::HealthChecker(HealthConfig config, Environment& env)
    : config_(std::move(config)), env_(env) {
  CHECK_GT(config_.interval_ms, 0);
  CHECK_GT(config_.timeout_ms, 0);
  CHECK_GT(config_.message_size_max, pg::kHeaderSize);
  std::vector<NodeId> nodes = config_.nodes;
  std::sort(nodes.begin(), nodes.end());
  CHECK(std::adjacent_find(nodes.begin(), nodes.end()) == nodes.end()) << "duplicate node";
  for (NodeId node : nodes) probes_.push_back(Probe{.node = node});
}

void HealthChecker::Handle(Instant now, const Event& event) {
  CHECK(actions_.empty()) << "the driver must drain PollAction() after every Handle()";
  std::visit(
      [&](const auto& e) {
        using E = std::decay_t<decltype(e)>;
        if constexpr (std::is_same_v<E, Connected>) {
          OnConnected(now, e.conn);
        } else if constexpr (std::is_same_v<E, ConnectFailed>) {
          OnConnectFailed(now, e.conn, e.why);
        } else if constexpr (std::is_same_v<E, Received>) {
          OnReceived(now, e.conn, e.bytes);
        } else if constexpr (std::is_same_v<E, Closed>) {
          OnClosed(now, e.conn, e.why);
        } else if constexpr (std::is_same_v<E, Accepted> || std::is_same_v<E, ServiceReplied>) {
          CHECK(false) << "the health checker accepts no clients and asks no services";
        }
        // Writable: nothing waits for output to drain. TimerFired: handled below.
      },
      event);
  // An answer that arrived with this event counts even at its deadline; then timeouts, then the
  // tick, so a connection that just timed out is reopened by the round due now.
  ExpirePolls(now);
  if (!next_round_ || now >= *next_round_) StartRound(now);
  CHECK_LE(results_.size(), kResultsPendingMax) << "TakeResults() is not being called";
}

std::optional<Action> HealthChecker::PollAction() {
  if (actions_.empty()) return std::nullopt;
  Action action = std::move(actions_.front());
  actions_.pop_front();
  return action;
}

std::optional<Instant> HealthChecker::NextDeadline() const {
  if (!next_round_) return Instant{std::numeric_limits<int64_t>::min()};
  Instant deadline = *next_round_;
  for (const Probe& probe : probes_) {
    if (probe.poll_began) {
      deadline = std::min(deadline, *probe.poll_began + MsToUs(config_.timeout_ms));
    }
  }
  return deadline;
}

std::vector<ConnId> HealthChecker::Conns() const {
  std::vector<ConnId> conns;
  for (const Probe& probe : probes_) {
    if (probe.session) conns.push_back(probe.session->conn());
  }
  return conns;
}

std::vector<ClusterView::PollResult> HealthChecker::TakeResults() {
  std::vector<ClusterView::PollResult> results;
  results.swap(results_);
  return results;
}

// ---------------------------------------------------------------- rounds and timeouts

void HealthChecker::StartRound(Instant now) {
  next_round_ = now + MsToUs(config_.interval_ms);
  for (Probe& probe : probes_) {
    // A node still logging in or still answering the previous poll is not polled twice: its
    // poll in flight keeps its own deadline.
    if (probe.poll_began) continue;
    StartPoll(now, probe);
  }
}

void HealthChecker::StartPoll(Instant now, Probe& probe) {
  CHECK(!probe.poll_began);
  probe.poll_began = now;
  probe.row_description_seen = false;
  probe.row.reset();
  probe.command_complete_seen = false;
  if (probe.session) {
    CHECK(probe.session->state() == ServerSession::State::kReady);
    SendQuery(probe);
    return;
  }
  const ConnId conn = env_.NewConnId();
  probe.session.emplace(conn, PoolKey{probe.node, config_.user, config_.database, {}},
                        config_.message_size_max);
  actions_.push_back(Connect{conn, probe.node});
}

void HealthChecker::SendQuery(Probe& probe) {
  std::string query = pg::Query{std::string(kHealthPollQuery)}.Encode();
  probe.session->NoteClientMessage(pg::Query::kType,
                                   std::string_view(query).substr(pg::kHeaderSize));
  probe.session->output() += query;
  FlushOutput(probe);
}

void HealthChecker::ExpirePolls(Instant now) {
  for (Probe& probe : probes_) {
    if (probe.poll_began && now >= *probe.poll_began + MsToUs(config_.timeout_ms)) {
      Fail(now, probe, Cat("no answer within ", config_.timeout_ms, " ms"),
           /*already_closed=*/false);
    }
  }
}

// ---------------------------------------------------------------- connection events

HealthChecker::Probe* HealthChecker::FindByConn(ConnId conn) {
  for (Probe& probe : probes_) {
    if (probe.session && probe.session->conn() == conn) return &probe;
  }
  return nullptr;
}

void HealthChecker::OnConnected(Instant now, ConnId conn) {
  Probe* probe = FindByConn(conn);
  if (probe == nullptr) return;
  if (probe->session->state() != ServerSession::State::kConnecting) {
    return Fail(now, *probe, "Connected twice", /*already_closed=*/false);
  }
  pg::StartupMessage startup;
  startup.parameters = {{"user", config_.user},
                        {"database", config_.database},
                        {"application_name", std::string(kApplicationName)}};
  probe->session->OnConnected(startup);
  FlushOutput(*probe);
}

void HealthChecker::OnConnectFailed(Instant now, ConnId conn, std::string_view why) {
  Probe* probe = FindByConn(conn);
  if (probe == nullptr) return;
  Fail(now, *probe, Cat("connect failed: ", why), /*already_closed=*/true);
}

void HealthChecker::OnClosed(Instant now, ConnId conn, std::string_view why) {
  Probe* probe = FindByConn(conn);
  if (probe == nullptr) return;
  if (!probe->poll_began) {
    // Lost between polls: the next round reconnects, and its poll judges the node.
    return DropConnection(*probe, why, /*already_closed=*/true);
  }
  Fail(now, *probe, Cat("connection closed: ", why), /*already_closed=*/true);
}

void HealthChecker::OnReceived(Instant now, ConnId conn, std::string_view bytes) {
  Probe* probe = FindByConn(conn);
  if (probe == nullptr) return;
  switch (probe->session->state()) {
    case ServerSession::State::kConnecting:
      return Fail(now, *probe, "server sent bytes before the connection was reported open",
                  /*already_closed=*/false);
    case ServerSession::State::kStartup:
    case ServerSession::State::kLogin:
      probe->session->reader().Append(bytes);
      return PumpLogin(now, *probe);
    case ServerSession::State::kReady:
    case ServerSession::State::kQuery:
      probe->session->reader().Append(bytes);
      if (probe->poll_began) return PumpAnswer(now, *probe);
      return PumpIdle(*probe);
    case ServerSession::State::kReplaying:
    case ServerSession::State::kReset:
    case ServerSession::State::kBroken:
      break;
  }
  CHECK(false) << "health connection in state " << ServerStateName(probe->session->state());
}

// ---------------------------------------------------------------- protocol

void HealthChecker::PumpLogin(Instant now, Probe& probe) {
  const ServerCredentials credentials{config_.user, config_.secret, std::nullopt};
  while (probe.session && (probe.session->state() == ServerSession::State::kStartup ||
                           probe.session->state() == ServerSession::State::kLogin)) {
    auto frame = probe.session->reader().Next();
    if (!frame.ok()) {
      return Fail(now, probe, Cat("bad bytes from server: ", frame.status().message()),
                  /*already_closed=*/false);
    }
    if (!frame->has_value()) return;
    std::string nonce(kScramNonceBytes, '\0');
    if ((**frame).type == pg::Authentication::kType) env_.RandomBytes(nonce.data(), nonce.size());
    auto result = probe.session->HandleLoginFrame(**frame, credentials, nonce);
    FlushOutput(probe);
    switch (result.step) {
      case ServerSession::LoginStep::kContinue:
        break;
      case ServerSession::LoginStep::kReady:
        // The poll that opened this connection goes out at once, on the same deadline.
        SendQuery(probe);
        return PumpAnswer(now, probe);
      case ServerSession::LoginStep::kFailed:
        return Fail(now, probe,
                    Cat("login failed: ", DescribeServerErrorMessage(result.error_for_client)),
                    /*already_closed=*/false);
    }
  }
}

void HealthChecker::PumpAnswer(Instant now, Probe& probe) {
  while (probe.session && probe.poll_began) {
    auto frame = probe.session->reader().Next();
    if (!frame.ok()) {
      return Fail(now, probe, Cat("bad bytes from server: ", frame.status().message()),
                  /*already_closed=*/false);
    }
    if (!frame->has_value()) return;
    absl::Status status = HandleAnswerFrame(now, probe, **frame);
    if (!status.ok()) return Fail(now, probe, std::string(status.message()), false);
  }
  if (probe.session) PumpIdle(probe);
}

absl::Status HealthChecker::HandleAnswerFrame(Instant now, Probe& probe, const pg::Frame& frame) {
  switch (frame.type) {
    case pg::RowDescription::kType: {
      if (probe.row_description_seen) return Invalid("server sent a second RowDescription");
      auto description = pg::RowDescription::Decode(frame.payload);
      if (!description.ok()) return Invalid("server sent a malformed RowDescription");
      if (description->fields.size() != 3) return Invalid("poll answer does not have 3 columns");
      probe.row_description_seen = true;
      return absl::OkStatus();
    }
    case pg::DataRow::kType: {
      if (!probe.row_description_seen || probe.row) return Invalid("server sent an extra DataRow");
      auto row = pg::DataRow::Decode(frame.payload);
      if (!row.ok()) return Invalid("server sent a malformed DataRow");
      probe.row = std::move(*row);
      return absl::OkStatus();
    }
    case pg::CommandComplete::kType:
      if (!probe.row || probe.command_complete_seen) {
        return Invalid("server completed the poll without exactly one row");
      }
      probe.command_complete_seen = true;
      return absl::OkStatus();
    case pg::ReadyForQuery::kType: {
      if (!probe.command_complete_seen) return Invalid("poll answer ended without its row");
      if (!probe.session->NoteServerMessage(frame)) {
        return Invalid("server sent a malformed ReadyForQuery");
      }
      if (probe.session->transaction_status() != 'I') {
        return Invalid("health connection is inside a transaction");
      }
      absl::StatusOr<HealthAnswer> answer = ParseHealthRow(*probe.row);
      if (!answer.ok()) return answer.status();
      Succeed(now, probe, *answer);
      return absl::OkStatus();
    }
    case 'E':
      return Invalid(Cat("server error: ", DescribeServerError(frame.payload)));
    case pg::ParameterStatus::kType:
    case pg::NotificationResponse::kType:
    case 'N':
      return absl::OkStatus();
    default:
      return Invalid(Cat("server sent unexpected ",
                         pg::TypeName(pg::Direction::kBackend, frame.type), " to a poll"));
  }
}

void HealthChecker::PumpIdle(Probe& probe) {
  CHECK(!probe.poll_began);
  while (probe.session) {
    auto frame = probe.session->reader().Next();
    if (!frame.ok()) return DropConnection(probe, "bad bytes from server", false);
    if (!frame->has_value()) return;
    const char type = (**frame).type;
    // Between polls a server may report a setting or a notice; anything else (typically FATAL
    // 57P01 before a shutdown) ends the connection, and the next round's poll judges the node.
    if (type != pg::ParameterStatus::kType && type != pg::NotificationResponse::kType &&
        type != 'N') {
      return DropConnection(probe, "unexpected message between polls", false);
    }
  }
}

// ---------------------------------------------------------------- outcomes

void HealthChecker::Succeed(Instant now, Probe& probe, const HealthAnswer& answer) {
  CHECK(probe.poll_began);
  results_.push_back(ClusterView::PollResult{.node = probe.node,
                                             .began = *probe.poll_began,
                                             .finished = now,
                                             .ok = true,
                                             .in_recovery = answer.in_recovery,
                                             .lsn = answer.lsn,
                                             .timeline = answer.timeline,
                                             .error = {}});
  probe.poll_began.reset();
}

void HealthChecker::Fail(Instant now, Probe& probe, std::string error, bool already_closed) {
  if (probe.poll_began) {
    results_.push_back(ClusterView::PollResult{.node = probe.node,
                                               .began = *probe.poll_began,
                                               .finished = now,
                                               .ok = false,
                                               .in_recovery = false,
                                               .lsn = 0,
                                               .timeline = 0,
                                               .error = Truncated(error)});
    probe.poll_began.reset();
  }
  DropConnection(probe, error, already_closed);
}

void HealthChecker::DropConnection(Probe& probe, std::string_view why, bool already_closed) {
  CHECK(!probe.poll_began);
  if (!probe.session) return;
  if (!already_closed) {
    const ServerSession::State state = probe.session->state();
    // A logged-in backend is told goodbye, so the server does not log an unexpected EOF.
    if (state == ServerSession::State::kReady || state == ServerSession::State::kQuery) {
      actions_.push_back(Send{probe.session->conn(), pg::Terminate{}.Encode()});
    }
    actions_.push_back(Close{probe.session->conn(), Truncated(why)});
  }
  probe.session.reset();
}

void HealthChecker::FlushOutput(Probe& probe) {
  std::string& output = probe.session->output();
  if (output.empty()) return;
  actions_.push_back(Send{probe.session->conn(), std::move(output)});
  output.clear();
}

void HealthChecker::CheckInvariants() const {
  CHECK_LE(results_.size(), kResultsPendingMax);
  for (size_t i = 0; i < probes_.size(); ++i) {
    const Probe& probe = probes_[i];
    if (i > 0) CHECK(probes_[i - 1].node < probe.node);
    if (probe.row) CHECK(probe.row_description_seen);
    if (probe.command_complete_seen) CHECK(probe.row.has_value());
    if (!probe.session) {
      CHECK(!probe.poll_began);
      continue;
    }
    probe.session->CheckInvariants();
    switch (probe.session->state()) {
      case ServerSession::State::kReady:
        // Idle between polls: nothing owed, nothing in flight.
        CHECK(!probe.poll_began);
        break;
      case ServerSession::State::kConnecting:
      case ServerSession::State::kStartup:
      case ServerSession::State::kLogin:
      case ServerSession::State::kQuery:
        // A connection is opened only for a poll, and a query is sent only as one.
        CHECK(probe.poll_began.has_value());
        break;
      case ServerSession::State::kReplaying:
      case ServerSession::State::kReset:
      case ServerSession::State::kBroken:
        CHECK(false) << "health connection in state " << ServerStateName(probe.session->state());
    }
    if (probe.poll_began) CHECK(next_round_.has_value());
  }
}

}  // namespace switchyard
