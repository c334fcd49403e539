// moe-ep: run and compare MoE expert-placement policies under expert parallelism.
#include <mpi.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "apps/CliOptions.hpp"
#include "apps/Commands.hpp"
#include "apps/LaunchRank.hpp"
#include "version.hpp"

int main(int argc, char** argv) {
  using namespace moe::app;
  CLI::App app{"moe-ep " MOE_EP_VERSION
               ": run Mixture-of-Experts layers under expert parallelism and compare\n"
               "expert-placement policies (ep, capacity, llep) side by side on the same routing."};
  app.require_subcommand(1);
  app.set_version_flag("--version", MOE_EP_VERSION);
  app.failure_message(one_line_failure);
  std::vector<Command> commands;
  add_run_and_compare_commands(app, commands);
  add_trace_command(app, commands);
  add_emulate_command(app, commands);
  add_plan_command(app, commands);

  // An unknown command names itself and the valid ones (CLI11 would only say
  // that an argument was not expected).
  if (argc > 1 && argv[1][0] != '-') {
    std::string valid;
    bool known = false;
    for (const auto& cmd : commands) {
      valid += (valid.empty() ? "" : ", ") + cmd.sub->get_name();
      known = known || cmd.sub->get_name() == argv[1];
    }
    if (!known) {
      if (launch_rank() == 0)
        std::fprintf(stderr, "moe-ep: unknown command '%s' (valid: %s; see 'moe-ep --help')\n", argv[1], valid.c_str());
      return kExitBadInput;
    }
  }

  // Parse before MPI_Init: bad flags fail the same way on every rank, and
  // only the launcher's rank 0 prints, so a typo never hangs or floods a job.
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = (launch_rank() == 0 || e.get_exit_code() == 0) ? app.exit(e) : e.get_exit_code();
    return code == 0 ? 0 : kExitBadInput;
  }
  for (auto& cmd : commands) {
    if (!cmd.sub->parsed()) continue;
    if (!cmd.needs_mpi) return run_without_mpi(cmd.run);
    return run_with_mpi(argc, argv, cmd.run);
  }
  return kExitBadInput;
}
