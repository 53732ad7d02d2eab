// `replay --target sim` (see sim_target.h): the world of one seed (network, trace-backed nodes
// and their nemesis, the real core behind the simulated driver, one simulated client per
// captured session), its phases, its oracles, and the command over a range of seeds.
//
// Compiled only into the simulator's build (the switchyard_replay_sim_target library).
#include "replay/sim_target.h"

#include <algorithm>
#include <cstdio>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <tuple>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "core/base/check.h"
#include "core/base/strings.h"
#include "core/proxy.h"
#include "core/route/classifier.h"
#include "io_sim/decision.h"
#include "io_sim/environment.h"
#include "io_sim/network.h"
#include "io_sim/prng.h"
#include "io_sim/run_hash.h"
#include "io_sim/sim_driver.h"
#include "replay/capture.h"
#include "replay/plan.h"
#include "replay/report.h"
#include "replay/session_replayer.h"
#include "replay/sim_cluster.h"
#include "replay/statements.h"
#include "replay/trace_files.h"
#include "sim/swarm.h"
#include "sim/trace_node.h"

namespace switchyard::replay {
namespace {

using sim::TraceNode;
using sim::TraceScript;

constexpr uint64_t kStepsPerPhaseMax = 200'000'000;
// Clients start this long after the proxy, so the health checker has polled once.
constexpr int64_t kReplayStartUs = 50'000;
// After its last scheduled message, how long the replay may run on (stalls included).
constexpr int64_t kReplayTailUs = 300'000'000;
constexpr int64_t kLivenessBoundUs = 60'000'000;
constexpr int kExitFindings = 1;
constexpr int kExitUnreadable = 3;

// ---------------------------------------------------------------- the script

// Whether every statement `sql` runs is read-only (DESIGN.md section 5), as the core's
// classifier sees it: what a replica may be sent.
bool ReadOnly(std::string_view sql, const route::FunctionVolatility& functions) {
  return route::Classify(sql, functions).read_only;
}

// The requests of the planned part of a captured session: its steps cut at each message the
// server answers with ReadyForQuery, and the captured answer of each.
std::vector<sim::ScriptRequest> ScriptRequests(const CapturedSession& session,
                                               const SessionPlan& plan,
                                               const route::FunctionVolatility& functions,
                                               size_t* first_request) {
  // The captured answer of each request, by its 1-based number (CaptureBuilder's unit.request);
  // an incomplete last unit belongs to the request after the last complete one.
  std::map<uint32_t, std::vector<const AnswerUnit*>> answers;
  uint32_t last_request = 0;
  for (const AnswerUnit& unit : session.units) {
    const uint32_t request = unit.complete ? unit.request : last_request + 1;
    answers[request].push_back(&unit);
    if (unit.complete && unit.terminator() == 'Z') last_request = unit.request;
  }
  std::map<std::string, std::string> statements;  // prepared statement name -> text
  if (session.snapshot) {
    for (const auto& prepared : session.snapshot->prepared_statements) {
      statements[prepared.name] = prepared.query;
    }
  }
  std::vector<sim::ScriptRequest> requests;
  sim::ScriptRequest current{.read_only = true};
  uint32_t number = 0;
  *first_request = 0;
  for (size_t i = 0; i < plan.end_step; ++i) {
    const ClientStep& step = session.steps[i];
    if (step.kind != ClientStep::Kind::kMessage || step.message.empty()) continue;
    const char type = step.message[0];
    if (type == 'd' || type == 'c' || type == 'f' || type == 'X') continue;
    std::string_view payload = Payload(step.message);
    if (type == 'Q') {
      auto query = pg::Query::Decode(payload);
      std::string sql = query.ok() ? query->sql : "";
      current.read_only = current.read_only && ReadOnly(sql, functions);
      if (current.text.empty()) current.text = sql;
    } else if (type == 'P') {
      auto parse = pg::Parse::Decode(payload);
      if (parse.ok()) {
        statements[parse->name] = parse->query;
        if (current.text.empty()) current.text = parse->query;
      }
    } else if (type == 'B') {
      auto bind = pg::Bind::Decode(payload);
      auto it = bind.ok() ? statements.find(bind->statement) : statements.end();
      const bool known = it != statements.end();
      current.read_only = current.read_only && known && ReadOnly(it->second, functions);
      if (known && current.text.empty()) current.text = it->second;
    } else if (type == 'F') {
      current.read_only = false;
    }
    if (i >= plan.first_step) current.bytes += step.message;
    if (!IsRequestEnd(type)) continue;
    ++number;
    if (i >= plan.first_step) {
      if (requests.empty()) *first_request = number - 1;
      for (const AnswerUnit* unit : answers[number]) {
        for (const AnswerMessage& message : unit->messages) current.answer.push_back(message.bytes);
        if (!unit->complete) current.complete = false;
      }
      if (current.answer.empty()) current.complete = false;
      requests.push_back(std::move(current));
    }
    current = sim::ScriptRequest{.read_only = true};
  }
  return requests;
}

struct ClientContext {
  io_sim::SimNetwork& network;
  io_sim::Timeline& timeline;
  TraceScript& script;
  const ReplaySettings& settings;
  const Pacer& pacer;
  ReplayReport& report;
};

// One replayed session on the simulated network: its SessionReplayer's actions become a
// connection to the proxy, writes and CancelRequests, and its deadlines timeline events. It tells
// the script which captured request it sent and when its answer came, so that the nodes can
// find the answer.
class SimClient final : public io_sim::Peer {
 public:
  SimClient(ClientContext& c, size_t index, const CapturedSession& session, const SessionPlan& plan,
            size_t first_request, Instant replay_start)
      : c_(c),
        index_(index),
        peer_{static_cast<uint32_t>(index + 1)},
        replayer_(session, plan, c.settings, c.pacer, replay_start, std::string(24, 'n'), c.report),
        first_request_(first_request) {
    if (session.snapshot) {
      SnapshotSetup setup = BuildSnapshotSetup(*session.snapshot);
      setup_messages_ = setup.messages.size();
      ready_before_replay_ += setup.ready_expected;
    }
  }

