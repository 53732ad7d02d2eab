// `switchyard sim`: deterministic simulation runs of the real core against simulated PostgreSQL
// and simulated clients, with faults, checked by oracles (DESIGN.md section 7).
//
// This file is compiled into the simulator's build (cmake/Switchyard.cmake: mutants compiled
// in, our namespace renamed), while main.cc is production code. So the two meet only through
// the global functions below, whose names never change with the renaming.
#pragma once

#include "CLI/CLI.hpp"

// Registers `sim` and its options on `app`; returns the subcommand.
CLI::App* AddSimulatorCommand(CLI::App& app);

// Runs `sim` once the command line is parsed. Returns the process exit code: 0 when every run
// was clean, 1 when any run found a violation (or died), 2 for bad options.
int RunSimulatorCommand();
