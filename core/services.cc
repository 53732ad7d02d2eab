// The shared services of the core: the pool, the cancel-key registry, the counters and client
// admission, answering the messages of core/service.h (DESIGN.md section 2).
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <string_view>
#include <utility>
#include <variant>

#include "absl/strings/str_format.h"
#include "core/cluster/cluster_view.h"
#include "core/mutants.h"
#include "core/pool/pool.h"
#include "core/proxy.h"
#include "core/route/functions.h"

namespace switchyard {
namespace {

// A broken promise of our own code (or of the driver calling us): stop before counts drift.
[[noreturn]] void Die(std::string_view what) {
  std::fprintf(stderr, "switchyard services: %.*s\n", static_cast<int>(what.size()), what.data());
  std::abort();
}

PoolLimits LimitsOf(const ProxyConfig& config) {
  return PoolLimits{
      .pool_size = config.pool_size,
      .max_server_connections = config.max_server_connections,
      .checkout_timeout_us = MsToUs(config.checkout_timeout_ms),
      .idle_timeout_us = MsToUs(config.server_idle_timeout_ms),
  };
}

ClusterView MakeClusterView(const ProxyConfig& config) {
  std::vector<ClusterView::NodeConfig> nodes;
  for (size_t i = 0; i < config.node_count; ++i) {
    nodes.push_back({NodeId{static_cast<uint32_t>(i)}, i == 0});
  }
  ClusterView::Options options;
  options.failures_to_down = config.health_check_failures_to_down;
  return ClusterView(std::move(nodes), options);
}

NodeRole RoleOf(ClusterView::Role role) {
  switch (role) {
    case ClusterView::Role::kUnknown:
      return NodeRole::kUnknown;
    case ClusterView::Role::kPrimary:
      return NodeRole::kPrimary;
    case ClusterView::Role::kReplica:
      return NodeRole::kReplica;
    case ClusterView::Role::kFenced:
      return NodeRole::kFenced;
  }
  return NodeRole::kUnknown;
}

}  // namespace

class Services::Impl {
 public:
  explicit Impl(const ProxyConfig& config)
      : pool_(LimitsOf(config), config.full_checks),
        max_clients_(config.max_clients),
        mutants_(config.mutants),
        view_(MakeClusterView(config)),
        outstanding_(config.node_count, 0),
        balance_state_(config.balance_seed | 1) {
    // Until the first poll, the configured primary is taken at its word, so a proxy without
    // replicas (and without a health checker) works as before.
    snapshot_.primary = NodeId{0};
    for (size_t i = 0; i < config.node_count; ++i) {
      snapshot_.nodes.push_back(NodeState{NodeId{static_cast<uint32_t>(i)},
                                          i == 0 ? NodeRole::kPrimary : NodeRole::kUnknown, i == 0,
                                          Instant{}, 0});
    }
  }

  const ClusterSnapshot& cluster() const { return snapshot_; }

  Outcome Handle(Instant now, UnitId from, ServiceRequest request) {
    if (!from.valid()) Die("a service request from an invalid unit");
    Outcome out = std::visit([&](auto& message) { return On(now, from, message); }, request);
    CheckInvariants();
    return out;
  }

  Outcome Tick(Instant now) {
    Outcome out = FromPool(pool_.Tick(now));
    CheckInvariants();
    return out;
  }

  std::optional<Instant> NextDeadline() const { return pool_.NextDeadline(); }

  Outcome IdleConnectionLost(ConnId conn) {
    Outcome out = FromPool(pool_.IdleConnectionLost(conn));
    CheckInvariants();
    return out;
  }

  bool AdmitClient() {
    if (max_clients_ <= 0 || counters_.clients_active >= static_cast<uint64_t>(max_clients_)) {
      return false;
    }
    ++counters_.clients_active;
    CheckInvariants();
    return true;
  }

  void ClientGone(UnitId unit) {
    if (counters_.clients_active == 0) {
      Die(absl::StrFormat("unit %d gone, but no admitted client is active", unit.value));
    }
    --counters_.clients_active;
    pool_.CancelCheckout(unit);
    std::erase_if(cancel_keys_, [unit](const auto& entry) { return entry.second == unit; });
    CheckInvariants();
  }

  const Counters& counters() const { return counters_; }

 private:
  using CancelKey = std::pair<int32_t, int32_t>;  // (pid, secret)

  static constexpr size_t kFunctionsDatabasesMax = 1024;
  static constexpr int64_t kFunctionsLoadTimeoutUs = 30'000'000;
  struct FunctionsEntry {
    std::shared_ptr<const route::FunctionVolatility> table;
    bool stale = true;  // never loaded, or a function changed since
    std::optional<Instant> loading_since;
    bool changed_while_loading = false;
  };

