// What of a capture a replay runs, and when: the --from/--to window cut out of each captured
// session, and the pacing that turns capture times into replay times (--speed, --skip-idle).
// Pure arithmetic, shared by every replay target.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

#include "replay/capture.h"

namespace switchyard::replay {

// --skip-idle shortens every stretch longer than this in which no captured session did
// anything to exactly this long.
inline constexpr int64_t kIdleGapMaxUs = 1'000'000;

struct PacingOptions {
  double speed = 1.0;       // > 0: 2 replays twice as fast as captured
  bool no_waiting = false;  // --speed max: every message as soon as its answers allow
  bool skip_idle = false;
  // The window, in µs since the capture start; messages outside it are not replayed.
  int64_t from_us = 0;
  int64_t to_us = std::numeric_limits<int64_t>::max();
};

// The part of one captured session that a replay runs.
struct SessionPlan {
  bool replay = false;  // false: nothing of it is in the window, or its login failed
  size_t first_step = 0;
  size_t end_step = 0;  // steps [first_step, end_step) are sent
  // Captured units [first_unit, end_unit) are compared with the replay's answers; the first
  // step waits for first_unit units, so the ones before it are taken as done.
  uint32_t first_unit = 0;
  uint32_t end_unit = 0;
  int64_t start_time_us = 0;  // capture time at which its connection is opened
};

// A session already running at --from is joined at its first message, at or after --from,
// that the captured client sent after receiving a whole unit (so it does not start inside an
// extended-protocol exchange). Messages after --to are not sent; units whose request was not
// completely sent by then are not compared.
SessionPlan PlanSession(const CapturedSession& session, const PacingOptions& options);

// Maps capture times onto offsets from the start of the replay.
class Pacer {
 public:
  // `times_us`: every capture time at which the replay acts (see ScheduledTimes), any order.
  Pacer(const PacingOptions& options, std::vector<int64_t> times_us);

  // When something captured at `time_us` is due, in µs after the replay started. The earliest
  // scheduled time is due at once.
  int64_t DueOffsetUs(int64_t time_us) const;

 private:
  PacingOptions options_;
  std::vector<int64_t> times_us_;    // sorted, distinct
  std::vector<int64_t> virtual_us_;  // times_us_ after idle stretches were shortened
};

// The capture times at which the planned sessions open and send.
std::vector<int64_t> ScheduledTimes(const Capture& capture, const std::vector<SessionPlan>& plans);

}  // namespace switchyard::replay
