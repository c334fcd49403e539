// `moe-ep run` (one policy) and `moe-ep compare` (several, side by side).
#include <mpi.h>

#include <algorithm>
#include <cstdio>
#include <memory>

#include "apps/CliOptions.hpp"
#include "apps/Commands.hpp"
#include "apps/ResultReport.hpp"
#include "apps/SizeChecks.hpp"
#include "apps/StopOnError.hpp"
#include "apps/TimelineOutput.hpp"
#include "comm/CommFactory.hpp"
#include "runtime/common/Errors.hpp"
#include "runtime/common/OutputFiles.hpp"
#include "runtime/io/LayerDump.hpp"
#include "runtime/io/TraceReader.hpp"
#include "version.hpp"

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
  bool check = false, quiet = false, backward = false;
  std::string json_path;
  std::string timeline_path;
  std::string dump_path;
  std::string comm = "mpi";
  std::string dtype = "fp32";
  double mem_budget_mib = 0.0;
  int64_t ffn_tile_rows = 0;
  bool single_policy = false;  // `run`: exactly one --policy
  CLI::Option* tokens_per_rank_opt = nullptr;
};

void add_common(CLI::App* cmd, CompareOptions& o) {
  add_model_options(cmd, o.model);
  o.tokens_per_rank_opt =
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
                  "to fit (docs/policies.md). A finite number > 0; leave it out for no budget")
      ->check(mib_budget())
      ->group("Run");
  cmd->add_option("--ffn-tile", o.ffn_tile_rows,
                  "Rows per expert-FFN tile: each expert block runs in tiles of this many rows, so the gate/up and "
                  "activation workspaces are bounded by the tile, not the largest block (results are unchanged). "
                  "0 = the default, chosen by measurement (docs/performance.md, Expert FFN row tile)")
      ->capture_default_str()
      ->check(at_least(0))
      ->group("Run");
  cmd->add_flag("--backward", o.backward,
                "Training step: every layer-step runs the forward, then the backward of L = <Y, G> (G seeded like "
                "the tokens) on the same plan; times, bytes, peak memory and makespan cover both "
                "(docs/backward.md). With --check the gradients are checked too")
      ->group("Run");
  cmd->add_option("--dtype", o.dtype,
                  "Storage type of tokens, expert weights, dispatch/combine rows and LLEP weight transfers: fp32, "
                  "or bf16 (half the bytes; GEMMs and the combine still accumulate in fp32, the reference rounds "
                  "where the runtime rounds, and --check stays within 2e-2). bf16 needs an even --hidden and is "
                  "forward only (no --backward, no --dump); docs/dtype.md")
      ->capture_default_str()
      ->check(CLI::IsMember({"fp32", "bf16"}))
      ->group("Run");
  cmd->add_flag("--check", o.check,
                "Compare every output with the single-process double-precision reference on rank 0 "
                "(reports max_rel_err; meant for small shapes)")
      ->group("Run");
  std::string backends;
  for (const auto& b : comm_backends()) backends += (backends.empty() ? "" : ", ") + b;
  cmd->add_option("--comm", o.comm,
                  "Communication backend: mpi (CPU, or GPU buffers staged through host), nccl (one GPU per rank). "
                  "Built in: " +
                      backends)
      ->capture_default_str()
      ->group("Run");
  cmd->add_flag("--quiet", o.quiet, "No progress lines on stderr")->group("Output");
  cmd->add_option("--json", o.json_path, "Write the results as JSON to this file (docs/compare.md)")->group("Output");
  cmd->add_option("--timeline", o.timeline_path,
                  "Write an HDF5 timeline to this file: one row per (policy, step, layer, rank), flushed as each "
                  "completes (docs/timeline-format.md; plot with tools/plot_timeline.py)")
      ->group("Output");
  cmd->add_option("--dump", o.dump_path,
                  "Write one layer to this HDF5 file so that it can be recomputed outside moe-ep (docs/dump.md; "
                  "check it with tools/check_dump.py): for the first measured step and layer, every rank's tokens "
                  "(rows in rank order), the router weights, every expert's weights and biases (as the ranks hold "
                  "them), and per policy the chosen expert ids, gate weights, keep flags (0 where the capacity "
                  "policy dropped a slot) and the output; gathered on rank 0 and written when the run ends, to a "
                  "new file renamed over this one. Meant for small shapes: a run whose dump would exceed " +
                      std::to_string(kLayerDumpMaxBytes >> 20) + " MiB is refused")
      ->group("Output");
}

