// `switchyard replay`: options, trace loading, the replay, and the report (see replay_command.h).
#include "app/replay_command.h"

#include <cmath>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <optional>
#include <string_view>

#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "replay/real_target.h"
#include "replay/report.h"
#include "replay/sim_target.h"
#include "replay/trace_files.h"

namespace switchyard::app {
namespace {

constexpr int kExitFindings = 1;
constexpr std::string_view kSimTarget = "sim";
constexpr int kExitBadOptions = 2;
constexpr int kExitUnreadable = 3;

int BadOption(const std::string& message) {
  std::fprintf(stderr, "switchyard replay: %s\n", message.c_str());
  return kExitBadOptions;
}

// The options of `--target sim` (kept here rather than in ReplayCommand: only this file reads
// them, and there is one command line per process).
struct SimOptions {
  CLI::Option* seed_option = nullptr;
  uint64_t seed = 1;
  std::string seeds;  // "A..B"
  bool swarm = false;
};

SimOptions& Sim() {
  static SimOptions options;
  return options;
}

// --seed N or --seeds A..B (both ends included); seed 1 when neither is given.
bool ParseSeeds(std::string& error, uint64_t* first, uint64_t* last) {
  const SimOptions& sim = Sim();
  if (sim.seeds.empty()) {
    *first = *last = sim.seed;
    return true;
  }
  if (sim.seed_option != nullptr && sim.seed_option->count() > 0) {
    error = "give --seed or --seeds, not both";
    return false;
  }
  const size_t dots = sim.seeds.find("..");
  if (dots == std::string::npos || !absl::SimpleAtoi(sim.seeds.substr(0, dots), first) ||
      !absl::SimpleAtoi(sim.seeds.substr(dots + 2), last) || *first > *last) {
    error = absl::StrFormat("--seeds wants A..B with A <= B (both included), got '%s'", sim.seeds);
    return false;
  }
  return true;
}

int RunOnSimulator(const ReplayCommand& replay, const replay::PacingOptions& pacing) {
  if (!replay.report_html.empty()) return BadOption("--report is not available with --target sim");
  if (!replay.password_file.empty()) {
    return BadOption("--password-file is not needed with --target sim (the proxy trusts)");
  }
  SimReplayCommand command;
  std::string error;
  if (!ParseSeeds(error, &command.seed_first, &command.seed_last)) return BadOption(error);
  command.traces = replay.traces;
  command.swarm = Sim().swarm;
  command.speed = pacing.speed;
  command.no_waiting = pacing.no_waiting;
  command.skip_idle = pacing.skip_idle;
  command.from_us = pacing.from_us;
  command.to_us = pacing.to_us;
  command.stall_timeout_ms = replay.stall_timeout_ms;
  command.user = replay.user;
  command.database = replay.database;
  return RunSimReplayCommand(command);
}

// --speed X (> 0) or --speed max.
std::optional<replay::PacingOptions> ParsePacing(const ReplayCommand& replay, std::string& error) {
  replay::PacingOptions pacing;
  if (replay.speed == "max") {
    pacing.no_waiting = true;
  } else if (!absl::SimpleAtod(replay.speed, &pacing.speed) || !(pacing.speed > 0) ||
             !std::isfinite(pacing.speed)) {
    error = absl::StrFormat("--speed must be a positive number or `max`, not '%s'", replay.speed);
    return std::nullopt;
  }
  pacing.skip_idle = replay.skip_idle;
  if (replay.from_s < 0 || (replay.to_s >= 0 && replay.to_s < replay.from_s)) {
    error = "--from must be >= 0 and --to >= --from";
    return std::nullopt;
  }
  pacing.from_us = std::llround(replay.from_s * 1e6);
  if (replay.to_s >= 0) pacing.to_us = std::llround(replay.to_s * 1e6);
  return pacing;
}

// The first line of the password file, without its line end.
std::optional<std::string> ReadPassword(const std::string& path, std::string& error) {
  std::ifstream file(path);
  if (!file) {
    error = absl::StrFormat("cannot read --password-file %s", path);
    return std::nullopt;
  }
  std::string line;
  std::getline(file, line);
  if (!line.empty() && line.back() == '\r') line.pop_back();
  return line;
}

std::string FormatUtc(int64_t unix_us) {
  std::time_t seconds = static_cast<std::time_t>(unix_us / 1'000'000);
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  char text[32];
  std::strftime(text, sizeof(text), "%Y-%m-%d %H:%M:%S UTC", &utc);
  return text;
}

void AddContext(const ReplayCommand& replay, const replay::Capture& capture,
                replay::ReplayReport& report) {
  report.AddContext(absl::StrFormat(
      "trace: %zu file(s), %u records, %zu sessions, capture started %s%s", capture.files.size(),
      capture.records, capture.sessions.size(), FormatUtc(capture.capture_start_unix_us),
      capture.records_dropped > 0
          ? absl::StrFormat(" (%u records dropped by the capture)", capture.records_dropped)
          : ""));
  report.AddContext(absl::StrFormat("target: %s, user %s, database %s, speed %s%s", replay.target,
                                    replay.user.empty() ? "as captured" : replay.user,
                                    replay.database.empty() ? "as captured" : replay.database,
                                    replay.speed,
                                    replay.skip_idle ? ", idle stretches cut to 1 s" : ""));
}

int WriteHtml(const std::string& path, const replay::ReplayReport& report) {
  std::ofstream file(path, std::ios::binary | std::ios::trunc);
  file << report.Html();
  file.close();
  if (!file) {
    std::fprintf(stderr, "switchyard replay: cannot write --report %s\n", path.c_str());
    return kExitUnreadable;
  }
  return 0;
}

}  // namespace

void AddReplayCommand(CLI::App& app, ReplayCommand& replay) {
  replay.command = app.add_subcommand(
      "replay",
      "Replay captured client sessions against a PostgreSQL server and compare its answers "
      "with the captured ones.");
  CLI::App& command = *replay.command;
  command.add_option("traces", replay.traces, "trace files of one capture, in order")->required();
  command
      .add_option("--target", replay.target,
                  "HOST:PORT of the server to replay against, or `sim`: the real core on the "
                  "simulated network, against servers that answer from the capture, with faults")
      ->required();
  SimOptions& sim = Sim();
  sim.seed_option = command.add_option(
      "--seed", sim.seed, "with --target sim: the seed of the simulated run (default 1)");
  command.add_option("--seeds", sim.seeds,
                     "with --target sim: a range of seeds A..B, each a run of its own");
  command.add_flag("--swarm", sim.swarm,
                   "with --target sim: each seed turns fault kinds on or off, draws their rates "
                   "and the proxy's options, as `switchyard sim --swarm` does");
  command.add_option("--user", replay.user, "log in as this user (default: each session's own)");
  command.add_option("--password-file", replay.password_file,
                     "file whose first line is the password (md5, SCRAM-SHA-256, password)");
  command.add_option("--database", replay.database,
                     "connect to this database (default: each session's own)");
  command
      .add_option("--speed", replay.speed,
                  "scale the captured gaps: 2 is twice as fast; `max` does not wait")
      ->capture_default_str();
  command.add_flag("--skip-idle", replay.skip_idle,
                   "cut stretches of more than 1 s in which no session did anything to 1 s");
  command.add_option("--from", replay.from_s, "start at this many seconds after capture start");
  command.add_option("--to", replay.to_s, "stop at this many seconds after capture start");
  command
      .add_option("--stall-timeout", replay.stall_timeout_ms,
                  "cancel a session that waits longer than this for an answer (ms)")
      ->capture_default_str();
  command
      .add_option("--sessions-max", replay.sessions_max,
                  "sessions replayed at once; later ones wait for a free slot")
      ->capture_default_str();
  command.add_option("--report", replay.report_html, "also write the report as an HTML page");
}

int RunReplay(const ReplayCommand& replay) {
  std::string error;
  std::optional<replay::PacingOptions> pacing = ParsePacing(replay, error);
  if (!pacing.has_value()) return BadOption(error);
  if (replay.stall_timeout_ms <= 0) return BadOption("--stall-timeout must be positive");
  if (replay.sessions_max <= 0) return BadOption("--sessions-max must be positive");
  if (replay.target == kSimTarget) return RunOnSimulator(replay, *pacing);
  const SimOptions& sim = Sim();
  if (!sim.seeds.empty() || sim.swarm || sim.seed_option->count() > 0) {
    return BadOption("--seed, --seeds and --swarm need --target sim");
  }
  replay::RealTargetOptions options;
  options.target = replay.target;
  options.pacing = *pacing;
  options.sessions_max = static_cast<size_t>(replay.sessions_max);
  options.settings.user = replay.user;
  options.settings.database = replay.database;
  options.settings.stall_timeout_us = replay.stall_timeout_ms * 1000;
  if (!replay.password_file.empty()) {
    options.settings.password = ReadPassword(replay.password_file, error);
    if (!options.settings.password.has_value()) return BadOption(error);
  }
  if (absl::StatusOr<replay::HostPort> target = replay::ParseTarget(replay.target); !target.ok()) {
    return BadOption(std::string(target.status().message()));
  }
  absl::StatusOr<replay::Capture> capture = replay::LoadTraceFiles(replay.traces);
  if (!capture.ok()) {
    std::fprintf(stderr, "switchyard replay: cannot read the trace: %s\n",
                 std::string(capture.status().message()).c_str());
    return kExitUnreadable;
  }
  replay::ReplayReport report;
  AddContext(replay, *capture, report);
  if (absl::Status status = replay::ReplayAgainstServer(*capture, options, report); !status.ok()) {
    std::fprintf(stderr, "switchyard replay: %s\n", std::string(status.message()).c_str());
    return kExitUnreadable;
  }
  std::fputs(report.Text().c_str(), stdout);
  std::fflush(stdout);
  if (!replay.report_html.empty()) {
    if (int status = WriteHtml(replay.report_html, report); status != 0) return status;
  }
  bool findings = report.divergences() > 0 || report.errors() > 0 || report.stalls() > 0;
  return findings ? kExitFindings : 0;
}

}  // namespace switchyard::app
