// The nemesis's clock, shared by the simulated cluster (sim/runner.cc) and the trace-backed one
// of `replay --target sim` (replay/sim_cluster.h): which fault kinds strike and how often, and
// delayed actions that lapse once the faults stop. What a strike does is the cluster's own.
#pragma once

#include <cstdint>
#include <functional>
#include <utility>

#include "io_sim/decision.h"
#include "io_sim/event_queue.h"
#include "sim/swarm.h"

namespace switchyard::sim {

enum class FaultKind { kCrash, kShutdown, kPause, kTerminate, kSlow, kLagSpike, kFailover };

class FaultSchedule {
 public:
  // `replicas`: whether the cluster has any (lag spikes and failovers need one).
  FaultSchedule(const NodeFaultOptions& o, const ClusterOptions& c, bool replicas,
                io_sim::Timeline& timeline, io_sim::DecisionSource& d)
      : o_(o), c_(c), replicas_(replicas), timeline_(timeline), d_(d) {}
  FaultSchedule(const FaultSchedule&) = delete;
  FaultSchedule& operator=(const FaultSchedule&) = delete;

  // Each kind with an interval strikes after gaps drawn uniform in [1, 2 * interval], until
  // Stop(); the kinds are scheduled in FaultKind order.
  void Start(std::function<void(FaultKind)> strike) {
    strike_ = std::move(strike);
    for (FaultKind kind :
         {FaultKind::kCrash, FaultKind::kShutdown, FaultKind::kPause, FaultKind::kTerminate,
          FaultKind::kSlow, FaultKind::kLagSpike, FaultKind::kFailover}) {
      Schedule(kind);
    }
  }
  void Stop() { active_ = false; }

  // Runs `action` after `delay_us`, unless the faults stopped in the meantime.
  void After(int64_t delay_us, std::function<void()> action) {
    timeline_.ScheduleAfter(delay_us, [this, action = std::move(action)] {
      if (active_) action();
    });
  }

 private:
  int64_t Interval(FaultKind kind) const {
    switch (kind) {
      case FaultKind::kCrash:
        return o_.crash_interval_us;
      case FaultKind::kShutdown:
        return o_.shutdown_interval_us;
      case FaultKind::kPause:
        return o_.pause_interval_us;
      case FaultKind::kTerminate:
        return o_.terminate_interval_us;
      case FaultKind::kSlow:
        return o_.slow_interval_us;
      case FaultKind::kLagSpike:
        return replicas_ ? c_.lag_spike_interval_us : 0;
      case FaultKind::kFailover:
        return replicas_ ? c_.failover_interval_us : 0;
    }
    return 0;
  }

  void Schedule(FaultKind kind) {
    const int64_t interval = Interval(kind);
    if (interval <= 0) return;
    After(d_.Between(1, 2 * interval, "nemesis.gap"), [this, kind] {
      strike_(kind);
      Schedule(kind);
    });
  }

  const NodeFaultOptions& o_;
  const ClusterOptions& c_;
  const bool replicas_;
  io_sim::Timeline& timeline_;
  io_sim::DecisionSource& d_;
  std::function<void(FaultKind)> strike_;
  bool active_ = true;
};

}  // namespace switchyard::sim
