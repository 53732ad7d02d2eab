// ClusterView: roles from pg_is_in_recovery(), fencing by timeline, down after failed polls, and
// the primary's LSN history that read-your-writes reads.
#include "core/cluster/cluster_view.h"

#include <algorithm>

#include "absl/strings/str_format.h"
#include "core/base/check.h"

namespace switchyard {
namespace {

// A failed poll's error is kept for logs and status; a server cannot make it grow without bound.
constexpr size_t kErrorSizeMax = 256;
// Consecutive failures are counted up to here (a node down for years must not overflow).
constexpr int kFailuresCountMax = 1 << 30;

bool IsHexDigit(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

std::optional<uint32_t> ParseHex32(std::string_view text) {
  if (text.empty() || text.size() > 8) return std::nullopt;
  uint32_t value = 0;
  for (char c : text) {
    if (!IsHexDigit(c)) return std::nullopt;
    const int digit = c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;
    value = value << 4 | static_cast<uint32_t>(digit);
  }
  return value;
}

}  // namespace

std::string FormatWalLsn(uint64_t lsn) {
  return absl::StrFormat("%X/%X", static_cast<uint32_t>(lsn >> 32), static_cast<uint32_t>(lsn));
}

std::optional<uint64_t> ParseWalLsn(std::string_view text) {
  const size_t slash = text.find('/');
  if (slash == std::string_view::npos) return std::nullopt;
  std::optional<uint32_t> high = ParseHex32(text.substr(0, slash));
  std::optional<uint32_t> low = ParseHex32(text.substr(slash + 1));
  if (!high || !low) return std::nullopt;
  return uint64_t{*high} << 32 | *low;
}

std::string_view RoleName(ClusterView::Role role) {
  switch (role) {
    case ClusterView::Role::kUnknown:
      return "unknown";
    case ClusterView::Role::kPrimary:
      return "primary";
    case ClusterView::Role::kReplica:
      return "replica";
    case ClusterView::Role::kFenced:
      return "fenced";
  }
  return "invalid";
}

ClusterView::ClusterView(std::vector<NodeConfig> nodes, Options options) : options_(options) {
  CHECK_GE(options_.failures_to_down, 1);
  CHECK_GE(options_.lsn_history_max, size_t{1});
  std::sort(nodes.begin(), nodes.end(),
            [](const NodeConfig& a, const NodeConfig& b) { return a.id < b.id; });
  for (const NodeConfig& config : nodes) {
    CHECK(nodes_.empty() || nodes_.back().id != config.id) << "duplicate node " << config.id.index;
    NodeView view;
    view.id = config.id;
    view.configured_primary = config.configured_primary;
    nodes_.push_back(std::move(view));
  }
}

ClusterView::NodeView& ClusterView::Find(NodeId id) {
  auto it = std::lower_bound(nodes_.begin(), nodes_.end(), id,
                             [](const NodeView& n, NodeId want) { return n.id < want; });
  CHECK(it != nodes_.end() && it->id == id) << "poll result for unknown node " << id.index;
  return *it;
}

const ClusterView::NodeView& ClusterView::node(NodeId id) const {
  return const_cast<ClusterView*>(this)->Find(id);
}

ClusterView::Changes ClusterView::Apply(const PollResult& result) {
  CHECK(result.finished >= result.began);
  NodeView& node = Find(result.node);
  // The HealthChecker polls a node once at a time, so its results arrive in the order they
  // began; the LSN history relies on that.
  CHECK(!node.last_poll_began || *node.last_poll_began <= result.began);
  const bool up_before = node.up;
  const Role role_before = node.role;
  const uint64_t lsn_before = node.lsn;
  const uint32_t timeline_before = node.timeline;
  const std::optional<NodeId> primary_before = primary_;

  node.last_poll_began = result.began;
  node.last_poll_finished = result.finished;
  if (result.ok) {
    ApplySuccess(node, result);
  } else {
    ApplyFailure(node, result);
  }
  Changes changes;
  // A change of primary covers the one other node whose role can move here (the displaced one).
  changes.routing = node.up != up_before || node.role != role_before || primary_ != primary_before;
  changes.lsn = node.lsn != lsn_before || node.timeline != timeline_before;
  return changes;
}

void ClusterView::ApplyFailure(NodeView& node, const PollResult& result) {
  if (node.consecutive_failures < kFailuresCountMax) ++node.consecutive_failures;
  node.last_error = result.error.substr(0, kErrorSizeMax);
  if (node.consecutive_failures < options_.failures_to_down) return;
  // Down: whatever it was, it gets no traffic, and it must earn its role again when it is back.
  node.up = false;
  node.role = Role::kUnknown;
  if (primary_ == node.id) SetPrimary(std::nullopt);
}

void ClusterView::ApplySuccess(NodeView& node, const PollResult& result) {
  node.up = true;
  node.consecutive_failures = 0;
  node.last_error.clear();
  node.lsn = result.lsn;
  node.timeline = result.timeline;
  if (result.in_recovery) {
    // A primary now in recovery was rebuilt as a replica (or demoted): there is no primary until
    // a poll shows one.
    if (primary_ == node.id) SetPrimary(std::nullopt);
    node.role = Role::kReplica;
  } else {
    ClaimPrimary(node, result.timeline);
  }
  if (primary_ != node.id) return;
  if (!lsn_history_.empty() && lsn_history_.back().began >= result.began) return;
  lsn_history_.push_back(LsnPoll{result.began, result.lsn});
  while (lsn_history_.size() > options_.lsn_history_max) lsn_history_.pop_front();
}

void ClusterView::ClaimPrimary(NodeView& node, uint32_t timeline) {
  if (primary_ == node.id) {
    timeline_floor_ = std::max(timeline_floor_, timeline);
    return;
  }
  bool wins;
  if (primary_) {
    // Two nodes claim primary: the higher timeline is the later promotion. On equal timelines
    // the node already serving stays: switching on a tie would move writes for no reason.
    NodeView& current = Find(*primary_);
    wins = timeline > current.timeline;
    if (wins) current.role = Role::kFenced;
  } else {
    wins = timeline >= timeline_floor_;
  }
  if (!wins) {
    node.role = Role::kFenced;
    return;
  }
  node.role = Role::kPrimary;
  timeline_floor_ = std::max(timeline_floor_, timeline);
  SetPrimary(node.id);
}

void ClusterView::SetPrimary(std::optional<NodeId> primary) {
  if (primary == primary_) return;
  primary_ = primary;
  ++primary_generation_;
  // LSNs of one primary say nothing about another's history.
  lsn_history_.clear();
}

uint64_t ClusterView::last_primary_lsn() const {
  if (!primary_) return 0;
  return node(*primary_).lsn;
}

std::optional<uint64_t> ClusterView::PrimaryLsnPolledAfter(Instant t) const {
  if (!primary_) return std::nullopt;
  // The history is in the order the polls began. If the first poll that began after `t` has
  // already been dropped (the history is bounded), this answers with the oldest kept poll that
  // began after `t`. That poll read the LSN later still, and a primary's LSN only grows, so its
  // LSN is at least as high: a reader waits a little longer, never sees too little.
  for (const LsnPoll& poll : lsn_history_) {
    if (poll.began > t) return poll.lsn;
  }
  return std::nullopt;
}

std::vector<NodeId> ClusterView::ReadableReplicas(uint64_t min_lsn) const {
  std::vector<NodeId> readable;
  for (const NodeView& node : nodes_) {
    if (node.up && node.role == Role::kReplica && node.lsn >= min_lsn) readable.push_back(node.id);
  }
  return readable;
}

std::string ClusterView::Describe() const {
  std::string out = primary_ ? absl::StrFormat("primary=n%u", primary_->index) : "primary=none";
  absl::StrAppendFormat(&out, " generation=%u", primary_generation_);
  for (const NodeView& node : nodes_) {
    absl::StrAppendFormat(&out, " n%u[%s%s %s lsn=%s", node.id.index,
                          node.configured_primary ? "configured-primary " : "", RoleName(node.role),
                          node.up ? "up" : "down", FormatWalLsn(node.lsn));
    if (node.timeline != 0) absl::StrAppendFormat(&out, " timeline=%u", node.timeline);
    if (node.consecutive_failures > 0) {
      absl::StrAppendFormat(&out, " failures=%d error=\"%s\"", node.consecutive_failures,
                            node.last_error);
    }
    out += "]";
  }
  return out;
}

void ClusterView::CheckInvariants() const {
  int primaries = 0;
  for (size_t i = 0; i < nodes_.size(); ++i) {
    const NodeView& node = nodes_[i];
    if (i > 0) CHECK(nodes_[i - 1].id < node.id);
    if (!node.up) CHECK(node.role == Role::kUnknown);
    if (node.role == Role::kPrimary) {
      ++primaries;
      CHECK(primary_ == node.id);
    }
    if (node.up) CHECK_LT(node.consecutive_failures, options_.failures_to_down);
  }
  CHECK_LE(primaries, 1);
  CHECK_EQ(primaries, primary_ ? 1 : 0);
  if (!primary_) CHECK(lsn_history_.empty());
  CHECK_LE(lsn_history_.size(), options_.lsn_history_max);
  for (size_t i = 1; i < lsn_history_.size(); ++i) {
    CHECK(lsn_history_[i - 1].began < lsn_history_[i].began);
  }
}

}  // namespace switchyard
