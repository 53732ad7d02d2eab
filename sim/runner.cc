// One simulation run: the world, the simulated cluster with its nemesis (node faults,
// replication lag, failovers), and the phases (faults, liveness, role detection, probes).
#include "sim/runner.h"

#include <algorithm>
#include <deque>
#include <memory>
#include <utility>

#include "core/base/check.h"
#include "core/base/strings.h"
#include "core/proxy.h"
#include "io_sim/decision.h"
#include "io_sim/environment.h"
#include "io_sim/event_queue.h"
#include "io_sim/network.h"
#include "io_sim/prng.h"
#include "io_sim/run_hash.h"
#include "sim/fault_schedule.h"
#include "sim/node_peer.h"
#include "sim/pg_node.h"
#include "sim/timeline.h"

namespace switchyard::sim {
namespace {

constexpr uint32_t kNodePeerBase = 1'000'000'000;
// A runaway run (something that always schedules more work now) stops here, reported.
constexpr uint64_t kStepsPerPhaseMax = 200'000'000;
// Replicas replay the primary's WAL on this beat (less the lag each is drawn).
constexpr int64_t kReplicationTickUs = 2'000;
// How often the nemesis looks whether the proxy has seen a promoted primary yet.
constexpr int64_t kNewPrimaryCheckUs = 10'000;

// One simulated PostgreSQL server on the network.
struct SimNode {
  SimNode(NodeOptions options, io_sim::SimNetwork& network, io_sim::Timeline& timeline,
          uint32_t index)
      : pg(std::move(options)),
        peer(pg, network, timeline, NodeId{index}, io_sim::PeerId{kNodePeerBase + index}) {}
  PgNode pg;
  NodePeer peer;
  int64_t lag_us = 0;
  Instant replay_stopped_until;  // a lag spike
  bool paused = false;
  // Bumps whenever the node goes down, comes back or changes role: its older timers do nothing.
  uint64_t epoch = 0;
};

NodeOptions NodeOptionsFor(uint32_t index, uint64_t seed, const ProxyConfig& proxy) {
  NodeOptions node;
  node.name = Cat("n", index);
  node.role = index == 0 ? NodeRole::kPrimary : NodeRole::kReplica;
  node.auth = NodeAuth::kTrust;
  node.users = {{std::string(kClientUser), std::nullopt}, {std::string(kHealthUser), std::nullopt}};
  node.seed = io_sim::DeriveSeed(seed, node.name);
  node.first_pid = 10000 + 100000 * static_cast<int32_t>(index);
  // Room for every pooled connection, the cancel connections next to them and the health poll.
  node.limits.max_connections = static_cast<size_t>(proxy.max_server_connections) + 11;
  return node;
}

// The simulated cluster and its nemesis: node 0 starts as the primary and the others as its
// streaming replicas; each fault kind strikes on its own schedule until Heal().
class Cluster {
 public:
  using QueryHook = std::function<void(size_t node, uint64_t session, std::string_view sql)>;

  Cluster(const RunOptions& o, uint64_t seed, io_sim::SimNetwork& network,
          io_sim::Timeline& timeline, io_sim::DecisionSource& decisions, io_sim::RunHash& hash,
          const Services& services, const RunHooks& hooks, const QueryHook& on_query)
      : o_(o.node_faults),
        c_(o.cluster),
        timeline_(timeline),
        d_(decisions),
        hash_(hash),
        faults_(o.node_faults, o.cluster, o.cluster.replicas > 0, timeline, decisions),
        services_(services),
        recorder_(hooks.timeline),
        split_brain_(hooks.split_brain_for_test) {
    for (uint32_t i = 0; i <= static_cast<uint32_t>(c_.replicas); ++i) {
      NodeOptions options = NodeOptionsFor(i, seed, o.proxy);
      if (on_query) {
        options.on_query = [on_query, i](uint64_t session, std::string_view sql) {
          on_query(i, session, sql);
        };
      }
      nodes_.push_back(std::make_unique<SimNode>(std::move(options), network, timeline, i));
      nodes_.back()->lag_us = i == 0 ? 0 : d_.Between(0, c_.lag_us_max, "cluster.lag");
      facts_.nodes.push_back(&nodes_.back()->peer);
      facts_.fenced.push_back(false);
    }
    facts_.services = &services;
  }

  // Called when a replica is promoted, with the new primary's index.
  void set_on_promoted(std::function<void(size_t)> on_promoted) {
    on_promoted_ = std::move(on_promoted);
  }
  const ClusterFacts& facts() const { return facts_; }
  PgNode& primary() { return nodes_[facts_.primary]->pg; }
  SimNode& node(size_t i) { return *nodes_[i]; }
  size_t size() const { return nodes_.size(); }

