// `moe-ep calibrate`: measures this machine for `moe-ep simulate` under MPI,
// on the ranks it is given: the runtime's expert FFN over a grid of block
// rows, routing, layout and row copies per slot, and the communicator's
// all-to-all and point-to-point latency and bandwidth. Writes a machine
// description with the calibration (docs/simulation.md), atomically.
#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>

#include "apps/CliOptions.hpp"
#include "apps/Commands.hpp"
#include "comm/CommFactory.hpp"
#include "runtime/common/Errors.hpp"
#include "runtime/common/OutputFiles.hpp"
#include "runtime/simulate/Calibrate.hpp"

namespace moe::app {

namespace {

struct CalibrateOptions {
  ModelOptions model;
  std::string scenario = "95:1";
  uint64_t seed = 1;
  int64_t max_rows = 65536;
  double budget_s = 60.0;
  double min_time_s = 0.05;
  int64_t comm_mib = 8;
  std::string output;
  std::string name;
  bool merge = false, quiet = false;
};

int run_calibrate(const CalibrateOptions& o) {
  std::unique_ptr<Communicator> comm = make_communicator("mpi");
  CalibrateConfig c;
  c.shape = o.model.resolve();
  if (auto why = validate_shape(c.shape, 1); !why.empty()) throw InputError(why);
  c.scenario = parse_scenario_flag(o.scenario);
  if (!c.scenario.synthetic())
    throw InputError("--scenario: calibrate times a synthetic sampler (valid: balanced, X:k, zipf:S; got '" +
                     o.scenario + "')");
  if (auto why = c.scenario.validate(c.shape); !why.empty()) throw InputError(why);
  c.seed = o.seed;
  c.max_rows = o.max_rows;
  c.budget_s = o.budget_s;
  c.min_time_s = o.min_time_s;
  c.comm_bytes = o.comm_mib << 20;
  c.name = o.name.empty() ? "calibrated" : o.name;
  // The output and, with --merge, the description it extends: checked on
  // rank 0 before anything is measured; the verdict on every rank.
  std::string why;
  Machine base;
  bool have_base = false;
  if (comm->rank() == 0) {
    why = check_output_path(o.output, "--output");
    if (why.empty() && o.merge) {
      std::ifstream in(o.output);
      if (in) {
        std::stringstream ss;
        ss << in.rdbuf();
        try {
          base = parse_machine(ss.str(), "'" + o.output + "'");
          have_base = true;
        } catch (const std::invalid_argument& e) {
          why = std::string("--merge: ") + e.what();
        }
      }
    }
  }
  if (comm->allreduce_sum(why.empty() ? 0 : 1) > 0) throw InputError(why.empty() ? "--output refused on rank 0" : why);
  const bool quiet = o.quiet;
  Machine m = calibrate(c, *comm, [quiet](const std::string& line) {
    if (!quiet) std::fprintf(stderr, "[moe-ep calibrate] %s\n", line.c_str());
  });
  std::string error;
  if (comm->rank() == 0) {
    if (have_base) m = merge_calibration(base, m);
    try {
      write_file_atomically(o.output, machine_json(m), "--output");
      std::printf("calibrate: wrote %s (%zu shape(s); simulate --machine %s)\n", o.output.c_str(),
                  m.calibration->shapes.size(), o.output.c_str());
    } catch (const OutputError& e) {
      error = e.what();
    }
  }
  if (comm->allreduce_sum(error.empty() ? 0 : 1) > 0)
    throw OutputError(error.empty() ? "--output: write failed on rank 0" : error, /*collective*/ true);
  return 0;
}

}  // namespace

void add_calibrate_command(CLI::App& app, std::vector<Command>& commands) {
  auto o = std::make_shared<CalibrateOptions>();
  CLI::App* cmd = app.add_subcommand(
      "calibrate",
      "Measure this machine for `moe-ep simulate` on the MPI ranks it is given (all at once): expert-block time "
      "by rows, routing, layout, row copies, all-to-all and point-to-point links; writes a machine description");
  add_model_options(cmd, o->model);
  add_scenario_options(cmd, o->scenario, o->seed);
  cmd->get_option("--scenario")->default_str("95:1");
  cmd->add_option("--max-rows", o->max_rows, "Largest expert block timed: rows 1, 2, 4, ... up to this")
      ->capture_default_str()
      ->check(at_least(1))
      ->group("Calibration");
  cmd->add_option("--budget", o->budget_s,
                  "Seconds the expert-block grid may take; it stops at the first point past this (larger blocks "
                  "then scale from the last point)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber)
      ->group("Calibration");
  cmd->add_option("--min-time", o->min_time_s, "Seconds each point is timed for at least (and 3 runs at least)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber)
      ->group("Calibration");
  cmd->add_option("--comm-mib", o->comm_mib, "MiB each rank sends in the bandwidth measurements")
      ->capture_default_str()
      ->check(at_least(1))
      ->group("Calibration");
  cmd->add_option("--output", o->output, "The machine description to write (JSON, docs/simulation.md)")
      ->required()
      ->group("Output");
  cmd->add_option("--name", o->name, "The description's name (default: calibrated)")->group("Output");
  cmd->add_flag("--merge", o->merge,
                "Keep the shapes an existing --output file has calibrated (same dtype) and add or replace this one")
      ->group("Output");
  cmd->add_flag("--quiet", o->quiet, "No progress lines on stderr")->group("Output");
  commands.push_back({cmd, true, [o] { return run_calibrate(*o); }});
}

}  // namespace moe::app
