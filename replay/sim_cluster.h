// `replay --target sim` (sim_target.h): the trace-backed cluster of one seed and its nemesis.
// Node 0 starts as the primary, the others as its replicas; each fault kind strikes on its own
// schedule until Heal(), as sim/runner.cc's cluster does for simulated PostgreSQL, without the
// data: every node answers from the same capture (sim/trace_node.h).
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/base/strings.h"
#include "core/proxy.h"
#include "io_sim/decision.h"
#include "io_sim/network.h"
#include "io_sim/run_hash.h"
#include "sim/fault_schedule.h"
#include "sim/swarm.h"
#include "sim/trace_node.h"

namespace switchyard::replay {

inline constexpr uint32_t kNodePeerBase = 1'000'000'000;
inline constexpr int64_t kReplicationTickUs = 2'000;
inline constexpr int64_t kNewPrimaryCheckUs = 10'000;

// What an oracle of the replay found.
struct Violation {
  std::string oracle;
  int64_t at_us = 0;
  std::string what;
};

// The trace-backed cluster: node 0 starts as the primary, the others as its replicas; each fault
// kind strikes on its own schedule until Heal() (as sim/runner.cc's cluster does for simulated
// PostgreSQL, without the data: every node answers from the same capture).
class TraceCluster {
 public:
  TraceCluster(const sim::RunOptions& o, sim::TraceScript& script, io_sim::SimNetwork& network,
               io_sim::Timeline& timeline, io_sim::DecisionSource& decisions, io_sim::RunHash& hash,
               const Services& services)
      : o_(o.node_faults),
        c_(o.cluster),
        timeline_(timeline),
        d_(decisions),
        hash_(hash),
        faults_(o.node_faults, o.cluster, o.cluster.replicas > 0, timeline, decisions),
        services_(services) {
    for (uint32_t i = 0; i <= static_cast<uint32_t>(c_.replicas); ++i) {
      sim::TraceNodeOptions options{.name = Cat("n", i),
                                    .node = NodeId{i},
                                    .peer = io_sim::PeerId{kNodePeerBase + i},
                                    .replica = i != 0,
                                    .first_pid = 10000 + 100000 * static_cast<int32_t>(i)};
      nodes_.push_back(std::make_unique<sim::TraceNode>(script, network, timeline, options));
      lag_us_.push_back(i == 0 ? 0 : d_.Between(0, c_.lag_us_max, "cluster.lag"));
      fenced_.push_back(false);
      stopped_until_.push_back(Instant{});
      paused_.push_back(false);
      epoch_.push_back(0);
    }
  }

  size_t size() const { return nodes_.size(); }
  sim::TraceNode& node(size_t i) { return *nodes_[i]; }
  size_t primary() const { return primary_; }
  bool fenced(size_t i) const { return fenced_[i]; }
  uint64_t strikes() const { return strikes_; }
  uint64_t promotions() const { return promotions_; }

  void Start() {
    faults_.Start([this](sim::FaultKind kind) { Strike(kind); });
    if (nodes_.size() > 1) timeline_.ScheduleAfter(kReplicationTickUs, [this] { Replicate(); });
  }

  void Heal() {
    faults_.Stop();
    for (size_t i = 0; i < nodes_.size(); ++i) {
      if (paused_[i]) nodes_[i]->Pause(false);
      paused_[i] = false;
      nodes_[i]->SetSlowness(0);
      lag_us_[i] = 0;
      stopped_until_[i] = Instant{};
      if (fenced_[i]) {
        Rebuild(i);
      } else if (!nodes_[i]->up()) {
        Restart(i);
      }
    }
    Record("heal");
  }

  bool ProxySeesPrimary() const {
    const ClusterSnapshot& view = services_.cluster();
    if (!view.primary || view.primary->index != primary_) return false;
    const NodeState& state = view.nodes.at(primary_);
    return state.up && state.role == switchyard::NodeRole::kPrimary;
  }

 private:
  void AfterOnNode(size_t i, int64_t delay_us, std::function<void()> action) {
    const uint64_t epoch = epoch_[i];
    faults_.After(delay_us, [this, i, epoch, action = std::move(action)] {
      if (epoch_[i] == epoch) action();
    });
  }

  void Strike(sim::FaultKind kind) {
    const size_t i = static_cast<size_t>(d_.Below(nodes_.size(), "nemesis.node"));
    sim::TraceNode& node = *nodes_[i];
    switch (kind) {
      case sim::FaultKind::kCrash:
      case sim::FaultKind::kShutdown:
        if (!node.up()) return;
        Record(Cat(kind == sim::FaultKind::kCrash ? "crash n" : "shutdown n", i));
        GoDown(i, kind == sim::FaultKind::kCrash);
        AfterOnNode(i, d_.Between(1, o_.down_us_max, "nemesis.down"), [this, i] { Restart(i); });
        return;
      case sim::FaultKind::kPause:
        if (paused_[i] || !node.up()) return;
        Record(Cat("pause n", i));
        paused_[i] = true;
        node.Pause(true);
        faults_.After(d_.Between(1, o_.pause_us_max, "nemesis.pause"), [this, i] {
          if (!paused_[i]) return;
          Record(Cat("unpause n", i));
          paused_[i] = false;
          nodes_[i]->Pause(false);
        });
        return;
      case sim::FaultKind::kTerminate:
        if (node.TerminateSession(d_.Below(uint64_t{1} << 32, "nemesis.victim"))) {
          Record(Cat("terminate n", i));
        }
        return;
      case sim::FaultKind::kSlow:
        Record(Cat("slow n", i));
        node.SetSlowness(d_.Between(1, o_.slow_us_max, "nemesis.slow"));
        faults_.After(d_.Between(1, o_.slow_period_us_max, "nemesis.slow_period"),
                      [this, i] { nodes_[i]->SetSlowness(0); });
        return;
      case sim::FaultKind::kLagSpike:
        if (!node.in_recovery()) return;
        Record(Cat("lag_spike n", i));
        stopped_until_[i] =
            timeline_.now() + d_.Between(1, c_.lag_spike_us_max, "nemesis.lag_spike");
        return;
      case sim::FaultKind::kFailover:
        return StartFailover();
    }
  }

