// `moe-ep simulate`: a P-rank job on paper, in one process without MPI: the
// real planners on the runtime's routing, per-rank work and bytes from the
// runtime's own derivation, times from a machine description or a calibration
// (docs/simulation.md). Prints compare's table and writes its JSON and HDF5
// timeline, marked "simulated".
#include <algorithm>
#include <cstdio>
#include <memory>

#include <nlohmann/json.hpp>

#include "apps/CliOptions.hpp"
#include "apps/Commands.hpp"
#include "apps/ResultReport.hpp"
#include "apps/TimelineOutput.hpp"
#include "runtime/common/Errors.hpp"
#include "runtime/common/OutputFiles.hpp"
#include "runtime/io/TimelineWriter.hpp"
#include "runtime/simulate/Simulation.hpp"
#include "version.hpp"

namespace moe::app {

namespace {

struct SimulateOptions {
  ModelOptions model;
  int ranks = 8;
  int ranks_per_node = 0;  // 0: the machine's (when simulate owns the flag)
  std::string machine = "h100-node";
  std::string dtype;  // "": the machine's default
  std::string scenario = "balanced";
  uint64_t seed = 1;
  double drift = 0.1;
  PolicyParams params;
  std::string policies;
  int steps = 1, layers = 1, warmup = 1;
  bool quiet = false;
  std::string json_path, timeline_path;
};

// The ranks-per-node flag belongs to a policy once one declares the parameter
// (add_policy_options then generates it); simulate reads it from there.
constexpr const char* kRanksPerNode = "ranks-per-node";

SimulationConfig to_config(const SimulateOptions& o) {
  SimulationConfig c;
  try {
    c.machine = load_machine(o.machine);
  } catch (const std::invalid_argument& e) {
    throw InputError(e.what());
  }
  c.ranks = o.ranks;
  c.ranks_per_node = o.ranks_per_node;
  if (find_param_spec(kRanksPerNode) && o.params.is_set(kRanksPerNode))
    c.ranks_per_node = static_cast<int>(o.params.integer(kRanksPerNode));
  c.dtype = o.dtype;
  RunConfig& r = c.run;
  r.shape = o.model.resolve();
  r.scenario = parse_scenario_flag(o.scenario);
  r.seed = o.seed;
  r.drift = o.drift;
  r.params = o.params;
  r.policies = parse_policy_list(o.policies, "--policies");
  r.steps = o.steps;
  r.layers = o.layers;
  r.warmup = o.warmup;
  r.quiet = o.quiet;
  if (auto why = validate_simulation_config(c); !why.empty()) throw InputError(why);
  return c;
}

void check_outputs(const SimulateOptions& o, const RunConfig& cfg) {
  std::vector<std::pair<std::string, std::string>> named;
  if (cfg.scenario.kind == ScenarioSpec::Kind::Trace) named.emplace_back("--scenario trace:", cfg.scenario.trace_path);
  if (!o.json_path.empty()) named.emplace_back("--json", o.json_path);
  if (!o.timeline_path.empty()) named.emplace_back("--timeline", o.timeline_path);
  std::string why = check_distinct(named);
  if (why.empty() && !o.json_path.empty()) why = check_output_path(o.json_path, "--json");
  if (why.empty() && !o.timeline_path.empty()) why = check_output_path(o.timeline_path, "--timeline");
  if (!why.empty()) throw InputError(why);
}

nlohmann::json simulation_json(const SimulationConfig& c, const SimulationResult& s) {
  return {{"machine", c.machine.name},
          {"machine_description", c.machine.description},
          {"dtype", s.dtype},
          {"ranks_per_node", s.ranks_per_node},
          {"compute", s.compute_source},
          {"tool_version", MOE_EP_VERSION}};
}

int run_simulate(const SimulateOptions& o) {
  const SimulationConfig cfg = to_config(o);
  check_outputs(o, cfg.run);
  std::unique_ptr<TimelineWriter> timeline;
  if (!o.timeline_path.empty()) {
    std::vector<std::string> hosts;
    std::vector<int> nodes;
    const int rpn = cfg.effective_ranks_per_node();
    for (int r = 0; r < cfg.ranks; ++r) {
      nodes.push_back(node_of(r, rpn));
      hosts.push_back("sim-node" + std::to_string(nodes.back()));
    }
    TimelineHeader h = timeline_header(cfg.run, cfg.ranks, hosts, nodes, std::min(rpn, cfg.ranks));
    h.attributes.emplace_back("simulated", int64_t{1});
    h.clocks = simulated_clock_names();
    h.attributes.emplace_back("machine", cfg.machine.name);
    try {
      timeline = std::make_unique<TimelineWriter>(o.timeline_path, h);
    } catch (const std::exception& e) {
      throw InputError(std::string("--timeline: ") + e.what());
    }
  }
  SimObserver observer;
  if (timeline)
    observer = [&](const std::string& policy, int step, int layer, const std::vector<StepRecord>& per_rank,
                   const LoadMatrix& loads, const Plan&) {
      try {
        timeline->append(policy, step, layer, per_rank, loads);
      } catch (const std::runtime_error& e) {
        throw OutputError(std::string("--timeline: ") + e.what());
      }
    };
  SimulationResult result;
  try {
    result = simulate(cfg, observer);
  } catch (const std::invalid_argument& e) {
    throw InputError(e.what());
  }
  if (timeline) {
    try {
      timeline->close();
    } catch (const std::runtime_error& e) {
      throw OutputError(std::string("--timeline: ") + e.what());
    }
  }
  std::printf(
      "# simulated: no kernels ran and nothing was sent; times from machine '%s' (%s), %s, expert blocks %s, %d "
      "rank(s) per node\n",
      cfg.machine.name.c_str(), cfg.machine.description.c_str(), result.dtype.c_str(), result.compute_source.c_str(),
      result.ranks_per_node);
  print_table(cfg.run, result.comparison, stdout, "simulate");
  for (const auto& p : result.comparison.policies)
    std::printf("# simulated step wall time, %s: %.6f s over %d layer-step(s)\n", p.name.c_str(), p.wall_s,
                p.executed_steps);
  std::fflush(stdout);
  if (!o.json_path.empty()) {
    nlohmann::json j = result_json(cfg.run, result.comparison);
    j["simulated"] = true;
    j["simulation"] = simulation_json(cfg, result);
    write_file_atomically(o.json_path, j.dump(2) + "\n", "--json");
  }
  return 0;
}

}  // namespace

void add_simulate_command(CLI::App& app, std::vector<Command>& commands) {
  auto o = std::make_shared<SimulateOptions>();
  CLI::App* cmd = app.add_subcommand(
      "simulate",
      "Predict a P-rank run on a described machine in one process (no MPI, no kernels): the real planners, "
      "compare's table, JSON and timeline, marked simulated (docs/simulation.md)");
  add_model_options(cmd, o->model);
  cmd->add_option("--ranks", o->ranks, "P, simulated ranks (must divide the expert count)")
      ->capture_default_str()
      ->check(at_least(1))
      ->group("Cluster");
  if (!find_param_spec(kRanksPerNode))
    cmd->add_option("--ranks-per-node", o->ranks_per_node,
                    "Ranks on each node, consecutive ranks per node (default: the machine description's)")
        ->check(at_least(1))
        ->group("Cluster");
  std::string machines;
  for (const auto& n : builtin_machine_names()) machines += (machines.empty() ? "" : ", ") + n;
  cmd->add_option("--machine", o->machine,
                  "Machine description: a built-in name (" + machines +
                      ") or a description file PATH.json, e.g. one written by `moe-ep calibrate`")
      ->capture_default_str()
      ->group("Cluster");
  cmd->add_option("--dtype", o->dtype,
                  "Element type of tokens and weights: bf16 or fp32 (bytes moved, weight bytes, the machine's peak "
                  "rate for it; default: the machine's default_dtype)")
      ->check(CLI::IsMember({"bf16", "fp32"}))
      ->group("Cluster");
  add_scenario_options(cmd, o->scenario, o->seed);
  cmd->add_option("--drift", o->drift, "Routing drift from step to step in [0, 1], as in compare")
      ->capture_default_str()
      ->group("Routing");
  add_policy_options(cmd, o->params);
  std::string all;
  for (const auto& n : policy_names()) all += (all.empty() ? "" : ",") + n;
  o->policies = all;
  cmd->add_option("--policies", o->policies, "Comma-separated policies (registered: " + all + ")")
      ->capture_default_str()
      ->group("Policy");
  cmd->add_option("--steps", o->steps, "Steps (each a new batch)")->capture_default_str()->group("Run");
  cmd->add_option("--layers", o->layers, "MoE layers per step")->capture_default_str()->group("Run");
  cmd->add_option("--warmup", o->warmup,
                  "Warm-up steps per policy as compare runs them (a stateful policy such as eplb sees them)")
      ->capture_default_str()
      ->group("Run");
  cmd->add_flag("--quiet", o->quiet, "Accepted for symmetry with compare (simulate prints no progress)")
      ->group("Output");
  cmd->add_option("--json", o->json_path, "Write the results as JSON (compare's schema + simulated fields)")
      ->group("Output");
  cmd->add_option("--timeline", o->timeline_path,
                  "Write the HDF5 timeline (docs/timeline-format.md) of the simulated run; tools/plot_timeline.py "
                  "plots it")
      ->group("Output");
  commands.push_back({cmd, false, [o] { return run_simulate(*o); }});
}

}  // namespace moe::app