  void Start() {
    faults_.Start([this](FaultKind kind) { Strike(kind); });
    if (nodes_.size() > 1) timeline_.ScheduleAfter(kReplicationTickUs, [this] { Replicate(); });
  }

  // Faults stop: every node is up, unpaused and at full speed, replicas catch up at once, and
  // an old primary still out of the cluster is rebuilt as a replica.
  void Heal() {
    faults_.Stop();
    for (size_t i = 0; i < nodes_.size(); ++i) {
      SimNode& node = *nodes_[i];
      if (node.paused) node.peer.Pause(false);
      node.paused = false;
      node.peer.SetSlowness(0);
      node.lag_us = 0;
      node.replay_stopped_until = Instant{};
    }
    if (!primary().up()) Restart(facts_.primary);
    for (size_t i = 0; i < nodes_.size(); ++i) {
      if (i == facts_.primary) continue;
      if (facts_.fenced[i]) {
        Rebuild(i);
      } else if (!nodes_[i]->pg.up()) {
        Restart(i);
      }
    }
    failing_over_ = false;
    Record("heal");
  }

  // The proxy's view names the real primary, up: roles have been detected.
  bool ProxySeesPrimary() const {
    const ClusterSnapshot& view = services_.cluster();
    if (!view.primary || view.primary->index != facts_.primary) return false;
    const NodeState& state = view.nodes.at(facts_.primary);
    return state.up && state.role == switchyard::NodeRole::kPrimary;
  }

 private:
  // As FaultSchedule::After(), unless node `i` went down, came back or changed role in the
  // meantime.
  void AfterOnNode(size_t i, int64_t delay_us, std::function<void()> action) {
    const uint64_t epoch = nodes_[i]->epoch;
    faults_.After(delay_us, [this, i, epoch, action = std::move(action)] {
      if (nodes_[i]->epoch == epoch) action();
    });
  }

  void Strike(FaultKind kind) {
    const size_t i = static_cast<size_t>(d_.Below(nodes_.size(), "nemesis.node"));
    SimNode& node = *nodes_[i];
    switch (kind) {
      case FaultKind::kCrash:
      case FaultKind::kShutdown:
        if (!node.pg.up()) return;
        Record(Cat(kind == FaultKind::kCrash ? "crash" : "shutdown", " n", i));
        GoDown(i, kind == FaultKind::kCrash);
        AfterOnNode(i, d_.Between(1, o_.down_us_max, "nemesis.down"), [this, i] { Restart(i); });
        return;
      case FaultKind::kPause:
        if (node.paused || !node.pg.up()) return;
        Record(Cat("pause n", i));
        node.paused = true;
        node.peer.Pause(true);
        faults_.After(d_.Between(1, o_.pause_us_max, "nemesis.pause"), [this, i] {
          if (!nodes_[i]->paused) return;
          Record(Cat("unpause n", i));
          nodes_[i]->paused = false;
          nodes_[i]->peer.Pause(false);
        });
        return;
      case FaultKind::kTerminate:
        if (node.peer.TerminateSession(d_.Below(uint64_t{1} << 32, "nemesis.victim"))) {
          Record(Cat("terminate n", i));
        }
        return;
      case FaultKind::kSlow:
        Record(Cat("slow n", i));
        node.peer.SetSlowness(d_.Between(1, o_.slow_us_max, "nemesis.slow"));
        faults_.After(d_.Between(1, o_.slow_period_us_max, "nemesis.slow_period"), [this, i] {
          Record(Cat("slow_end n", i));
          nodes_[i]->peer.SetSlowness(0);
        });
        return;
      case FaultKind::kLagSpike:
        if (!node.pg.in_recovery()) return;
        Record(Cat("lag_spike n", i));
        node.replay_stopped_until =
            timeline_.now() + d_.Between(1, c_.lag_spike_us_max, "nemesis.lag_spike");
        return;
      case FaultKind::kFailover:
        return StartFailover();
    }
  }

  void GoDown(size_t i, bool crash) {
    SimNode& node = *nodes_[i];
    if (node.paused) node.peer.Pause(false);
    node.paused = false;
    ++node.epoch;
    crash ? node.peer.Crash() : node.peer.Shutdown();
  }

  // Up again; a replica that diverged from the primary's history (it was ahead of a promoted
  // node) is rebuilt before anyone can read from it.
  void Restart(size_t i) {
    SimNode& node = *nodes_[i];
    ++node.epoch;
    Record(Cat("restart n", i));
    node.peer.Restart();
    if (i != facts_.primary && node.pg.in_recovery() && Diverged(node.pg.store())) Rebuild(i);
  }

