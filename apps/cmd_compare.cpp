// `moe-ep run` (one policy) and `moe-ep compare` (several, side by side).
#include <cstdio>
#include <memory>

#include "apps/CliOptions.hpp"
#include "apps/Commands.hpp"
#include "runtime/common/Errors.hpp"
#include "comm/CommFactory.hpp"
#include "apps/ResultReport.hpp"
#include "apps/TimelineOutput.hpp"
#include "runtime/io/TraceReader.hpp"

namespace moe::app {

namespace {
struct CompareOptions {
  ModelOptions model;
  std::string tokens_per_rank;
  std::string scenario = "balanced";
  uint64_t seed = 1;
  double drift = 0.1;
  PolicyParams params;
  std::string policies;
  int steps = 1, layers = 1, warmup = 1;
  bool check = false, quiet = false;
  std::string json_path;
  std::string timeline_path;
  std::string comm = "mpi";
  double mem_budget_mib = 0.0;
  int64_t ffn_tile_rows = 0;
};

void add_common(CLI::App* cmd, CompareOptions& o) {
  add_model_options(cmd, o.model);
  cmd->add_option("--tokens-per-rank", o.tokens_per_rank,
                  "Tokens on each rank as a comma list, one per rank (overrides --tokens; e.g. 0,512,512,512)")
      ->group("Model");
  add_scenario_options(cmd, o.scenario, o.seed);
  cmd->add_option("--drift", o.drift,
                  "Routing drift from step to step in [0, 1]: from step 1 on the hot set moves to a seeded start and "
                  "the hot fraction varies by up to +-drift (relative)")
      ->capture_default_str()
      ->group("Routing");
  add_policy_options(cmd, o.params);
  cmd->add_option("--steps", o.steps, "Measured steps (each a new batch)")->capture_default_str()->group("Run");
  cmd->add_option("--layers", o.layers, "MoE layers per step, each with its own weights")
      ->capture_default_str()
      ->group("Run");
  cmd->add_option("--warmup", o.warmup, "Untimed warm-up steps per policy")->capture_default_str()->group("Run");
  cmd->add_option("--mem-budget", o.mem_budget_mib,
                  "Per-rank memory budget in MiB for the runtime's buffers (weights, activations, workspaces). "
                  "A plan that needs more on some rank is reported as OOM and not run; LLEP lowers its alpha "
                  "to fit (docs/policies.md). 0 = no budget")
      ->capture_default_str()
      ->group("Run");
  cmd->add_option("--ffn-tile", o.ffn_tile_rows,
                  "Rows per expert-FFN tile: each expert block runs in tiles of this many rows, so the gate/up and "
                  "activation workspaces are bounded by the tile, not the largest block (results are unchanged). "
                  "0 = the whole block at once")
      ->capture_default_str()
      ->check(at_least(0))
      ->group("Run");
  cmd->add_flag("--check", o.check,
                "Compare every output with the single-process double-precision reference on rank 0 "
                "(reports max_rel_err; meant for small shapes)")
      ->group("Run");
  std::string backends;
  for (const auto& b : comm_backends()) backends += (backends.empty() ? "" : ", ") + b;
  cmd->add_option("--comm", o.comm,
                  "Communication backend: mpi (CPU, or GPU buffers staged through host), nccl (one GPU per rank). "
                  "Built in: " + backends)
      ->capture_default_str()
      ->group("Run");
  cmd->add_flag("--quiet", o.quiet, "No progress lines on stderr")->group("Output");
  cmd->add_option("--json", o.json_path, "Write the results as JSON to this file (docs/compare.md)")->group("Output");
  cmd->add_option("--timeline", o.timeline_path,
                  "Write an HDF5 timeline to this file: one row per (policy, step, layer, rank), flushed as each "
                  "completes (docs/timeline-format.md; plot with tools/plot_timeline.py)")
      ->group("Output");
}

RunConfig to_run_config(const CompareOptions& o, int num_ranks) {
  RunConfig c;
  c.shape = o.model.resolve();
  if (!o.tokens_per_rank.empty()) c.tokens_per_rank = parse_int_list(o.tokens_per_rank, "--tokens-per-rank");
  c.scenario = parse_scenario_flag(o.scenario);
  c.seed = o.seed;
  c.drift = o.drift;
  c.params = o.params;
  c.policies = split_list(o.policies);
  c.steps = o.steps;
  c.layers = o.layers;
  c.warmup = o.warmup;
  c.check = o.check;
  c.quiet = o.quiet;
  c.mem_budget_mib = o.mem_budget_mib;
  c.layer.ffn_tile_rows = o.ffn_tile_rows;
  if (auto why = validate_run_config(c, num_ranks); !why.empty()) throw InputError(why);
  if (c.scenario.kind == ScenarioSpec::Kind::Trace) {  // the whole trace, on every rank, before any step
    int64_t total_tokens = 0;
    for (int r = 0; r < num_ranks; ++r) total_tokens += c.tokens_on(r);
    validate_trace(c.scenario.trace_path, c.shape, c.steps, c.layers, total_tokens);
  }
  return c;
}

int run_compare(const CompareOptions& o) {
  std::unique_ptr<Communicator> comm;
  try {
    comm = make_communicator(o.comm);
  } catch (const std::invalid_argument& e) {
    throw InputError(e.what());
  }
  const RunConfig cfg = to_run_config(o, comm->size());
  if (!o.json_path.empty()) {
    // Rank 0 writes the JSON: find out now, not after the run, if it cannot.
    const std::string why = comm->rank() == 0 ? check_writable(o.json_path, "--json") : std::string();
    if (comm->allreduce_sum(why.empty() ? 0 : 1) > 0) throw InputError(why.empty() ? "--json: not writable" : why);
  }
  std::unique_ptr<TimelineOutput> timeline;  // collective: created before the first step
  if (!o.timeline_path.empty()) timeline = std::make_unique<TimelineOutput>(o.timeline_path, cfg, *comm);
  const ComparisonResult result = run_comparison(cfg, *comm, timeline ? timeline->observer() : StepObserver{});
  if (timeline) timeline->close();
  if (comm->rank() == 0) {
    print_table(cfg, result, stdout);
    if (!o.json_path.empty()) write_file_atomically(o.json_path, result_json(cfg, result).dump(2) + "\n");
  }
  comm->barrier();
  return 0;
}
}  // namespace

void add_run_and_compare_commands(CLI::App& app, std::vector<Command>& commands) {
  auto opts = std::make_shared<CompareOptions>();
  CLI::App* compare = app.add_subcommand(
      "compare", "Run several placement policies side by side on identical inputs and print a table");
  add_common(compare, *opts);
  std::string all;
  for (const auto& n : policy_names()) all += (all.empty() ? "" : ",") + n;
  opts->policies = all;
  compare->add_option("--policies", opts->policies, "Comma-separated policies to compare (registered: " + all + ")")
      ->capture_default_str()
      ->group("Policy");
  commands.push_back({compare, true, [opts] { return run_compare(*opts); }});

  auto run_opts = std::make_shared<CompareOptions>();
  run_opts->policies = "ep";
  CLI::App* run = app.add_subcommand("run", "Run one placement policy and print its row of the table");
  add_common(run, *run_opts);
  run->add_option("--policy", run_opts->policies, "The policy to run (registered: " + all + ")")
      ->capture_default_str()
      ->group("Policy");
  commands.push_back({run, true, [run_opts] { return run_compare(*run_opts); }});
}

}  // namespace moe::app
