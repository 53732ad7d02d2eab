// Per-seed run options (DESIGN.md section 7, "swarm testing"): everything one simulation run
// is configured with, derived from its root seed alone. Without --swarm a seed gets the standard
// scenario (every fault kind on at moderate rates); with --swarm each seed turns every fault kind
// on or off and draws its rates and the workload's shape, as TigerBeetle's options_swarm does,
// so that over many seeds rare combinations (no faults but heavy contention, a flood of resets
// with one pooled connection, ...) all get their turn.
#pragma once

#include <cstdint>
#include <string>

#include "core/proxy.h"
#include "io_sim/network.h"
#include "io_sim/sim_driver.h"
#include "sim/workload.h"

namespace switchyard::sim {

// Faults the nemesis inflicts on the simulated PostgreSQL nodes (each strike picks one). An
// interval is the mean gap between two faults of that kind; 0 turns the kind off.
struct NodeFaultOptions {
  int64_t crash_interval_us = 0;     // the node dies; it restarts after a while
  int64_t shutdown_interval_us = 0;  // fast shutdown (FATAL 57P01 to every session); restart
  int64_t down_us_max = 200'000;     // how long the node stays down
  int64_t pause_interval_us = 0;     // the node stops answering for a while
  int64_t pause_us_max = 200'000;
  int64_t terminate_interval_us = 0;  // pg_terminate_backend on one session
  int64_t slow_interval_us = 0;       // statements take longer for a while
  int64_t slow_us_max = 5'000;        // extra time per statement
  int64_t slow_period_us_max = 300'000;

  std::string Describe() const;
};

// The simulated cluster: node 0 starts as the primary, nodes 1..replicas as its streaming
// replicas (DESIGN.md section 5), and the faults that only a cluster has. An interval is the
// mean gap between two faults of that kind; 0 turns the kind off.
struct ClusterOptions {
  int replicas = 0;
  // Runs the proxy's health checker (always with replicas; optional with a primary alone).
  bool health_checker = false;
  int64_t health_check_interval_ms = 50;
  int64_t health_check_timeout_ms = 500;
  // Each replica replays the primary's WAL this far behind (drawn per replica in [0, max]).
  int64_t lag_us_max = 0;
  int64_t lag_spike_interval_us = 0;  // a replica stops replaying for a while
  int64_t lag_spike_us_max = 500'000;
  // The primary dies, the most advanced replica is promoted, and once the proxy has seen the
  // new primary the old one comes back (on its old timeline: it must be fenced) and is later
  // rebuilt as a replica.
  int64_t failover_interval_us = 0;
  int64_t promote_delay_us_max = 300'000;     // the cluster without a primary
  int64_t old_primary_back_us_max = 500'000;  // after the proxy saw the new primary
  int64_t rebuild_us_max = 2'000'000;         // the old primary fenced, then rebuilt

  std::string Describe() const;
};

struct RunOptions {
  uint64_t seed = 0;
  bool swarm = false;
  io_sim::NetworkConfig network;
  io_sim::SimDriverConfig driver;
  ProxyConfig proxy;
  WorkloadOptions workload;
  NodeFaultOptions node_faults;  // on any node of the cluster
  ClusterOptions cluster;
  // Faults run until the workload is done or this much virtual time has passed; then they are
  // healed and the liveness phase gives every pending request this long to complete.
  int64_t fault_phase_us = 30'000'000;
  int64_t liveness_bound_us = 60'000'000;

  // The options as `key=value` lines: network, driver, proxy, node faults, workload, phases.
  std::string Describe() const;
};

// The options of `switchyard sim --seed N [--swarm]`. Drawing them consumes only a stream
// derived from the seed for this purpose, so the run's own streams start where they always do.
RunOptions DeriveRunOptions(uint64_t seed, bool swarm);

// The names of the mutants set in `mutants` (ProxyConfig::mutants), comma-separated.
std::string MutantNames(uint64_t mutants);

}  // namespace switchyard::sim
