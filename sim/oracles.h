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

// What the oracles may look at besides the clients' observations.
struct World {
  const io_sim::Timeline* timeline = nullptr;
  const KvStore* store = nullptr;     // the primary's committed data and WAL
  const NodePeer* primary = nullptr;  // its sessions and connections, for the accounting
  KvHistory* history = nullptr;
  int pool_size = 0;
  int max_server_connections = 0;
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
  void OnQuiescent(const Quiescence& q);
  void Finish();

 private:
  std::vector<std::unique_ptr<Oracle>> oracles_;
};

// The oracles of issue 3, by name:
//   answers_in_order  exactly one complete, well-formed answer per request, in order
//   model             answers equal the reference model's (kv history + session state)
//   no_double_write   every committed write is explained by exactly one request
//   connection_loss   08006 (08007 for COMMIT), then the proxy's own FATAL, then a clean close;
//                     a server's FATAL never reaches a client as its own
//   session_state     no SET leaks between clients sharing a pooled connection
//   cancel            a query is cancelled only by its own client's cancel request
//   memory            a client that stops reading makes the proxy stop reading its server
//   liveness          after healing, every request completes and every connection is accounted
void AddStandardOracles(OracleSet& set, World& world, Violations& violations);

}  // namespace switchyard::sim