  Instant StartDue() const { return replayer_.StartDue(); }
  bool finished() const { return replayer_.finished(); }

  void Start() {
    replayer_.Start(c_.timeline.now());
    Perform();
  }

  void OnConnected(io_sim::LinkId link) override {
    if (auto it = cancels_.find(link); it != cancels_.end()) {
      c_.network.PeerSend(link, it->second);
      c_.network.PeerClose(link);
      cancels_.erase(it);
      return;
    }
    if (link != link_ || !open_) return;
    connected_ = true;
    replayer_.OnConnected(c_.timeline.now());
    Perform();
  }

  void OnReadable(io_sim::LinkId link) override {
    if (link != link_ || !open_) return DrainOther(link);
    const Instant now = c_.timeline.now();
    while (open_) {
      io_sim::ReadResult read = c_.network.PeerRead(link_, size_t{64} << 10);
      if (read.kind == io_sim::ReadResult::Kind::kEmpty) break;
      if (read.kind == io_sim::ReadResult::Kind::kData) {
        CountAnswers(read.bytes);
        replayer_.OnReceived(now, read.bytes);
        Perform();
        continue;
      }
      const std::string why =
          read.kind == io_sim::ReadResult::Kind::kEof ? "end of stream" : read.why;
      open_ = false;
      c_.network.PeerClose(link_);
      c_.script.OnClientGone(index_);
      if (!connected_) {
        replayer_.OnConnectFailed(now, why);
      } else if (read.kind == io_sim::ReadResult::Kind::kReset) {
        // The proxy closes with an end of stream: a reset is the network's fault.
        replayer_.OnCutByFault(now, why);
      } else {
        replayer_.OnClosed(now, why);
      }
      Perform();
    }
  }

 private:
  // A cancel connection, or the session's connection after it was closed: read and forget.
  void DrainOther(io_sim::LinkId link) {
    if (cancels_.contains(link)) return;  // not connected yet: nothing to read
    for (;;) {
      io_sim::ReadResult read = c_.network.PeerRead(link, size_t{64} << 10);
      if (read.kind == io_sim::ReadResult::Kind::kData) continue;
      if (read.kind != io_sim::ReadResult::Kind::kEmpty) c_.network.PeerClose(link);
      return;
    }
  }

  // Counts the ReadyForQuery messages that answer replayed requests (the login's and those of
  // a snapshot's setup come first).
  void CountAnswers(std::string_view bytes) {
    answers_.Append(bytes);
    for (;;) {
      absl::StatusOr<std::optional<pg::Frame>> frame = answers_.Next();
      if (!frame.ok() || !frame->has_value()) return;
      if ((*frame)->type == 'Z' && ++ready_seen_ > ready_before_replay_) {
        c_.script.OnClientAnswered(index_);
      }
    }
  }

