// The production driver: an epoll loop thread and a pool of workers that run scheduling units
// (DESIGN.md section 3) against real sockets.
//
//   RealEnvironment env;
//   Services services(config);
//   CoreServices services_adapter(services);
//   Driver driver(driver_config, services_adapter, env,
//                 [&](UnitId id, ConnId client, bool admitted) {
//                   return std::make_unique<CoreUnit>(id, client, config, env, admitted);
//                 });
//   if (auto s = driver.Listen(); !s.ok()) ...   // logs event=listening address=HOST:PORT
//   driver.Run();                                 // until SIGTERM/SIGINT or Shutdown() drained
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "core/sched/scheduler.h"
#include "io_real/address.h"
#include "io_real/sockets.h"
#include "io_real/unit_like.h"

namespace switchyard::io_real {

class DriverImpl;  // io_real/driver_internal.h

struct DriverConfig {
  SocketAddress listen;
  // Node addresses by NodeId index; index 0 is the primary. Resolved before the driver starts.
  std::vector<SocketAddress> nodes;
  int workers = 1;
  // After SIGTERM/SIGINT/Shutdown(): how long units may take to finish before being dropped.
  int64_t drain_timeout_ms = 30'000;
  // Route SIGTERM and SIGINT through a signalfd (blocking them in the process) and ignore
  // SIGPIPE. Tests turn this off and call Shutdown() instead.
  bool handle_signals = true;
  sched::DisarmPolicy disarm_policy = sched::DisarmPolicy::kExplicit;
  // At most this much is read from one connection in one run; then the unit yields to others.
  size_t read_bytes_per_run_max = size_t{1} << 20;
  ServerSocketOptions server_sockets;
  // Run the scheduler's full consistency check after every run and epoll batch (tests).
  bool check_scheduler_invariants = false;
  int listen_backlog = 1024;
};

// Work and syscalls since the driver started (relaxed counters: for logs and tests).
struct DriverStats {
  uint64_t clients_accepted = 0;
  uint64_t runs = 0;
  uint64_t reads = 0;   // read(2) calls, including those that found nothing
  uint64_t writes = 0;  // send(2) calls
  uint64_t epoll_ctls = 0;
  uint64_t epoll_waits = 0;
  uint64_t loop_wakes = 0;  // eventfd writes that woke the loop thread
  uint64_t connects = 0;
  uint64_t closes = 0;
};

class Driver {
 public:
  // Creates the unit for a newly accepted client. `admitted` is the answer of
  // ServicesLike::AdmitClient(), taken under the services lock.
  using UnitFactory =
      std::function<std::unique_ptr<UnitLike>(UnitId unit, ConnId client, bool admitted)>;

  // `services` and `env` must outlive the driver.
  Driver(DriverConfig config, ServicesLike& services, Environment& env, UnitFactory factory);
  ~Driver();
  Driver(const Driver&) = delete;
  Driver& operator=(const Driver&) = delete;

  // Binds and listens, then logs `event=listening address=HOST:PORT` (the real port when the
  // configured one was 0).
  absl::Status Listen();
  std::string listen_address() const;
  uint16_t listen_port() const;

  // Runs the loop on the calling thread and `workers` worker threads until a shutdown has
  // drained (or its drain timeout passed). Call Listen() first. Returns OK after a shutdown.
  absl::Status Run();

  // Starts the drain from any thread: stop accepting, BeginDrain every unit, return from Run()
  // once they have finished. Same as SIGTERM.
  void Shutdown();

  DriverStats stats() const;
  size_t unit_count() const;

 private:
  std::unique_ptr<DriverImpl> impl_;
};

}  // namespace switchyard::io_real
