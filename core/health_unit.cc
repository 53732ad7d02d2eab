// The health checker as a scheduling unit: see health_unit.h.
#include "core/health_unit.h"

#include <utility>

namespace switchyard {
namespace {

HealthConfig HealthConfigOf(const ProxyConfig& config) {
  HealthConfig health;
  for (size_t i = 0; i < config.node_count; ++i) {
    health.nodes.push_back(NodeId{static_cast<uint32_t>(i)});
  }
  health.user = config.health_user;
  health.database = config.health_database;
  auto user = config.users.find(config.health_user);
  health.secret = user == config.users.end() ? nullptr : &user->second;
  health.interval_ms = config.health_check_interval_ms;
  health.timeout_ms = config.health_check_timeout_ms;
  return health;
}

}  // namespace

HealthUnit::HealthUnit(const ProxyConfig& config, Environment& env)
    : checker_(HealthConfigOf(config), env) {}

void HealthUnit::Handle(Instant now, const Event& event) {
  if (draining_) return;
  checker_.Handle(now, event);
  Drain();
}

void HealthUnit::Drain() {
  while (std::optional<Action> action = checker_.PollAction()) {
    actions_.push_back(std::move(*action));
  }
  for (ClusterView::PollResult& result : checker_.TakeResults()) {
    actions_.push_back(
        RequestService{NodePolled{result.node, result.began, result.ok, result.in_recovery,
                                  result.lsn, result.timeline, std::move(result.error)}});
  }
}

std::optional<Action> HealthUnit::PollAction() {
  if (actions_.empty()) return std::nullopt;
  Action action = std::move(actions_.front());
  actions_.pop_front();
  return action;
}

std::optional<Instant> HealthUnit::NextDeadline() const {
  if (draining_) return std::nullopt;
  return checker_.NextDeadline();
}

void HealthUnit::CheckInvariants() const {
  if (!draining_) checker_.CheckInvariants();
}

void HealthUnit::BeginDrain(Instant) {
  if (draining_) return;
  for (ConnId conn : checker_.Conns())
    actions_.push_back(Close{conn, "switchyard is shutting down"});
  draining_ = true;
}

bool HealthUnit::Finished() const { return draining_ && actions_.empty(); }

std::vector<ConnId> HealthUnit::Conns() const {
  if (draining_) return {};
  return checker_.Conns();
}

}  // namespace switchyard
