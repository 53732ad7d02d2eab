// Adapters from the real core (switchyard::Unit, switchyard::Services) to the driver's
// interfaces. Header-only, so io_real itself does not need the core's objects at link time.
#pragma once

#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "core/proxy.h"
#include "io_real/unit_like.h"

namespace switchyard::io_real {

class CoreUnit final : public UnitLike {
 public:
  CoreUnit(UnitId id, ConnId client, const ProxyConfig& config, Environment& env, bool admitted)
      : unit_(std::make_unique<Unit>(id, client, config, env, admitted)) {}
  // A unit made another way (the health checker's).
  explicit CoreUnit(std::unique_ptr<Unit> unit) : unit_(std::move(unit)) {}

  void Handle(Instant now, const Event& event) override { unit_->Handle(now, event); }
  std::optional<Action> PollAction() override { return unit_->PollAction(); }
  std::optional<Instant> NextDeadline() const override { return unit_->NextDeadline(); }
  std::vector<ConnId> Conns() const override { return unit_->Conns(); }
  bool WantsRead(ConnId conn) const override { return unit_->WantsRead(conn); }
  bool Finished() const override { return unit_->Finished(); }
  void BeginDrain(Instant now) override { unit_->BeginDrain(now); }

 private:
  std::unique_ptr<Unit> unit_;
};

class CoreServices final : public ServicesLike {
 public:
  explicit CoreServices(Services& services) : services_(services) {}

  Services::Outcome Handle(Instant now, UnitId from, ServiceRequest request) override {
    return services_.Handle(now, from, std::move(request));
  }
  Services::Outcome Tick(Instant now) override { return services_.Tick(now); }
  std::optional<Instant> NextDeadline() const override { return services_.NextDeadline(); }
  Services::Outcome IdleConnectionLost(Instant now, ConnId conn) override {
    return services_.IdleConnectionLost(now, conn);
  }
  bool AdmitClient() override { return services_.AdmitClient(); }
  void ClientGone(UnitId unit) override { services_.ClientGone(unit); }
  ClusterSnapshot cluster() const override { return services_.cluster(); }

 private:
  Services& services_;
};

}  // namespace switchyard::io_real
