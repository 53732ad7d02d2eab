// The server-connection pool's bookkeeping: bounds, LIFO reuse, FIFO waiters, timeouts.
#include "core/pool/pool.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <iterator>
#include <string_view>
#include <utility>

#include "absl/strings/str_format.h"

namespace switchyard {
namespace {

// A broken promise of our own code (or of the unit calling us): stop before counts drift.
[[noreturn]] void Die(std::string_view what) {
  std::fprintf(stderr, "switchyard pool: %.*s\n", static_cast<int>(what.size()), what.data());
  std::abort();
}

std::string Name(ConnId conn) { return absl::StrFormat("c%u.%u", conn.index, conn.generation); }

}  // namespace

Pool::Pool(const PoolLimits& limits, bool check_every_call)
    : limits_(limits), check_every_call_(check_every_call) {}

Pool::Result Pool::Checkout(Instant now, UnitId unit, const PoolKey& key) {
  Result out;
  if (limits_.pool_size <= 0 || limits_.max_server_connections <= 0) {
    out.replies.push_back({unit, CheckoutReply{CheckoutReply::Kind::kRefused, std::nullopt}});
    return out;
  }
  if (waiter_of_unit_.contains(unit)) {
    Die(absl::StrFormat("unit %d asked for a checkout while already waiting for one", unit.value));
  }
  // By the invariant no waiter is servable, so a waiter of the same key is never overtaken:
  // TryServe fails for the newcomer exactly when it would fail for them.
  if (!TryServe(unit, key, out)) Enqueue(now, unit, key);
  CheckInvariants();
  return out;
}

Pool::Result Pool::Release(Instant now, UnitId unit, PooledConnection connection) {
  Result out;
  const ConnId conn = connection.conn;
  if (!conn.valid()) Die(absl::StrFormat("unit %d released an invalid connection", unit.value));
  const PoolKey key = connection.key;
  FreeSlot(unit, key, conn, "released");
  AddIdle(now, std::move(connection));
  // A waiter of the same key takes the connection as it is (LIFO makes it this one); only then
  // may another key's waiter claim the slot by closing it.
  ServeWaiters(key, out);
  // The connection went idle even when another key's waiter evicted it at once: the owner must
  // hear it is pooled before it hears to close it.
  const bool evicted = std::find(out.close.begin(), out.close.end(), conn) != out.close.end();
  auto known = known_.find(conn);
  if (evicted || (known != known_.end() && !keys_.at(known->second).lent.contains(conn))) {
    out.now_idle.push_back(conn);
  }
  CheckInvariants();
  return out;
}

Pool::Result Pool::Forget(UnitId unit, const PoolKey& key, ConnId conn) {
  Result out;
  FreeSlot(unit, key, conn, "forgot");
  ServeWaiters(key, out);
  CheckInvariants();
  return out;
}

bool Pool::CancelCheckout(UnitId unit) {
  auto found = waiter_of_unit_.find(unit);
  if (found == waiter_of_unit_.end()) return false;
  RemoveWaiter(found->second);
  CheckInvariants();
  return true;
}

Pool::Result Pool::Tick(Instant now) {
  Result out;
  while (!waiter_deadlines_.empty() && waiter_deadlines_.begin()->first <= now) {
    const uint64_t sequence = waiter_deadlines_.begin()->second;
    const UnitId unit = waiters_.at(sequence).unit;
    RemoveWaiter(sequence);
    out.replies.push_back({unit, CheckoutReply{CheckoutReply::Kind::kTimedOut, std::nullopt}});
  }
  if (limits_.idle_timeout_us > 0) {
    while (!idle_order_.empty() &&
           std::get<Instant>(*idle_order_.begin()) + limits_.idle_timeout_us <= now) {
      const ConnId conn = std::get<ConnId>(*idle_order_.begin());
      const PoolKey key = RemoveIdle(conn).key;
      EraseIfEmpty(key);
      out.close.push_back(conn);
    }
  }
  ServeWaiters(std::nullopt, out);
  CheckInvariants();
  return out;
}

Pool::Result Pool::IdleConnectionLost(ConnId conn) {
  Result out;
  auto known = known_.find(conn);
  if (known == known_.end() || keys_.at(known->second).lent.contains(conn)) return out;
  const PoolKey key = RemoveIdle(conn).key;
  EraseIfEmpty(key);
  out.close.push_back(conn);
  ServeWaiters(key, out);
  CheckInvariants();
  return out;
}

std::optional<Instant> Pool::NextDeadline() const {
  std::optional<Instant> next;
  if (!waiter_deadlines_.empty()) next = waiter_deadlines_.begin()->first;
  if (limits_.idle_timeout_us > 0 && !idle_order_.empty()) {
    const Instant idle_deadline = std::get<Instant>(*idle_order_.begin()) + limits_.idle_timeout_us;
    if (!next || idle_deadline < *next) next = idle_deadline;
  }
  return next;
}

Pool::KeyCounts Pool::Counts(const PoolKey& key) const {
  auto found = keys_.find(key);
  if (found == keys_.end()) return {};
  const KeyState& state = found->second;
  return KeyCounts{static_cast<int>(state.idle.size()), static_cast<int>(state.lent.size()),
                   state.reserved_count, static_cast<int>(state.waiting.size())};
}

// Serves `unit` now if the bounds allow it; adds the reply to `out` and returns true.
bool Pool::TryServe(UnitId unit, const PoolKey& key, Result& out) {
  KeyState& state = keys_[key];
  if (!state.idle.empty()) {
    LendIdle(unit, state, out);
    return true;
  }
  if (!Servable(state)) {
    EraseIfEmpty(key);
    return false;
  }
  // This key has no idle connection, so any idle one belongs to another key.
  if (total_ >= limits_.max_server_connections) EvictLeastRecentlyUsed(out);
  ++state.reserved[unit];
  ++state.reserved_count;
  ++total_;
  out.replies.push_back({unit, CheckoutReply{CheckoutReply::Kind::kConnect, std::nullopt}});
  return true;
}

// Whether a unit asking for a key in `state` could be served now.
bool Pool::Servable(const KeyState& state) const {
  if (!state.idle.empty()) return true;
  if (state.Total() >= limits_.pool_size) return false;
  return total_ < limits_.max_server_connections || !idle_order_.empty();
}

// Serves the waiters the bounds now allow: those of `key_first` first, then the oldest overall.
void Pool::ServeWaiters(const std::optional<PoolKey>& key_first, Result& out) {
  if (key_first) {
    auto state = keys_.find(*key_first);
    while (state != keys_.end() && !state->second.waiting.empty()) {
      const uint64_t sequence = *state->second.waiting.begin();
      const UnitId unit = waiters_.at(sequence).unit;
      if (!Servable(state->second)) break;
      RemoveWaiter(sequence);
      if (!TryServe(unit, *key_first, out)) Die("a servable waiter was not served");
      state = keys_.find(*key_first);
    }
  }
  for (auto it = waiters_.begin(); it != waiters_.end();) {
    if (total_ >= limits_.max_server_connections && idle_order_.empty()) return;
    const uint64_t sequence = it->first;
    ++it;
    const Waiter& waiter = waiters_.at(sequence);
    if (!Servable(keys_.at(waiter.key))) continue;
    const UnitId unit = waiter.unit;
    const PoolKey key = waiter.key;
    RemoveWaiter(sequence);
    if (!TryServe(unit, key, out)) Die("a servable waiter was not served");
  }
}

void Pool::Enqueue(Instant now, UnitId unit, const PoolKey& key) {
  const uint64_t sequence = next_sequence_++;
  std::optional<Instant> deadline;
  if (limits_.checkout_timeout_us > 0) {
    deadline = now + limits_.checkout_timeout_us;
    waiter_deadlines_.insert({*deadline, sequence});
  }
  waiters_.emplace(sequence, Waiter{unit, key, deadline});
  waiter_of_unit_.emplace(unit, sequence);
  keys_[key].waiting.insert(sequence);
}

void Pool::RemoveWaiter(uint64_t sequence) {
  auto found = waiters_.find(sequence);
  if (found == waiters_.end()) Die(absl::StrFormat("no waiter %d to remove", sequence));
  const Waiter& waiter = found->second;
  if (waiter.deadline) waiter_deadlines_.erase({*waiter.deadline, sequence});
  waiter_of_unit_.erase(waiter.unit);
  const PoolKey key = waiter.key;
  keys_.at(key).waiting.erase(sequence);
  waiters_.erase(found);
  EraseIfEmpty(key);
}

// Hands the most recently released idle connection of `state` to `unit`.
void Pool::LendIdle(UnitId unit, KeyState& state, Result& out) {
  auto last = std::prev(state.idle.end());
  PooledConnection connection = std::move(last->second);
  idle_order_.erase({connection.idle_since, last->first, connection.conn});
  state.idle.erase(last);
  state.lent.emplace(connection.conn, unit);
  out.replies.push_back({unit, CheckoutReply{CheckoutReply::Kind::kReuse, std::move(connection)}});
}

void Pool::AddIdle(Instant now, PooledConnection connection) {
  const uint64_t sequence = next_sequence_++;
  const ConnId conn = connection.conn;
  connection.idle_since = now;
  idle_order_.insert({now, sequence, conn});
  known_.emplace(conn, connection.key);
  KeyState& state = keys_[connection.key];
  state.idle.emplace(sequence, std::move(connection));
  ++total_;
}

// Takes an idle connection out of the pool and frees its slot. The caller erases the key when
// it may have become empty.
PooledConnection Pool::RemoveIdle(ConnId conn) {
  auto known = known_.find(conn);
  if (known == known_.end()) Die(absl::StrFormat("idle connection %s is unknown", Name(conn)));
  KeyState& state = keys_.at(known->second);
  for (auto it = state.idle.begin(); it != state.idle.end(); ++it) {
    if (it->second.conn != conn) continue;
    PooledConnection connection = std::move(it->second);
    idle_order_.erase({connection.idle_since, it->first, conn});
    state.idle.erase(it);
    known_.erase(known);
    --total_;
    return connection;
  }
  Die(absl::StrFormat("connection %s is not idle", Name(conn)));
}

void Pool::EvictLeastRecentlyUsed(Result& out) {
  if (idle_order_.empty()) Die("eviction without an idle connection");
  const ConnId conn = std::get<ConnId>(*idle_order_.begin());
  const PoolKey key = RemoveIdle(conn).key;
  EraseIfEmpty(key);
  out.close.push_back(conn);
}

// Ends the slot `unit` holds for `key`: the lent `conn`, else one of its kConnect slots.
void Pool::FreeSlot(UnitId unit, const PoolKey& key, ConnId conn, const char* what) {
  auto known = known_.find(conn);
  if (known != known_.end()) {
    auto state = keys_.find(known->second);
    auto lent = state->second.lent.find(conn);
    if (known->second != key || lent == state->second.lent.end() || lent->second != unit) {
      Die(absl::StrFormat("unit %d %s connection %s, which the pool did not lend it for this key",
                          unit.value, what, Name(conn)));
    }
    state->second.lent.erase(lent);
    known_.erase(known);
    --total_;
    EraseIfEmpty(key);
    return;
  }
  auto state = keys_.find(key);
  if (state == keys_.end() || !state->second.reserved.contains(unit)) {
    Die(absl::StrFormat("unit %d %s connection %s without holding a slot for its key", unit.value,
                        what, Name(conn)));
  }
  auto reserved = state->second.reserved.find(unit);
  if (--reserved->second == 0) state->second.reserved.erase(reserved);
  --state->second.reserved_count;
  --total_;
  EraseIfEmpty(key);
}

void Pool::EraseIfEmpty(const PoolKey& key) {
  auto found = keys_.find(key);
  if (found != keys_.end() && found->second.Empty()) keys_.erase(found);
}

void Pool::CheckInvariants() const {
  if (!check_every_call_) {
    if (total_ < 0 || total_ > limits_.max_server_connections) {
      Die(absl::StrFormat("invariant broken: %d connections, the bound is %d", total_,
                          limits_.max_server_connections));
    }
    if (waiter_of_unit_.size() != waiters_.size()) Die("invariant broken: waiters out of step");
    return;
  }
  const std::string violation = FindInvariantViolation();
  if (!violation.empty()) Die("invariant broken: " + violation);
}

std::string Pool::FindInvariantViolation() const {
  int total = 0;
  size_t idle = 0;
  size_t lent = 0;
  size_t waiting = 0;
  for (const auto& [key, state] : keys_) {
    std::string violation = FindKeyViolation(key, state);
    if (!violation.empty()) return violation;
    total += state.Total();
    idle += state.idle.size();
    lent += state.lent.size();
    waiting += state.waiting.size();
  }
  if (total != total_) return absl::StrFormat("total %d but keys hold %d", total_, total);
  if (total_ > limits_.max_server_connections) {
    return absl::StrFormat("%d connections over the bound of %d", total_,
                           limits_.max_server_connections);
  }
  if (idle != idle_order_.size()) return "idle order out of step with the keys";
  if (idle + lent != known_.size()) return "known connections out of step with the keys";
  if (waiting != waiters_.size()) return "waiters out of step with the keys";
  return FindIndexViolation();
}

std::string Pool::FindKeyViolation(const PoolKey& key, const KeyState& state) const {
  if (state.Empty()) return "an empty key is kept";
  if (state.Total() > limits_.pool_size) {
    return absl::StrFormat("a key holds %d connections, over the pool size %d", state.Total(),
                           limits_.pool_size);
  }
  int reserved = 0;
  for (const auto& [unit, count] : state.reserved) {
    if (count <= 0) return "a unit is kept with no reserved slot";
    reserved += count;
  }
  if (reserved != state.reserved_count) return "reserved count out of step";
  for (const auto& [sequence, connection] : state.idle) {
    if (connection.key != key)
      return absl::StrFormat("%s idles under another key", Name(connection.conn));
    auto known = known_.find(connection.conn);
    if (known == known_.end() || known->second != key) return "an idle connection is not indexed";
    if (!idle_order_.contains({connection.idle_since, sequence, connection.conn})) {
      return "an idle connection is missing from the idle order";
    }
    if (state.lent.contains(connection.conn)) return "a connection is both idle and lent";
  }
  for (const auto& [conn, unit] : state.lent) {
    auto known = known_.find(conn);
    if (known == known_.end() || known->second != key) return "a lent connection is not indexed";
  }
  for (uint64_t sequence : state.waiting) {
    auto waiter = waiters_.find(sequence);
    if (waiter == waiters_.end() || waiter->second.key != key) return "a waiter is not indexed";
  }
  // The promise that makes queueing fair: nobody waits who could be served now.
  if (!state.waiting.empty() && Servable(state)) return "a servable unit is left waiting";
  return "";
}

std::string Pool::FindIndexViolation() const {
  if (waiter_of_unit_.size() != waiters_.size()) return "a unit is queued twice";
  size_t with_deadline = 0;
  for (const auto& [sequence, waiter] : waiters_) {
    auto of_unit = waiter_of_unit_.find(waiter.unit);
    if (of_unit == waiter_of_unit_.end() || of_unit->second != sequence) {
      return absl::StrFormat("unit %d is queued twice", waiter.unit.value);
    }
    if (waiter.deadline) {
      ++with_deadline;
      if (!waiter_deadlines_.contains({*waiter.deadline, sequence})) return "a deadline is lost";
    }
  }
  if (with_deadline != waiter_deadlines_.size()) return "a stale waiter deadline is kept";
  return "";
}

}  // namespace switchyard
