// One simulation run (DESIGN.md section 7): builds the world for one seed (simulated network,
// a simulated PostgreSQL primary and its streaming replicas, the real core and its health
// checker behind the simulated driver, the workload and the oracles), runs the workload with
// faults (failovers included), heals them, runs the liveness phase, waits for the proxy to find
// the primary, checks the pool with probes, and returns the run hash, the violations and the
// run's size.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "io_sim/sim_driver.h"
#include "sim/oracles.h"
#include "sim/swarm.h"

namespace switchyard::sim {

class TimelineRecorder;  // sim/timeline.h

struct RunResult {
  uint64_t seed = 0;
  uint64_t hash = 0;
  uint64_t hash_events = 0;
  std::vector<Violation> violations;  // the first Violations::kKeptMax
  uint64_t violation_count = 0;
  uint64_t sim_queries = 0;  // client requests answered
  int64_t sim_time_us = 0;
  std::string phases;  // how each phase ended: "faults=done liveness=done roles=done probes=done"
  uint64_t promotions = 0;  // replicas the nemesis promoted
  io_sim::SimDriverStats driver;

  bool ok() const { return violation_count == 0; }
};

// Test-only hooks into a run.
struct RunHooks {
  // Called on every answer before the oracles see it; a test breaks an answer on purpose to
  // prove the oracles notice.
  std::function<void(const ClientInfo&, const Request&, Answer&)> tamper_answer_for_test;
  // One line per network and driver event (debugging a seed).
  std::function<void(std::string_view)> trace;
  // Replaces what the memory oracle lets the proxy hold for a slow client (0: keep the bound
  // derived from the options); a test shrinks it to prove the oracle measures.
  uint64_t proxy_buffer_bytes_max_for_test = 0;
  // Failovers promote a replica without stopping the primary (split brain, as a partitioned
  // failover manager would cause): until the proxy has polled the new timeline the old primary
  // still takes writes, which a test uses to prove that the fencing oracle sees them.
  bool split_brain_for_test = false;
  // Records the run for `switchyard sim --timeline` (sessions, faults, node events, server
  // connections, violations); only watches, so the run and its hash stay the same.
  TimelineRecorder* timeline = nullptr;
};

RunResult RunSimulation(const RunOptions& options, const RunHooks& hooks = {});

// "switchyard sim --seed N [--swarm]": how to reproduce a run.
std::string ReproduceCommand(const RunOptions& options);

}  // namespace switchyard::sim
