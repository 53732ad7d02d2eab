// `switchyard replay --target HOST:PORT`: replays a capture against a real PostgreSQL server.
// One thread, one poll() loop over non-blocking sockets: one connection per replayed session
// (at most `sessions_max` at once, the rest wait their turn), plus short-lived connections that
// carry CancelRequests. The sessions themselves are SessionReplayers, which never touch a
// socket.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "replay/capture.h"
#include "replay/plan.h"
#include "replay/report.h"
#include "replay/session_replayer.h"

namespace switchyard::replay {

inline constexpr size_t kSessionsConcurrentMaxDefault = 256;

struct RealTargetOptions {
  std::string target;  // HOST:PORT, [V6]:PORT
  ReplaySettings settings;
  PacingOptions pacing;
  size_t sessions_max = kSessionsConcurrentMaxDefault;
};

struct HostPort {
  std::string host;
  uint16_t port = 0;
};
absl::StatusOr<HostPort> ParseTarget(std::string_view text);

// Replays every planned session of `capture` and adds what it finds to `report`. Fails only when
// the replay cannot run at all (the target does not resolve).
absl::Status ReplayAgainstServer(const Capture& capture, const RealTargetOptions& options,
                                 ReplayReport& report);

}  // namespace switchyard::replay
