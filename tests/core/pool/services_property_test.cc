// Property: random request sequences from several units, checked against a model of what each
// unit holds. The bounds hold after every step, nobody waits who could be served, reuse is LIFO,
// eviction takes the least recently used, and once everything is given back and time passes,
// every checkout has had exactly one reply.
#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include <algorithm>
#include <map>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "core/proxy.h"

namespace switchyard {
namespace {

using Kind = CheckoutReply::Kind;

constexpr int kUnits = 4;
constexpr int kKeys = 3;
constexpr int kDrainRoundsMax = 100;

PoolKey KeyNumber(int number) {
  PoolKey key{NodeId{0}, "carol", "db" + std::to_string(number % 2), {}};
  if (number == 2) key.parameters = {{"search_path", "s"}};
  return key;
}

struct Held {
  PoolKey key;
  std::optional<ConnId> conn;  // none until the unit opens its kConnect slot
};

struct UnitModel {
  UnitId id;
  std::optional<PoolKey> waiting;
  std::optional<Instant> deadline;
  std::vector<Held> held;
};

struct IdleModel {
  ConnId conn;
  PoolKey key;
  Instant since;
};

// A step as generated: interpreted against the model so every request is one a correct unit
// could send.
struct Step {
  int kind;
  int unit;
  int key;
  int choice;
};

class Harness {
 public:
  explicit Harness(const ProxyConfig& config) : config_(config), services_(config) {
    for (int i = 0; i < kUnits; ++i) units_.push_back(NewUnit());
  }

  void Run(const Step& step) {
    UnitModel& unit = units_[step.unit % kUnits];
    switch (step.kind) {
      case 0:
        return Checkout(unit, KeyNumber(step.key % kKeys));
      case 1:
        return GiveBack(unit, step.choice, /*release=*/true);
      case 2:
        return GiveBack(unit, step.choice, /*release=*/false);
      case 3:
        return CancelCheckout(unit);
      case 4:
        return Advance(step.choice % 7);
      case 5:
        return LoseIdle(step.choice);
      case 6:
        return CancelKeys(unit, step.choice);
      default:
        return Leave(step.unit % kUnits);
    }
  }

  // Everything is given back and time jumps past every timeout until nothing is owed.
  void Drain() {
    for (int round = 0; round < kDrainRoundsMax; ++round) {
      for (UnitModel& unit : units_) {
        while (!unit.held.empty()) GiveBack(unit, round, /*release=*/round % 2 == 0);
      }
      Advance(config_.checkout_timeout_ms + config_.server_idle_timeout_ms + 1);
      bool owed = false;
      for (const UnitModel& unit : units_) owed = owed || unit.waiting || !unit.held.empty();
      if (!owed) break;
    }
    for (const UnitModel& unit : units_) {
      RC_ASSERT(!unit.waiting);
      RC_ASSERT(unit.held.empty());
    }
    RC_ASSERT(checkouts_ == replies_ + withdrawn_);
    RC_ASSERT(idle_.empty());
    RC_ASSERT(services_.NextDeadline() == std::nullopt);
    RC_ASSERT(services_.counters().cancels_forwarded == cancels_);
  }

 private:
  UnitModel NewUnit() {
    RC_ASSERT(services_.AdmitClient());
    return UnitModel{UnitId{next_unit_++}, std::nullopt, std::nullopt, {}};
  }

  void Checkout(UnitModel& unit, const PoolKey& key) {
    if (unit.waiting) return;
    ++checkouts_;
    unit.waiting = key;
    unit.deadline = now_ + MsToUs(config_.checkout_timeout_ms);
    Apply(services_.Handle(now_, unit.id, CheckoutRequest{key}), Cause::kRequest);
  }

  void GiveBack(UnitModel& unit, int choice, bool release) {
    if (unit.held.empty()) return;
    const size_t index = static_cast<size_t>(choice) % unit.held.size();
    Held held = unit.held[index];
    unit.held.erase(unit.held.begin() + static_cast<ptrdiff_t>(index));
    if (!release) {
      Apply(services_.Handle(now_, unit.id, ForgetRequest{held.key, held.conn.value_or(ConnId{})}),
            Cause::kRequest);
      return;
    }
    PooledConnection connection;
    connection.conn = held.conn.value_or(ConnId{next_conn_++, 1});  // opened now if it was not
    connection.key = held.key;
    released_ = IdleModel{connection.conn, held.key, now_};
    Apply(services_.Handle(now_, unit.id, ReleaseRequest{connection}), Cause::kRequest);
    // The released connection went exactly one way: to a waiter, idle, or closed.
    RC_ASSERT(!released_.has_value());
  }

