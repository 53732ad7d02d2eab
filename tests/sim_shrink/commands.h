// The commands of the shrinking property (rc::state): each is one step of a scenario, either a
// workload step (a client's statement, a disconnect, a cancel, time passing) or a fault decision
// (a planned cut, reset, black hole, refused or lost connect, delay, worker interleaving; a node
// crash or shutdown with its restart, a pause, a terminated backend, slowness). A network fault
// is a plan in the scenario's decision source, so removing the command removes the fault.
#pragma once

#include <rapidcheck.h>
#include <rapidcheck/state.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tests/sim_shrink/scenario.h"

namespace switchyard::sim {

// What the generator needs to know: the world's shape. Nothing of its state: every command fits
// every state (one that cannot act does nothing), so a shrunk sequence never needs repairs.
struct ScenarioModel {
  int clients = 3;
  int keys = 4;
};

using ScenarioCommand = rc::state::Command<ScenarioModel, Scenario>;
using ScenarioCommands = rc::state::Commands<ScenarioCommand>;

// One command that fits `model`; pass it to rc::state::gen::commands.
rc::Gen<std::shared_ptr<const ScenarioCommand>> GenerateCommand(const ScenarioModel& model);

// One command per line, numbered.
std::string DescribeCommands(const ScenarioCommands& commands);

}  // namespace switchyard::sim