  // Whether `store`'s history is not a prefix of the primary's.
  bool Diverged(const KvStore& store) {
    const KvStore& upstream = primary().store();
    if (store.records_total() > upstream.records_total()) return true;
    if (store.wal().empty()) return false;
    const uint64_t index = store.records_total() - 1;
    const uint64_t first_kept = upstream.records_total() - upstream.wal().size();
    if (index < first_kept) return true;  // recycled upstream: only a base backup helps
    return !(upstream.wal()[index - first_kept] == store.wal().back());
  }

  void Rebuild(size_t i) {
    SimNode& node = *nodes_[i];
    ++node.epoch;
    Record(Cat("rebuild n", i, " as a replica of n", facts_.primary));
    if (node.paused) node.peer.Pause(false);
    node.paused = false;
    node.peer.RebuildAsReplicaOf(primary());
    facts_.fenced[i] = false;
  }

  void Replicate() {
    timeline_.ScheduleAfter(kReplicationTickUs, [this] { Replicate(); });
    const Instant now = timeline_.now();
    SimNode& upstream = *nodes_[facts_.primary];
    if (!upstream.pg.up() || upstream.paused) return;  // its WAL sender is gone or stuck
    samples_.push_back({now, upstream.pg.lsn()});
    int64_t lag_max = 0;
    for (size_t i = 0; i < nodes_.size(); ++i) {
      SimNode& node = *nodes_[i];
      lag_max = std::max(lag_max, node.lag_us);
      if (i == facts_.primary || !node.pg.in_recovery() || !node.pg.up() || node.paused ||
          now < node.replay_stopped_until) {
        continue;
      }
      // The primary's LSN as it was `lag_us` ago.
      uint64_t target = 0;
      for (auto it = samples_.rbegin(); it != samples_.rend(); ++it) {
        if (it->first.us <= now.us - node.lag_us) {
          target = it->second;
          break;
        }
      }
      if (target <= node.pg.lsn()) continue;
      if (!node.peer.ReplicateFrom(upstream.pg, target).ok()) Rebuild(i);
    }
    while (samples_.size() > 1 && samples_[1].first.us <= now.us - lag_max) samples_.pop_front();
  }

  // The primary dies; after a while the most advanced replica is promoted.
  void StartFailover() {
    const size_t old = facts_.primary;
    if (failing_over_ || !nodes_[old]->pg.up() || !MostAdvancedReplica()) return;
    failing_over_ = true;
    if (split_brain_) {
      Record(Cat("failover: a replica is promoted, the primary n", old, " still runs"));
      return Promote(old);
    }
    Record(Cat("failover: the primary n", old, " dies"));
    Record(Cat("crash n", old));
    GoDown(old, /*crash=*/true);
    faults_.After(d_.Between(1, c_.promote_delay_us_max, "nemesis.promote_delay"),
                  [this, old] { Promote(old); });
  }

  std::optional<size_t> MostAdvancedReplica() const {
    std::optional<size_t> best;
    for (size_t i = 0; i < nodes_.size(); ++i) {
      const PgNode& pg = nodes_[i]->pg;
      if (i == facts_.primary || !pg.in_recovery() || !pg.up()) continue;
      if (!best || pg.lsn() > nodes_[*best]->pg.lsn()) best = i;
    }
    return best;
  }

  void Promote(size_t old) {
    std::optional<size_t> best = MostAdvancedReplica();
    if (!best || (nodes_[old]->pg.up() && !split_brain_)) {
      failing_over_ = false;
      if (!nodes_[old]->pg.up()) Restart(old);  // nobody to promote: the old primary returns
      return;
    }
    SimNode& node = *nodes_[*best];
    if (node.paused) node.peer.Pause(false);
    node.paused = false;
    ++node.epoch;
    CHECK(node.peer.Promote().ok());
    Record(Cat("promote n", *best, " (timeline ", node.pg.timeline(), ")"));
    facts_.primary = *best;
    facts_.fenced[old] = true;
    facts_.promotions.push_back({timeline_.now(), *best});
    node.lag_us = 0;
    samples_.clear();
    if (on_promoted_) on_promoted_(*best);
    // The other replicas follow the new primary: they are behind it on the same history.
    for (size_t i = 0; i < nodes_.size(); ++i) {
      const PgNode& pg = nodes_[i]->pg;
      if (i == *best || i == old || !pg.in_recovery() || !pg.up()) continue;
      if (Diverged(pg.store())) Rebuild(i);
    }
    AwaitProxy(old);
  }

