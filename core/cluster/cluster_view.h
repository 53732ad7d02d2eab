// ClusterView: what the proxy knows about its PostgreSQL nodes (up or down, primary, replica or
// fenced, LSN, timeline), built only from health-poll results. Pure data, deterministic: the
// same results applied in the same order give the same view (DESIGN.md section 5).
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/base/types.h"

namespace switchyard {

// PostgreSQL's text form of an LSN: two hex numbers "X/Y" (high and low 32 bits).
std::string FormatWalLsn(uint64_t lsn);
// Parses "X/Y" with 1 to 8 hex digits on each side; nullopt on anything else.
std::optional<uint64_t> ParseWalLsn(std::string_view text);

class ClusterView {
 public:
  struct NodeConfig {
    NodeId id;
    // What the operator wrote (--primary). Roles never come from it: pg_is_in_recovery() decides,
    // so a configured primary that is in recovery serves as a replica. Kept for logs and status.
    bool configured_primary = false;
  };

  // One health poll of one node, as the HealthChecker reports it.
  struct PollResult {
    NodeId node;
    Instant began;     // when the poll was started (before its query reached the server)
    Instant finished;  // when its answer (or its failure) arrived
    bool ok = false;
    bool in_recovery = false;
    uint64_t lsn = 0;       // insert LSN on a primary, replay LSN on a replica (0: never replayed)
    uint32_t timeline = 0;  // 0: unknown (the case for replicas)
    std::string error;      // why the poll failed, when !ok
  };

  enum class Role {
    kUnknown,  // never polled successfully, or down
    kPrimary,  // the one node that gets writes
    kReplica,  // in recovery: may get reads
    kFenced,   // claims to be primary but lost to a node on a higher (or the same, earlier)
               // timeline: gets no traffic at all
  };

  struct NodeView {
    NodeId id;
    bool configured_primary = false;
    bool up = false;  // false until the first successful poll
    Role role = Role::kUnknown;
    uint64_t lsn = 0;       // as last polled successfully
    uint32_t timeline = 0;  // as last polled successfully
    std::optional<Instant> last_poll_began;
    std::optional<Instant> last_poll_finished;
    int consecutive_failures = 0;
    std::string last_error;  // of the last failed poll; cleared by a successful one
  };

  struct Options {
    // Consecutive failed polls after which a node is declared down. The default is 1: a poll
    // fails only after a refused connect, a lost connection, an error, or timeout_ms without an
    // answer, so one failure is already a considered verdict; every further poll demanded would
    // add a whole interval during which clients are sent to a dead node and get errors. A false
    // "down" is cheap by comparison: the node is back at its first successful poll. (Pgpool-II's
    // health_check_max_retries defaults to 0 for the same reason.) Raise it on flaky networks.
    int failures_to_down = 1;
    // Successful polls of the current primary kept for PrimaryLsnPolledAfter().
    size_t lsn_history_max = 64;
  };

  // What an Apply() changed.
  struct Changes {
    // Something routing depends on: a node's role or up/down state, or which node is primary.
    bool routing = false;
    // A node's LSN or timeline moved (read-your-writes and replica lag care; routing does not).
    bool lsn = false;
  };

  // `nodes` must have distinct ids; at most one should be configured primary (not required).
  explicit ClusterView(std::vector<NodeConfig> nodes) : ClusterView(std::move(nodes), Options()) {}
  ClusterView(std::vector<NodeConfig> nodes, Options options);

  // Applies one poll result. Results of one node must come in the order their polls began (the
  // HealthChecker never overlaps two polls of a node).
  Changes Apply(const PollResult& result);

  std::optional<NodeId> primary() const { return primary_; }
  // Bumps every time primary() changes, including to none: read-your-writes watermarks taken
  // under one primary mean nothing under another.
  uint64_t primary_generation() const { return primary_generation_; }
  // In NodeId order.
  const std::vector<NodeView>& nodes() const { return nodes_; }
  const NodeView& node(NodeId id) const;

  // --- Read-your-writes (DESIGN.md section 5) ---
  // The primary's LSN as last polled; 0 when there is no primary.
  uint64_t last_primary_lsn() const;
  // The primary's LSN as read by the first successful poll of the current primary that began
  // strictly after `t`: every transaction committed at `t` is covered by it. nullopt when no
  // such poll has completed yet (or there is no primary).
  std::optional<uint64_t> PrimaryLsnPolledAfter(Instant t) const;
  // Up replicas whose replayed LSN has reached `min_lsn`, in NodeId order.
  std::vector<NodeId> ReadableReplicas(uint64_t min_lsn) const;

  // One line for logs: "primary=n1 generation=2 n0[replica up lsn=0/3000060] n1[...]".
  std::string Describe() const;
  void CheckInvariants() const;

 private:
  struct LsnPoll {
    Instant began;
    uint64_t lsn = 0;
  };

  NodeView& Find(NodeId id);
  void ApplyFailure(NodeView& node, const PollResult& result);
  void ApplySuccess(NodeView& node, const PollResult& result);
  // `node` reports it is not in recovery, on `timeline`.
  void ClaimPrimary(NodeView& node, uint32_t timeline);
  void SetPrimary(std::optional<NodeId> primary);

  Options options_;
  std::vector<NodeView> nodes_;  // sorted by id
  std::optional<NodeId> primary_;
  uint64_t primary_generation_ = 0;
  // The highest timeline any node was accepted as primary on. A node that claims to be primary
  // on a lower one (an old primary restarted after a promotion) stays fenced even while there is
  // no primary at all, so it can never take writes back after the new primary goes down.
  uint32_t timeline_floor_ = 0;
  // Successful polls of the current primary, oldest first, bounded by lsn_history_max.
  std::deque<LsnPoll> lsn_history_;
};

std::string_view RoleName(ClusterView::Role role);

}  // namespace switchyard