  void OnSent(std::string_view bytes) {
    // The startup packet, then the snapshot's setup, then the captured messages.
    if (sends_++ < 1 + setup_messages_ || bytes.empty()) return;
    if (IsRequestEnd(bytes[0])) c_.script.OnClientSent(index_, first_request_ + requests_sent_++);
  }

  void Perform() {
    while (std::optional<ReplayAction> action = replayer_.PollAction()) {
      switch (action->kind) {
        case ReplayAction::Kind::kConnect:
          link_ = c_.network.ConnectToProxy(peer_, this);
          open_ = true;
          break;
        case ReplayAction::Kind::kSend:
          OnSent(action->bytes);
          if (open_ && connected_) c_.network.PeerSend(link_, action->bytes);
          break;
        case ReplayAction::Kind::kCancel:
          cancels_[c_.network.ConnectToProxy(peer_, this)] =
              pg::CancelRequest{.pid = action->key.pid, .secret = action->key.secret}.Encode();
          break;
        case ReplayAction::Kind::kClose:
          if (open_) c_.network.PeerClose(link_);
          open_ = false;
          c_.script.OnClientGone(index_);
          break;
      }
    }
    Rearm();
  }

  void Rearm() {
    if (timer_) c_.timeline.Cancel(*timer_);
    timer_.reset();
    std::optional<Instant> deadline = replayer_.NextDeadline();
    if (!deadline) return;
    timer_ = c_.timeline.Schedule(std::max(*deadline, c_.timeline.now()), [this] {
      timer_.reset();
      replayer_.OnTime(c_.timeline.now());
      Perform();
    });
  }

  ClientContext& c_;
  size_t index_;
  io_sim::PeerId peer_;
  SessionReplayer replayer_;
  size_t first_request_;
  io_sim::LinkId link_;
  bool open_ = false;
  bool connected_ = false;
  std::map<io_sim::LinkId, std::string> cancels_;  // not yet connected, with their request
  size_t sends_ = 0;
  size_t setup_messages_ = 0;
  size_t requests_sent_ = 0;
  pg::FrameReader answers_{pg::Direction::kBackend};
  size_t ready_seen_ = 0;
  size_t ready_before_replay_ = 1;
  std::optional<io_sim::EventId> timer_;
};

// ---------------------------------------------------------------- one seed

// What a capture becomes before any seed runs: the sessions to replay and their requests.
struct Prepared {
  const Capture* capture = nullptr;
  PacingOptions pacing;
  std::vector<size_t> sessions;    // indices into capture->sessions, by start time
  std::vector<SessionPlan> plans;  // by capture session
  std::vector<std::vector<sim::ScriptRequest>> requests;  // by replayed session
  std::vector<size_t> first_request;
  std::vector<std::string> login_parameters;
  std::optional<Pacer> pacer;
  int64_t last_due_us = 0;
  uint64_t skipped = 0;
};

struct SeedResult {
  uint64_t seed = 0;
  uint64_t hash = 0;
  std::unique_ptr<ReplayReport> report;
  std::vector<Violation> violations;
  std::vector<std::string> unknown;  // requests no capture answered (the first few)
  uint64_t strikes = 0;
  uint64_t promotions = 0;
  int64_t sim_time_us = 0;
  uint64_t steps = 0;
  std::string phases;

  bool clean() const {
    return violations.empty() && report->divergences() == 0 && report->errors() == 0 &&
           report->stalls() == 0;
  }
};

class SeedRun {
 public:
  SeedRun(const Prepared& p, const SimReplayCommand& command, uint64_t seed)
      : p_(p),
        options_(sim::DeriveRunOptions(seed, command.swarm)),
        seeds_(io_sim::SimSeeds::FromRoot(seed)),
        network_decisions_(seeds_.network),
        scheduler_decisions_(seeds_.scheduler),
        environment_decisions_(seeds_.environment),
        node_decisions_(seeds_.nodes),
        network_(options_.network, timeline_, network_decisions_, &hash_),
        env_(environment_decisions_),
        services_(options_.proxy),
        cluster_(options_, script_, network_, timeline_, node_decisions_, hash_, services_),
        driver_(
            options_.driver, timeline_, network_, services_, env_, scheduler_decisions_,
            [this](UnitId id, ConnId client, bool admitted) {
              return std::make_unique<Unit>(id, client, options_.proxy, env_, admitted);
            },
            &hash_),
        report_(std::make_unique<ReplayReport>()),
        context_{network_, timeline_, script_, settings_, *p.pacer, *report_} {
    result_.seed = seed;
    settings_.user = command.user;
    settings_.database = command.database;
    settings_.stall_timeout_us = command.stall_timeout_ms * 1000;
    const io_sim::FaultConfig& f = options_.network.faults;
    network_faults_ = f.reset_ppm > 0 || f.black_hole_ppm > 0 || f.connect_refused_ppm > 0 ||
                      f.connect_timeout_ppm > 0;
    settings_.connection_loss_possible = [this] {
      return network_faults_ || cluster_.strikes() > 0 || services_.counters().server_losses > 0;
    };
    script_.set_login_parameters(p.login_parameters);
    for (size_t i = 0; i < p.sessions.size(); ++i) script_.AddSession(p.requests[i]);
    for (size_t i = 0; i < cluster_.size(); ++i) {
      cluster_.node(i).set_observer([this](const sim::TraceNodeEvent& e) { OnNodeEvent(e); });
    }
    if (options_.cluster.health_checker) {
      driver_.AddSystemUnit(
          [this](UnitId id) { return Unit::NewHealthChecker(id, options_.proxy, env_); });
      system_units_ = 1;
    }
  }

