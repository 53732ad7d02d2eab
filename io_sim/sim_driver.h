// SimDriver: runs the real core (switchyard::Unit, switchyard::Services) on a SimNetwork, with
// the semantics of io_real's driver (DESIGN.md sections 2, 3 and 7), in one thread, on a
// virtual clock, with every interleaving chosen by a DecisionSource.
//
// K virtual workers run units as io_real's worker threads do: a run hands the unit its queued
// events, then the bytes its ready connections hold, performs the actions it drains, flushes
// its output, and re-arms it through core/sched's Scheduler. A run advances one step at a
// time (one Handle, one batch of actions, one service request, one flush round), and each
// step of the simulation is chosen by the decision source among:
//   - the next timeline event due now (the network, timers, the poll set, the workload);
//   - starting a run of the oldest runnable unit on an idle worker;
//   - the next step of any running worker.
// So units interleave at unit granularity and at service-request granularity: between a unit
// issuing a request and the services answering it, other workers and the network may move.
// Virtual time stands still while anything can happen now; then it jumps to the next event.
//
// Wiring a run (what `switchyard sim` and the tests do):
//   SimSeeds seeds = SimSeeds::FromRoot(seed);
//   PrngDecisions net_decisions(seeds.network), sched_decisions(seeds.scheduler),
//                 env_decisions(seeds.environment);
//   Timeline timeline;  RunHash hash;
//   SimNetwork network(network_config, timeline, net_decisions, &hash);
//   network.Listen(NodeId{0}, PeerId{1000}, &node);        // simulated PostgreSQL nodes
//   SimEnvironment env(env_decisions);
//   Services services(proxy_config);
//   SimDriver driver(driver_config, timeline, network, services, env, sched_decisions,
//                    [&](UnitId id, ConnId client, bool admitted) {
//                      return std::make_unique<Unit>(id, client, proxy_config, env, admitted);
//                    }, &hash);
//   workload.Start();           // client peers: network.ConnectToProxy(id, &peer), on the timeline
//   driver.RunUntil([&] { return workload.Done(); }, Instant{deadline}, steps_max);
//   print hash.value();
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "core/base/types.h"
#include "core/io.h"
#include "core/proxy.h"
#include "core/sched/scheduler.h"
#include "io_sim/decision.h"
#include "io_sim/event_queue.h"
#include "io_sim/network.h"
#include "io_sim/run_hash.h"

namespace switchyard::io_sim {

class SimDriverImpl;  // io_sim/sim_driver_internal.h

struct SimDriverConfig {
  int workers = 1;  // K virtual workers
  sched::DisarmPolicy disarm_policy = sched::DisarmPolicy::kExplicit;
  size_t read_chunk_bytes = size_t{64} << 10;       // one read(2)
  size_t read_bytes_per_run_max = size_t{1} << 20;  // then the unit yields to others
  bool check_scheduler_invariants = true;
  // How long a closed connection may keep writing its queued output to a slow peer.
  int64_t linger_timeout_us = 5'000'000;

  std::string Describe() const;
};

struct SimDriverStats {
  uint64_t steps = 0;
  uint64_t timeline_events = 0;
  uint64_t clients_accepted = 0;
  uint64_t runs = 0;
  uint64_t handles = 0;  // Unit::Handle calls (and BeginDrain)
  uint64_t service_requests = 0;
  uint64_t timers_fired = 0;
  uint64_t units_retired = 0;
  uint64_t connections_closed = 0;
  uint64_t lingering_closes = 0;  // closes that had to wait for a slow peer to take the output
  uint64_t lingering_cut = 0;     // of those, given up at the deadline with output unsent
  uint64_t reads_paused = 0;      // PauseRead actions
  uint64_t reads_resumed = 0;     // ResumeRead actions
  uint64_t max_concurrent_runs = 0;
};

class SimDriver {
 public:
  using UnitFactory =
      std::function<std::unique_ptr<Unit>(UnitId unit, ConnId client, bool admitted)>;

  // Everything passed by reference must outlive the driver. The driver attaches itself to the
  // network as its proxy side.
  SimDriver(SimDriverConfig config, Timeline& timeline, SimNetwork& network, Services& services,
            Environment& env, DecisionSource& decisions, UnitFactory factory,
            RunHash* hash = nullptr);
  ~SimDriver();
  SimDriver(const SimDriver&) = delete;
  SimDriver& operator=(const SimDriver&) = delete;

  // One step of the whole simulation. False when nothing is left to do at all: no running or
  // runnable unit and no event on the timeline.
  bool Step();

  enum class Stop { kDone, kQuiescent, kTimeLimit, kStepLimit };
  // Steps until `done()` holds (checked before every step; may be empty), nothing is left,
  // the next event lies after `until` (the clock is then left at `until`), or `steps_max`
  // steps were taken.
  Stop RunUntil(const std::function<bool()>& done, Instant until, uint64_t steps_max);

  // A unit with no client, run from the start until the drain (the health checker). It gets a
  // TimerFired first.
  using SystemUnitFactory = std::function<std::unique_ptr<Unit>(UnitId unit)>;
  void AddSystemUnit(const SystemUnitFactory& make);

  // Like SIGTERM: stop accepting, ask every unit to finish what is in flight and leave.
  void Shutdown();

  Instant now() const;
  size_t unit_count() const;
  size_t active_runs() const;
  const SimDriverStats& stats() const;
  // One line per driver event, for a failing seed's timeline.
  void set_trace(std::function<void(std::string_view)> trace);

 private:
  std::unique_ptr<SimDriverImpl> impl_;
};

std::string_view StopName(SimDriver::Stop stop);

}  // namespace switchyard::io_sim
