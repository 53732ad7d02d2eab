// What the driver needs from a scheduling unit and from the shared services. switchyard::Unit
// and switchyard::Services satisfy it through core_adapter.h; tests plug in small fakes.
#pragma once

#include <optional>
#include <vector>

#include "core/base/types.h"
#include "core/io.h"
#include "core/proxy.h"
#include "core/service.h"

namespace switchyard::io_real {

// One client session with its server sessions (core/proxy.h Unit). Only the worker running the
// unit calls it, so implementations need no locks.
class UnitLike {
 public:
  virtual ~UnitLike() = default;
  virtual void Handle(Instant now, const Event& event) = 0;
  virtual std::optional<Action> PollAction() = 0;
  virtual std::optional<Instant> NextDeadline() const = 0;
  // The connections the unit owns now. A connection the driver holds for the unit that is no
  // longer listed here is closed after the run.
  virtual std::vector<ConnId> Conns() const = 0;
  virtual bool WantsRead(ConnId conn) const = 0;
  virtual bool Finished() const = 0;
  virtual void BeginDrain(Instant now) = 0;
};

// The pool, cancel keys and counters (core/proxy.h Services). The driver serializes every
// call with its services mutex.
class ServicesLike {
 public:
  virtual ~ServicesLike() = default;
  virtual Services::Outcome Handle(Instant now, UnitId from, ServiceRequest request) = 0;
  virtual Services::Outcome Tick(Instant now) = 0;
  virtual std::optional<Instant> NextDeadline() const = 0;
  virtual Services::Outcome IdleConnectionLost(Instant now, ConnId conn) = 0;
  virtual bool AdmitClient() = 0;
  virtual void ClientGone(UnitId unit) = 0;
  // The cluster view: a new unit is told it first, and every unit whenever an Outcome says it
  // changed. A proxy without a health checker has none worth telling (empty nodes).
  virtual ClusterSnapshot cluster() const { return {}; }
};

}  // namespace switchyard::io_real
