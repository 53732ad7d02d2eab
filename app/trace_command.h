// `switchyard trace`: inspect capture files. `trace show` prints one line per record, in the
// spirit of libpq's PQtrace; `trace stats` summarizes the capture (app/trace_stats.h).
#pragma once

#include <cstdint>
#include <iostream>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"

namespace switchyard::app {

// Exit codes of `switchyard trace`.
inline constexpr int kTraceExitOk = 0;
inline constexpr int kTraceExitBadFile = 1;  // unreadable, truncated, damaged, or too new
inline constexpr int kTraceExitUsage = 2;

// Which records `trace show` prints. Times are µs since capture start, inclusive.
struct TraceShowFilter {
  std::optional<uint64_t> session;
  std::optional<int64_t> from_us;
  std::optional<int64_t> to_us;
};

// Prints every record of `files` (one rotated capture, in order) that passes `filter` to `out`,
// one line each. On an unreadable or damaged file, prints the records before the problem, then
// the problem (naming the file, the record and its byte offset) to `error`, and stops.
int ShowTrace(const std::vector<std::string>& files, const TraceShowFilter& filter,
              std::ostream& out, std::ostream& error);

// Prints the statistics of `files` to `out`. On an unreadable or damaged file, prints the
// statistics of the records before the problem, then the problem to `error`.
int PrintTraceStats(const std::vector<std::string>& files, std::ostream& out, std::ostream& error);

// The `trace` subcommand's command-line state.
struct TraceCommand {
  CLI::App* command = nullptr;
  CLI::App* show = nullptr;
  CLI::App* stats = nullptr;
  std::vector<std::string> files;
  uint64_t session = 0;
  double from_seconds = 0;
  double to_seconds = 0;
  // To see which of the filters were given.
  CLI::Option* session_option = nullptr;
  CLI::Option* from_option = nullptr;
  CLI::Option* to_option = nullptr;
};

// Registers `trace` with its `show` and `stats` subcommands on `app`.
void AddTraceCommand(CLI::App& app, TraceCommand& trace);

// Runs `trace` once the command line is parsed. Returns the process exit code: kTraceExitOk,
// kTraceExitBadFile, or kTraceExitUsage.
int RunTrace(const TraceCommand& trace, std::ostream& out, std::ostream& error);
inline int RunTrace(const TraceCommand& trace) { return RunTrace(trace, std::cout, std::cerr); }

}  // namespace switchyard::app
