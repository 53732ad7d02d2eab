// The server-connection pool: per pool key, which connections are idle, lent to a unit or being
// opened, who waits for one, and the bounds (DESIGN.md sections 2-4). Pure bookkeeping: the pool
// never touches a connection; it says which ones to close and who gets what.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "core/base/types.h"
#include "core/service.h"

namespace switchyard {

struct PoolLimits {
  int pool_size = 0;                // connections per key: idle + lent + being opened
  int max_server_connections = 0;   // the same, over all keys
  int64_t checkout_timeout_us = 0;  // a queued checkout times out after this; <= 0: never
  int64_t idle_timeout_us = 0;      // an idle connection is closed after this; <= 0: never
};

// Rules, PgBouncer-like:
// - A checkout is served, in this order of preference, with the most recently released idle
//   connection of its key (kReuse), with a new slot (kConnect), or with a new slot won by closing
//   the least recently used idle connection of another key when only the overall bound is in the
//   way. Otherwise the unit waits, FIFO per key, until its deadline (then kTimedOut).
// - A released or freed slot goes first to a waiter of its own key, then to the oldest waiter
//   overall that the bounds now allow.
// - Every slot a unit gets (kReuse or kConnect) is ended by exactly one Release or Forget from
//   that unit. Anything else is a bug in the caller and stops the process.
// - Nothing depends on hash order: every container is ordered and ties go to arrival order.
class Pool {
 public:
  struct Reply {
    UnitId unit;
    CheckoutReply reply;
  };
  struct Result {
    std::vector<Reply> replies;    // in the order they were decided
    std::vector<ConnId> now_idle;  // connections that became idle in the pool
    std::vector<ConnId> close;     // connections the pool gave up: the owner closes them
  };
  struct KeyCounts {
    int idle = 0;
    int lent = 0;
    int reserved = 0;
    int waiting = 0;
  };

  // `check_every_call`: the whole consistency check (FindInvariantViolation, linear in the
  // connections and waiters) runs at the end of every mutating call, as in the tests and the
  // simulator. Off, those calls check only the counts they change, in constant time: with
  // thousands of queued clients the full check would make every checkout linear.
  explicit Pool(const PoolLimits& limits, bool check_every_call = true);

  // Replies to `unit` now, or queues it (one queued checkout per unit at a time).
  Result Checkout(Instant now, UnitId unit, const PoolKey& key);
  // `unit` gives back a connection it got with kReuse or opened after kConnect.
  Result Release(Instant now, UnitId unit, PooledConnection connection);
  // `unit` lost a connection it got with kReuse, or gives up a kConnect slot (opened or not).
  // `conn` may be invalid when the slot never got a connection.
  Result Forget(UnitId unit, const PoolKey& key, ConnId conn);
  // Drops the unit's queued checkout; returns whether there was one.
  bool CancelCheckout(UnitId unit);
  // Times out queued checkouts and idle connections whose deadline is at or before `now`.
  Result Tick(Instant now);
  // Drops `conn` if the pool holds it idle (it is then in `close`); otherwise does nothing.
  Result IdleConnectionLost(ConnId conn);
  std::optional<Instant> NextDeadline() const;

  // Introspection for tests and an admin view.
  KeyCounts Counts(const PoolKey& key) const;
  int total() const { return total_; }
  int waiting() const { return static_cast<int>(waiters_.size()); }
  bool IsWaiting(UnitId unit) const { return waiter_of_unit_.contains(unit); }

  // Empty when every invariant holds; otherwise a description of the first broken one.
  std::string FindInvariantViolation() const;
  // Runs at the end of every mutating call; aborts with the violation.
  void CheckInvariants() const;

 private:
  struct Waiter {
    UnitId unit;
    PoolKey key;
    std::optional<Instant> deadline;
  };
  struct KeyState {
    // Idle connections by release sequence: the last one is the most recently used.
    std::map<uint64_t, PooledConnection> idle;
    std::map<ConnId, UnitId> lent;   // handed out with kReuse
    std::map<UnitId, int> reserved;  // kConnect slots per unit
    int reserved_count = 0;
    std::set<uint64_t> waiting;  // waiter sequence numbers: FIFO
    int Total() const { return static_cast<int>(idle.size() + lent.size()) + reserved_count; }
    bool Empty() const { return Total() == 0 && waiting.empty(); }
  };
  // (idle_since, release sequence, conn): the least recently used idle connection first.
  using IdleOrder = std::tuple<Instant, uint64_t, ConnId>;

  bool TryServe(UnitId unit, const PoolKey& key, Result& out);
  void ServeWaiters(const std::optional<PoolKey>& key_first, Result& out);
  bool Servable(const KeyState& state) const;
  void Enqueue(Instant now, UnitId unit, const PoolKey& key);
  void RemoveWaiter(uint64_t sequence);
  void LendIdle(UnitId unit, KeyState& state, Result& out);
  void AddIdle(Instant now, PooledConnection connection);
  PooledConnection RemoveIdle(ConnId conn);
  void EvictLeastRecentlyUsed(Result& out);
  void FreeSlot(UnitId unit, const PoolKey& key, ConnId conn, const char* what);
  void EraseIfEmpty(const PoolKey& key);
  std::string FindKeyViolation(const PoolKey& key, const KeyState& state) const;
  std::string FindIndexViolation() const;

  PoolLimits limits_;
  bool check_every_call_;
  std::map<PoolKey, KeyState> keys_;  // only keys with a slot or a waiter
  std::map<ConnId, PoolKey> known_;   // every idle or lent connection
  std::set<IdleOrder> idle_order_;
  std::map<uint64_t, Waiter> waiters_;  // by arrival: the oldest first
  std::map<UnitId, uint64_t> waiter_of_unit_;
  std::set<std::pair<Instant, uint64_t>> waiter_deadlines_;
  int total_ = 0;  // slots over all keys
  uint64_t next_sequence_ = 1;
};

}  // namespace switchyard
