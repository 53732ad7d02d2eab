// The replay window and pacing arithmetic (see plan.h).
#include "replay/plan.h"

#include <algorithm>
#include <cmath>

#include "core/base/check.h"

namespace switchyard::replay {
namespace {

uint32_t CompleteUnits(const CapturedSession& session) {
  uint32_t count = 0;
  for (const AnswerUnit& unit : session.units) {
    if (!unit.complete) break;
    ++count;
  }
  return count;
}

// The first step at or after `from_us` that follows a whole unit (see PlanSession).
size_t JoinStep(const CapturedSession& session, int64_t from_us) {
  const std::vector<ClientStep>& steps = session.steps;
  if (session.start_time_us >= from_us) return 0;
  for (size_t i = 0; i < steps.size(); ++i) {
    if (steps[i].time_us < from_us) continue;
    if (i == 0 || steps[i].units_before > steps[i - 1].units_before) return i;
  }
  return steps.size();
}

// Units answering requests whose every message comes before `end_step`.
uint32_t ExpectedUnits(const CapturedSession& session, size_t end_step) {
  uint32_t requests = 0;
  for (size_t i = 0; i < end_step; ++i) {
    const ClientStep& step = session.steps[i];
    if (step.kind == ClientStep::Kind::kMessage && IsRequestEnd(step.message[0])) ++requests;
  }
  uint32_t complete = CompleteUnits(session);
  uint32_t count = 0;
  while (count < complete && session.units[count].request <= requests) ++count;
  return count;
}

}  // namespace

SessionPlan PlanSession(const CapturedSession& session, const PacingOptions& options) {
  SessionPlan plan;
  if (session.login_failed || session.start_time_us > options.to_us) return plan;
  const std::vector<ClientStep>& steps = session.steps;
  plan.end_step = steps.size();
  for (size_t i = 0; i < steps.size(); ++i) {
    if (steps[i].time_us > options.to_us) {
      plan.end_step = i;
      break;
    }
  }
  plan.first_step = JoinStep(session, options.from_us);
  bool joined_late = session.start_time_us < options.from_us;
  if (joined_late && plan.first_step >= plan.end_step) return plan;
  plan.first_step = std::min(plan.first_step, plan.end_step);
  plan.first_unit = plan.first_step < steps.size() ? steps[plan.first_step].units_before : 0;
  plan.end_unit = std::max(plan.first_unit, ExpectedUnits(session, plan.end_step));
  plan.start_time_us = std::max(session.start_time_us, options.from_us);
  if (plan.first_step < plan.end_step) {
    plan.start_time_us = std::min(plan.start_time_us, steps[plan.first_step].time_us);
  }
  plan.replay = true;
  return plan;
}

Pacer::Pacer(const PacingOptions& options, std::vector<int64_t> times_us)
    : options_(options), times_us_(std::move(times_us)) {
  CHECK(options_.no_waiting || options_.speed > 0) << "speed " << options_.speed;
  std::sort(times_us_.begin(), times_us_.end());
  times_us_.erase(std::unique(times_us_.begin(), times_us_.end()), times_us_.end());
  virtual_us_.reserve(times_us_.size());
  int64_t virtual_us = 0;
  for (size_t i = 0; i < times_us_.size(); ++i) {
    if (i > 0) {
      int64_t gap = times_us_[i] - times_us_[i - 1];
      virtual_us += options_.skip_idle ? std::min(gap, kIdleGapMaxUs) : gap;
    }
    virtual_us_.push_back(virtual_us);
  }
}

int64_t Pacer::DueOffsetUs(int64_t time_us) const {
  if (options_.no_waiting || times_us_.empty()) return 0;
  auto after = std::upper_bound(times_us_.begin(), times_us_.end(), time_us);
  if (after == times_us_.begin()) return 0;
  size_t index = static_cast<size_t>(after - times_us_.begin()) - 1;
  int64_t gap = time_us - times_us_[index];
  if (options_.skip_idle) gap = std::min(gap, kIdleGapMaxUs);
  double scaled = static_cast<double>(virtual_us_[index] + gap) / options_.speed;
  return static_cast<int64_t>(std::llround(scaled));
}

std::vector<int64_t> ScheduledTimes(const Capture& capture, const std::vector<SessionPlan>& plans) {
  CHECK_EQ(capture.sessions.size(), plans.size());
  std::vector<int64_t> times;
  for (size_t i = 0; i < plans.size(); ++i) {
    const SessionPlan& plan = plans[i];
    if (!plan.replay) continue;
    times.push_back(plan.start_time_us);
    const std::vector<ClientStep>& steps = capture.sessions[i].steps;
    for (size_t s = plan.first_step; s < plan.end_step; ++s) times.push_back(steps[s].time_us);
  }
  return times;
}

}  // namespace switchyard::replay
