// The health checker as a scheduling unit (DESIGN.md sections 2 and 5): the driver runs it like a
// client's unit, and what it learns leaves as NodePolled service requests, from which the
// services build the cluster view every unit is told about.
#pragma once

#include <deque>
#include <optional>
#include <vector>

#include "core/cluster/health_checker.h"
#include "core/proxy.h"

namespace switchyard {

class HealthUnit {
 public:
  HealthUnit(const ProxyConfig& config, Environment& env);

  void Handle(Instant now, const Event& event);
  std::optional<Action> PollAction();
  std::optional<Instant> NextDeadline() const;
  void CheckInvariants() const;
  void BeginDrain(Instant now);
  bool Finished() const;
  std::vector<ConnId> Conns() const;

 private:
  void Drain();

  HealthChecker checker_;
  std::deque<Action> actions_;
  bool draining_ = false;
};

}  // namespace switchyard
