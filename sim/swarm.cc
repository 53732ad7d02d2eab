// Run options from a seed: the standard scenario, or a swarm draw.
#include "sim/swarm.h"

#include <algorithm>

#include "absl/strings/str_format.h"
#include "core/auth/users.h"
#include "core/base/strings.h"
#include "core/mutants.h"
#include "io_sim/decision.h"
#include "io_sim/prng.h"

namespace switchyard::sim {
namespace {

// The proxy settings every simulation shares: trust (SCRAM's key stretching would dominate a
// run), and timeouts short enough that the liveness phase outlasts every one of them.
ProxyConfig SimProxyConfig() {
  ProxyConfig proxy;
  proxy.auth_type = auth::AuthType::kTrust;
  proxy.pool_size = 4;
  proxy.max_server_connections = 6;
  proxy.max_clients = 1000;
  proxy.auth_timeout_ms = 10'000;
  proxy.connect_timeout_ms = 2'000;
  proxy.checkout_timeout_ms = 10'000;
  proxy.server_idle_timeout_ms = 600'000;
  return proxy;
}

std::string DescribeProxy(const ProxyConfig& p) {
  return absl::StrFormat(
      "pool_mode=%s pool_size=%d max_server_connections=%d max_clients=%d auth_timeout_ms=%d "
      "connect_timeout_ms=%d checkout_timeout_ms=%d server_idle_timeout_ms=%d "
      "client_output_high_bytes=%d client_output_low_bytes=%d",
      p.pool_mode == PoolMode::kTransaction ? "transaction" : "session", p.pool_size,
      p.max_server_connections, p.max_clients, p.auth_timeout_ms, p.connect_timeout_ms,
      p.checkout_timeout_ms, p.server_idle_timeout_ms, p.client_output_high_bytes,
      p.client_output_low_bytes);
}

// A swarm draw of one fault kind: off half the time, otherwise a rate in [lo, hi].
template <typename T>
T Maybe(io_sim::DecisionSource& d, T lo, T hi, std::string_view what) {
  if (d.Chance(1, 2, what)) return T{0};
  return static_cast<T>(d.Between(static_cast<int64_t>(lo), static_cast<int64_t>(hi), what));
}

void SwarmNetwork(io_sim::DecisionSource& d, io_sim::NetworkConfig& n) {
  // Latency and cuts are always on: they are how a real network behaves, not faults.
  n.latency.base_us = d.Between(10, 1'000, "swarm.latency_base");
  n.latency.jitter_us = d.Between(0, 5'000, "swarm.latency_jitter");
  n.latency.spike_ppm = Maybe<uint32_t>(d, 1, 50'000, "swarm.spike");
  n.latency.spike_us_max = n.latency.spike_ppm ? d.Between(1'000, 100'000, "swarm.spike_us") : 0;
  n.cut_ppm = static_cast<uint32_t>(d.Between(0, 900'000, "swarm.cut"));
  n.window_bytes = static_cast<size_t>(d.Between(4 << 10, 256 << 10, "swarm.window"));
  n.faults.reset_ppm = Maybe<uint32_t>(d, 1, 3'000, "swarm.reset");
  n.faults.black_hole_ppm = Maybe<uint32_t>(d, 1, 1'000, "swarm.black_hole");
  n.faults.black_hole_reset_after_us =
      n.faults.black_hole_ppm ? d.Between(50'000, 5'000'000, "swarm.black_hole_reset") : 0;
  n.faults.connect_refused_ppm = Maybe<uint32_t>(d, 1, 300'000, "swarm.refused");
  n.faults.connect_timeout_ppm = Maybe<uint32_t>(d, 1, 100'000, "swarm.connect_timeout");
}

void SwarmNode(io_sim::DecisionSource& d, NodeFaultOptions& f) {
  f.crash_interval_us = Maybe<int64_t>(d, 50'000, 3'000'000, "swarm.crash");
  f.shutdown_interval_us = Maybe<int64_t>(d, 50'000, 3'000'000, "swarm.shutdown");
  f.down_us_max = d.Between(1'000, 500'000, "swarm.down");
  f.pause_interval_us = Maybe<int64_t>(d, 20'000, 2'000'000, "swarm.pause");
  f.pause_us_max = d.Between(1'000, 300'000, "swarm.pause_us");
  f.terminate_interval_us = Maybe<int64_t>(d, 10'000, 1'000'000, "swarm.terminate");
  f.slow_interval_us = Maybe<int64_t>(d, 20'000, 2'000'000, "swarm.slow");
  f.slow_us_max = d.Between(100, 10'000, "swarm.slow_us");
  f.slow_period_us_max = d.Between(1'000, 500'000, "swarm.slow_period");
}

void SwarmWorkload(io_sim::DecisionSource& d, WorkloadOptions& w) {
  // Big enough that faults meet traffic (and a run's setup is a small part of it); one client
  // or one request per session still comes up now and then.
  w.clients = static_cast<int>(d.Between(1, 16, "swarm.clients"));
  w.sessions_per_client = static_cast<int>(d.Between(2, 8, "swarm.sessions"));
  w.requests_per_session_max = static_cast<int>(d.Between(1, 80, "swarm.requests"));
  w.requests_per_session_min = static_cast<int>(
      d.Between(w.requests_per_session_max / 2, w.requests_per_session_max, "swarm.requests_min"));
  w.keys = static_cast<int>(d.Between(1, 32, "swarm.keys"));
  for (uint32_t* weight : {&w.weight_read, &w.weight_write, &w.weight_transaction, &w.weight_set,
                           &w.weight_show, &w.weight_sleep, &w.weight_scan}) {
    *weight = static_cast<uint32_t>(
        d.Chance(1, 4, "swarm.weight_off") ? 0 : d.Between(1, 50, "swarm.weight"));
  }
  w.rollback_percent = static_cast<uint32_t>(d.Between(0, 100, "swarm.rollback"));
  w.transaction_statements_max = static_cast<int>(d.Between(1, 8, "swarm.tx_length"));
  w.think_us_max = d.Between(0, 5'000, "swarm.think");
  w.session_gap_us_max = d.Between(0, 20'000, "swarm.gap");
  w.sleep_us_max = d.Between(1'000, 300'000, "swarm.sleep");
  w.cancel_ppm = Maybe<uint32_t>(d, 1, 1'000'000, "swarm.cancel");
  w.disconnect_ppm = Maybe<uint32_t>(d, 1, 30'000, "swarm.disconnect");
  w.slow_reader_ppm = Maybe<uint32_t>(d, 1, 200'000, "swarm.slow_reader");
  w.slow_pause_us_max = d.Between(1'000, 200'000, "swarm.slow_pause");
  w.application_names = static_cast<int>(d.Between(0, 3, "swarm.application_names"));
  // Big values make scans large enough that a slow reader tests the output watermarks (a
  // scan of 32 keys of 256 KiB is 8 MiB, far above any watermark the swarm draws).
  w.value_bytes_max = 0;
  if (d.Chance(1, 4, "swarm.big_values")) {
    const int64_t limit = d.Chance(1, 2, "swarm.huge_values") ? 256 << 10 : 16 << 10;
    w.value_bytes_max = d.Between(1, limit, "swarm.value");
  }
}

void SwarmProxy(io_sim::DecisionSource& d, ProxyConfig& p, io_sim::SimDriverConfig& driver) {
  p.pool_size = static_cast<int>(d.Between(1, 8, "swarm.pool_size"));
  p.max_server_connections =
      static_cast<int>(d.Between(p.pool_size, 3 * p.pool_size, "swarm.max_server"));
  if (d.Chance(1, 4, "swarm.idle_timeout_on")) {
    p.server_idle_timeout_ms = d.Between(1, 2'000, "swarm.idle_timeout");
  }
  if (d.Chance(1, 2, "swarm.watermark_on")) {
    p.client_output_high_bytes = static_cast<uint64_t>(d.Between(1'024, 1 << 20, "swarm.high"));
    p.client_output_low_bytes = p.client_output_high_bytes / 4;
  }
  driver.workers = static_cast<int>(d.Between(1, 4, "swarm.workers"));
  driver.disarm_policy =
      d.Chance(1, 2, "swarm.disarm") ? sched::DisarmPolicy::kExplicit : sched::DisarmPolicy::kLazy;
  driver.read_chunk_bytes = static_cast<size_t>(d.Between(512, 64 << 10, "swarm.read_chunk"));
}

void SwarmCluster(io_sim::DecisionSource& d, ClusterOptions& c) {
  c.replicas = static_cast<int>(d.Between(0, 2, "swarm.replicas"));
  c.health_checker = c.replicas > 0 || d.Chance(1, 2, "swarm.health_checker");
  c.health_check_interval_ms = d.Between(10, 200, "swarm.health_interval");
  c.health_check_timeout_ms =
      d.Between(c.health_check_interval_ms, 4 * c.health_check_interval_ms, "swarm.health_timeout");
  c.lag_us_max = Maybe<int64_t>(d, 1, 500'000, "swarm.lag");
  c.lag_spike_interval_us = Maybe<int64_t>(d, 100'000, 3'000'000, "swarm.lag_spike");
  c.lag_spike_us_max = d.Between(10'000, 2'000'000, "swarm.lag_spike_us");
  c.failover_interval_us =
      c.replicas > 0 ? Maybe<int64_t>(d, 300'000, 10'000'000, "swarm.failover") : 0;
  c.promote_delay_us_max = d.Between(1'000, 1'000'000, "swarm.promote_delay");
  c.old_primary_back_us_max = d.Between(1'000, 1'000'000, "swarm.old_primary_back");
  c.rebuild_us_max = d.Between(1'000, 3'000'000, "swarm.rebuild");
}

// The proxy's side of the cluster: where the nodes are and how the health checker logs in.
void WireCluster(const ClusterOptions& c, ProxyConfig& p) {
  p.node_count = static_cast<size_t>(1 + c.replicas);
  if (!c.health_checker) return;
  p.health_user = std::string(kHealthUser);
  p.health_database = "postgres";
  p.health_check_interval_ms = c.health_check_interval_ms;
  p.health_check_timeout_ms = c.health_check_timeout_ms;
  if (absl::StatusOr<auth::UserSecret> secret = auth::ParseSecret(kHealthUser); secret.ok()) {
    p.users.emplace(std::string(kHealthUser), *secret);
  }
}

}  // namespace

std::string ClusterOptions::Describe() const {
  return absl::StrFormat(
      "replicas=%d health_checker=%s health_check_interval_ms=%d health_check_timeout_ms=%d "
      "lag_us_max=%d lag_spike_interval_us=%d lag_spike_us_max=%d failover_interval_us=%d "
      "promote_delay_us_max=%d old_primary_back_us_max=%d rebuild_us_max=%d",
      replicas, health_checker ? "on" : "off", health_check_interval_ms, health_check_timeout_ms,
      lag_us_max, lag_spike_interval_us, lag_spike_us_max, failover_interval_us,
      promote_delay_us_max, old_primary_back_us_max, rebuild_us_max);
}

std::string NodeFaultOptions::Describe() const {
  return absl::StrFormat(
      "crash_interval_us=%d shutdown_interval_us=%d down_us_max=%d pause_interval_us=%d "
      "pause_us_max=%d terminate_interval_us=%d slow_interval_us=%d slow_us_max=%d "
      "slow_period_us_max=%d",
      crash_interval_us, shutdown_interval_us, down_us_max, pause_interval_us, pause_us_max,
      terminate_interval_us, slow_interval_us, slow_us_max, slow_period_us_max);
}

std::string RunOptions::Describe() const {
  return Cat("  network: ", network.Describe(), "\n  driver: ", driver.Describe(),
             "\n  proxy: ", DescribeProxy(proxy), "\n  cluster: ", cluster.Describe(),
             "\n  node_faults: ", node_faults.Describe(), "\n  workload: ", workload.Describe(),
             "\n  phases: fault_phase_us=", fault_phase_us,
             " liveness_bound_us=", liveness_bound_us,
             proxy.mutants == 0 ? "" : Cat("\n  mutant: ", MutantNames(proxy.mutants)));
}

std::string MutantNames(uint64_t mutants) {
  std::string names;
  for (const MutantInfo& info : kMutants) {
    if ((mutants & static_cast<uint64_t>(info.mutant)) == 0) continue;
    names += names.empty() ? "" : ",";
    names += info.name;
  }
  return names;
}

RunOptions DeriveRunOptions(uint64_t seed, bool swarm) {
  RunOptions o;
  o.seed = seed;
  o.swarm = swarm;
  o.proxy = SimProxyConfig();
  o.driver.workers = 2;
  if (!swarm) {
    // The standard scenario: every fault kind on, at rates a run of a second or two hits a few
    // times each.
    o.network.latency = io_sim::LatencyConfig{
        .base_us = 100, .jitter_us = 2'000, .spike_ppm = 10'000, .spike_us_max = 20'000};
    o.network.cut_ppm = 300'000;
    o.network.faults = io_sim::FaultConfig{.reset_ppm = 300,
                                           .black_hole_ppm = 100,
                                           .black_hole_reset_after_us = 2'000'000,
                                           .connect_refused_ppm = 20'000,
                                           .connect_timeout_ppm = 10'000};
    o.node_faults = NodeFaultOptions{.crash_interval_us = 1'500'000,
                                     .shutdown_interval_us = 3'000'000,
                                     .pause_interval_us = 1'000'000,
                                     .terminate_interval_us = 500'000,
                                     .slow_interval_us = 2'000'000,
                                     .slow_us_max = 2'000};
    o.workload.cancel_ppm = 300'000;
    o.workload.disconnect_ppm = 2'000;
    o.workload.slow_reader_ppm = 10'000;
    o.cluster = ClusterOptions{.replicas = 1,
                               .health_checker = true,
                               .lag_us_max = 100'000,
                               .lag_spike_interval_us = 2'000'000,
                               .failover_interval_us = 3'000'000};
    WireCluster(o.cluster, o.proxy);
    return o;
  }
  io_sim::PrngDecisions d(io_sim::DeriveSeed(seed, "swarm"));
  SwarmNetwork(d, o.network);
  SwarmNode(d, o.node_faults);
  SwarmWorkload(d, o.workload);
  SwarmProxy(d, o.proxy, o.driver);
  // Drawn last, so the draws above give what they gave before there were replicas.
  SwarmCluster(d, o.cluster);
  WireCluster(o.cluster, o.proxy);
  // Last again: transaction pooling moves every client between server connections all the
  // time, so every oracle on session state runs against the replay machinery.
  o.proxy.pool_mode =
      d.Chance(1, 3, "swarm.pool_mode") ? PoolMode::kTransaction : PoolMode::kSession;
  return o;
}

}  // namespace switchyard::sim
