// Messages between a scheduling unit and the shared services (pool, cancel keys, counters).
// A unit asks with a ServiceRequest action; the driver runs it against the single-owner
// Services object and delivers the answer as a ServiceReplied event (DESIGN.md section 2).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "core/base/types.h"

namespace switchyard {
namespace route {
class FunctionVolatility;
}

// What makes two server connections interchangeable: node, user, database and every other
// startup parameter (sorted by name, so the key never depends on the client's order).
struct PoolKey {
  NodeId node;
  std::string user;
  std::string database;
  std::vector<std::pair<std::string, std::string>> parameters;
  friend bool operator==(const PoolKey&, const PoolKey&) = default;
  friend auto operator<=>(const PoolKey&, const PoolKey&) = default;
};

// A server connection at rest: logged in, reset, ReadyForQuery 'I'. It is plain data so it can
// move between units and the pool; a ServerSession is rebuilt from it on checkout.
struct PooledConnection {
  ConnId conn;
  PoolKey key;
  // The startup ParameterStatus set the server sent, in the order it sent it.
  std::vector<std::pair<std::string, std::string>> parameters;
  int32_t backend_pid = 0;
  int32_t backend_secret = 0;
  Instant idle_since;
};

// --- The cluster view (DESIGN.md section 5), as every unit sees it ---

enum class NodeRole : uint8_t {
  kUnknown,  // never polled successfully yet
  kPrimary,
  kReplica,
  kFenced,  // claims to be primary on a lower timeline than the real one: gets no traffic
};

struct NodeState {
  NodeId node;
  NodeRole role = NodeRole::kUnknown;
  bool up = false;
  // When its last successful poll began.
  Instant polled;
  // pg_last_wal_replay_lsn() on a replica, pg_current_wal_insert_lsn() on a primary, as last
  // polled.
  uint64_t lsn = 0;
  friend bool operator==(const NodeState&, const NodeState&) = default;
};

// What the health checker last learned of every node. The driver hands each unit a copy when it
// is created and a NodeStateChanged event whenever it changes.
struct ClusterSnapshot {
  uint64_t version = 0;
  std::optional<NodeId> primary;
  // Bumps whenever the primary changes (to another node or to none): read-your-writes
  // watermarks from an older generation no longer mean anything.
  uint64_t primary_generation = 0;
  // The primary's last successful poll: when it began and the LSN it read.
  Instant primary_poll_began;
  uint64_t primary_lsn = 0;
  std::vector<NodeState> nodes;  // by NodeId index
  friend bool operator==(const ClusterSnapshot&, const ClusterSnapshot&) = default;
};

// --- Requests ---

// Ask for a server connection for `key`. Answered with CheckoutReply, possibly much later when
// the unit had to queue behind the pool bound.
struct CheckoutRequest {
  PoolKey key;
};
// A connection the unit no longer needs, reset and ready for reuse.
struct ReleaseRequest {
  PooledConnection connection;
};
// A server connection counted against the pool bounds has gone (closed, broken, failed to
// connect or failed to log in). The pool frees its slot.
struct ForgetRequest {
  PoolKey key;
  ConnId conn;
};
// Give up a queued checkout (the client left while waiting). A unit with a checkout outstanding
// always gets exactly one CheckoutReply: kCancelled if it was still queued, otherwise the reply
// that was already on its way (which the unit then releases or forgets).
struct CancelCheckoutRequest {};
// Make the client-facing key (pid, secret) find this unit.
struct RegisterCancelKeyRequest {
  int32_t pid = 0;
  int32_t secret = 0;
};
struct UnregisterCancelKeyRequest {
  int32_t pid = 0;
  int32_t secret = 0;
};
// A CancelRequest arrived on a fresh connection. If the key matches a unit, that unit receives
// CancelDelivered and decides itself whether it has a query in flight to cancel.
struct CancelRequest {
  int32_t pid = 0;
  int32_t secret = 0;
};
// Counters the unit accumulated, added to the process-wide totals.
struct CountersDelta {
  uint64_t clients_accepted = 0;
  uint64_t queries = 0;
  uint64_t protocol_errors = 0;
  uint64_t auth_failures = 0;
  uint64_t server_losses = 0;
  uint64_t replica_reads = 0;
};

// Choose the replica for a read (least outstanding requests, seeded tie-breaks) among the
// `candidates` the unit found fresh enough for it. Answered with ReplicaChosen; the chosen node
// counts one more outstanding request until the unit sends NodeDone for it.
struct PickReplicaRequest {
  std::vector<NodeId> candidates;
};
// The request counted by a ReplicaChosen has finished (or was never sent).
struct NodeDone {
  NodeId node;
};
// One health poll's outcome, from the health checker's unit.
struct NodePolled {
  NodeId node;
  Instant began;
  bool ok = false;
  bool in_recovery = false;
  uint64_t lsn = 0;
  uint32_t timeline = 0;  // 0: unknown
  std::string error;
};

// --- Function volatility per database, loaded from pg_proc (DESIGN.md section 5) ---

// The table of `database`. Answered with FunctionsReply.
struct FunctionsRequest {
  std::string database;
};
// The requester of a FunctionsReply with `load` set loaded the table from pg_proc (or gave up:
// a null table).
struct FunctionsLoaded {
  std::string database;
  std::shared_ptr<const route::FunctionVolatility> table;
};
// CREATE, ALTER or DROP of a function ran in `database`: its table is stale.
struct FunctionsChanged {
  std::string database;
};

using ServiceRequest =
    std::variant<CheckoutRequest, ReleaseRequest, ForgetRequest, CancelCheckoutRequest,
                 RegisterCancelKeyRequest, UnregisterCancelKeyRequest, CancelRequest, CountersDelta,
                 PickReplicaRequest, NodeDone, NodePolled, FunctionsRequest, FunctionsLoaded,
                 FunctionsChanged>;

// --- Replies ---

struct CheckoutReply {
  enum class Kind {
    kReuse,      // `connection` is an idle pooled connection, now owned by the unit.
    kConnect,    // A slot is reserved: the unit opens a new connection itself.
    kTimedOut,   // Waited longer than the queue timeout: answer 53300.
    kRefused,    // The key can never be served (e.g. bounds of zero).
    kCancelled,  // Answer to CancelCheckoutRequest for a unit that was still queued.
  };
  Kind kind = Kind::kConnect;
  std::optional<PooledConnection> connection;
};
// Another connection asked to cancel this unit's query.
struct CancelDelivered {};

struct ReplicaChosen {
  std::optional<NodeId> node;  // none when no candidate can take it
};

struct FunctionsReply {
  // The last table loaded for the database; null while none was.
  std::shared_ptr<const route::FunctionVolatility> table;
  // It is missing or stale and nobody is loading it: the requester loads it (kLoadQuery on the
  // primary) and answers FunctionsLoaded.
  bool load = false;
};

using ServiceReply = std::variant<CheckoutReply, CancelDelivered, ReplicaChosen, FunctionsReply>;

}  // namespace switchyard