RunConfig to_run_config(const CompareOptions& o, int num_ranks) {
  RunConfig c;
  c.shape = o.model.resolve();
  if (o.tokens_per_rank_opt && o.tokens_per_rank_opt->count() > 0)
    c.tokens_per_rank = parse_int_list(o.tokens_per_rank, "--tokens-per-rank");
  c.scenario = parse_scenario_flag(o.scenario);
  c.seed = o.seed;
  c.drift = o.drift;
  c.params = o.params;
  const std::string policy_flag = o.single_policy ? "--policy" : "--policies";
  c.policies = parse_policy_list(o.policies, policy_flag);
  if (o.single_policy && c.policies.size() != 1)
    throw InputError("--policy: `moe-ep run` takes exactly one policy (got '" + o.policies +
                     "'); use `moe-ep compare --policies " + o.policies + "` for several");
  c.steps = o.steps;
  c.layers = o.layers;
  c.warmup = o.warmup;
  c.check = o.check;
  c.quiet = o.quiet;
  c.mem_budget_mib = o.mem_budget_mib;
  c.layer.ffn_tile_rows = o.ffn_tile_rows;
  c.layer.backward = o.backward;
  const std::optional<DType> dtype = parse_dtype(o.dtype);
  if (!dtype) throw InputError("--dtype: '" + o.dtype + "' is not a storage type (valid: fp32, bf16)");
  c.shape.dtype = *dtype;
  c.dump = !o.dump_path.empty();
  if (auto why = validate_run_config(c, num_ranks); !why.empty()) throw InputError(why);
  if (c.dump) {
    int64_t total = 0;
    for (int r = 0; r < num_ranks; ++r) total += c.tokens_on(r);
    if (auto why = layer_dump_limit_reason(c.shape, total, static_cast<int>(c.policies.size())); !why.empty())
      throw InputError(why);
  }
  // Sizes before anything is allocated: overflow first (the same on every
  // rank), the memory limit in check_sizes_collectively.
  check_run_sizes(c, num_ranks, MemoryLimit{}, MemoryLimit{});
  return c;
}

// Ranks of this job on this node.
int ranks_on_this_node() {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized) return 1;
  MPI_Comm local;
  if (MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &local) != MPI_SUCCESS) return 1;
  int n = 1;
  MPI_Comm_size(local, &n);
  MPI_Comm_free(&local);
  return std::max(1, n);
}

// --mem-budget, or the machine's memory shared by its ranks: the same value
// on every rank (the smallest share of any node), so all reach one verdict.
MemoryLimit budget_limit(const RunConfig& c) {
  MemoryLimit l;
  l.bytes = static_cast<int64_t>(c.mem_budget_mib * 1048576.0);
  char buf[64];
  std::snprintf(buf, sizeof buf, "--mem-budget %g MiB", c.mem_budget_mib);
  l.text = buf;
  return l;
}

MemoryLimit machine_memory_limit(Communicator& comm) {
  MemoryLimit l;
  const int local = ranks_on_this_node();
  const double share = static_cast<double>(physical_memory_bytes()) / local;
  const double min_share = -comm.allreduce_max(-share);
  const int max_local = static_cast<int>(comm.allreduce_max(static_cast<double>(local)));
  l.bytes = static_cast<int64_t>(min_share);
  l.text = bytes_text(l.bytes) + " per rank (the machine's memory shared by " + std::to_string(max_local) +
           " rank(s) on a node; set --mem-budget to model less)";
  return l;
}

