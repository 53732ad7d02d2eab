// The world a shrinking property drives one command at a time (DESIGN.md section 7): the real
// core behind the simulated driver, a simulated network, one simulated PostgreSQL primary,
// scripted clients and the standard oracles, put together the way sim/runner.cc puts a seeded
// run together. The difference is where choices come from: every choice of the network and the
// driver goes through one PlannedDecisions, which answers "nothing happens" (no cut, no fault,
// no extra latency, run the busy worker on) unless a command planned otherwise. So a fault exists
// only because a command generated it, and RapidCheck, shrinking the commands, shrinks the faults.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/proxy.h"
#include "io_sim/decision.h"
#include "io_sim/environment.h"
#include "io_sim/event_queue.h"
#include "io_sim/network.h"
#include "io_sim/run_hash.h"
#include "io_sim/sim_driver.h"
#include "sim/model.h"
#include "sim/node_peer.h"
#include "sim/oracles.h"
#include "sim/pg_node.h"
#include "sim/workload.h"
#include "tests/sim_shrink/scripted_client.h"

namespace switchyard::sim {

class Scenario;

struct ScenarioOptions {
  int clients = 3;
  int keys = 4;
  // Client i logs in with application_name "app<i % application_names>", a startup parameter,
  // so each name is a pool key of its own (the probes use app0).
  int application_names = 2;
  int pool_size = 2;
  int workers = 2;  // virtual workers, so units can interleave
  uint64_t mutants = 0;
  // Called on every answer before the oracles see it: a deliberately broken rule for a test,
  // which may look at the world (the node's restarts, ...) to decide when it strikes.
  std::function<void(const Scenario&, const ClientInfo&, const Request&, Answer&)>
      tamper_answer_for_test;
};

// Time and step bounds of the end of a scenario: faults healed, every client finishes.
inline constexpr int64_t kLivenessBoundUs = 60'000'000;
inline constexpr uint64_t kStepsPerRunMax = 20'000'000;

class Scenario {
 public:
  explicit Scenario(ScenarioOptions options);
  ~Scenario();
  Scenario(const Scenario&) = delete;
  Scenario& operator=(const Scenario&) = delete;

  // --- Workload steps ---
  void Add(int client, Intent intent) { Client(client).Add(intent); }
  void Disconnect(int client, bool abortive) { Client(client).Disconnect(abortive); }
  void Cancel(int client, int64_t delay_us) { Client(client).Cancel(delay_us); }
  // Runs the simulation for `us` of virtual time (0: what is due now). False when it ran away
  // (the step bound).
  bool Advance(int64_t us);

  // --- Faults: a plan for a coming choice, or the node ---
  io_sim::PlannedDecisions& decisions() { return decisions_; }
  NodePeer& node() { return node_; }
  // The node dies (or shuts down fast) and restarts `down_us` later; nothing if it is down.
  void CrashNode(int64_t down_us, bool shutdown);
  // The node answers nothing for `us` (a later pause may extend it).
  void PauseNode(int64_t us);
  int node_restarts() const { return node_restarts_; }

  // --- The end ---
  // Heals every fault, lets every client finish what it was told and leave, checks that the
  // proxy is idle, then has pool_size probe clients log in at once.
  void Finish();

  bool ok() const { return violations_.count() == 0; }
  // The violations, the run's phases and its hash: what a failing case prints.
  std::string Report() const;
  uint64_t hash() const { return hash_.value(); }
  uint64_t answers() const;

 private:
  class TamperingObserver;

  ScriptedClient& Client(int index);
  // "answers=12 dropped=1 skipped=3 decisions=..." over every client.
  std::string Stats() const;
  bool ClientsDone() const;
  void RestartNode();

  ScenarioOptions options_;
  ProxyConfig proxy_;
  io_sim::PlannedDecisions decisions_;
  io_sim::PrngDecisions environment_decisions_;
  io_sim::Timeline timeline_;
  io_sim::RunHash hash_;
  io_sim::SimNetwork network_;
  PgNode pg_;
  NodePeer node_;
  io_sim::SimEnvironment env_;
  Services services_;
  std::unique_ptr<io_sim::SimDriver> driver_;
  KvHistory history_;
  Violations violations_;
  World world_;
  OracleSet oracles_;
  std::unique_ptr<TamperingObserver> tampering_;
  std::vector<std::unique_ptr<ScriptedClient>> clients_;
  std::unique_ptr<Workload> probes_;  // a Workload without clients, for its probes
  int node_restarts_ = 0;
  Instant paused_until_;
  std::string phases_;
};

}  // namespace switchyard::sim
