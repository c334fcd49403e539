// moe-ep: run and compare MoE expert-placement policies under expert parallelism.
#include <mpi.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <type_traits>

#include <Kokkos_Core.hpp>

#include "apps/CliOptions.hpp"
#include "apps/Commands.hpp"
#include "apps/LaunchRank.hpp"
#include "comm/CommFactory.hpp"
#include "version.hpp"

namespace {
// --build-info: what this binary runs on, without MPI or a GPU; what
// jobs/compare-gpu.sbatch checks before it starts a GPU job.
std::string build_info() {
  constexpr bool on_device = !std::is_same_v<Kokkos::DefaultExecutionSpace, Kokkos::DefaultHostExecutionSpace>;
  std::string kokkos = "kokkos";
#ifdef KOKKOS_VERSION
  kokkos += " " + std::to_string(KOKKOS_VERSION / 10000) + "." + std::to_string(KOKKOS_VERSION / 100 % 100) + "." +
            std::to_string(KOKKOS_VERSION % 100);
#endif
  std::string backends;
  for (const auto& b : moe::comm_backends()) backends += (backends.empty() ? "" : ", ") + b;
  return std::string("moe-ep " MOE_EP_VERSION "\n") + kokkos + ", default execution space " +
         Kokkos::DefaultExecutionSpace::name() + "\nkernels on: " + (on_device ? "device" : "host") +
         "\ncomm backends: " + backends;
}
// A refusal before MPI_Init: rank 0 prints the one line at once; the other
// ranks hold their exit for a moment, so that a launcher which ends the job at
// the first non-zero exit (Slurm's KillOnBadExit, mpiexec without a kill
// grace) cannot kill rank 0 before its line is out.
int refuse_before_mpi(int code) {
  if (code != 0 && moe::app::launch_rank() != 0) std::this_thread::sleep_for(std::chrono::seconds(1));
  return code;
}
}  // namespace

int main(int argc, char** argv) {
  using namespace moe::app;
  CLI::App app{"moe-ep " MOE_EP_VERSION
               ": run Mixture-of-Experts layers under expert parallelism and compare\n"
               "expert-placement policies (ep, capacity, llep) side by side on the same routing."};
  app.require_subcommand(1);
  app.set_version_flag("--version", MOE_EP_VERSION);
  app.add_flag_callback(
         "--build-info", [] { throw CLI::CallForVersion(build_info(), 0); },
         "Print the Kokkos version and default execution space (kernels on host or device) and the comm backends")
      ->trigger_on_parse();  // before the "a subcommand is required" check
  app.failure_message(one_line_failure);
  std::vector<Command> commands;
  add_run_and_compare_commands(app, commands);
  add_trace_command(app, commands);
  add_emulate_command(app, commands);
  add_plan_command(app, commands);
  add_simulate_command(app, commands);
  add_calibrate_command(app, commands);

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
      return refuse_before_mpi(kExitBadInput);
    }
  }

  // Parse before MPI_Init: bad flags fail the same way on every rank, and
  // only the launcher's rank 0 prints, so a typo never hangs or floods a job.
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = (launch_rank() == 0 || e.get_exit_code() == 0) ? app.exit(e) : e.get_exit_code();
    return code == 0 ? 0 : refuse_before_mpi(kExitBadInput);
  }
  for (auto& cmd : commands) {
    if (!cmd.sub->parsed()) continue;
    if (!cmd.needs_mpi) return run_without_mpi(cmd.run);
    return run_with_mpi(argc, argv, cmd.run);
  }
  return kExitBadInput;
}
