// Unit: function volatility per database, read from pg_proc (DESIGN.md section 5, "What
// read-only means"). The services keep one table per database; the first routing client of a
// database (and the first after a CREATE/ALTER/DROP FUNCTION through the proxy) loads it, as
// one more Query in the replay its primary connection runs before its next statement: no round
// trip of its own. Until a table is loaded the built-in one serves, where a user function is
// unknown and counts as volatile: its statements go to the primary, which is always safe.
#include "core/base/check.h"
#include "core/unit_internal.h"

namespace switchyard {

void Unit::Impl::RequestFunctions() {
  if (!config_.load_functions || !RoutesReads()) return;
  Request(FunctionsRequest{client_.database()});
}

void Unit::Impl::OnFunctionsReply(const FunctionsReply& reply) {
  functions_load_ = reply.load;
  // Ours to load: the table there is stale (or missing), so the built-in one serves until then.
  if (reply.load) return;
  if (reply.table && reply.table != functions_) {
    functions_ = reply.table;
    cache_.Invalidate();
  }
}

bool Unit::Impl::AppendFunctionsLoad(ServerSlot& slot, std::string& messages, int& ready_count) {
  slot.functions_group.reset();
  slot.functions_loading.reset();
  if (!functions_load_ || cluster_.primary != slot.node) return false;
  functions_load_ = false;
  slot.functions_group = slot.replay_groups.size();
  slot.replay_groups.emplace_back();
  slot.functions_loading = std::make_unique<route::FunctionVolatility>();
  messages += pg::Query{std::string(route::FunctionVolatility::kLoadQuery)}.Encode();
  ++ready_count;
  return true;
}

void Unit::Impl::OnReplayRow(ServerSlot& slot, const pg::Frame& row) {
  if (!slot.functions_loading || slot.functions_group != slot.replay_ready_seen) return;
  auto decoded = pg::DataRow::Decode(row.payload);
  if (!decoded.ok() || decoded->values.size() != 2 || !decoded->values[0] || !decoded->values[1]) {
    slot.functions_loading.reset();  // not what kLoadQuery returns: keep the table in use
    return;
  }
  // A row the table refuses (a name too long, the table full) leaves that name volatile.
  (void)slot.functions_loading->AddRow(*decoded->values[0], *decoded->values[1]);
}

void Unit::Impl::FinishFunctionsLoad(ServerSlot& slot) {
  slot.functions_group.reset();
  if (!slot.functions_loading) return;
  std::shared_ptr<const route::FunctionVolatility> table = std::move(slot.functions_loading);
  functions_ = table;
  cache_.Invalidate();
  Request(FunctionsLoaded{client_.database(), std::move(table)});
}

void Unit::Impl::FunctionsChangedHere() {
  cache_.Invalidate();
  if (!config_.load_functions || !RoutesReads()) return;
  // The table no longer says what this client's own functions are: the built-in one serves it
  // from now on, and the next session of the database loads the table again.
  functions_.reset();
  Request(FunctionsChanged{client_.database()});
}

void Unit::Impl::GiveUpFunctionsLoad() {
  bool loading = functions_load_;
  for (const auto& slot : slots_) {
    if (slot->functions_loading) loading = true;
    slot->functions_loading.reset();
  }
  functions_load_ = false;
  if (loading) Request(FunctionsLoaded{client_.database(), nullptr});
}

}  // namespace switchyard
