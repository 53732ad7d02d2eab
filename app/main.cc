// The switchyard binary: one subcommand per use (DESIGN.md, top). `serve` runs the proxy;
// `sim`, `replay` and `trace` are added next to it the same way.
#include <cstdio>

#include "CLI/CLI.hpp"
#include "app/replay_command.h"
#include "app/serve.h"
#include "app/sim_command.h"
#include "app/trace_command.h"

int main(int argc, char** argv) {
  CLI::App app{
      "switchyard: a PostgreSQL proxy that pools server connections and survives failover.\n"
      "Run `switchyard COMMAND --help` for the options of a command."};
  app.require_subcommand(1);
  switchyard::app::ServeCommand serve;
  switchyard::app::AddServeCommand(app, serve);
  CLI::App* sim = AddSimulatorCommand(app);
  switchyard::app::TraceCommand trace;
  switchyard::app::AddTraceCommand(app, trace);
  switchyard::app::ReplayCommand replay;
  switchyard::app::AddReplayCommand(app, replay);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    // Help exits 0; every usage error exits 2, like the settings errors of each command.
    return app.exit(error) == 0 ? 0 : 2;
  }
  if (serve.command->parsed()) return switchyard::app::RunServe(serve);
  if (sim->parsed()) return RunSimulatorCommand();
  if (trace.command->parsed()) return switchyard::app::RunTrace(trace);
  if (replay.command->parsed()) return switchyard::app::RunReplay(replay);
  return 2;
}