  Outcome On(Instant now, UnitId from, CheckoutRequest& request) {
    return FromPool(pool_.Checkout(now, from, request.key));
  }
  Outcome On(Instant now, UnitId from, ReleaseRequest& request) {
    return FromPool(pool_.Release(now, from, std::move(request.connection)));
  }
  Outcome On(Instant, UnitId from, ForgetRequest& request) {
    return FromPool(pool_.Forget(from, request.key, request.conn));
  }
  Outcome On(Instant, UnitId from, CancelCheckoutRequest&) {
    Outcome outcome;
    if (pool_.CancelCheckout(from)) {
      outcome.deliveries.push_back({from, CheckoutReply{CheckoutReply::Kind::kCancelled, {}}});
    }
    return outcome;
  }
  // The first unit to claim a key keeps it: a later claim (a secret collision, astronomically
  // rare) must not redirect another client's cancels.
  Outcome On(Instant, UnitId from, RegisterCancelKeyRequest& request) {
    cancel_keys_.try_emplace({request.pid, request.secret}, from);
    return {};
  }
  Outcome On(Instant, UnitId from, UnregisterCancelKeyRequest& request) {
    auto found = cancel_keys_.find({request.pid, request.secret});
    if (found != cancel_keys_.end() && found->second == from) cancel_keys_.erase(found);
    return {};
  }
  // The requester gets no answer either way, as PostgreSQL gives none to a CancelRequest.
  Outcome On(Instant, UnitId, CancelRequest& request) {
    Outcome out;
    auto found = cancel_keys_.find({request.pid, request.secret});
    if (found == cancel_keys_.end()) return out;
    if (IsMutant(mutants_, Mutant::kCancelWrongServer)) {
      // Deliver to the unit of the next key instead: another client's server connection.
      if (++found == cancel_keys_.end()) found = cancel_keys_.begin();
    }
    out.deliveries.push_back({found->second, CancelDelivered{}});
    ++counters_.cancels_forwarded;
    return out;
  }
  // One unit at a time loads a database's table; another takes over if it has not answered
  // within kFunctionsLoadTimeoutUs (its client left, its connection was lost).
  Outcome On(Instant now, UnitId from, FunctionsRequest& request) {
    Outcome out;
    FunctionsReply reply;
    auto it = functions_.find(request.database);
    if (it == functions_.end() && functions_.size() < kFunctionsDatabasesMax) {
      it = functions_.emplace(request.database, FunctionsEntry{}).first;
    }
    if (it != functions_.end()) {
      FunctionsEntry& entry = it->second;
      reply.table = entry.table;
      if (entry.stale &&
          (!entry.loading_since || now.us - entry.loading_since->us > kFunctionsLoadTimeoutUs)) {
        reply.load = true;
        entry.loading_since = now;
        entry.changed_while_loading = false;
      }
    }
    out.deliveries.push_back({from, std::move(reply)});
    return out;
  }
  // A null table: the loader gave up (its client left first); the next request loads it.
  Outcome On(Instant, UnitId, FunctionsLoaded& loaded) {
    auto it = functions_.find(loaded.database);
    if (it == functions_.end()) return {};
    FunctionsEntry& entry = it->second;
    if (loaded.table == nullptr) {
      entry.loading_since.reset();
      return {};
    }
    entry.table = std::move(loaded.table);
    entry.stale = entry.changed_while_loading;
    entry.loading_since.reset();
    return {};
  }
  Outcome On(Instant, UnitId, FunctionsChanged& changed) {
    auto it = functions_.find(changed.database);
    if (it == functions_.end()) return {};
    it->second.stale = true;
    it->second.changed_while_loading = it->second.loading_since.has_value();
    return {};
  }
  Outcome On(Instant, UnitId, NodePolled& polled) {
    ClusterView::PollResult result;
    result.node = polled.node;
    result.began = polled.began;
    result.finished = polled.began;
    result.ok = polled.ok;
    result.in_recovery = polled.in_recovery;
    result.lsn = polled.lsn;
    result.timeline = polled.timeline;
    result.error = std::move(polled.error);
    if (result.node.index >= view_.nodes().size()) Die("a poll of an unknown node");
    const ClusterView::Changes changes = view_.Apply(result);
    Outcome out;
    // Every successful poll of the primary is news even when nothing moved: a unit waiting for
    // a poll that began after its write learns from it that no replica lags behind that write.
    const bool primary_polled = result.ok && view_.primary() == result.node;
    if (!changes.routing && !changes.lsn && !primary_polled) return out;
    ClusterSnapshot next;
    next.version = snapshot_.version + 1;
    next.primary = view_.primary();
    next.primary_generation = view_.primary_generation();
    // Without a primary, the last one's LSN stays: a session that starts now must still not
    // read anything older than what that primary had committed.
    next.primary_lsn = next.primary ? view_.last_primary_lsn() : snapshot_.primary_lsn;
    if (next.primary) {
      const ClusterView::NodeView& primary = view_.node(*next.primary);
      next.primary_poll_began = primary.last_poll_began.value_or(Instant{});
    }
    for (const ClusterView::NodeView& node : view_.nodes()) {
      next.nodes.push_back(NodeState{node.id, RoleOf(node.role), node.up,
                                     node.last_poll_began.value_or(Instant{}), node.lsn});
    }
    // Until the configured primary has answered (or failed) a first poll, it keeps the word
    // it was taken at when the proxy started: the first poll of another node must not leave
    // writes without a primary for the moment in between.
    const ClusterView::NodeView& configured = view_.node(NodeId{0});
    if (!next.primary && !configured.last_poll_finished && configured.consecutive_failures == 0) {
      next.primary = NodeId{0};
      next.nodes[0].role = NodeRole::kPrimary;
      next.nodes[0].up = true;
    }
    snapshot_ = std::move(next);
    out.cluster_changed = true;
    return out;
  }
  // Least outstanding requests; ties broken by a seeded draw, so the same seed balances the
  // same way.
  Outcome On(Instant, UnitId from, PickReplicaRequest& request) {
    std::optional<NodeId> best;
    uint64_t best_draw = 0;
    for (NodeId node : request.candidates) {
      if (node.index >= outstanding_.size()) Die("a replica choice among unknown nodes");
      const uint64_t draw = NextDraw();
      if (!best || outstanding_[node.index] < outstanding_[best->index] ||
          (outstanding_[node.index] == outstanding_[best->index] && draw < best_draw)) {
        best = node;
        best_draw = draw;
      }
    }
    if (best) ++outstanding_[best->index];
    Outcome out;
    out.deliveries.push_back({from, ReplicaChosen{best}});
    return out;
  }
  Outcome On(Instant, UnitId, NodeDone& done) {
    if (done.node.index >= outstanding_.size() || outstanding_[done.node.index] == 0) {
      Die("NodeDone without a request counted on the node");
    }
    --outstanding_[done.node.index];
    return {};
  }
  uint64_t NextDraw() {
    // xorshift64*: the services draw nothing from the environment, so balancing is seeded.
    balance_state_ ^= balance_state_ >> 12;
    balance_state_ ^= balance_state_ << 25;
    balance_state_ ^= balance_state_ >> 27;
    return balance_state_ * 0x2545F4914F6CDD1DULL;
  }

