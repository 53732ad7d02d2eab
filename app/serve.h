// `switchyard serve`: run the proxy on real sockets.
#pragma once

#include <map>
#include <string>

#include "CLI/CLI.hpp"
#include "app/settings.h"

namespace switchyard::app {

// The `serve` subcommand's command-line state.
struct ServeCommand {
  CLI::App* command = nullptr;
  std::string config_path;
  ServeSettings flags;                          // values as given on the command line
  std::map<std::string, CLI::Option*> options;  // by flag name, to see which were given
};

// Registers `serve` and its options on `app`.
void AddServeCommand(CLI::App& app, ServeCommand& serve);

// Runs `serve` once the command line is parsed. Returns the process exit code: 0 after a
// clean shutdown, 1 when the proxy could not start or run, 2 for bad settings.
int RunServe(const ServeCommand& serve);

}  // namespace switchyard::app
