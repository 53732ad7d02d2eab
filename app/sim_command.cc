// `switchyard sim`: one seed, or a range of seeds (optionally one shard of it), each run through
// sim/runner.h. Every run prints its derived options, its violations (each with the command
// that reproduces it) and a final line ending in hash=<hex>; a range ends with a summary line.
//
// In a range every seed runs in a child process, so a seed that trips an internal CHECK (the
// core's own invariants are oracles too) is reported like any violation and the range goes on.
#include "app/sim_command.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "core/base/strings.h"
#include "core/mutants.h"
#include "io_sim/prng.h"
#include "sim/runner.h"
#include "sim/swarm.h"
#include "sim/timeline.h"

namespace switchyard::app {
namespace {

constexpr int kExitViolation = 1;

// The `sim` subcommand's command-line state.
struct SimCommand {
  CLI::App* command = nullptr;
  uint64_t seed = 0;
  std::string seeds;  // "A..B"
  bool swarm = false;
  std::string shard;  // "I/N"
  bool no_fork = false;
  bool trace = false;  // every network and driver event on stderr
  std::vector<std::string> mutants;
  bool list_mutants = false;
  bool check_determinism = false;
  bool stop_on_failure = false;
  std::string timeline;  // --timeline FILE.html
};

// What one seed runs with, besides the seed.
struct SeedSetup {
  bool swarm = false;
  uint64_t mutants = 0;  // ProxyConfig::mutants
  bool trace = false;
  std::string timeline;  // write the run's timeline page here ("" for none)
};

SimCommand& State() {
  static SimCommand state;  // the command line of this process: there is only one
  return state;
}
constexpr int kExitBadOptions = 2;

struct SeedRange {
  uint64_t first = 0;
  uint64_t last = 0;
};

struct Shard {
  uint64_t index = 1;  // 1..count
  uint64_t count = 1;
};

// What one seed's run amounted to, for the summary.
struct Outcome {
  bool ok = false;
  uint64_t sim_queries = 0;
  int64_t sim_time_us = 0;
  uint64_t hash = 0;
  bool crashed = false;
};

int BadOptions(std::string_view message) {
  std::fprintf(stderr, "switchyard sim: error: %.*s\n", static_cast<int>(message.size()),
               message.data());
  return kExitBadOptions;
}

bool ParseNumber(std::string_view text, uint64_t* out) {
  return absl::SimpleAtoi(absl::string_view(text.data(), text.size()), out);
}

absl::StatusOr<SeedRange> ParseSeedRange(std::string_view text) {
  const size_t dots = text.find("..");
  SeedRange range;
  if (dots == std::string_view::npos || !ParseNumber(text.substr(0, dots), &range.first) ||
      !ParseNumber(text.substr(dots + 2), &range.last) || range.first > range.last) {
    return absl::InvalidArgumentError(
        Cat("--seeds wants A..B with A <= B (both included), got '", text, "'"));
  }
  return range;
}

absl::StatusOr<Shard> ParseShard(std::string_view text) {
  const size_t slash = text.find('/');
  Shard shard;
  if (slash == std::string_view::npos || !ParseNumber(text.substr(0, slash), &shard.index) ||
      !ParseNumber(text.substr(slash + 1), &shard.count) || shard.count == 0 || shard.index == 0 ||
      shard.index > shard.count) {
    return absl::InvalidArgumentError(Cat("--shard wants I/N with 1 <= I <= N, got '", text, "'"));
  }
  return shard;
}

void Print(const std::string& text) {
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fflush(stdout);
}

// Runs one seed in this process and prints all of it.
sim::RunOptions OptionsFor(uint64_t seed, const SeedSetup& setup) {
  sim::RunOptions options = sim::DeriveRunOptions(seed, setup.swarm);
  options.proxy.mutants = setup.mutants;
  return options;
}

// Writes the --timeline page; says where, or why it could not.
void WriteTimeline(const std::string& path, const std::string& page) {
  std::FILE* file = std::fopen(path.c_str(), "wb");
  const bool written =
      file != nullptr && std::fwrite(page.data(), 1, page.size(), file) == page.size();
  const bool closed = file != nullptr && std::fclose(file) == 0;
  if (written && closed) return Print(Cat("timeline written to ", path, "\n"));
  std::fprintf(stderr, "switchyard sim: error: cannot write the timeline to %s: %s\n", path.c_str(),
               std::strerror(errno));
}

Outcome RunSeed(uint64_t seed, const SeedSetup& setup) {
  const sim::RunOptions options = OptionsFor(seed, setup);
  const bool swarm = setup.swarm;
  const std::string reproduce = sim::ReproduceCommand(options);
  Print(absl::StrFormat("sim %s swarm=%s\n%s\n", io_sim::SimSeeds::FromRoot(seed).Describe(),
                        swarm ? "on" : "off", options.Describe()));
  sim::RunHooks hooks;
  if (setup.trace) {
    hooks.trace = [](std::string_view line) {
      std::fprintf(stderr, "%.*s\n", static_cast<int>(line.size()), line.data());
    };
  }
  sim::TimelineRecorder recorder;
  if (!setup.timeline.empty()) hooks.timeline = &recorder;
  const sim::RunResult result = sim::RunSimulation(options, hooks);
  if (!setup.timeline.empty()) WriteTimeline(setup.timeline, recorder.RenderHtml());
  std::string text;
  for (const sim::Violation& v : result.violations) {
    text += absl::StrFormat("violation seed=%d oracle=%s t=%dus%s: %s -- reproduce: %s\n", seed,
                            v.oracle, v.at.us, v.client.empty() ? "" : " client=" + v.client,
                            v.what, reproduce);
  }
  if (result.violation_count > result.violations.size()) {
    text += absl::StrFormat("violation seed=%d: %d more violations not shown -- reproduce: %s\n",
                            seed, result.violation_count - result.violations.size(), reproduce);
  }
  text += absl::StrFormat(
      "seed=%d result=%s violations=%d sim_queries=%d sim_s=%.3f steps=%d promotions=%d %s "
      "hash=%016x\n",
      seed, result.ok() ? "ok" : "FAILED", result.violation_count, result.sim_queries,
      static_cast<double>(result.sim_time_us) / 1e6, result.driver.steps, result.promotions,
      result.phases, result.hash);
  Print(text);
  return Outcome{result.ok(), result.sim_queries, result.sim_time_us, result.hash};
}

// Runs one seed in a child process: a CHECK that fires ends the child, not the range.
Outcome RunSeedIsolated(uint64_t seed, const SeedSetup& setup) {
  int fds[2];
  if (pipe(fds) != 0) return RunSeed(seed, setup);
  std::fflush(stdout);
  std::fflush(stderr);
  const pid_t pid = fork();
  if (pid < 0) {
    close(fds[0]);
    close(fds[1]);
    return RunSeed(seed, setup);
  }
  if (pid == 0) {
    close(fds[0]);
    const Outcome outcome = RunSeed(seed, setup);
    const std::string record =
        absl::StrFormat("%d %d %d %d\n", outcome.ok ? 1 : 0, outcome.sim_queries,
                        outcome.sim_time_us, outcome.hash);
    const ssize_t written = write(fds[1], record.data(), record.size());
    _exit(written == static_cast<ssize_t>(record.size()) ? 0 : 3);
  }
  close(fds[1]);
  std::string record;
  char buffer[256];
  for (ssize_t n; (n = read(fds[0], buffer, sizeof(buffer))) > 0;) record.append(buffer, n);
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  Outcome outcome;
  int ok = 0;
  unsigned long long queries = 0;
  long long sim_us = 0;
  unsigned long long hash = 0;
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0 &&
      std::sscanf(record.c_str(), "%d %llu %lld %llu", &ok, &queries, &sim_us, &hash) == 4) {
    return Outcome{ok == 1, queries, sim_us, hash};
  }
  outcome.crashed = true;
  const std::string how = WIFSIGNALED(status)
                              ? absl::StrFormat("killed by signal %d (%s)", WTERMSIG(status),
                                                strsignal(WTERMSIG(status)))
                              : absl::StrFormat("exit status %d", WEXITSTATUS(status));
  Print(absl::StrFormat(
      "violation seed=%d oracle=crash: the run died, %s (an internal check failed; its message "
      "is on stderr) -- reproduce: %s\nseed=%d result=FAILED crashed hash=unknown\n",
      seed, how, sim::ReproduceCommand(OptionsFor(seed, setup)), seed));
  return outcome;
}

// --check-determinism: the seed in two separate processes must end with the same hash.
int CheckDeterminism(uint64_t seed, const SeedSetup& setup) {
  const Outcome first = RunSeedIsolated(seed, setup);
  const Outcome second = RunSeedIsolated(seed, setup);
  if (first.crashed || second.crashed) return kExitViolation;
  if (first.hash != second.hash) {
    Print(absl::StrFormat(
        "violation seed=%d oracle=determinism: two processes ran the seed to different hashes "
        "(%016x, %016x) -- reproduce: %s --check-determinism\n",
        seed, first.hash, second.hash, sim::ReproduceCommand(OptionsFor(seed, setup))));
    return kExitViolation;
  }
  Print(absl::StrFormat("determinism seed=%d: two processes, same hash=%016x\n", seed, first.hash));
  return first.ok && second.ok ? 0 : kExitViolation;
}

int ListMutants() {
  for (const MutantInfo& info : kMutants) {
    Print(absl::StrFormat("%s\n", info.name));
  }
  return 0;
}

// The mask of the mutants named on the command line.
absl::StatusOr<uint64_t> ParseMutants(const std::vector<std::string>& names) {
  uint64_t mask = 0;
  for (const std::string& name : names) {
    std::optional<Mutant> mutant = MutantByName(name);
    if (!mutant) {
      return absl::InvalidArgumentError(
          Cat("unknown mutant '", name, "'; --list-mutants prints the known ones"));
    }
    mask |= static_cast<uint64_t>(*mutant);
  }
  if (mask != 0 && !kMutantsCompiledIn) {
    return absl::FailedPreconditionError("this build of the simulator has no mutants compiled in");
  }
  return mask;
}

void AddOptions(CLI::App& app, SimCommand& sim) {
  sim.command = app.add_subcommand(
      "sim", "Run deterministic simulations of the proxy against simulated PostgreSQL and clients");
  sim.command->footer(
      "One root seed decides everything a run does; the same seed gives the same run and the "
      "same hash.\nExit status: 0 when every run was clean, 1 on any violation, 2 for bad "
      "options.");
  auto* seed = sim.command->add_option("--seed", sim.seed, "Run this one seed")->type_name("N");
  auto* seeds = sim.command
                    ->add_option("--seeds", sim.seeds,
                                 "Run every seed from A to B, both included, and print a summary")
                    ->type_name("A..B");
  seed->excludes(seeds);
  sim.command->add_flag("--swarm", sim.swarm,
                        "Let each seed turn every fault kind on or off and draw its rates");
  sim.command
      ->add_option("--shard", sim.shard,
                   "With --seeds: run only every N-th seed, starting with the I-th (1 <= I <= N)")
      ->type_name("I/N")
      ->needs(seeds);
  sim.command->add_flag("--no-fork", sim.no_fork,
                        "With --seeds: run every seed in this process (a crash ends the range)");
  sim.command
      ->add_flag("--trace", sim.trace,
                 "With --seed: print every network, driver and node event on stderr")
      ->needs(seed);
  sim.command
      ->add_option("--mutant", sim.mutants,
                   "Run with this deliberately broken rule (repeatable); the oracles must catch it")
      ->type_name("NAME");
  sim.command
      ->add_flag("--stop-on-failure", sim.stop_on_failure,
                 "With --seeds: stop at the first seed with a violation (to see how soon a mutant "
                 "is caught)")
      ->needs(seeds);
  sim.command->add_flag("--list-mutants", sim.list_mutants, "Print the mutants, one per line");
  sim.command
      ->add_flag("--check-determinism", sim.check_determinism,
                 "With --seed: run the seed in two separate processes and compare their hashes")
      ->needs(seed);
  sim.command
      ->add_option("--timeline", sim.timeline,
                   "With --seed: draw the run (sessions, requests, faults, node events, server "
                   "connections, violations) as one self-contained HTML page")
      ->type_name("FILE.html")
      ->needs(seed);
}

int RunSim(const SimCommand& sim) {
  if (sim.list_mutants) return ListMutants();
  const bool range = !sim.seeds.empty();
  if (!range && sim.command->count("--seed") == 0) {
    return BadOptions("give --seed N or --seeds A..B");
  }
  absl::StatusOr<uint64_t> mutants = ParseMutants(sim.mutants);
  if (!mutants.ok()) return BadOptions(AsView(mutants.status().message()));
  if (!sim.timeline.empty()) {
    // Fail before the run, not after it: opening to append creates the file, truncating nothing.
    std::FILE* file = std::fopen(sim.timeline.c_str(), "ab");
    if (file == nullptr) {
      return BadOptions(Cat("cannot write --timeline ", sim.timeline, ": ", std::strerror(errno)));
    }
    std::fclose(file);
  }
  const SeedSetup setup{sim.swarm, *mutants, sim.trace, sim.timeline};
  if (!range && sim.check_determinism) return CheckDeterminism(sim.seed, setup);
  if (!range) return RunSeed(sim.seed, setup).ok ? 0 : kExitViolation;

  absl::StatusOr<SeedRange> seeds = ParseSeedRange(sim.seeds);
  if (!seeds.ok()) return BadOptions(AsView(seeds.status().message()));
  Shard shard;
  if (!sim.shard.empty()) {
    absl::StatusOr<Shard> parsed = ParseShard(sim.shard);
    if (!parsed.ok()) return BadOptions(AsView(parsed.status().message()));
    shard = *parsed;
  }
  const auto start = std::chrono::steady_clock::now();
  uint64_t runs = 0;
  uint64_t failed = 0;
  uint64_t queries = 0;
  int64_t sim_us = 0;
  for (uint64_t seed = seeds->first;; ++seed) {
    if ((seed - seeds->first) % shard.count == shard.index - 1) {
      const Outcome outcome = sim.no_fork ? RunSeed(seed, setup) : RunSeedIsolated(seed, setup);
      ++runs;
      failed += outcome.ok ? 0 : 1;
      queries += outcome.sim_queries;
      sim_us += outcome.sim_time_us;
      if (!outcome.ok && sim.stop_on_failure) break;
    }
    if (seed == seeds->last) break;
  }
  const double wall_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const double sim_s = static_cast<double>(sim_us) / 1e6;
  Print(absl::StrFormat(
      "seeds=%d failed=%d sim_queries=%d wall_s=%.3f queries_per_wall_s=%.0f sim_to_wall=%.2f\n",
      runs, failed, queries, wall_s, wall_s > 0 ? static_cast<double>(queries) / wall_s : 0.0,
      wall_s > 0 ? sim_s / wall_s : 0.0));
  return failed == 0 ? 0 : kExitViolation;
}

}  // namespace
}  // namespace switchyard::app

CLI::App* AddSimulatorCommand(CLI::App& app) {
  switchyard::app::SimCommand& sim = switchyard::app::State();
  switchyard::app::AddOptions(app, sim);
  return sim.command;
}

int RunSimulatorCommand() { return switchyard::app::RunSim(switchyard::app::State()); }
