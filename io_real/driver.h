// The production driver: a pool of workers that wait on the connections' poll set and run the
// scheduling units (DESIGN.md section 3) it wakes, plus a loop thread for accepts, timers,
// signals and the drain.
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

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "core/sched/scheduler.h"
#include "io_real/address.h"
#include "io_real/capture_writer.h"
#include "io_real/sockets.h"
#include "io_real/unit_like.h"

namespace switchyard::io_real {

class DriverImpl;  // io_real/driver_internal.h

// Lingering close (io_real/lingering.h): a Close whose output the peer has not taken yet keeps
// the socket, writing, for at most kLingeringTimeoutMs; once everything is written the peer has
// kLingeringDrainMs to close its side. At most kLingeringSocketsMax linger at once (beyond that
// a Close closes at once); each holds at most the output its connection had queued.
inline constexpr int64_t kLingeringTimeoutMs = 5'000;
inline constexpr int64_t kLingeringDrainMs = 2'000;
inline constexpr size_t kLingeringSocketsMax = 4096;
static_assert(kLingeringDrainMs <= kLingeringTimeoutMs);

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
  // How a queued or running unit's connections are kept out of the poll set (DESIGN.md
  // section 3). kUnitSet and kExplicit both take ALL of them out; kUnitSet does it with one
  // poll-set entry per unit instead of one per connection (2 epoll_ctl per request/response
  // round trip instead of 6).
  sched::DisarmPolicy disarm_policy = sched::DisarmPolicy::kUnitSet;
  // At most this much is read from one connection in one run; then the unit yields to others.
  size_t read_bytes_per_run_max = size_t{1} << 20;
  ServerSocketOptions server_sockets;
  // Run the scheduler's full consistency check after every run and epoll batch (tests).
  bool check_scheduler_invariants = false;
  int listen_backlog = 1024;
  // Lingering close bounds (tests shorten them).
  int64_t lingering_timeout_ms = kLingeringTimeoutMs;
  int64_t lingering_drain_ms = kLingeringDrainMs;
  size_t lingering_sockets_max = kLingeringSocketsMax;
  // Traffic capture (DESIGN.md section 6): with a directory, capture starts at Run() when
  // capture.start_on says so, and SIGUSR1 (or ToggleCapture()) switches it off and on.
  CaptureConfig capture;
};

// Work and syscalls since the driver started (relaxed counters: for logs and tests).
struct DriverStats {
  uint64_t clients_accepted = 0;
  uint64_t runs = 0;
  // read(2) and send(2) calls, including reads that found nothing (not counting the lingering
  // set's, which are off the units' path).
  uint64_t reads = 0;
  uint64_t writes = 0;
  uint64_t epoll_ctls = 0;
  uint64_t epoll_waits = 0;     // all of them: the loop's, the workers', polls of a unit's set
  uint64_t unit_set_polls = 0;  // of which polls of a unit's own set (kUnitSet)
  uint64_t loop_wakes = 0;      // eventfd writes that woke the loop thread
  uint64_t worker_wakes = 0;    // eventfd writes that woke a worker waiting in the poll set
  uint64_t connects = 0;
  uint64_t closes = 0;
  uint64_t lingering_closes = 0;    // closes whose socket lingered to deliver the rest
  uint64_t lingering_timeouts = 0;  // of which cut at their deadline (or at shutdown)
  uint64_t lingering_refused = 0;   // closed at once: the lingering set was full
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

  // A unit with no client, run from the start until the drain (the health checker). Call before
  // Run(); it gets a TimerFired first.
  void AddSystemUnit(std::unique_ptr<UnitLike> unit);

  // Runs the loop on the calling thread and `workers` worker threads until a shutdown has
  // drained and the sockets still lingering have finished (or the drain timeout passed). Call
  // Listen() first. Returns OK after a shutdown.
  absl::Status Run();

  // Starts the drain from any thread: stop accepting, BeginDrain every unit, return from Run()
  // once they have finished. Same as SIGTERM.
  void Shutdown();

  // Switches capture off if it is on and on if it is off, from any thread. Same as SIGUSR1.
  void ToggleCapture();
  // What the capture writer did so far (zeros without a capture directory).
  CaptureStats capture_stats() const;

  DriverStats stats() const;
  size_t unit_count() const;

 private:
  std::unique_ptr<DriverImpl> impl_;
};

}  // namespace switchyard::io_real
