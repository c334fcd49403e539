#include "runtime/simulate/Simulation.hpp"

#include <algorithm>
#include <memory>
#include <stdexcept>

#include "kernels/ExpertFfn.hpp"
#include "runtime/layer/MemoryModel.hpp"
#include "runtime/layer/ResidentLedger.hpp"
#include "runtime/simulate/SimLoads.hpp"

namespace moe {

std::string validate_simulation_config(const SimulationConfig& c) {
  if (c.ranks < 1) return "--ranks must be >= 1 (got " + std::to_string(c.ranks) + ")";
  if (c.ranks_per_node < 0) return "--ranks-per-node must be >= 1 (got " + std::to_string(c.ranks_per_node) + ")";
  const std::string dtype = c.effective_dtype();
  if (dtype != "bf16" && dtype != "fp32") return "--dtype must be bf16 or fp32 (got '" + dtype + "')";
  if (!c.machine.peak_flops.count(dtype))
    return "--dtype " + dtype + ": machine '" + c.machine.name + "' has no peak_flops." + dtype +
           " (its default_dtype is " + c.machine.default_dtype + ")";
  if (c.run.check) return "--check: simulate computes nothing to check";
  if (c.run.mem_budget_mib > 0.0) return "--mem-budget: simulate does not model memory budgets";
  return validate_run_config(c.run, c.ranks);
}

namespace {
int64_t max2(int64_t a, int64_t b) { return std::max(a, b); }

// Processor sharing among the ranks of one node: rank i starts at start[i]
// and needs demand[i] seconds of one compute unit; while k ranks compute,
// each runs at min(1, units / k). Returns when each finishes (units <= 0:
// every rank at full speed).
std::vector<double> shared_finish(const std::vector<double>& start, const std::vector<double>& demand, double units) {
  const size_t n = start.size();
  std::vector<double> finish(n), left(demand);
  std::vector<char> done(n, 0);
  size_t remaining = 0;
  for (size_t i = 0; i < n; ++i) {
    finish[i] = start[i] + demand[i];
    if (demand[i] > 0.0)
      ++remaining;
    else
      done[i] = 1;
  }
  if (units <= 0.0) return finish;
  double t = 1e300;  // the first start of a rank with work
  for (size_t i = 0; i < n; ++i)
    if (!done[i]) t = std::min(t, start[i]);
  // Event by event: the next rank to finish (the one with the least work
  // left; ties finish together) or the next rank to start.
  while (remaining > 0) {
    size_t k = 0;
    double next_start = 1e300, least = 1e300;
    for (size_t i = 0; i < n; ++i) {
      if (done[i]) continue;
      if (start[i] <= t) {
        ++k;
        least = std::min(least, left[i]);
      } else {
        next_start = std::min(next_start, start[i]);
      }
    }
    if (k == 0) {
      t = next_start;
      continue;
    }
    const double rate = std::min(1.0, units / static_cast<double>(k));
    const bool finishes = t + least / rate <= next_start;
    const double dt = finishes ? least / rate : next_start - t;
    for (size_t i = 0; i < n; ++i) {
      if (done[i] || start[i] > t) continue;
      if (finishes && left[i] <= least) {
        done[i] = 1;
        finish[i] = t + dt;
        --remaining;
      } else {
        left[i] -= dt * rate;
      }
    }
    t += dt;
  }
  return finish;
}
}  // namespace

std::vector<StepRecord> simulate_layer_step(const CostModel& cost, const LoadMatrix& loads, const WorkSplit& split,
                                            const NodeTraffic& tr, double t0, const WorkspaceGrowth* growth) {
  const int P = split.num_ranks, N = loads.num_experts;
  const int64_t row = cost.row_bytes();
  std::vector<StepRecord> rec(static_cast<size_t>(P));
  std::vector<double> route(P), route_busy(P), plan_end(P), arrive(P), a2a(P), weights_end(P), compute(P),
      compute_end(P);  // per rank, seconds from the layer-step's start
  for (int r = 0; r < P; ++r) {
    StepRecord& s = rec[static_cast<size_t>(r)];
    int64_t routed = 0;
    for (int e = 0; e < N; ++e) routed += loads.at(r, e);
    s.slots_routed = routed;
    s.slots_dropped = routed - split.kept_rows(r);
    for (const RankBlock& b : split.work[static_cast<size_t>(r)].blocks)
      (b.imported ? s.slots_foreign : s.slots_native) += b.slots;
    s.experts_imported = split.imported[static_cast<size_t>(r)];
    const size_t i = static_cast<size_t>(r);
    const int64_t send = tr.token_send_intra[i] + tr.token_send_inter[i];
    const int64_t recv = tr.token_recv_intra[i] + tr.token_recv_inter[i];
    s.bytes_tokens_sent = s.bytes_tokens_recv = send + recv;  // dispatch + combine, as count_traffic
    s.bytes_tokens_sent_inter_node = tr.token_send_inter[i] + tr.token_recv_inter[i];
    s.bytes_weights_sent = tr.weight_send_intra[i] + tr.weight_send_inter[i];
    s.bytes_weights_recv = tr.weight_recv_intra[i] + tr.weight_recv_inter[i];
    s.bytes_weights_sent_inter_node = tr.weight_send_inter[i];
  }
  // Every local stage (route, plan, permute, compute, combine) runs by
  // processor sharing among the ranks of its node (shared_finish): ranks that
  // all run a stage at once each take ranks / units times longer, a rank
  // whose stage outlasts the others' runs alone at full speed for the rest
  // (an EP rank computing the hot expert, or faulting in grown buffers).
  const int rpn = std::max(1, cost.ranks_per_node());
  auto run_shared = [&](const std::vector<double>& start, const std::vector<double>& demand) {
    std::vector<double> end(static_cast<size_t>(P));
    for (int first = 0; first < P; first += rpn) {
      const auto from = static_cast<std::ptrdiff_t>(first), to = static_cast<std::ptrdiff_t>(std::min(P, first + rpn));
      const std::vector<double> done =
          shared_finish(std::vector<double>(start.begin() + from, start.begin() + to),
                        std::vector<double>(demand.begin() + from, demand.begin() + to), cost.compute_units());
      std::copy(done.begin(), done.end(), end.begin() + from);
    }
    return end;
  };
  auto latest = [](const std::vector<double>& v) { return *std::max_element(v.begin(), v.end()); };
  // Route, then the all-gather of the counts: every rank waits for the slowest.
  for (int r = 0; r < P; ++r) route_busy[r] = cost.route_s(rec[r].slots_routed / cost.top_k());
  route = run_shared(std::vector<double>(static_cast<size_t>(P), 0.0), route_busy);
  const double gathered = latest(route) + cost.allgather_s(int64_t{P} * N * static_cast<int64_t>(sizeof(int64_t)));
  // Plan and lay out, then permute (local, one after the other on a rank),
  // then the dispatch all-to-all.
  std::vector<double> layout_busy(P), permute_busy(P), local(P);
  double a2a_all = 0.0;
  for (int r = 0; r < P; ++r) {
    const size_t i = static_cast<size_t>(r);
    layout_busy[i] = cost.layout_s(rec[i].slots_routed, split.kept_rows(r));
    permute_busy[i] = cost.permute_s(split.kept_rows(r)) + (growth ? growth->dispatch_s[i] : 0.0);
    local[i] = layout_busy[i] + permute_busy[i];
    a2a[i] = cost.alltoall_s(max2(tr.token_send_intra[i], tr.token_recv_intra[i]),
                             max2(tr.token_send_inter[i], tr.token_recv_inter[i]));
    a2a_all = std::max(a2a_all, a2a[i]);
  }
  arrive = run_shared(std::vector<double>(static_cast<size_t>(P), gathered), local);
  for (int r = 0; r < P; ++r) {  // the plan's share of the rank's shared wall time
    const size_t i = static_cast<size_t>(r);
    plan_end[i] = gathered + (local[i] > 0.0 ? (arrive[i] - gathered) * layout_busy[i] / local[i] : 0.0);
  }
  const double dispatch_end = latest(arrive) + a2a_all;
  // Weights (posted after planning, sharing the links with the tokens), then compute.
  for (int r = 0; r < P; ++r) {
    const size_t i = static_cast<size_t>(r);
    const int64_t w_intra = max2(tr.weight_send_intra[i], tr.weight_recv_intra[i]);
    const int64_t w_inter = max2(tr.weight_send_inter[i], tr.weight_recv_inter[i]);
    weights_end[i] = dispatch_end;
    if (w_intra + w_inter > 0)
      weights_end[i] = std::max(
          dispatch_end, plan_end[i] + cost.p2p_s(w_intra + max2(tr.token_send_intra[i], tr.token_recv_intra[i]),
                                                 w_inter + max2(tr.token_send_inter[i], tr.token_recv_inter[i])));
    const RankWork& w = split.work[i];
    const int64_t received = w.slots - split.rows(r, r);
    double c = cost.copy_s(2 * received * row);  // regroup into expert-major rows and back
    for (const RankBlock& b : w.blocks) c += cost.block_s(b.slots);
    if (growth) c += growth->compute_s[i];
    compute[i] = c;
  }
  compute_end = run_shared(weights_end, compute);
  const double compute_all = latest(compute_end);
  // Combine: the reverse all-to-all, then the gate-weighted sum (local).
  const double returned = compute_all + a2a_all;
  std::vector<double> combine_busy(P);
  for (int r = 0; r < P; ++r) combine_busy[r] = cost.combine_s(rec[r].slots_routed, split.kept_rows(r));
  const std::vector<double> combined = run_shared(std::vector<double>(static_cast<size_t>(P), returned), combine_busy);
  for (int r = 0; r < P; ++r) {
    const size_t i = static_cast<size_t>(r);
    PhaseTimes& T = rec[i].times;
    auto set = [&](Phase p, double start, double wall, double busy) {
      T.wall_of(p) = wall;
      T.busy_of(p) = busy;
      T.mark_start(p, t0 + start);
    };
    set(Phase::Route, 0.0, route[i], route_busy[i]);
    set(Phase::Plan, route[i], plan_end[i] - route[i], layout_busy[i]);
    set(Phase::Dispatch, plan_end[i], dispatch_end - plan_end[i], permute_busy[i]);
    set(Phase::Weights, dispatch_end, weights_end[i] - dispatch_end, 0.0);
    set(Phase::Compute, weights_end[i], compute_end[i] - weights_end[i], compute[i]);
    set(Phase::Combine, compute_end[i], combined[i] - compute_end[i], combine_busy[i]);
  }
  return rec;
}

WorkspaceGrowth grow_workspaces(const CostModel& cost, const WorkSplit& split, int64_t tile_rows,
                                WorkspaceMarks& marks) {
  const int P = split.num_ranks;
  const int64_t row = cost.row_bytes(), e = cost.element_bytes(), H = cost.shape().ffn;
  WorkspaceGrowth g{std::vector<double>(static_cast<size_t>(P)), std::vector<double>(static_cast<size_t>(P))};
  // A grown buffer is a fresh allocation of the new size (Workspace::lease).
  auto grow = [&](int64_t& mark, int64_t rows, int64_t bytes_per_row) {
    if (rows <= mark) return 0.0;
    mark = rows;
    return cost.first_touch_s(rows * bytes_per_row);
  };
  for (int r = 0; r < P; ++r) {
    const size_t i = static_cast<size_t>(r);
    const RankWork& w = split.work[i];
    int64_t largest = 0;
    for (const RankBlock& b : w.blocks) largest = std::max(largest, b.slots);
    const int64_t local = split.rows(r, r);
    g.dispatch_s[i] = grow(marks.send[i], split.kept_rows(r) - local, row) + grow(marks.recv[i], w.slots - local, row);
    // expert_in and expert_out grow together: the input is written in dispatch, the output in compute.
    const double expert = grow(marks.expert[i], w.slots, row);
    g.dispatch_s[i] += expert;
    g.compute_s[i] = expert + grow(marks.tile[i], largest > 0 ? ffn_workspace_rows(largest, tile_rows) : 0, 3 * H * e);
  }
  return g;
}

SimulationResult simulate(const SimulationConfig& cfg, const SimObserver& observer) {
  if (auto why = validate_simulation_config(cfg); !why.empty()) throw std::invalid_argument(why);
  const RunConfig& run = cfg.run;
  const int P = cfg.ranks;
  const int rpn = cfg.effective_ranks_per_node();
  const std::string dtype = cfg.effective_dtype();
  const ModelShape& shape = run.shape;
  const CostModel cost(cfg.machine, shape, dtype, P, rpn);
  const double scale = static_cast<double>(cost.element_bytes()) / static_cast<double>(sizeof(float));

  std::vector<int64_t> tokens(static_cast<size_t>(P));
  for (int r = 0; r < P; ++r) tokens[static_cast<size_t>(r)] = run.tokens_on(r);
  const SimLoads loads_of(run.scenario, shape, run.drift, run.seed, tokens);
  if (run.scenario.kind == ScenarioSpec::Kind::Trace &&
      (loads_of.trace_steps() < run.steps || loads_of.trace_layers() < run.layers))
    throw std::invalid_argument("--scenario " + run.scenario.text + ": the trace holds " +
                                std::to_string(loads_of.trace_steps()) + " step(s) x " +
                                std::to_string(loads_of.trace_layers()) + " layer(s); --steps " +
                                std::to_string(run.steps) + " --layers " + std::to_string(run.layers) +
                                " need more (tokens are re-sampled to the ranks, steps and layers are not)");

  SimulationResult out;
  out.dtype = dtype;
  out.ranks_per_node = rpn;
  out.compute_source = cost.compute_source();
  ComparisonResult& res = out.comparison;
  res.num_ranks = P;
  res.clocks = simulated_clock_names();
  res.ranks_per_node = std::min(rpn, P);
  for (int r = 0; r < P; ++r) {
    res.node_of_rank.push_back(node_of(r, rpn));
    res.hostnames.push_back("sim-node" + std::to_string(node_of(r, rpn)));
  }
  std::vector<std::unique_ptr<PlacementPolicy>> policies;
  for (const auto& name : run.policies) {
    policies.push_back(make_policy(name, run.params));
    res.policies.push_back(empty_policy_result(policies.back()->name(), policies.back()->exact(), P));
  }
  ResidentLedger ledger;
  WorkspaceMarks marks(P);  // the run's buffers, shared by every layer and policy as in compare

  // One layer-step of one policy, as the layer runs it: plan_step, the
  // replicas it places, the split, the bytes, the times.
  auto run_one = [&](PlacementPolicy& policy, int layer, const LoadMatrix& loads, double t0, Plan& plan) {
    plan = policy.plan_step(StepContext{layer, P}, loads);
    std::vector<WeightTransfer> transfers = plan.transfers;
    std::vector<int64_t> placed(static_cast<size_t>(P), 0);
    if (!plan.resident.empty()) {
      const ResidentLedger::PerRank& before = ledger.held(plan.policy, layer);
      for (int r = 0; r < P; ++r)
        for (int e : plan.resident[static_cast<size_t>(r)]) {
          const bool had =
              static_cast<int>(before.size()) > r && std::binary_search(before[r].begin(), before[r].end(), e);
          if (had) continue;
          transfers.push_back({e, native_rank(e, shape.num_experts, P), r});
          ++placed[static_cast<size_t>(r)];
        }
      ledger.set(plan.policy, layer, plan.resident);
    }
    const WorkSplit split = split_work(plan, SlotOrderMap(loads));
    const NodeTraffic traffic = node_traffic(split, transfers, rpn, cost.row_bytes(), cost.expert_bytes());
    const WorkspaceGrowth growth = grow_workspaces(cost, split, run.layer.tile_rows(shape), marks);
    std::vector<StepRecord> rec = simulate_layer_step(cost, loads, split, traffic, t0, &growth);
    std::vector<int64_t> elsewhere(static_cast<size_t>(P), 0);
    if (!plan.resident.empty())
      for (int r = 0; r < P; ++r) elsewhere[static_cast<size_t>(r)] = ledger.count(plan.policy, r, layer);
    const std::vector<int64_t> peak =
        plan_peak_bytes(plan, loads, split, shape, run.layers, run.layer.ffn_tile_rows, elsewhere);
    for (int r = 0; r < P; ++r) {
      StepRecord& s = rec[static_cast<size_t>(r)];
      s.experts_placed = placed[static_cast<size_t>(r)];
      s.bytes_resident = ledger.count(plan.policy, r) * cost.expert_bytes();
      s.peak_bytes = static_cast<int64_t>(static_cast<double>(peak[static_cast<size_t>(r)]) * scale);
    }
    return rec;
  };

  // Warm-up as compare runs it: `warmup` rounds of step 0, layer 0 per
  // policy (a stateful policy sees them), untimed.
  {
    const LoadMatrix loads = loads_of.at(0, 0);
    Plan plan;
    for (int w = 0; w < run.warmup; ++w)
      for (auto& p : policies) run_one(*p, 0, loads, 0.0, plan);
  }
  double clock = 0.0;  // the run's simulated time line (policies one after another, as compare runs them)
  for (int step = 0; step < run.steps; ++step)
    for (int layer = 0; layer < run.layers; ++layer) {
      const LoadMatrix loads = loads_of.at(step, layer);
      for (size_t pi = 0; pi < policies.size(); ++pi) {
        Plan plan;
        const std::vector<StepRecord> rec = run_one(*policies[pi], layer, loads, clock, plan);
        accumulate_step(res.policies[pi], rec, cost.expert_bytes());
        double end = 0.0;
        for (const auto& s : rec) end = std::max(end, s.times.wall_total());
        clock += end;
        if (observer) observer(res.policies[pi].name, step, layer, rec, loads, plan);
      }
    }
  set_speedups(res);
  return out;
}

}  // namespace moe