  const sim::RunOptions& options() const { return options_; }

  SeedResult Run() {
    const Instant start{kReplayStartUs};
    for (size_t i = 0; i < p_.sessions.size(); ++i) {
      const size_t s = p_.sessions[i];
      clients_.push_back(std::make_unique<SimClient>(context_, i, p_.capture->sessions[s],
                                                     p_.plans[s], p_.first_request[i], start));
    }
    cluster_.Start();
    for (auto& client : clients_) {
      timeline_.Schedule(std::max(client->StartDue(), timeline_.now()),
                         [c = client.get()] { c->Start(); });
    }
    const auto finished = [this] {
      return std::all_of(clients_.begin(), clients_.end(),
                         [](const auto& c) { return c->finished(); });
    };
    const Instant deadline = start + p_.last_due_us + kReplayTailUs;
    const auto faults = driver_.RunUntil(finished, deadline, kStepsPerPhaseMax);
    if (!finished()) Violate("liveness", "sessions were still replaying at the end of the run");
    cluster_.Heal();
    network_.set_faults(io_sim::FaultConfig{});
    const auto liveness =
        driver_.RunUntil([this] { return ClientUnits() == 0 && network_.Settled(); },
                         driver_.now() + kLivenessBoundUs, kStepsPerPhaseMax);
    if (liveness != io_sim::SimDriver::Stop::kDone) {
      Violate("liveness",
              Cat("after healing, the proxy still holds ", ClientUnits(), " client units"));
    }
    if (services_.counters().clients_active != 0) {
      Violate("liveness", Cat("after healing, the proxy still counts ",
                              services_.counters().clients_active, " active clients"));
    }
    io_sim::SimDriver::Stop roles = io_sim::SimDriver::Stop::kDone;
    if (options_.cluster.health_checker) {
      const int64_t bound = 5 * MsToUs(options_.cluster.health_check_interval_ms +
                                       options_.cluster.health_check_timeout_ms) +
                            1'000'000;
      roles = driver_.RunUntil([this] { return cluster_.ProxySeesPrimary(); },
                               driver_.now() + bound, kStepsPerPhaseMax);
      if (roles != io_sim::SimDriver::Stop::kDone) {
        Violate("failover", Cat("after healing, the proxy did not name n", cluster_.primary(),
                                " the primary within ", bound / 1000, " ms"));
      }
    }
    const ReplayReport& r = *report_;
    hash_.Record("replay", timeline_.now(),
                 {static_cast<int64_t>(r.sessions()), static_cast<int64_t>(r.messages()),
                  static_cast<int64_t>(r.divergences()), static_cast<int64_t>(r.errors()),
                  static_cast<int64_t>(r.stalls()), static_cast<int64_t>(r.fault_consequences()),
                  static_cast<int64_t>(result_.violations.size())});
    result_.hash = hash_.value();
    result_.strikes = cluster_.strikes();
    result_.promotions = cluster_.promotions();
    result_.sim_time_us = timeline_.now().us;
    result_.steps = driver_.stats().steps;
    result_.phases =
        Cat("replay=", io_sim::StopName(faults), " liveness=", io_sim::StopName(liveness),
            " roles=", io_sim::StopName(roles));
    result_.report = std::move(report_);
    return std::move(result_);
  }

 private:
  size_t ClientUnits() const { return driver_.unit_count() - system_units_; }