  // Once the proxy has seen the new primary, the old one comes back on its old timeline: it
  // must be fenced. A while later it is rebuilt as a replica.
  void AwaitProxy(size_t old) {
    if (!ProxySeesPrimary()) {
      faults_.After(kNewPrimaryCheckUs, [this, old] { AwaitProxy(old); });
      return;
    }
    faults_.After(d_.Between(1, c_.old_primary_back_us_max, "nemesis.old_back"), [this, old] {
      if (!nodes_[old]->pg.up()) Restart(old);
      faults_.After(d_.Between(1, c_.rebuild_us_max, "nemesis.rebuild"), [this, old] {
        Rebuild(old);
        failing_over_ = false;
      });
    });
  }

  void Record(std::string_view what) {
    hash_.Record("nemesis", timeline_.now(), {}, what);
    if (recorder_ != nullptr) recorder_->NodeEvent(timeline_.now(), what);
  }

  const NodeFaultOptions& o_;
  const ClusterOptions& c_;
  io_sim::Timeline& timeline_;
  io_sim::DecisionSource& d_;
  io_sim::RunHash& hash_;
  FaultSchedule faults_;
  const Services& services_;
  TimelineRecorder* recorder_;
  bool split_brain_;
  std::vector<std::unique_ptr<SimNode>> nodes_;
  ClusterFacts facts_;
  std::function<void(size_t)> on_promoted_;
  std::deque<std::pair<Instant, uint64_t>> samples_;  // the primary's LSN over time
  bool failing_over_ = false;
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
        env(environment_decisions),
        services(options.proxy),
        cluster(o, seeds.nodes, network, timeline, node_decisions, hash, services, hooks,
                [this](size_t node, uint64_t session, std::string_view sql) {
                  NoteNodeQuery(node, session, sql);
                }),
        driver(
            o.driver, timeline, network, services, env, scheduler_decisions,
            [this](UnitId id, ConnId client, bool admitted) {
              return std::make_unique<Unit>(id, client, options.proxy, env, admitted);
            },
            &hash),
        tampering(oracles, hooks),
        recording(tampering, hooks.timeline, timeline),
        workload(
            o.workload, seeds.workload, network, timeline, recording,
            [this] {
              history.Ingest(*world.store);
              return history.position();
            },
            &hash) {
    world.timeline = &timeline;
    world.store = &cluster.primary().store();
    world.primary = &cluster.node(0).peer;
    world.history = &history;
    world.pool_size = o.proxy.pool_size;
    world.max_server_connections = o.proxy.max_server_connections;
    world.replicas = o.cluster.replicas;
    world.cluster = &cluster.facts();
    world.health_check_bound_us = HealthCheckBoundUs(o);
    world.proxy_buffer_bytes_max = hooks.proxy_buffer_bytes_max_for_test != 0
                                       ? hooks.proxy_buffer_bytes_max_for_test
                                       : ProxyBufferBound(o);
    cluster.set_on_promoted([this](size_t) {
      // The history follows the new primary's WAL from here (forking off what it lacks).
      world.store = &cluster.primary().store();
      history.Ingest(*world.store);
    });
    if (o.cluster.health_checker) {
      driver.AddSystemUnit(
          [this](UnitId id) { return Unit::NewHealthChecker(id, options.proxy, env); });
      system_units = 1;
    }
    AddStandardOracles(oracles, world, violations);
  }

  // How long the proxy may take to see a change of roles: a few polls, each of which may time
  // out, and the time for a new view to reach the units.
  static int64_t HealthCheckBoundUs(const RunOptions& o) {
    return 5 * MsToUs(o.cluster.health_check_interval_ms + o.cluster.health_check_timeout_ms) +
           1'000'000;
  }

  void NoteNodeQuery(size_t node, uint64_t session, std::string_view sql) {
    const PgNode& pg = cluster.node(node).pg;
    oracles.OnNodeQuery(NodeQuery{.node = node,
                                  .session = session,
                                  .sql = sql,
                                  .in_recovery = pg.in_recovery(),
                                  .fenced = cluster.facts().fenced[node]});
  }

  size_t ClientUnits() const { return driver.unit_count() - system_units; }