  void GoDown(size_t i, bool crash) {
    if (paused_[i]) nodes_[i]->Pause(false);
    paused_[i] = false;
    ++epoch_[i];
    crash ? nodes_[i]->Crash() : nodes_[i]->Shutdown();
  }

  void Restart(size_t i) {
    ++epoch_[i];
    Record(Cat("restart n", i));
    nodes_[i]->Restart();
  }

  void Rebuild(size_t i) {
    ++epoch_[i];
    Record(Cat("rebuild n", i, " as a replica of n", primary_));
    if (paused_[i]) nodes_[i]->Pause(false);
    paused_[i] = false;
    const sim::TraceNode& upstream = *nodes_[primary_];
    nodes_[i]->RebuildAsReplica(upstream.lsn(), upstream.timeline());
    fenced_[i] = false;
  }

  // Replicas replay the primary's WAL position as it was `lag` ago.
  void Replicate() {
    timeline_.ScheduleAfter(kReplicationTickUs, [this] { Replicate(); });
    const Instant now = timeline_.now();
    sim::TraceNode& upstream = *nodes_[primary_];
    if (!upstream.up() || paused_[primary_]) return;
    samples_.push_back({now, upstream.lsn()});
    int64_t lag_max = 0;
    for (size_t i = 0; i < nodes_.size(); ++i) {
      lag_max = std::max(lag_max, lag_us_[i]);
      sim::TraceNode& node = *nodes_[i];
      if (i == primary_ || !node.in_recovery() || !node.up() || paused_[i] ||
          now < stopped_until_[i] || fenced_[i]) {
        continue;
      }
      for (auto it = samples_.rbegin(); it != samples_.rend(); ++it) {
        if (it->first.us <= now.us - lag_us_[i]) {
          if (it->second > node.lsn()) node.set_replay_lsn(it->second);
          break;
        }
      }
    }
    while (samples_.size() > 1 && samples_[1].first.us <= now.us - lag_max) samples_.pop_front();
  }

  std::optional<size_t> MostAdvancedReplica() const {
    std::optional<size_t> best;
    for (size_t i = 0; i < nodes_.size(); ++i) {
      const sim::TraceNode& node = *nodes_[i];
      if (i == primary_ || !node.in_recovery() || !node.up() || fenced_[i]) continue;
      if (!best || node.lsn() > nodes_[*best]->lsn()) best = i;
    }
    return best;
  }

  void StartFailover() {
    const size_t old = primary_;
    if (failing_over_ || !nodes_[old]->up() || !MostAdvancedReplica()) return;
    failing_over_ = true;
    Record(Cat("failover: the primary n", old, " dies"));
    GoDown(old, /*crash=*/true);
    faults_.After(d_.Between(1, c_.promote_delay_us_max, "nemesis.promote_delay"),
                  [this, old] { Promote(old); });
  }

  void Promote(size_t old) {
    std::optional<size_t> best = MostAdvancedReplica();
    if (!best || nodes_[old]->up()) {
      failing_over_ = false;
      if (!nodes_[old]->up()) Restart(old);  // nobody to promote: the old primary returns
      return;
    }
    if (paused_[*best]) nodes_[*best]->Pause(false);
    paused_[*best] = false;
    ++epoch_[*best];
    nodes_[*best]->Promote();
    Record(Cat("promote n", *best, " (timeline ", nodes_[*best]->timeline(), ")"));
    primary_ = *best;
    fenced_[old] = true;
    ++promotions_;
    lag_us_[*best] = 0;
    samples_.clear();
    AwaitProxy(old);
  }

  // Once the proxy has seen the new primary, the old one comes back on its old timeline (it must
  // be fenced), and is rebuilt as a replica a while later.
  void AwaitProxy(size_t old) {
    if (!ProxySeesPrimary()) {
      faults_.After(kNewPrimaryCheckUs, [this, old] { AwaitProxy(old); });
      return;
    }
    faults_.After(d_.Between(1, c_.old_primary_back_us_max, "nemesis.old_back"), [this, old] {
      if (!nodes_[old]->up()) Restart(old);
      faults_.After(d_.Between(1, c_.rebuild_us_max, "nemesis.rebuild"), [this, old] {
        Rebuild(old);
        failing_over_ = false;
      });
    });
  }

  void Record(std::string_view what) {
    ++strikes_;
    hash_.Record("nemesis", timeline_.now(), {}, what);
  }

  const sim::NodeFaultOptions& o_;
  const sim::ClusterOptions& c_;
  io_sim::Timeline& timeline_;
  io_sim::DecisionSource& d_;
  io_sim::RunHash& hash_;
  sim::FaultSchedule faults_;
  const Services& services_;
  std::vector<std::unique_ptr<sim::TraceNode>> nodes_;
  std::vector<int64_t> lag_us_;
  std::vector<bool> fenced_;
  std::vector<Instant> stopped_until_;
  std::vector<bool> paused_;
  std::vector<uint64_t> epoch_;
  std::deque<std::pair<Instant, uint64_t>> samples_;
  size_t primary_ = 0;
  uint64_t strikes_ = 0;
  uint64_t promotions_ = 0;
  bool failing_over_ = false;
};

// ---------------------------------------------------------------- clients

// What every simulated client of a run shares.

}  // namespace switchyard::replay