// Outputs: regular files or absent, different from each other and from the
// trace input; checked on rank 0, the verdict on every rank.
void check_outputs(const CompareOptions& o, const RunConfig& cfg, Communicator& comm) {
  std::string why;
  if (comm.rank() == 0) {
    std::vector<std::pair<std::string, std::string>> named;
    if (cfg.scenario.kind == ScenarioSpec::Kind::Trace)
      named.emplace_back("--scenario trace:", cfg.scenario.trace_path);
    if (!o.json_path.empty()) named.emplace_back("--json", o.json_path);
    if (!o.timeline_path.empty()) named.emplace_back("--timeline", o.timeline_path);
    if (!o.dump_path.empty()) named.emplace_back("--dump", o.dump_path);
    why = check_distinct(named);
    if (why.empty() && !o.json_path.empty()) why = check_output_path(o.json_path, "--json");
    if (why.empty() && !o.timeline_path.empty()) why = check_output_path(o.timeline_path, "--timeline");
    if (why.empty() && !o.dump_path.empty()) why = check_output_path(o.dump_path, "--dump");
  }
  if (comm.allreduce_sum(why.empty() ? 0 : 1) > 0) throw InputError(why.empty() ? "output refused on rank 0" : why);
}

int run_compare(const CompareOptions& o) {
  std::unique_ptr<Communicator> comm;
  try {
    comm = make_communicator(o.comm);
  } catch (const std::invalid_argument& e) {
    throw InputError(e.what());
  }
  const RunConfig cfg = [&] {
    RunConfig c = to_run_config(o, comm->size());
    resolve_ranks_per_node(c, *comm);  // before the timeline and JSON record it
    return c;
  }();
  const MemoryLimit machine = machine_memory_limit(*comm);
  check_run_sizes(cfg, comm->size(), cfg.mem_budget_mib > 0.0 ? budget_limit(cfg) : machine, machine);
  check_outputs(o, cfg, *comm);
  if (cfg.scenario.kind == ScenarioSpec::Kind::Trace) {  // the whole trace, on every rank, before any step
    int64_t total_tokens = 0;
    for (int r = 0; r < comm->size(); ++r) total_tokens += cfg.tokens_on(r);
    validate_trace(cfg.scenario.trace_path, cfg.shape, cfg.steps, cfg.layers, total_tokens);
  }
  // A write error on rank 0 (--timeline) stops every rank at the next
  // collective point, so all exit together with rank 0's one line.
  StopOnError stoppable(*comm);
  std::unique_ptr<TimelineOutput> timeline;  // collective: created before the first step
  if (!o.timeline_path.empty()) timeline = std::make_unique<TimelineOutput>(o.timeline_path, cfg, stoppable);
  ComparisonResult result;
  try {
    result = run_comparison(cfg, stoppable, timeline ? timeline->observer() : StepObserver{});
  } catch (const OutputError&) {
    throw;
  } catch (const std::exception& e) {
    if (is_allocation_failure(e))
      throw InputError(allocation_failure(e, "--tokens, --top-k, --hidden, --ffn, --experts, --layers"), false);
    throw;
  }
  if (timeline) timeline->close(stoppable);
  std::string error;
  if (comm->rank() == 0) {
    print_table(cfg, result, stdout);
    if (!o.json_path.empty()) {
      try {
        write_file_atomically(o.json_path, result_json(cfg, result).dump(2) + "\n", "--json");
      } catch (const OutputError& e) {
        error = e.what();
      }
    }
    if (result.dump && error.empty()) {
      result.dump->tool_version = MOE_EP_VERSION;
      ComparisonResult empty;
      empty.num_ranks = comm->size();
      result.dump->config_json = result_json(cfg, empty)["config"].dump();
      result.dump->policy_params_json = policy_params_json(cfg.params).dump();
      try {
        write_layer_dump(o.dump_path, *result.dump, "--dump");
      } catch (const OutputError& e) {
        error = e.what();
      }
    }
  }
  if (comm->allreduce_sum(error.empty() ? 0 : 1) > 0)
    throw OutputError(error.empty() ? "--json: write failed on rank 0" : error, /*collective*/ true);
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
  run_opts->single_policy = true;
  CLI::App* run = app.add_subcommand("run", "Run one placement policy and print its row of the table");
  add_common(run, *run_opts);
  run->add_option("--policy", run_opts->policies, "The policy to run (registered: " + all + ")")
      ->capture_default_str()
      ->group("Policy");
  commands.push_back({run, true, [run_opts] { return run_compare(*run_opts); }});
}

}  // namespace moe::app