  void CancelCheckout(UnitModel& unit) {
    Apply(services_.Handle(now_, unit.id, CancelCheckoutRequest{}), Cause::kRequest);
    RC_ASSERT(!unit.waiting.has_value());  // a queued unit hears kCancelled at once
  }

  void Advance(int64_t ms) {
    now_ = now_ + MsToUs(ms);
    Apply(services_.Tick(now_), Cause::kTick);
  }

  void LoseIdle(int choice) {
    std::optional<ConnId> conn;
    if (!idle_.empty()) conn = idle_[static_cast<size_t>(choice) % idle_.size()].conn;
    for (const UnitModel& unit : units_) {
      for (const Held& held : unit.held) {
        if (held.conn && choice % 2 == 0) conn = held.conn;  // lent: must be ignored
      }
    }
    if (!conn) return;
    lost_ = conn;
    Services::Outcome outcome = services_.IdleConnectionLost(now_, *conn);
    const bool was_idle = FindIdle(*conn) != idle_.end();
    RC_ASSERT(outcome.close == (was_idle ? std::vector<ConnId>{*conn} : std::vector<ConnId>{}));
    Apply(std::move(outcome), Cause::kLost);
  }

  void CancelKeys(UnitModel& unit, int choice) {
    const std::pair<int32_t, int32_t> key{(choice / 3) % 2, choice / 6};
    Services::Outcome outcome;
    switch (choice % 3) {
      case 0:
        cancel_keys_.try_emplace(key, unit.id);
        outcome = services_.Handle(now_, unit.id, RegisterCancelKeyRequest{key.first, key.second});
        break;
      case 1:
        if (auto found = cancel_keys_.find(key); found != cancel_keys_.end()) {
          if (found->second == unit.id) cancel_keys_.erase(found);
        }
        outcome =
            services_.Handle(now_, unit.id, UnregisterCancelKeyRequest{key.first, key.second});
        break;
      default:
        outcome = services_.Handle(now_, unit.id, CancelRequest{key.first, key.second});
        auto found = cancel_keys_.find(key);
        RC_ASSERT(outcome.deliveries.size() == (found == cancel_keys_.end() ? 0u : 1u));
        if (found == cancel_keys_.end()) return;
        RC_ASSERT(outcome.deliveries[0].unit == found->second);
        RC_ASSERT(std::holds_alternative<CancelDelivered>(outcome.deliveries[0].reply));
        ++cancels_;
        return;
    }
    RC_ASSERT(outcome.deliveries.empty());
  }

  // A unit may leave once it holds no connection; a waiting one leaves the queue.
  void Leave(int index) {
    UnitModel& unit = units_[static_cast<size_t>(index)];
    if (!unit.held.empty()) return;
    if (unit.waiting) ++withdrawn_;
    services_.ClientGone(unit.id);
    std::erase_if(cancel_keys_, [&](const auto& entry) { return entry.second == unit.id; });
    units_[static_cast<size_t>(index)] = NewUnit();
  }

  enum class Cause { kRequest, kTick, kLost };

  // In the order the drivers apply an outcome: a released connection is pooled (now_idle)
  // before anything is closed, so even one evicted at once for another key's waiter is closed
  // as a pooled connection, never behind its releasing unit's back.
  void Apply(Services::Outcome outcome, Cause cause) {
    for (ConnId conn : outcome.now_idle) {
      RC_ASSERT(IsReleased(conn));
      idle_.push_back(*released_);
      released_.reset();
    }
    for (ConnId conn : outcome.close) Closed(conn, cause);
    for (Services::Delivery& delivery : outcome.deliveries) {
      auto* reply = std::get_if<CheckoutReply>(&delivery.reply);
      RC_ASSERT(reply != nullptr);
      Replied(delivery.unit, *reply, cause);
    }
    RC_ASSERT(!released_.has_value());  // a released connection is pooled or handed on
    CheckBounds();
  }

  void Closed(ConnId conn, Cause cause) {
    auto idle = FindIdle(conn);
    RC_ASSERT(idle != idle_.end());
    if (cause == Cause::kRequest) {  // an eviction: the least recently used goes first
      RC_ASSERT(idle == std::min_element(idle_.begin(), idle_.end(),
                                         [](auto& a, auto& b) { return a.since < b.since; }));
    }
    if (cause == Cause::kTick)
      RC_ASSERT(idle->since + MsToUs(config_.server_idle_timeout_ms) <= now_);
    if (cause == Cause::kLost) RC_ASSERT(lost_ == conn);
    idle_.erase(idle);
  }

