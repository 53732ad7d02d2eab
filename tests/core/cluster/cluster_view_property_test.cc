// Properties of ClusterView under random poll results: one primary at most, a fenced node never
// primary, and the primary generation moving exactly when the primary does.
#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include <optional>
#include <vector>

#include "core/cluster/cluster_view.h"

namespace switchyard {
namespace {

using Role = ClusterView::Role;

struct Step {
  uint32_t node = 0;
  int64_t advance_ms = 0;
  bool ok = true;
  bool in_recovery = false;
  uint64_t lsn = 0;
  uint32_t timeline = 0;
};

rc::Gen<Step> GenStep(uint32_t nodes) {
  return rc::gen::build<Step>(
      rc::gen::set(&Step::node, rc::gen::inRange<uint32_t>(0, nodes)),
      rc::gen::set(&Step::advance_ms, rc::gen::inRange<int64_t>(0, 1500)),
      rc::gen::set(&Step::ok, rc::gen::weightedElement<bool>({{3, true}, {1, false}})),
      rc::gen::set(&Step::in_recovery, rc::gen::arbitrary<bool>()),
      rc::gen::set(&Step::lsn, rc::gen::inRange<uint64_t>(0, 50)),
      rc::gen::set(&Step::timeline, rc::gen::inRange<uint32_t>(0, 4)));
}

RC_GTEST_PROP(ClusterViewProperty, OnePrimaryNeverFencedGenerationTracksPrimary, ()) {
  const uint32_t node_count = *rc::gen::inRange<uint32_t>(1, 5);
  ClusterView::Options options;
  options.failures_to_down = *rc::gen::inRange(1, 4);
  options.lsn_history_max = *rc::gen::inRange<size_t>(1, 8);
  std::vector<ClusterView::NodeConfig> configs;
  for (uint32_t i = 0; i < node_count; ++i) configs.push_back({NodeId{i}, i == 0});
  ClusterView view(configs, options);
  const auto steps = *rc::gen::container<std::vector<Step>>(GenStep(node_count));

  int64_t now_ms = 0;
  for (const Step& step : steps) {
    now_ms += step.advance_ms;
    const std::optional<NodeId> primary_before = view.primary();
    const uint64_t generation_before = view.primary_generation();
    ClusterView::PollResult result{.node = NodeId{step.node},
                                   .began = Instant::FromMs(now_ms),
                                   .finished = Instant::FromMs(now_ms + 1),
                                   .ok = step.ok,
                                   .in_recovery = step.in_recovery,
                                   .lsn = step.lsn,
                                   .timeline = step.timeline,
                                   .error = step.ok ? "" : "failed"};
    const ClusterView::Changes changes = view.Apply(result);
    view.CheckInvariants();

    int primaries = 0;
    for (const ClusterView::NodeView& node : view.nodes()) {
      if (node.role == Role::kPrimary) {
        ++primaries;
        RC_ASSERT(view.primary() == node.id);
        RC_ASSERT(node.up);
      }
      if (node.role == Role::kFenced) RC_ASSERT(view.primary() != node.id);
    }
    RC_ASSERT(primaries <= 1);
    RC_ASSERT(primaries == (view.primary() ? 1 : 0));

    const bool primary_changed = view.primary() != primary_before;
    RC_ASSERT(primary_changed == (view.primary_generation() != generation_before));
    if (primary_changed) {
      RC_ASSERT(view.primary_generation() == generation_before + 1);
      RC_ASSERT(changes.routing);
    }
    // Read-your-writes never gets an LSN from a node that is not the primary.
    if (!view.primary()) {
      RC_ASSERT(view.last_primary_lsn() == 0u);
      RC_ASSERT(!view.PrimaryLsnPolledAfter(Instant::FromMs(-1)).has_value());
    }
    for (NodeId id : view.ReadableReplicas(0)) {
      RC_ASSERT(view.node(id).role == Role::kReplica);
      RC_ASSERT(view.node(id).up);
    }
  }
}

}  // namespace
}  // namespace switchyard
