// `moe-ep plan`: the placement planner alone, in one process without MPI.
// Loads come from --loads (global per-expert slot counts) or from a synthetic
// scenario sampled exactly as the runtime samples it; the plan is printed as a
// summary or as JSON (docs/policies.md).
#include <algorithm>
#include <cstdio>
#include <memory>
#include <numeric>
#include <sstream>

#include <climits>
#include <nlohmann/json.hpp>

#include "apps/CliOptions.hpp"
#include "apps/Commands.hpp"
#include "apps/SizeChecks.hpp"
#include "runtime/common/Errors.hpp"
#include "runtime/layer/WorkSplit.hpp"
#include "runtime/workload/Scenario.hpp"

namespace moe::app {

namespace {

// Loads above this are not slot counts of any real batch; the bound keeps every
// sum of loads far from int64 overflow.
constexpr int64_t kMaxLoad = int64_t{1} << 40;

struct PlanOptions {
  std::string policy = "llep";
  int ranks = 8;
  std::string loads;  // empty: from the scenario
  std::string scenario = "balanced";
  uint64_t seed = 1;
  ModelOptions model;
  PolicyParams params;
  bool json = false;
  CLI::Option* loads_opt = nullptr;
  bool loads_given() const { return loads_opt && loads_opt->count() > 0; }
};

/// Global per-expert loads from --loads; throws InputError naming the flag.
LoadMatrix loads_from_list(const PlanOptions& o) {
  const std::vector<int64_t> loads = parse_int_list(o.loads, "--loads");
  {
    ModelShape shape;
    shape.num_experts = static_cast<int>(std::min<size_t>(loads.size(), INT32_MAX));
    check_plan_sizes(shape, o.ranks, /*from_scenario*/ false);
  }
  for (size_t e = 0; e < loads.size(); ++e)
    if (loads[e] < 0 || loads[e] > kMaxLoad)
      throw InputError("--loads: load of expert " + std::to_string(e) + " is " + std::to_string(loads[e]) +
                       " (valid: 0.." + std::to_string(kMaxLoad) + ")");
  const int N = static_cast<int>(loads.size());
  if (N % o.ranks != 0)
    throw InputError("--loads: the number of experts (" + std::to_string(N) + ") must be divisible by --ranks (" +
                     std::to_string(o.ranks) + "); valid --ranks divide " + std::to_string(N));
  return LoadMatrix::from_expert_loads(loads);
}

/// Per-rank loads of one step of a synthetic scenario, as the runtime draws them.
LoadMatrix loads_from_scenario(const PlanOptions& o) {
  const ModelShape shape = o.model.resolve();
  if (auto why = validate_shape(shape, o.ranks); !why.empty()) throw InputError(why);
  check_plan_sizes(shape, o.ranks, /*from_scenario*/ true);
  const ScenarioSpec spec = parse_scenario_flag(o.scenario);
  if (!spec.synthetic())
    throw InputError("--scenario: '" + o.scenario +
                     "' needs the router or a trace; the planner takes balanced, X:k or zipf:S (or use --loads)");
  if (auto why = spec.validate(shape); !why.empty()) throw InputError(why);
  const std::vector<int64_t> tokens_per_rank(static_cast<size_t>(o.ranks), shape.tokens);
  return scenario_load_matrix(spec, shape, /*drift*/ 0.0, o.seed, /*step*/ 0, /*layer*/ 0, tokens_per_rank);
}

/// Per expert, its replicas in a plan that places them (plan.replicas).
std::vector<int> replica_counts(const Plan& plan) {
  std::vector<int> count(static_cast<size_t>(plan.num_experts), 0);
  for (const auto& held : plan.replicas)
    for (int e : held) ++count[static_cast<size_t>(e)];
  return count;
}

nlohmann::ordered_json plan_json(const Plan& plan, double imbalance_before) {
  nlohmann::ordered_json j;
  j["policy"] = plan.policy;
  j["rank_loads"] = plan.rank_loads();
  auto& assignments = j["assignments"] = nlohmann::ordered_json::object();
  for (int e = 0; e < plan.num_experts; ++e) {
    auto ranges = nlohmann::ordered_json::array();
    for (const auto& r : plan.assignments[e]) ranges.push_back({r.rank, r.start, r.end});
    assignments[std::to_string(e)] = std::move(ranges);
  }
  j["transfers"] = nlohmann::ordered_json::array();
  for (const auto& t : plan.transfers) j["transfers"].push_back({t.expert, t.src, t.dst});
  j["dropped"] = plan.total_dropped();
  if (!plan.replicas.empty()) {
    j["replicas"] = plan.replicas;
    j["replica_count"] = replica_counts(plan);
  }
  j["imbalance_before"] = imbalance_before;
  j["imbalance_after"] = imbalance(plan.rank_loads());
  return j;
}

std::string list(const std::vector<int64_t>& v) {
  std::ostringstream s;
  for (size_t i = 0; i < v.size(); ++i) s << (i ? " " : "") << v[i];
  return s.str();
}

std::string params_text(const PlanOptions& o) {
  std::ostringstream s;
  for (const ParamSpec& spec : policy_param_specs(o.policy))
    s << (s.tellp() > 0 ? ", " : "") << spec.name << ' '
      << (spec.kind == ParamSpec::Kind::Choice ? o.params.text(spec.name)
                                               : format_param_number(o.params.number(spec.name)));
  return s.tellp() > 0 ? s.str() : "no parameters";
}

// Replicas per rank and the load each rank is predicted to carry when every
// replica of expert e takes load[e] / replicas[e].
void print_replicas(const Plan& plan, const std::vector<int64_t>& expert_loads) {
  const std::vector<int> count = replica_counts(plan);
  std::vector<double> predicted;
  std::printf("replicas per rank:\n");
  for (size_t r = 0; r < plan.replicas.size(); ++r) {
    double load = 0.0;
    std::printf("  rank %zu:", r);
    for (int e : plan.replicas[r]) {
      std::printf(" %d", e);
      load += static_cast<double>(expert_loads[e]) / count[static_cast<size_t>(e)];
    }
    std::printf("  (predicted load %.1f)\n", load);
    predicted.push_back(load);
  }
  const double mean = std::accumulate(predicted.begin(), predicted.end(), 0.0) / static_cast<double>(predicted.size());
  const double mx = *std::max_element(predicted.begin(), predicted.end());
  std::printf("predicted max/mean: %.3f\n", mean > 0.0 ? mx / mean : 1.0);
}

void print_summary(const PlanOptions& o, const Plan& plan, const std::vector<int64_t>& expert_loads,
                   const std::vector<int64_t>& before) {
  const int64_t total = std::accumulate(expert_loads.begin(), expert_loads.end(), int64_t{0});
  const std::vector<int64_t> after = plan.rank_loads();
  std::printf("policy %s (%s): P = %d ranks, N = %d experts, %lld slots\n", plan.policy.c_str(), params_text(o).c_str(),
              plan.num_ranks, plan.num_experts, static_cast<long long>(total));
  std::printf("rank loads before (EP): %s  (imbalance max/mean %.3f)\n", list(before).c_str(), imbalance(before));
  std::printf("rank loads after:       %s  (imbalance max/mean %.3f)\n", list(after).c_str(), imbalance(after));
  std::printf("weight transfers: %zu", plan.transfers.size());
  for (size_t i = 0; i < plan.transfers.size(); ++i) {
    const auto& t = plan.transfers[i];
    std::printf("%sexpert %d: %d -> %d", i ? ", " : " (", t.expert, t.src, t.dst);
  }
  std::printf("%s\ndropped slots: %lld\n", plan.transfers.empty() ? "" : ")",
              static_cast<long long>(plan.total_dropped()));
  bool header = false;
  for (int e = 0; e < plan.num_experts; ++e) {
    if (plan.assignments[e].size() < 2) continue;
    if (!header) std::printf("split experts:\n");
    header = true;
    std::printf("  expert %d (load %lld, native rank %d):", e, static_cast<long long>(expert_loads[e]),
                native_rank(e, plan.num_experts, plan.num_ranks));
    for (const auto& r : plan.assignments[e])
      std::printf(" rank %d [%lld, %lld)", r.rank, static_cast<long long>(r.start), static_cast<long long>(r.end));
    std::printf("\n");
  }
  if (!header) std::printf("split experts: none\n");
  if (!plan.replicas.empty()) print_replicas(plan, expert_loads);
}

double bytes_to_mib(int64_t bytes) { return static_cast<double>(bytes) / (1024.0 * 1024.0); }

// Bytes between ranks on one node and between nodes (nodes of --ranks-per-node
// consecutive ranks, 0: one node), counted as `compare` counts them: tokens
// dispatch + combine, weights the plan's transfers. Token rows need the
// per-rank loads of a scenario; from --loads only the transfers are known.
void print_node_traffic(const PlanOptions& o, const Plan& plan, const LoadMatrix& loads) {
  const int rpn = static_cast<int>(o.params.integer("ranks-per-node"));
  const int P = plan.num_ranks;
  const int nodes = rpn > 0 ? (P + rpn - 1) / rpn : 1;
  std::printf("nodes: %d (--ranks-per-node %d%s)\n", nodes, rpn, rpn > 0 ? "" : ": one node");
  if (o.loads_given()) {
    size_t inter = 0;
    for (const auto& t : plan.transfers) inter += node_of(t.src, rpn) != node_of(t.dst, rpn) ? 1 : 0;
    std::printf("weight transfers between nodes: %zu of %zu (bytes: give a scenario instead of --loads)\n", inter,
                plan.transfers.size());
    return;
  }
  const ModelShape shape = o.model.resolve();
  const WorkSplit split = split_work(plan, SlotOrderMap(loads));
  const NodeTraffic t =
      node_traffic(split, plan.transfers, rpn, int64_t{shape.hidden} * static_cast<int64_t>(sizeof(float)),
                   shape.expert_weight_bytes());
  std::printf("token MiB (dispatch + combine): %.2f intra-node, %.2f inter-node\n", bytes_to_mib(2 * t.token_intra()),
              bytes_to_mib(2 * t.token_inter()));
  std::printf("weight MiB: %.2f intra-node, %.2f inter-node\n", bytes_to_mib(t.weight_intra()),
              bytes_to_mib(t.weight_inter()));
}

int run_plan(const PlanOptions& o) {
  if (auto why = validate_policy_params(o.params); !why.empty()) throw InputError(why);
  std::unique_ptr<PlacementPolicy> policy;
  try {
    policy = make_policy(o.policy, o.params);
  } catch (const std::invalid_argument& e) {
    throw InputError(std::string("--policy: ") + e.what());
  }
  const LoadMatrix loads = o.loads_given() ? loads_from_list(o) : loads_from_scenario(o);
  if (auto why = policy->validate_for(loads.num_experts, o.ranks); !why.empty()) throw InputError(why);
  const std::vector<int64_t> expert_loads = loads.expert_loads();
  const Plan plan = policy->plan(loads, o.ranks);
  const std::vector<int64_t> before = ep_plan(expert_loads, o.ranks, kBaselinePolicy).rank_loads();
  if (o.json)
    std::printf("%s\n", plan_json(plan, imbalance(before)).dump().c_str());
  else {
    print_summary(o, plan, expert_loads, before);
    print_node_traffic(o, plan, loads);
  }
  return 0;
}

}  // namespace

void add_plan_command(CLI::App& app, std::vector<Command>& commands) {
  auto o = std::make_shared<PlanOptions>();
  CLI::App* cmd =
      app.add_subcommand("plan", "Compute one placement plan from expert loads and print it (no MPI, no experts run)");
  cmd->add_option("--policy", o->policy, "Placement policy: " + join(policy_names(), " | "))
      ->capture_default_str()
      ->group("Policy");
  cmd->add_option("--ranks", o->ranks, "P, number of ranks (expert-parallel size); must divide N")
      ->capture_default_str()
      ->check(at_least(1))
      ->group("Policy");
  add_policy_options(cmd, o->params);

  CLI::Option* loads = o->loads_opt =
      cmd->add_option("--loads", o->loads,
                      "Global slot count of each expert, comma-separated, each >= 0 (e.g. 100,0,0,0); N is the "
                      "list length. Replaces the scenario flags")
          ->group("Loads");
  CLI::Option* scenario =
      cmd->add_option("--scenario", o->scenario,
                      "Synthetic routing to draw the loads from: balanced | X:k (X% of token-slots into k hot "
                      "experts, e.g. 95:1) | zipf:S (e.g. zipf:1.2); step 0, no drift (docs/scenarios.md)")
          ->capture_default_str()
          ->group("Loads");
  CLI::Option* preset =
      cmd->add_option("--preset", o->model.preset, "Model shape preset giving N and K: " + join(preset_names(), ", "))
          ->capture_default_str()
          ->group("Loads");
  CLI::Option* experts =
      cmd->add_option("--experts", o->model.experts, "N, number of experts (default: from --preset); must divide by P")
          ->check(at_least(1))
          ->group("Loads");
  CLI::Option* top_k = cmd->add_option("--top-k", o->model.top_k, "K, experts per token, 1..N (default: from --preset)")
                           ->check(at_least(1))
                           ->group("Loads");
  CLI::Option* tokens = cmd->add_option("--tokens", o->model.tokens, "B, tokens per rank (default 2048)")
                            ->check(at_least(0))
                            ->group("Loads");
  CLI::Option* seed =
      cmd->add_option("--seed", o->seed, "Seed of the scenario's routing; same seed, same loads as `moe-ep run`")
          ->capture_default_str()
          ->check(unsigned_integer())
          ->group("Loads");
  for (CLI::Option* opt : {scenario, preset, experts, top_k, tokens, seed}) loads->excludes(opt);

  cmd->add_flag("--json", o->json,
                "Print the plan as JSON: policy, rank_loads, assignments {expert: [[rank, start, end], ...]}, "
                "transfers [[expert, src, dst], ...], dropped, imbalance_before, imbalance_after; a policy "
                "that places replicas (eplb) adds replicas (per rank, the sorted experts it holds) and "
                "replica_count (per expert)")
      ->group("Output");

  commands.push_back({cmd, /*needs_mpi*/ false, [o] { return run_plan(*o); }});
}

}  // namespace moe::app