  void Replied(UnitId to, const CheckoutReply& reply, Cause cause) {
    UnitModel* unit = FindUnit(to);
    RC_ASSERT(unit != nullptr);
    RC_ASSERT(unit->waiting.has_value());  // exactly one reply per checkout
    const PoolKey key = *unit->waiting;
    unit->waiting.reset();
    ++replies_;
    switch (reply.kind) {
      case Kind::kReuse: {
        RC_ASSERT(reply.connection.has_value());
        RC_ASSERT(reply.connection->key == key);
        const ConnId conn = reply.connection->conn;
        if (IsReleased(conn)) {
          released_.reset();  // handed straight from the releasing unit to this waiter
        } else {
          auto last = std::find_if(idle_.rbegin(), idle_.rend(),
                                   [&](const IdleModel& idle) { return idle.key == key; });
          RC_ASSERT(last != idle_.rend());
          RC_ASSERT(last->conn == conn);  // LIFO: the most recently released of its key
          idle_.erase(std::next(last).base());
        }
        unit->held.push_back({key, conn});
        return;
      }
      case Kind::kConnect:
        unit->held.push_back({key, std::nullopt});
        return;
      case Kind::kTimedOut:
        RC_ASSERT(cause == Cause::kTick);
        RC_ASSERT(*unit->deadline <= now_);
        return;
      case Kind::kRefused:
        RC_FAIL("refused although the bounds are positive");
      case Kind::kCancelled:
        RC_ASSERT(cause == Cause::kRequest);
        return;
    }
  }

  void CheckBounds() {
    std::map<PoolKey, int> per_key;
    for (const IdleModel& idle : idle_) ++per_key[idle.key];
    for (const UnitModel& unit : units_) {
      for (const Held& held : unit.held) ++per_key[held.key];
    }
    int total = 0;
    for (const auto& [key, count] : per_key) {
      RC_ASSERT(count <= config_.pool_size);
      total += count;
    }
    RC_ASSERT(total <= config_.max_server_connections);
    for (const UnitModel& unit : units_) {
      if (!unit.waiting) continue;
      // Nobody waits who could be served: no idle connection of its key, and its key full or
      // (all connections in use and none idle to evict).
      const int mine = per_key[*unit.waiting];
      const bool own_idle = std::any_of(idle_.begin(), idle_.end(), [&](const IdleModel& idle) {
        return idle.key == *unit.waiting;
      });
      RC_ASSERT(!own_idle);
      RC_ASSERT(mine >= config_.pool_size ||
                (total >= config_.max_server_connections && idle_.empty()));
      RC_ASSERT(unit.deadline.has_value() && now_ < *unit.deadline);
    }
  }

  bool IsReleased(ConnId conn) const { return released_ && released_->conn == conn; }
  std::vector<IdleModel>::iterator FindIdle(ConnId conn) {
    return std::find_if(idle_.begin(), idle_.end(),
                        [&](const IdleModel& idle) { return idle.conn == conn; });
  }
  UnitModel* FindUnit(UnitId id) {
    for (UnitModel& unit : units_) {
      if (unit.id == id) return &unit;
    }
    return nullptr;
  }

  ProxyConfig config_;
  Services services_;
  Instant now_{0};
  std::vector<UnitModel> units_;
  std::vector<IdleModel> idle_;  // in release order
  std::map<std::pair<int32_t, int32_t>, UnitId> cancel_keys_;
  std::optional<IdleModel> released_;  // given back in the request being applied
  std::optional<ConnId> lost_;
  uint64_t next_unit_ = 1;
  uint32_t next_conn_ = 1;
  uint64_t checkouts_ = 0;
  uint64_t replies_ = 0;
  uint64_t withdrawn_ = 0;
  uint64_t cancels_ = 0;
};

rc::Gen<Step> GenStep() {
  return rc::gen::map(rc::gen::tuple(rc::gen::inRange(0, 8), rc::gen::inRange(0, kUnits),
                                     rc::gen::inRange(0, kKeys), rc::gen::inRange(0, 12)),
                      [](const std::tuple<int, int, int, int>& t) {
                        return Step{std::get<0>(t), std::get<1>(t), std::get<2>(t), std::get<3>(t)};
                      });
}

RC_GTEST_PROP(ServicesProperty, BoundsFairnessAndOneReplyPerCheckout, ()) {
  ProxyConfig config;
  config.pool_size = *rc::gen::inRange(1, 4);
  config.max_server_connections = *rc::gen::inRange(1, 6);
  config.checkout_timeout_ms = *rc::gen::inRange(1, 20);
  config.server_idle_timeout_ms = *rc::gen::inRange(1, 30);
  config.max_clients = 100;
  const auto steps = *rc::gen::container<std::vector<Step>>(GenStep());
  Harness harness(config);
  for (const Step& step : steps) harness.Run(step);
  harness.Drain();
}

}  // namespace
}  // namespace switchyard
