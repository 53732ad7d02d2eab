// One simulation run: the world, the nemesis that inflicts node faults, and the three phases
// (faults, liveness, probes).
#include "sim/runner.h"

#include <memory>
#include <utility>

#include "core/base/strings.h"
#include "core/proxy.h"
#include "io_sim/decision.h"
#include "io_sim/environment.h"
#include "io_sim/event_queue.h"
#include "io_sim/network.h"
#include "io_sim/prng.h"
#include "io_sim/run_hash.h"
#include "sim/node_peer.h"
#include "sim/pg_node.h"
#include "sim/timeline.h"

namespace switchyard::sim {
namespace {

constexpr NodeId kPrimary{0};
constexpr io_sim::PeerId kPrimaryPeer{1'000'000'000};
// A runaway run (something that always schedules more work now) stops here, reported.
constexpr uint64_t kStepsPerPhaseMax = 200'000'000;

// Inflicts the node faults of NodeFaultOptions on the primary, each kind on its own schedule,
// until Heal().
class Nemesis {
 public:
  Nemesis(const NodeFaultOptions& options, NodePeer& node, io_sim::Timeline& timeline,
          io_sim::DecisionSource& decisions, io_sim::RunHash& hash,
          TimelineRecorder* recorder = nullptr)
      : o_(options),
        node_(node),
        timeline_(timeline),
        d_(decisions),
        hash_(hash),
        recorder_(recorder) {}

  void Start() {
    for (Kind kind : {Kind::kCrash, Kind::kShutdown, Kind::kPause, Kind::kTerminate, Kind::kSlow}) {
      Schedule(kind);
    }
  }

  // Faults stop; the node is up, running and at full speed again.
  void Heal() {
    active_ = false;
    if (paused_) node_.Pause(false);
    paused_ = false;
    node_.Restart();
    node_.SetSlowness(0);
    Record("heal");
  }

 private:
  enum class Kind { kCrash, kShutdown, kPause, kTerminate, kSlow };

  int64_t Interval(Kind kind) const {
    switch (kind) {
      case Kind::kCrash:
        return o_.crash_interval_us;
      case Kind::kShutdown:
        return o_.shutdown_interval_us;
      case Kind::kPause:
        return o_.pause_interval_us;
      case Kind::kTerminate:
        return o_.terminate_interval_us;
      case Kind::kSlow:
        return o_.slow_interval_us;
    }
    return 0;
  }

  void Schedule(Kind kind) {
    const int64_t interval = Interval(kind);
    if (interval <= 0) return;
    const int64_t gap = d_.Between(1, 2 * interval, "nemesis.gap");
    After(gap, [this, kind] { Strike(kind); });
  }

  void After(int64_t delay_us, std::function<void()> action) {
    timeline_.ScheduleAfter(delay_us, [this, action = std::move(action)] {
      if (active_) action();
    });
  }

  void Strike(Kind kind) {
    switch (kind) {
      case Kind::kCrash:
      case Kind::kShutdown:
        if (node_.pg().up()) {
          Record(kind == Kind::kCrash ? "crash" : "shutdown");
          kind == Kind::kCrash ? node_.Crash() : node_.Shutdown();
          After(d_.Between(1, o_.down_us_max, "nemesis.down"), [this] {
            Record("restart");
            node_.Restart();
          });
        }
        break;
      case Kind::kPause:
        if (!paused_) {
          Record("pause");
          paused_ = true;
          node_.Pause(true);
          After(d_.Between(1, o_.pause_us_max, "nemesis.pause"), [this] {
            Record("unpause");
            paused_ = false;
            node_.Pause(false);
          });
        }
        break;
      case Kind::kTerminate:
        if (node_.TerminateSession(d_.Below(uint64_t{1} << 32, "nemesis.victim"))) {
          Record("terminate");
        }
        break;
      case Kind::kSlow:
        Record("slow");
        node_.SetSlowness(d_.Between(1, o_.slow_us_max, "nemesis.slow"));
        After(d_.Between(1, o_.slow_period_us_max, "nemesis.slow_period"), [this] {
          if (recorder_ != nullptr) recorder_->NodeEvent(timeline_.now(), "slow_end");
          node_.SetSlowness(0);
        });
        break;
    }
    Schedule(kind);
  }

  void Record(std::string_view what) {
    hash_.Record("nemesis", timeline_.now(), {}, what);
    if (recorder_ != nullptr) recorder_->NodeEvent(timeline_.now(), what);
  }

  const NodeFaultOptions& o_;
  NodePeer& node_;
  io_sim::Timeline& timeline_;
  io_sim::DecisionSource& d_;
  io_sim::RunHash& hash_;
  TimelineRecorder* recorder_;
  bool active_ = true;
  bool paused_ = false;
};

// Forwards observations to the oracles, letting a test tamper with answers on the way.
class TamperingObserver final : public ForwardingObserver {
 public:
  TamperingObserver(ClientObserver& next, const RunHooks& hooks)
      : ForwardingObserver(next), hooks_(hooks) {}
  void OnAnswer(const ClientInfo& c, const SessionModel& s, const Request& r,
                const Answer& a) override {
    if (!hooks_.tamper_answer_for_test) return next_.OnAnswer(c, s, r, a);
    Answer copy = a;
    hooks_.tamper_answer_for_test(c, r, copy);
    next_.OnAnswer(c, s, r, copy);
  }

 private:
  const RunHooks& hooks_;
};

NodeOptions PrimaryOptions(uint64_t seed, const ProxyConfig& proxy) {
  NodeOptions node;
  node.name = "primary";
  node.role = NodeRole::kPrimary;
  node.auth = NodeAuth::kTrust;
  node.seed = seed;
  // Room for every pooled connection plus the cancel connections next to them.
  node.limits.max_connections = static_cast<size_t>(proxy.max_server_connections) + 10;
  return node;
}

uint64_t ProxyBufferBound(const RunOptions& o) {
  constexpr uint64_t kMessageOverheadBytes = 64 << 10;  // headers, a row's other column, slack
  return o.proxy.client_output_high_bytes + o.driver.read_chunk_bytes +
         static_cast<uint64_t>(o.workload.value_bytes_max) * 2 + kMessageOverheadBytes +
         2 * static_cast<uint64_t>(o.network.window_bytes);
}

// Everything one run is made of, in construction order (each part refers to earlier ones).
struct SimWorld {
  explicit SimWorld(const RunOptions& o, const RunHooks& hooks)
      : options(o),
        seeds(io_sim::SimSeeds::FromRoot(o.seed)),
        network_decisions(seeds.network),
        scheduler_decisions(seeds.scheduler),
        environment_decisions(seeds.environment),
        node_decisions(seeds.nodes),
        network(o.network, timeline, network_decisions, &hash),
        pg(PrimaryOptions(seeds.nodes, o.proxy)),
        node(pg, network, timeline, kPrimary, kPrimaryPeer),
        env(environment_decisions),
        services(options.proxy),
        driver(
            o.driver, timeline, network, services, env, scheduler_decisions,
            [this](UnitId id, ConnId client, bool admitted) {
              return std::make_unique<Unit>(id, client, options.proxy, env, admitted);
            },
            &hash),
        world{&timeline, &pg.store(),       &node,
              &history,  o.proxy.pool_size, o.proxy.max_server_connections},
        tampering(oracles, hooks),
        recording(tampering, hooks.timeline, timeline),
        workload(
            o.workload, seeds.workload, network, timeline, recording,
            [this] { return pg.store().records_total(); }, &hash),
        nemesis(o.node_faults, node, timeline, node_decisions, hash, hooks.timeline) {
    world.proxy_buffer_bytes_max = hooks.proxy_buffer_bytes_max_for_test != 0
                                       ? hooks.proxy_buffer_bytes_max_for_test
                                       : ProxyBufferBound(o);
    AddStandardOracles(oracles, world, violations);
  }

  const RunOptions& options;
  io_sim::SimSeeds seeds;
  io_sim::PrngDecisions network_decisions;
  io_sim::PrngDecisions scheduler_decisions;
  io_sim::PrngDecisions environment_decisions;
  io_sim::PrngDecisions node_decisions;
  io_sim::Timeline timeline;
  io_sim::RunHash hash;
  io_sim::SimNetwork network;
  PgNode pg;
  NodePeer node;
  io_sim::SimEnvironment env;
  Services services;
  io_sim::SimDriver driver;
  KvHistory history;
  Violations violations;
  World world;
  OracleSet oracles;
  TamperingObserver tampering;
  TimelineObserver recording;  // workload -> recording -> tampering -> oracles
  Workload workload;
  Nemesis nemesis;
};

}  // namespace

std::string ReproduceCommand(const RunOptions& options) {
  std::string command =
      Cat("switchyard sim --seed ", options.seed, options.swarm ? " --swarm" : "");
  if (options.proxy.mutants != 0) command += Cat(" --mutant ", MutantNames(options.proxy.mutants));
  return command;
}

RunResult RunSimulation(const RunOptions& options, const RunHooks& hooks) {
  auto w = std::make_unique<SimWorld>(options, hooks);
  io_sim::SimDriver& driver = w->driver;
  if (hooks.trace || hooks.timeline != nullptr) {
    // The timeline reads its faults and server connections from the same lines.
    const auto trace = [&hooks](std::string_view line) {
      if (hooks.timeline != nullptr) hooks.timeline->TraceLine(line);
      if (hooks.trace) hooks.trace(line);
    };
    w->network.set_trace(trace);
    driver.set_trace(trace);
    w->node.set_trace(trace);
  }
  const auto phase = [&](std::string_view what) {
    if (hooks.timeline != nullptr) hooks.timeline->Phase(driver.now(), what);
    if (hooks.trace) hooks.trace(Cat("t=", driver.now().us, " phase ", what));
  };
  // Settled: what the faults left on the wire (a FATAL or a reset on an idle pooled connection)
  // has arrived, so the proxy has had its chance to learn of every connection they killed.
  const auto idle = [&] {
    return w->workload.Done() && driver.unit_count() == 0 && w->network.Settled();
  };

  // Phase 1: the workload under faults.
  w->nemesis.Start();
  w->workload.Start();
  io_sim::SimDriver::Stop faults = driver.RunUntil(
      [&] { return w->workload.Done(); }, Instant{options.fault_phase_us}, kStepsPerPhaseMax);

  // Phase 2: faults healed; everything pending must complete within the bound.
  phase("liveness: faults healed");
  w->nemesis.Heal();
  w->network.set_faults(io_sim::FaultConfig{});
  w->workload.WindDown();
  io_sim::SimDriver::Stop liveness =
      driver.RunUntil(idle, driver.now() + options.liveness_bound_us, kStepsPerPhaseMax);
  if (liveness != io_sim::SimDriver::Stop::kDone) w->workload.ReportOpenSessions();
  w->oracles.OnQuiescent(Quiescence{driver.unit_count(), w->services.counters().clients_active});

  // Phase 3: as many probe clients as the pool holds must all get in at once.
  phase("probes");
  w->workload.StartProbes(options.proxy.pool_size);
  io_sim::SimDriver::Stop probes =
      driver.RunUntil([&] { return w->workload.ProbesDone() && driver.unit_count() == 0; },
                      driver.now() + options.liveness_bound_us, kStepsPerPhaseMax);
  if (probes != io_sim::SimDriver::Stop::kDone) w->workload.ReportOpenSessions();
  w->oracles.Finish();
  w->pg.CheckInvariants();

  RunResult result;
  result.seed = options.seed;
  result.hash = w->hash.value();
  result.hash_events = w->hash.events();
  result.violations = w->violations.list();
  result.violation_count = w->violations.count();
  result.sim_queries = w->workload.answers();
  result.sim_time_us = w->timeline.now().us;
  result.phases = Cat("faults=", io_sim::StopName(faults), " liveness=", io_sim::StopName(liveness),
                      " probes=", io_sim::StopName(probes));
  result.driver = driver.stats();
  if (hooks.timeline != nullptr) RecordRunEnd(*hooks.timeline, options, result);
  return result;
}

}  // namespace switchyard::sim