  Outcome On(Instant, UnitId, CountersDelta& delta) {
    counters_.clients_accepted += delta.clients_accepted;
    counters_.queries += delta.queries;
    counters_.protocol_errors += delta.protocol_errors;
    counters_.auth_failures += delta.auth_failures;
    counters_.server_losses += delta.server_losses;
    counters_.replica_reads += delta.replica_reads;
    return {};
  }

  // Every kConnect and kReuse the pool decides counts, whether it answers the asking unit at
  // once or a waiter later.
  Outcome FromPool(Pool::Result result) {
    Outcome out;
    for (Pool::Reply& reply : result.replies) {
      if (reply.reply.kind == CheckoutReply::Kind::kConnect) ++counters_.server_connections_opened;
      if (reply.reply.kind == CheckoutReply::Kind::kReuse) ++counters_.server_connections_reused;
      out.deliveries.push_back({reply.unit, std::move(reply.reply)});
    }
    out.now_idle = std::move(result.now_idle);
    out.close = std::move(result.close);
    return out;
  }

  // The pool checks its own invariants at the end of each of its calls.
  void CheckInvariants() const {
    if (max_clients_ > 0 && counters_.clients_active > static_cast<uint64_t>(max_clients_)) {
      Die(absl::StrFormat("%d clients active, over max_clients %d", counters_.clients_active,
                          max_clients_));
    }
    if (max_clients_ <= 0 && counters_.clients_active != 0)
      Die("a client admitted with none allowed");
    for (const auto& [key, unit] : cancel_keys_) {
      if (!unit.valid()) Die("a cancel key maps to an invalid unit");
    }
  }

  Pool pool_;
  int max_clients_;
  std::map<CancelKey, UnitId> cancel_keys_;
  uint64_t mutants_;
  Counters counters_;
  ClusterView view_;
  ClusterSnapshot snapshot_;
  std::vector<uint64_t> outstanding_;  // by node: replica reads chosen and not yet done
  uint64_t balance_state_;
  std::map<std::string, FunctionsEntry> functions_;  // by database (bounded)
};

Services::Services(const ProxyConfig& config) : impl_(std::make_unique<Impl>(config)) {}
Services::~Services() = default;

Services::Outcome Services::Handle(Instant now, UnitId from, ServiceRequest request) {
  return impl_->Handle(now, from, std::move(request));
}
Services::Outcome Services::Tick(Instant now) { return impl_->Tick(now); }
std::optional<Instant> Services::NextDeadline() const { return impl_->NextDeadline(); }
Services::Outcome Services::IdleConnectionLost(Instant, ConnId conn) {
  return impl_->IdleConnectionLost(conn);
}
bool Services::AdmitClient() { return impl_->AdmitClient(); }
void Services::ClientGone(UnitId unit) { impl_->ClientGone(unit); }
const Counters& Services::counters() const { return impl_->counters(); }
const ClusterSnapshot& Services::cluster() const { return impl_->cluster(); }

}  // namespace switchyard
