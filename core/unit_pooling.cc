// Unit: transaction pooling (DESIGN.md section 4). A client holds a server connection only from
// its first statement to the ReadyForQuery that leaves it idle outside a transaction; its session
// state reaches the next connection by the replay every loss already uses (unit_server.cc).
#include <algorithm>

#include "core/base/check.h"
#include "core/base/strings.h"
#include "core/unit_internal.h"

namespace switchyard {
namespace {

constexpr size_t kUnconfirmedParsesMax = 256;

}  // namespace

void Unit::Impl::MaybeReleaseIdle(Instant now) {
  if (config_.pool_mode != PoolMode::kTransaction || !client_open_ || !welcomed_ || draining_ ||
      InTransaction() || !inflight_.empty() || !queue_.empty() || pinned_node_ ||
      history_.pinned() != 0 || history_.listens()) {
    // A listening client keeps its connection (to the primary): that is where its
    // notifications arrive.
    return;
  }
  std::vector<ConnId> idle;
  for (const auto& slot : slots_) {
    const ServerSession& server = *slot->session;
    if (server.state() == ServerSession::State::kReady && server.ready_owed() == 0 &&
        server.transaction_status() == 'I' && !slot->release_waits_for_cancel) {
      idle.push_back(server.conn());
    }
  }
  for (ConnId conn : idle) {
    ServerSlot* slot = SlotOf(conn);
    if (!slot) continue;
    // A connection that holds none of the client's state (as the history knows it) is as clean
    // as a reset would make it: no DISCARD ALL round trip. One with SETs or prepared statements
    // is reset, and the next connection gets them by replay.
    if (slot->applied.empty() && history_.tracking() && cancels_.empty() &&
        slot->session->reader().Unconsumed().empty()) {
      Request(ReleaseRequest{slot->session->ToPooled(now)});
      std::erase_if(slots_, [&](const auto& s) { return s.get() == slot; });
    } else {
      ResetSlot(now, *slot);
    }
  }
}

bool Unit::Impl::AnswerParsesWithoutServer(Batch& batch) {
  if (config_.pool_mode != PoolMode::kTransaction || InTransaction() || !batch.complete ||
      batch.streaming || !welcomed_ || !history_.tracking() || history_.pinned() != 0) {
    return false;
  }
  // Only named Parses of statements that parse, then one Sync.
  std::vector<std::string> names;
  bool deferrable = true;
  bool synced = false;
  ForEachMessage(batch.bytes, [&](char type, std::string_view payload, std::string_view) {
    if (!deferrable || synced) {
      deferrable = false;
      return;
    }
    if (type == 'S') {
      synced = true;
      return;
    }
    auto parse = type == 'P' ? pg::Parse::Decode(payload) : absl::StatusOr<pg::Parse>();
    if (type != 'P' || !parse.ok() || parse->name.empty() || history_.Prepared(parse->name) ||
        std::find(names.begin(), names.end(), parse->name) != names.end() ||
        Classify(parse->query).parse_error) {
      deferrable = false;
      return;
    }
    names.emplace_back(parse->name);
  });
  if (!deferrable || !synced || names.empty() ||
      unconfirmed_parses_.size() + names.size() > kUnconfirmedParsesMax) {
    return false;
  }
  // The history hears the batch and the answers a server would have given.
  queued_bytes_ -= std::min(queued_bytes_, batch.bytes.size());
  ForEachMessage(batch.bytes, [&](char type, std::string_view payload, std::string_view) {
    HistoryClientMessage(type, payload, nullptr);
  });
  const std::string parse_complete = pg::ParseComplete{}.Encode();
  const std::string ready = pg::ReadyForQuery{'I'}.Encode();
  for (std::string& name : names) {
    HistoryServerMessage(pg::Frame{'1', {}, parse_complete});
    client_.Forward(parse_complete);
    unconfirmed_parses_.insert(std::move(name));
  }
  HistoryServerMessage(pg::Frame{'Z', std::string_view(ready).substr(5), ready});
  client_.Forward(ready);
  return true;
}

bool Unit::Impl::ForgiveReplayError(ServerSlot& slot) {
  if (slot.functions_group == slot.replay_ready_seen) {
    // The function table could not be read: the one in use stays (another unit will try).
    slot.functions_loading.reset();
    return true;
  }
  if (slot.replay_ready_seen >= slot.replay_groups.size()) return false;
  const std::string& name = slot.replay_groups[slot.replay_ready_seen];
  if (name.empty()) return false;
  slot.replay_refused.push_back(name);
  return true;
}

void Unit::Impl::ConfirmReplayedParses(ServerSlot& slot) {
  for (const std::string& name : slot.replay_groups) {
    if (!name.empty()) unconfirmed_parses_.erase(name);
  }
  for (const std::string& name : slot.replay_refused) history_.ForgetPrepared(name, &slot.applied);
  slot.replay_groups.clear();
  slot.replay_refused.clear();
  slot.replay_ready_seen = 0;
}

}  // namespace switchyard