  // Reports a violation; one about a request is reported once (a proxy that retries a refused
  // write forever would otherwise fill the output).
  void Violate(std::string_view oracle, std::string what, int64_t session = -1,
               int64_t index = -1) {
    if (session >= 0 && !reported_.insert({std::string(oracle), session, index}).second) return;
    hash_.Record("violation", timeline_.now(), {}, what);
    result_.violations.push_back(
        Violation{std::string(oracle), timeline_.now().us, std::move(what)});
  }

  // The oracles on what the nodes received (DESIGN.md section 5).
  void OnNodeEvent(const sim::TraceNodeEvent& e) {
    const int64_t session = e.match ? static_cast<int64_t>(e.match->session) : -1;
    const int64_t index = e.match ? static_cast<int64_t>(e.match->index) : -1;
    hash_.Record("node_event", timeline_.now(),
                 {static_cast<int64_t>(e.kind), static_cast<int64_t>(e.node), session, index});
    const std::string where =
        Cat("n", e.node, " session ", session, " request ", index, ": ", e.text.substr(0, 200));

    switch (e.kind) {
      case sim::TraceNodeEvent::Kind::kClientRequest:
        if (cluster_.fenced(e.node)) {
          Violate("fencing", Cat("a fenced old primary received a client's request: ", where),
                  session, index);
        }
        if (e.refused) {
          Violate("no_write_on_replica", Cat("a replica received a write: ", where), session,
                  index);
        }
        if (e.match->deliveries > 0 && !e.read_only) {
          Violate("no_double_write",
                  Cat("a write reached a server twice (", e.match->deliveries + 1,
                      " deliveries so far): ", where),
                  session, index);
        }
        return;
      case sim::TraceNodeEvent::Kind::kUnknown:
        if (result_.unknown.size() < 5) result_.unknown.push_back(where);
        return;
      default:
        return;
    }
  }

  const Prepared& p_;
  sim::RunOptions options_;
  io_sim::SimSeeds seeds_;
  io_sim::PrngDecisions network_decisions_;
  io_sim::PrngDecisions scheduler_decisions_;
  io_sim::PrngDecisions environment_decisions_;
  io_sim::PrngDecisions node_decisions_;
  io_sim::Timeline timeline_;
  io_sim::RunHash hash_;
  io_sim::SimNetwork network_;
  io_sim::SimEnvironment env_;
  Services services_;
  TraceScript script_;
  TraceCluster cluster_;
  io_sim::SimDriver driver_;
  size_t system_units_ = 0;
  bool network_faults_ = false;
  ReplaySettings settings_;
  std::unique_ptr<ReplayReport> report_;
  ClientContext context_;
  std::vector<std::unique_ptr<SimClient>> clients_;
  std::set<std::tuple<std::string, int64_t, int64_t>> reported_;
  SeedResult result_;
};

// ---------------------------------------------------------------- the command

Prepared Prepare(const Capture& capture, const SimReplayCommand& command) {
  Prepared p;
  p.capture = &capture;
  p.pacing = PacingOptions{.speed = command.speed,
                           .no_waiting = command.no_waiting,
                           .skip_idle = command.skip_idle,
                           .from_us = command.from_us,
                           .to_us = command.to_us};
  const route::FunctionVolatility functions = route::FunctionVolatility::Builtin();
  for (size_t i = 0; i < capture.sessions.size(); ++i) {
    const CapturedSession& session = capture.sessions[i];
    p.plans.push_back(PlanSession(session, p.pacing));
    if (!p.plans.back().replay) {
      ++p.skipped;
      continue;
    }
    if (p.login_parameters.empty()) p.login_parameters = session.login_parameter_messages;
    p.sessions.push_back(i);
  }
  std::stable_sort(p.sessions.begin(), p.sessions.end(), [&p](size_t a, size_t b) {
    return p.plans[a].start_time_us < p.plans[b].start_time_us;
  });
  for (size_t s : p.sessions) {
    size_t first = 0;
    p.requests.push_back(ScriptRequests(capture.sessions[s], p.plans[s], functions, &first));
    p.first_request.push_back(first);
  }
  std::vector<int64_t> times = ScheduledTimes(capture, p.plans);
  p.pacer.emplace(p.pacing, times);
  for (int64_t t : times) p.last_due_us = std::max(p.last_due_us, p.pacer->DueOffsetUs(t));
  return p;
}

// The run's options as `switchyard sim` prints them, less its workload (the capture is the
// workload here).
std::string DescribeOptions(const sim::RunOptions& options) {
  std::string out;
  const std::string all = options.Describe();
  for (absl::string_view line : absl::StrSplit(all, '\n')) {
    if (absl::StartsWith(line, "  workload:")) continue;
    absl::StrAppend(&out, out.empty() ? "" : "\n", line);
  }
  return out;
}

void Print(const std::string& text) {
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fflush(stdout);
}

std::string Reproduce(const SimReplayCommand& command, uint64_t seed) {
  std::string traces;
  for (const std::string& trace : command.traces) traces += trace + " ";
  return Cat("switchyard replay ", traces, "--target sim --seed ", seed,
             command.swarm ? " --swarm" : "");
}

// Everything about one seed: with a single seed the whole report first.
void PrintSeed(const SimReplayCommand& command, const SeedResult& r, bool single, bool details) {
  std::string text;
  if (single || details) {
    std::string report = r.report->Text();
    // The report's own summary line is printed once, at the very end.
    const size_t last = report.rfind('\n', report.size() >= 2 ? report.size() - 2 : 0);
    if (last != std::string::npos) report.resize(last + 1);
    text += report;
  }
  for (const std::string& unknown : r.unknown) {
    text += absl::StrFormat("unanswered seed=%d: no captured answer to %s\n", r.seed, unknown);
  }
  for (const Violation& v : r.violations) {
    text += absl::StrFormat("violation seed=%d oracle=%s t=%dus: %s -- reproduce: %s\n", r.seed,
                            v.oracle, v.at_us, v.what, Reproduce(command, r.seed));
  }
  const ReplayReport& rep = *r.report;
  text += absl::StrFormat(
      "seed=%d result=%s sessions=%d messages=%d divergences=%d errors=%d stalls=%d "
      "explained=%d violations=%d faults=%d promotions=%d sim_s=%.3f steps=%d %s hash=%016x\n",
      r.seed, r.clean() ? "ok" : "FAILED", rep.sessions(), rep.messages(), rep.divergences(),
      rep.errors(), rep.stalls(), rep.fault_consequences(), r.violations.size(), r.strikes,
      r.promotions, static_cast<double>(r.sim_time_us) / 1e6, r.steps, r.phases, r.hash);
  Print(text);
}

}  // namespace
}  // namespace switchyard::replay

