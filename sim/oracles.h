// The simulator's oracles (DESIGN.md section 7): independent checks, each watching every client
// observation (and, at the end, the quiescent world), each reporting what it finds wrong as a
// Violation. A new rule (routing, failover, read-your-writes) is a new Oracle subclass added to
// the set; none of them depends on another.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/base/types.h"
#include "core/proxy.h"
#include "io_sim/event_queue.h"
#include "sim/model.h"
#include "sim/node_peer.h"
#include "sim/pg_node.h"
#include "sim/workload.h"

namespace switchyard::sim {

struct Violation {
  std::string oracle;
  Instant at;
  std::string client;  // "" when not about one client
  std::string what;
};

// "ERROR 08006 \"...\"", "rows=1 tag=\"SELECT 1\" status=I", "#17 `SELECT ...`": for violation
// messages.
std::string DescribeError(const ErrorInfo& error);
std::string DescribeAnswer(const Answer& answer);
std::string Quote(const Request& request);

// Every violation of a run, in the order found. Bounded: after kKeptMax only the count grows.
class Violations {
 public:
  static constexpr size_t kKeptMax = 100;
  void Add(std::string_view oracle, Instant at, std::string client, std::string what);
  const std::vector<Violation>& list() const { return list_; }
  uint64_t count() const { return count_; }

 private:
  std::vector<Violation> list_;
  uint64_t count_ = 0;
};

// What the cluster's nemesis has done, for the routing and failover oracles.
struct ClusterFacts {
  std::vector<const NodePeer*> nodes;  // by NodeId index
  size_t primary = 0;                  // the current primary: the history follows its WAL
  // An old primary after a promotion, until it is rebuilt as a replica: whenever it is up, the
  // proxy must fence it (no traffic, no write).
  std::vector<bool> fenced;
  struct Promotion {
    Instant at;
    size_t node = 0;
  };
  std::vector<Promotion> promotions;
  const Services* services = nullptr;  // the proxy's cluster view, for read-your-writes bounds
};

// A Query or Parse message a node received.
struct NodeQuery {
  size_t node = 0;
  uint64_t session = 0;  // the node's session (the network link's id)
  std::string_view sql;
  bool in_recovery = false;  // the node was a replica
  bool fenced = false;       // the node was a fenced old primary
};

// What the oracles may look at besides the clients' observations.
struct World {
  const io_sim::Timeline* timeline = nullptr;
  const KvStore* store = nullptr;     // the primary's committed data and WAL
  const NodePeer* primary = nullptr;  // its sessions and connections, for the accounting
  KvHistory* history = nullptr;
  int pool_size = 0;
  int max_server_connections = 0;
  // Streaming replicas in the run: reads outside read-write transactions may then be stale.
  int replicas = 0;
  const ClusterFacts* cluster = nullptr;  // null: a primary alone, no nemesis of its own
  // How long the proxy may take to see a change of roles.
  int64_t health_check_bound_us = 0;
  // What the proxy may hold for one slow client: its output watermark, one read, the largest
  // message, and the two network windows that hide bytes in flight.
  uint64_t proxy_buffer_bytes_max = 0;
};

// The world after the liveness phase: faults healed, every client gone.
struct Quiescence {
  size_t units = 0;             // scheduling units the proxy still holds
  uint64_t clients_active = 0;  // admitted clients the proxy's services still count
};

class Oracle : public ClientObserver {
 public:
  Oracle(std::string name, World& world, Violations& violations)
      : name_(std::move(name)), world_(world), violations_(violations) {}
  const std::string& name() const { return name_; }

  void OnWelcome(const ClientInfo&, const Welcome&) override {}
  void OnRequest(const ClientInfo&, const Request&) override {}
  void OnAnswer(const ClientInfo&, const SessionModel&, const Request&, const Answer&) override {}
  void OnCancelSent(const ClientInfo&, const Request&) override {}
  void OnReadingPaused(const ClientInfo&, int32_t) override {}
  void OnReadingResumed(const ClientInfo&, int32_t) override {}
  void OnStray(const ClientInfo&, std::string_view) override {}
  void OnEnded(const ClientInfo&, const SessionModel&, const Ending&) override {}
  // A node received a statement (the workload's carry a routing tag: sim/workload.h).
  virtual void OnNodeQuery(const NodeQuery&) {}
  // Every client has left and faults are healed; the proxy should hold nothing but idle pooled
  // connections.
  virtual void OnQuiescent(const Quiescence&) {}
  // The run is over (after the probes): final accounting.
  virtual void Finish() {}

 protected:
  Instant Now() const { return world_.timeline->now(); }
  void Report(const ClientInfo* client, std::string what);
  // Reads new WAL records into the model, reporting records the model cannot explain.
  void IngestWal();

  std::string name_;
  World& world_;
  Violations& violations_;
};

// Fans every observation out to each oracle, in the order they were added.
class OracleSet final : public ClientObserver {
 public:
  void Add(std::unique_ptr<Oracle> oracle) { oracles_.push_back(std::move(oracle)); }
  const std::vector<std::unique_ptr<Oracle>>& oracles() const { return oracles_; }

  void OnWelcome(const ClientInfo& c, const Welcome& w) override;
  void OnRequest(const ClientInfo& c, const Request& r) override;
  void OnAnswer(const ClientInfo& c, const SessionModel& s, const Request& r,
                const Answer& a) override;
  void OnCancelSent(const ClientInfo& c, const Request& r) override;
  void OnReadingPaused(const ClientInfo& c, int32_t pid) override;
  void OnReadingResumed(const ClientInfo& c, int32_t pid) override;
  void OnStray(const ClientInfo& c, std::string_view what) override;
  void OnEnded(const ClientInfo& c, const SessionModel& s, const Ending& e) override;
  void OnConnect(const ClientInfo& c) override;
  void OnNodeQuery(const NodeQuery& q);
  void OnQuiescent(const Quiescence& q);
  void Finish();

 private:
  std::vector<std::unique_ptr<Oracle>> oracles_;
};

// The oracles, by name:
//   answers_in_order  exactly one complete, well-formed answer per request, in order
//   model             answers equal the reference model's (kv history + session state)
//   no_double_write   every committed write is explained by exactly one request
//   connection_loss   a lost server connection fails the statement in flight (08006, 08007 for
//                     COMMIT) and never ends the session; a server's FATAL never reaches a
//                     client as its own
//   session_state     no SET leaks between clients sharing a pooled connection, and every SET
//                     holds on whatever server connection (new, replica) serves the client
//   cancel            a query is cancelled only by its own client's cancel request
//   memory            a client that stops reading makes the proxy stop reading its server
//   liveness          after healing, every request completes and every connection is accounted
// and those of routing and failover (sim/oracles_cluster.h):
//   no_write_on_replica  writes, locking reads, read-write transactions and writing batches
//                        reach the primary only
//   batch_one_node       a Sync batch runs on one node
//   read_your_writes     reads see the client's own committed writes and nothing older than
//                        the primary's state when the session connected
//   fencing              an old primary brought back after a promotion gets no traffic, no write
//   failover             after healing the proxy finds the primary, and a write through it works
void AddStandardOracles(OracleSet& set, World& world, Violations& violations);

}  // namespace switchyard::sim
