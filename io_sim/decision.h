// The decision source: every nondeterministic choice of a simulation run goes through one of
// these (DESIGN.md section 7): delivery latency, cut points, faults, worker interleaving,
// service-reply order, the core's random bytes. The seeded PRNG feeds it in `switchyard sim`;
// a RapidCheck-backed source feeds it in property tests, so that a failure shrinks.
//
// The `what` label names the choice ("net.latency", "sched.step", ...) for traces and for
// generators that want to shape values per choice. Neither PrngDecisions nor ScriptedDecisions
// look at it: a label never changes a result. PlannedDecisions does: it answers per label.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "io_sim/prng.h"

namespace switchyard::io_sim {

class DecisionSource {
 public:
  virtual ~DecisionSource() = default;
  // A value in [0, n); n >= 1. Callers ask only when there is a real choice (n >= 2) or accept
  // that a source may consume an entry for n == 1.
  virtual uint64_t Below(uint64_t n, std::string_view what) = 0;

  // True with probability numerator/denominator. A certain outcome (0, or >= denominator) is
  // returned without asking, so rates that are off never consume decisions: a swarm
  // configuration that disables a fault leaves every other choice where it was.
  bool Chance(uint32_t numerator, uint32_t denominator, std::string_view what);
  // A value in [lo, hi], both included; lo == hi is returned without asking.
  int64_t Between(int64_t lo, int64_t hi, std::string_view what);
  // An index into `count` alternatives; a single alternative is returned without asking.
  size_t Pick(size_t count, std::string_view what);
  // `n` arbitrary bytes, drawn 32 bits at a time.
  void Bytes(char* out, size_t n, std::string_view what);
};

// The seeded source of `switchyard sim`.
class PrngDecisions final : public DecisionSource {
 public:
  explicit PrngDecisions(uint64_t seed) : prng_(seed) {}
  uint64_t Below(uint64_t n, std::string_view what) override;

  uint64_t decisions() const { return decisions_; }
  // Called with every decision made (label, bound, value): for traces. Must not draw.
  void set_observer(std::function<void(std::string_view, uint64_t, uint64_t)> observer) {
    observer_ = std::move(observer);
  }

 private:
  Prng prng_;
  uint64_t decisions_ = 0;
  std::function<void(std::string_view, uint64_t, uint64_t)> observer_;
};

// Plays back a list of values (each taken modulo the bound), then `fallback` modulo the bound
// once the list is used up. Tests use it to force one exact scenario; a RapidCheck property
// generates the list, so that shrinking it shrinks the scenario.
class ScriptedDecisions final : public DecisionSource {
 public:
  explicit ScriptedDecisions(std::vector<uint64_t> values, uint64_t fallback = 0)
      : values_(std::move(values)), fallback_(fallback) {}
  uint64_t Below(uint64_t n, std::string_view what) override;

  size_t used() const { return next_; }

 private:
  std::vector<uint64_t> values_;
  uint64_t fallback_;
  size_t next_ = 0;
};

// Answers each choice from a queue kept for its label; a choice with nothing planned gets its
// last alternative (n - 1), and so does a planned value past n - 1 (it saturates rather than
// wraps, so a plan never turns into some other choice). With nothing planned every Chance is
// false, every Between gives its top and every Pick its last candidate: a fault that is on in
// the configuration strikes only where a plan says so. A RapidCheck property plans the choices
// its commands generated (tests/sim_shrink): shrinking away a command removes its plan, and the
// choice falls back to "nothing happens".
class PlannedDecisions final : public DecisionSource {
 public:
  // A plan for the last alternative: a Chance that comes out false.
  static constexpr uint64_t kLast = UINT64_MAX;
  // Plans per label; past this a test planned far more than a run can use.
  static constexpr size_t kPlansPerLabelMax = size_t{1} << 16;

  // The next choice labelled `what` that has no earlier plan gets `value` (saturated).
  void Plan(std::string_view what, uint64_t value);
  // Forgets every plan not used yet (a liveness phase heals the faults they would inflict).
  void Clear() { plans_.clear(); }
  uint64_t Below(uint64_t n, std::string_view what) override;

  uint64_t decisions() const { return decisions_; }
  // Choices a plan answered.
  uint64_t planned_used() const { return planned_used_; }

 private:
  std::map<std::string, std::deque<uint64_t>, std::less<>> plans_;
  uint64_t decisions_ = 0;
  uint64_t planned_used_ = 0;
};

}  // namespace switchyard::io_sim
