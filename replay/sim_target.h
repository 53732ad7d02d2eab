// `switchyard replay TRACE... --target sim [--seed N | --seeds A..B] [--swarm]`: replays a
// capture through the real core on the simulated network (DESIGN.md section 6), against
// trace-backed servers (sim/trace_node.h): a primary and, per seed, replicas, all answering from
// the capture, with the faults and proxy options `switchyard sim` draws for the seed (network
// faults, node crashes, shutdowns, pauses, slowness, terminated backends, failovers). Each
// captured client session is replayed by a SessionReplayer driven by simulated time. Answers are
// compared as against a real server; 08006/08007 answers (and the 25P02s that follow them) that
// an injected fault explains are counted apart. Oracles check what the nodes received: no write
// on a replica, none twice, no traffic to a fenced old primary; after healing, that every session
// ended, every unit was retired and the proxy found the primary.
//
// The proxy's core exists twice in the binary: production, and the simulator's build with the
// mutants and a renamed namespace (cmake/Switchyard.cmake). This runs on the simulator's build,
// so the production `replay` command reaches it only through the global function below (as
// app/sim_command.h does), with plain standard types.
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

// The options of `replay --target sim`, already checked by app/replay_command.cc.
struct SimReplayCommand {
  std::vector<std::string> traces;
  uint64_t seed_first = 1;
  uint64_t seed_last = 1;
  bool swarm = false;
  // Pacing, as replay/plan.h's PacingOptions.
  double speed = 1.0;
  bool no_waiting = false;
  bool skip_idle = false;
  int64_t from_us = 0;
  int64_t to_us = std::numeric_limits<int64_t>::max();
  int64_t stall_timeout_ms = 30'000;
  std::string user;      // "" keeps each session's own
  std::string database;  // "" keeps each session's own
};

// Runs every seed and prints a line per seed ending in hash=<hex> (with one seed, the whole
// report before it), then the summary line. Returns the exit code: 0 clean; 1 on any
// divergence, new error, stall or oracle violation; 3 when a trace cannot be read.
int RunSimReplayCommand(const SimReplayCommand& command);