int RunSimReplayCommand(const SimReplayCommand& command) {
  using namespace switchyard::replay;  // NOLINT(google-build-using-namespace): one entry point
  absl::StatusOr<Capture> capture = LoadTraceFiles(command.traces);
  if (!capture.ok()) {
    std::fprintf(stderr, "switchyard replay: cannot read the trace: %s\n",
                 std::string(capture.status().message()).c_str());
    return kExitUnreadable;
  }
  const Prepared prepared = Prepare(*capture, command);
  const bool single = command.seed_first == command.seed_last;
  uint64_t failed = 0, violations = 0, explained = 0;
  uint64_t sessions = 0, messages = 0, divergences = 0, errors = 0, stalls = 0;
  constexpr uint64_t kFailuresDetailedMax = 3;
  for (uint64_t seed = command.seed_first;; ++seed) {
    SeedRun run(prepared, command, seed);
    if (single) {
      Print(absl::StrFormat("replay --target sim %s swarm=%s\n%s\n",
                            switchyard::io_sim::SimSeeds::FromRoot(seed).Describe(),
                            command.swarm ? "on" : "off", DescribeOptions(run.options())));
    }
    SeedResult result = run.Run();
    result.report->AddContext(absl::StrFormat(
        "trace: %zu file(s), %u records, %zu sessions (%u not replayed)", capture->files.size(),
        capture->records, capture->sessions.size(), prepared.skipped));
    PrintSeed(command, result, single, !result.clean() && failed < kFailuresDetailedMax);
    failed += result.clean() ? 0 : 1;
    violations += result.violations.size();
    const ReplayReport& r = *result.report;
    explained += r.fault_consequences();
    sessions += r.sessions();
    messages += r.messages();
    divergences += r.divergences();
    errors += r.errors();
    stalls += r.stalls();
    if (seed == command.seed_last) break;
  }
  Print(absl::StrFormat("seeds=%d failed=%d violations=%d explained=%d\n",
                        command.seed_last - command.seed_first + 1, failed, violations, explained));
  Print(absl::StrFormat("sessions=%d messages=%d divergences=%d errors=%d stalls=%d\n", sessions,
                        messages, divergences, errors, stalls));
  return failed == 0 ? 0 : kExitFindings;
}
