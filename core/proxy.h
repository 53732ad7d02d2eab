// Composition of the core: the per-client scheduling unit and the shared services.
//
// A driver (io_real or io_sim) owns Units and one Services object. It runs one Unit at a time on
// a worker: Handle() an event, then drain PollAction() to empty. A RequestService action is
// carried out against Services (under the driver's lock in io_real) and the replies it yields are
// delivered as ServiceReplied events, possibly to other units.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/auth/users.h"
#include "core/base/types.h"
#include "core/capture.h"
#include "core/io.h"
#include "core/service.h"

namespace switchyard {
namespace route {
class FunctionVolatility;
}

enum class PoolMode { kSession, kTransaction };
enum class ReadYourWrites { kNone, kLsn };

struct ProxyConfig {
  auth::AuthType auth_type = auth::AuthType::kScramSha256;
  auth::Users users;
  int pool_size = 20;                // server connections per pool key
  int max_server_connections = 100;  // over all keys
  int max_clients = 1000;
  int64_t auth_timeout_ms = 60'000;       // client must finish startup+auth within this
  int64_t connect_timeout_ms = 5'000;     // server TCP connect + login
  int64_t checkout_timeout_ms = 120'000;  // waiting for a pooled connection; then 53300
  int64_t server_idle_timeout_ms = 600'000;
  int64_t client_idle_timeout_ms = 0;                      // 0: never
  uint64_t client_output_high_bytes = uint64_t{1} << 20;   // stop reading the server above this
  uint64_t client_output_low_bytes = uint64_t{256} << 10;  // resume below this
  size_t message_size_max = size_t{256} << 20;
  std::string server_version_fallback = "15";
  // Nodes by NodeId index: 0 is the configured primary, the rest the configured replicas.
  // Roles are detected by the health checker; these are only where to look.
  size_t node_count = 1;
  PoolMode pool_mode = PoolMode::kSession;
  ReadYourWrites read_your_writes = ReadYourWrites::kLsn;
  // Send read-only statements to replicas (when there are any); off per user or database.
  bool route_reads = true;
  std::vector<std::string> no_route_users;
  std::vector<std::string> no_route_databases;
  // The health checker's login (its password comes from the users file) and timing.
  std::string health_user;
  std::string health_database = "postgres";
  int64_t health_check_interval_ms = 1'000;
  int64_t health_check_timeout_ms = 2'000;
  int health_check_failures_to_down = 1;
  // Seeds the replica tie-breaks of the least-outstanding balancing.
  uint64_t balance_seed = 1;
  // Function volatility for the classifier; null: the built-in table.
  const route::FunctionVolatility* functions = nullptr;
  // Read each database's function volatility from pg_proc (when routing reads); otherwise only
  // `functions` / the built-in table. `switchyard serve` turns it on.
  bool load_functions = false;
  // Traffic capture: which sessions, and what is redacted. Whether capture is on at all comes
  // with CaptureChanged events (core/io.h).
  CaptureOptions capture;
  // Set only by the simulator's build (SWITCHYARD_MUTANTS); constant-false otherwise.
  uint64_t mutants = 0;
  // Consistency checks whose cost grows with the number of clients (the pool's whole
  // bookkeeping after each of its calls): on in the simulator and the tests, off in `serve`,
  // which keeps the constant-time ones.
  bool full_checks = true;
};

class ClientSession;
class ServerSession;
class HealthUnit;

// A client session with its server sessions: the unit of scheduling (DESIGN.md section 3).
class Unit {
 public:
  // `admitted` is false when the proxy is over max_clients: the unit then refuses the client
  // with 53300 at its first packet.
  // `cluster` is the cluster view when the unit starts (Services::cluster()); an empty one means
  // the configured primary alone.
  Unit(UnitId id, ConnId client, const ProxyConfig& config, Environment& env, bool admitted,
       ClusterSnapshot cluster = {});
  // The health checker's unit: no client; it polls every node and reports NodePolled to the
  // services. The driver starts it (a TimerFired) and runs it like any other unit.
  static std::unique_ptr<Unit> NewHealthChecker(UnitId id, const ProxyConfig& config,
                                                Environment& env);
  ~Unit();
  Unit(const Unit&) = delete;
  Unit& operator=(const Unit&) = delete;

  UnitId id() const { return id_; }
  void Handle(Instant now, const Event& event);
  std::optional<Action> PollAction();
  std::optional<Instant> NextDeadline() const;
  void CheckInvariants() const;

  // The driver is shutting down: finish what is in flight, then close the client.
  void BeginDrain(Instant now);
  // Every connection is closed and nothing is owed to a service: the driver drops the unit.
  bool Finished() const;
  // The connections this unit owns now (client first), for the poll set.
  std::vector<ConnId> Conns() const;
  // Whether the unit wants bytes from `conn` now (false while paused by a watermark).
  bool WantsRead(ConnId conn) const;

 private:
  class Impl;
  explicit Unit(UnitId id);
  UnitId id_;
  std::unique_ptr<Impl> impl_;          // a client's unit
  std::unique_ptr<HealthUnit> health_;  // or the health checker's
};

struct Counters {
  uint64_t clients_accepted = 0;
  uint64_t clients_active = 0;
  uint64_t queries = 0;
  uint64_t protocol_errors = 0;
  uint64_t auth_failures = 0;
  uint64_t server_losses = 0;
  uint64_t cancels_forwarded = 0;
  uint64_t server_connections_opened = 0;
  uint64_t server_connections_reused = 0;
  uint64_t replica_reads = 0;  // batches sent to a replica
};

// The pool, the cancel-key registry and the counters: the only state several units touch.
// Single-owner: the driver serializes every call.
class Services {
 public:
  explicit Services(const ProxyConfig& config);
  ~Services();

  struct Delivery {
    UnitId unit;
    ServiceReply reply;
  };
  struct Outcome {
    std::vector<Delivery> deliveries;
    // Connections the pool now holds idle: the driver watches them for the pool (a read or a
    // close on one is reported with IdleConnectionLost).
    std::vector<ConnId> now_idle;
    // Connections the pool gave up (idle timeout, lost): the driver closes them.
    std::vector<ConnId> close;
    // The cluster view changed: the driver delivers NodeStateChanged{cluster()} to every unit.
    bool cluster_changed = false;
  };

  Outcome Handle(Instant now, UnitId from, ServiceRequest request);
  // Timeouts: idle server connections, queued checkouts.
  Outcome Tick(Instant now);
  std::optional<Instant> NextDeadline() const;
  // An idle pooled connection became readable or closed. It is dropped from the pool and
  // returned in `close`; if the pool no longer holds it, nothing happens.
  Outcome IdleConnectionLost(Instant now, ConnId conn);
  // Units a driver may create: false when over max_clients (the unit then refuses politely).
  bool AdmitClient();
  void ClientGone(UnitId unit);
  const Counters& counters() const;
  // The cluster view as the health checker last reported it.
  const ClusterSnapshot& cluster() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace switchyard
