// `switchyard replay TRACE... --target HOST:PORT`: replays captured client sessions against a
// PostgreSQL server and compares its answers with the captured ones (docs/replay.md).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"

namespace switchyard::app {

// The `replay` subcommand's command-line state.
struct ReplayCommand {
  CLI::App* command = nullptr;
  std::vector<std::string> traces;
  std::string target;
  std::string user;
  std::string password_file;
  std::string database;
  std::string speed = "1";
  bool skip_idle = false;
  double from_s = 0;
  double to_s = -1;  // < 0: to the end
  int64_t stall_timeout_ms = 30'000;
  int64_t sessions_max = 256;
  std::string report_html;
};

// Registers `replay` and its options on `app`.
void AddReplayCommand(CLI::App& app, ReplayCommand& replay);

// Runs `replay` once the command line is parsed. Returns the process exit code: 0 when the
// replay found no divergence, no error beyond the captured ones and no stall; 1 when it found
// any; 2 for bad options; 3 when a trace could not be read or the target cannot be reached.
int RunReplay(const ReplayCommand& replay);

}  // namespace switchyard::app
