// Messages between a scheduling unit and the shared services (pool, cancel keys, counters).
// A unit asks with a ServiceRequest action; the driver runs it against the single-owner
// Services object and delivers the answer as a ServiceReplied event (DESIGN.md section 2).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "core/base/types.h"

namespace switchyard {

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
};

using ServiceRequest = std::variant<CheckoutRequest, ReleaseRequest, ForgetRequest,
                                    CancelCheckoutRequest, RegisterCancelKeyRequest,
                                    UnregisterCancelKeyRequest, CancelRequest, CountersDelta>;

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

using ServiceReply = std::variant<CheckoutReply, CancelDelivered>;

}  // namespace switchyard