  const RunOptions& options;
  io_sim::SimSeeds seeds;
  io_sim::PrngDecisions network_decisions;
  io_sim::PrngDecisions scheduler_decisions;
  io_sim::PrngDecisions environment_decisions;
  io_sim::PrngDecisions node_decisions;
  io_sim::Timeline timeline;
  io_sim::RunHash hash;
  io_sim::SimNetwork network;
  io_sim::SimEnvironment env;
  Services services;
  KvHistory history;
  Violations violations;
  World world;
  OracleSet oracles;
  Cluster cluster;
  io_sim::SimDriver driver;
  size_t system_units = 0;
  TamperingObserver tampering;
  TimelineObserver recording;  // workload -> recording -> tampering -> oracles
  Workload workload;
};

// Phase 2.5 of a run with a health checker: after healing, the proxy must name the real primary
// within a few health-check intervals (DESIGN.md section 5, "roles are detected").
io_sim::SimDriver::Stop AwaitRoles(SimWorld& w) {
  if (!w.options.cluster.health_checker) return io_sim::SimDriver::Stop::kDone;
  const Instant deadline = w.driver.now() + w.world.health_check_bound_us;
  io_sim::SimDriver::Stop stop =
      w.driver.RunUntil([&] { return w.cluster.ProxySeesPrimary(); }, deadline, kStepsPerPhaseMax);
  if (stop != io_sim::SimDriver::Stop::kDone) {
    w.violations.Add("failover", w.driver.now(), "",
                     Cat("after healing, the proxy did not name n", w.cluster.facts().primary,
                         " the primary within ", w.world.health_check_bound_us / 1000,
                         " ms: roles are not detected"));
  }
  return stop;
}

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
    for (size_t i = 0; i < w->cluster.size(); ++i) w->cluster.node(i).peer.set_trace(trace);
  }
  const auto phase = [&](std::string_view what) {
    if (hooks.timeline != nullptr) hooks.timeline->Phase(driver.now(), what);
    if (hooks.trace) hooks.trace(Cat("t=", driver.now().us, " phase ", what));
  };
  // Settled: what the faults left on the wire (a FATAL or a reset on an idle pooled connection)
  // has arrived, so the proxy has had its chance to learn of every connection they killed.
  const auto idle = [&] {
    return w->workload.Done() && w->ClientUnits() == 0 && w->network.Settled();
  };

  // Phase 1: the workload under faults.
  w->cluster.Start();
  w->workload.Start();
  io_sim::SimDriver::Stop faults = driver.RunUntil(
      [&] { return w->workload.Done(); }, Instant{options.fault_phase_us}, kStepsPerPhaseMax);

  // Phase 2: faults healed; everything pending must complete within the bound.
  phase("liveness: faults healed");
  w->cluster.Heal();
  w->network.set_faults(io_sim::FaultConfig{});
  // Left on, a spike longer than the health check's timeout (the swarm draws both freely) can
  // make the checker declare the healed primary down again just as the probes write.
  w->network.end_latency_spikes();
  w->workload.WindDown();
  io_sim::SimDriver::Stop liveness =
      driver.RunUntil(idle, driver.now() + options.liveness_bound_us, kStepsPerPhaseMax);
  if (liveness != io_sim::SimDriver::Stop::kDone) w->workload.ReportOpenSessions();
  w->oracles.OnQuiescent(Quiescence{w->ClientUnits(), w->services.counters().clients_active});
  io_sim::SimDriver::Stop roles = AwaitRoles(*w);

  // Phase 3: as many probe clients as the pool holds must all get in at once; one of them
  // writes, which the primary the proxy found must take. Under session pooling a client keeps
  // a connection to every node it used, so with replicas the global bound admits fewer.
  phase("probes");
  const int nodes = static_cast<int>(w->cluster.size());
  w->workload.StartProbes(
      std::max(1, std::min(options.proxy.pool_size, options.proxy.max_server_connections / nodes)));
  io_sim::SimDriver::Stop probes =
      driver.RunUntil([&] { return w->workload.ProbesDone() && w->ClientUnits() == 0; },
                      driver.now() + options.liveness_bound_us, kStepsPerPhaseMax);
  if (probes != io_sim::SimDriver::Stop::kDone) w->workload.ReportOpenSessions();
  w->oracles.Finish();
  for (size_t i = 0; i < w->cluster.size(); ++i) w->cluster.node(i).pg.CheckInvariants();

  RunResult result;
  result.seed = options.seed;
  result.hash = w->hash.value();
  result.hash_events = w->hash.events();
  result.violations = w->violations.list();
  result.violation_count = w->violations.count();
  result.sim_queries = w->workload.answers();
  result.sim_time_us = w->timeline.now().us;
  result.phases = Cat("faults=", io_sim::StopName(faults), " liveness=", io_sim::StopName(liveness),
                      " roles=", io_sim::StopName(roles), " probes=", io_sim::StopName(probes));
  result.driver = driver.stats();
  result.promotions = w->cluster.facts().promotions.size();
  if (hooks.timeline != nullptr) RecordRunEnd(*hooks.timeline, options, result);
  return result;
}

}  // namespace switchyard::sim
