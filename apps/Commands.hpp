#pragma once
// Each subcommand of moe-ep lives in its own cmd_<name>.cpp and registers
// itself here: it adds its CLI11 subcommand and returns what runs it.

#include <functional>
#include <vector>

#include <CLI/CLI.hpp>

namespace moe::app {

struct Command {
  CLI::App* sub = nullptr;
  bool needs_mpi = true;     // run inside MPI_Init/Finalize
  std::function<int()> run;  // returns the process exit code
};

// One registration function per subcommand file.
void add_run_and_compare_commands(CLI::App& app, std::vector<Command>& commands);  // cmd_compare.cpp
void add_plan_command(CLI::App& app, std::vector<Command>& commands);              // cmd_plan.cpp
void add_trace_command(CLI::App& app, std::vector<Command>& commands);             // cmd_trace.cpp
void add_emulate_command(CLI::App& app, std::vector<Command>& commands);           // cmd_emulate.cpp
void add_simulate_command(CLI::App& app, std::vector<Command>& commands);          // cmd_simulate.cpp
void add_calibrate_command(CLI::App& app, std::vector<Command>& commands);         // cmd_calibrate.cpp

/// Exit code for invalid input (flags, config, trace files).
inline constexpr int kExitBadInput = 2;

}  // namespace moe::app
