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
#include "core/mutants.h"
#include "core/pool/pool.h"
#include "core/proxy.h"

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

}  // namespace

class Services::Impl {
 public:
  explicit Impl(const ProxyConfig& config)
      : pool_(LimitsOf(config)), max_clients_(config.max_clients), mutants_(config.mutants) {}

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
  Outcome On(Instant, UnitId, CountersDelta& delta) {
    counters_.clients_accepted += delta.clients_accepted;
    counters_.queries += delta.queries;
    counters_.protocol_errors += delta.protocol_errors;
    counters_.auth_failures += delta.auth_failures;
    counters_.server_losses += delta.server_losses;
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

}  // namespace switchyard
