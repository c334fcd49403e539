// moe-ep simulate's library: the cost model's arithmetic (hand-computed), the
// per-rank bytes against a slot-by-slot count, the plans against the
// policies' own, machine descriptions through JSON and back, bad input.
#include <map>
#include <stdexcept>

#include <gtest/gtest.h>

#include "policies/Policy.hpp"
#include "runtime/simulate/Calibrate.hpp"
#include "runtime/simulate/CostModel.hpp"
#include "runtime/simulate/Machine.hpp"
#include "runtime/simulate/Simulation.hpp"
#include "runtime/workload/Scenario.hpp"

namespace moe {
namespace {

Machine toy_machine() {
  Machine m;
  m.name = "toy";
  m.ranks_per_node = 2;
  m.default_dtype = "fp32";
  m.peak_flops["fp32"] = 1e12;
  m.memory_bandwidth = 1e11;
  m.launch_overhead_s = 1e-6;
  m.intra_node = {1e9, 1e-6};
  m.inter_node = {1e8, 1e-5};
  return m;
}

ModelShape toy_shape() {
  ModelShape s;
  s.num_experts = 8;
  s.hidden = 4;
  s.ffn = 8;
  s.top_k = 2;
  s.tokens = 64;
  return s;
}

TEST(CostModel, RooflineBlockByHand) {
  const Machine m = toy_machine();
  const CostModel c(m, toy_shape(), "fp32", 4, 2);
  // Weights: (D*2H + H*D) fp32 = (64 + 32) * 4 = 384 bytes. 10 rows:
  // FLOPs 6*4*8*10 = 1920 -> 1.92e-9 s; bytes 384 + 10*(2*4 + 6*8)*4 = 2624
  // -> 2.624e-8 s (memory-bound); + 3 launches.
  EXPECT_EQ(c.expert_bytes(), 384);
  EXPECT_NEAR(c.block_s(10), 2.624e-8 + 3e-6, 1e-15);
  EXPECT_EQ(c.block_s(0), 0.0);
  // bf16 halves the bytes and takes the bf16 peak.
  Machine m2 = m;
  m2.peak_flops["bf16"] = 1e15;
  const CostModel b(m2, toy_shape(), "bf16", 4, 2);
  EXPECT_EQ(b.expert_bytes(), 192);
  EXPECT_NEAR(b.block_s(10), 1.312e-8 + 3e-6, 1e-15);
}

TEST(CostModel, CalibratedTableInterpolatesAndScales) {
  Machine m = toy_machine();
  Calibration cal;
  ShapeCalibration s;
  const ModelShape shape = toy_shape();
  s.hidden = shape.hidden;
  s.ffn = shape.ffn;
  s.experts = shape.num_experts;
  s.top_k = shape.top_k;
  s.rows = {1, 4, 16};
  s.seconds = {1.0, 2.0, 8.0};
  s.route_s_per_token = 0.5;
  s.layout_s_per_slot = 0.25;
  cal.shapes.push_back(s);
  cal.copy_bandwidth = 100.0;
  cal.alltoall = LinkModel{50.0, 0.125};
  m.calibration = cal;
  const CostModel c(m, shape, "fp32", 2, 2);
  EXPECT_DOUBLE_EQ(c.block_s(1), 1.0);
  EXPECT_DOUBLE_EQ(c.block_s(2), 1.0 + 1.0 / 3.0);
  EXPECT_DOUBLE_EQ(c.block_s(10), 2.0 + 0.5 * 6.0);
  EXPECT_DOUBLE_EQ(c.block_s(32), 16.0);  // past the grid: proportional to rows
  EXPECT_DOUBLE_EQ(c.route_s(8), 4.0);
  EXPECT_DOUBLE_EQ(c.layout_s(8, 8), 2.0);
  EXPECT_DOUBLE_EQ(c.copy_s(200), 2.0 + 1e-6);
  EXPECT_DOUBLE_EQ(c.alltoall_s(100, 0), 0.125 + 2.0);  // the measured all-to-all replaces intra_node
  // Another dtype is not calibrated: the roofline.
  m.peak_flops["bf16"] = 1e15;
  const CostModel r(m, shape, "bf16", 2, 2);
  EXPECT_EQ(r.compute_source(), "roofline");
}

TEST(CostModel, LinksByHand) {
  const Machine m = toy_machine();
  const CostModel two_nodes(m, toy_shape(), "fp32", 4, 2);
  // Slower link of the two + the larger latency when the job spans nodes.
  EXPECT_NEAR(two_nodes.alltoall_s(1000000, 100000), 1e-5 + 1e-3, 1e-12);
  EXPECT_NEAR(two_nodes.alltoall_s(3000000, 0), 1e-5 + 3e-3, 1e-12);
  const CostModel one_node(m, toy_shape(), "fp32", 2, 2);
  EXPECT_NEAR(one_node.alltoall_s(1000000, 0), 1e-6 + 1e-3, 1e-12);
  EXPECT_EQ(CostModel(m, toy_shape(), "fp32", 1, 2).alltoall_s(5, 5), 0.0);
  // All-gather: ceil(log2 4) = 2 latencies (inter-node) + bytes / inter bandwidth.
  EXPECT_NEAR(two_nodes.allgather_s(1000), 2e-5 + 1e-5, 1e-12);
  EXPECT_THROW(CostModel(m, toy_shape(), "bf16", 4, 2), std::invalid_argument);
}

// Rows routed on q and computed on d, slot by slot from the plan's ranges
// over the position order (independent of split_work).
std::vector<int64_t> slot_by_slot_flow(const Plan& plan, const LoadMatrix& loads) {
  const int P = loads.num_ranks, N = loads.num_experts;
  std::vector<int64_t> flow(static_cast<size_t>(P) * P, 0);
  for (int e = 0; e < N; ++e) {
    int64_t pos = 0;
    for (int q = 0; q < P; ++q)
      for (int64_t i = 0; i < loads.at(q, e); ++i, ++pos)
        for (const SlotRange& r : plan.assignments[e])
          if (pos >= r.start && pos < r.end) ++flow[static_cast<size_t>(q) * P + r.rank];
  }
  return flow;
}

SimulationConfig small_config(int P, int rpn, const std::string& scenario) {
  SimulationConfig c;
  c.machine = load_machine("h100-node");
  c.ranks = P;
  c.ranks_per_node = rpn;
  c.run.shape = preset_shape("small");
  c.run.shape.tokens = 256;
  c.run.scenario = ScenarioSpec::parse(scenario);
  c.run.steps = 3;
  c.run.layers = 2;
  c.run.drift = 0.2;
  c.run.policies = policy_names();
  return c;
}

TEST(Simulation, PerRankBytesMatchASlotBySlotCount) {
  const SimulationConfig cfg = small_config(8, 4, "zipf:1.2");
  const int64_t row = cfg.run.shape.hidden * 2;  // bf16
  const int64_t expert = cfg.run.shape.expert_weight_bytes() / 2;
  int checked = 0;
  simulate(cfg, [&](const std::string& policy, int, int, const std::vector<StepRecord>& rec, const LoadMatrix& loads,
                    const Plan& plan) {
    if (!plan.resident.empty()) return;  // placements depend on earlier steps: checked by the totals below
    const int P = loads.num_ranks;
    const std::vector<int64_t> flow = slot_by_slot_flow(plan, loads);
    for (int r = 0; r < P; ++r) {
      int64_t rows = 0, inter = 0;
      for (int p = 0; p < P; ++p) {
        if (p == r) continue;
        const int64_t n = flow[static_cast<size_t>(r) * P + p] + flow[static_cast<size_t>(p) * P + r];
        rows += n;
        if (p / 4 != r / 4) inter += n;
      }
      EXPECT_EQ(rec[r].bytes_tokens_sent, rows * row) << policy << " rank " << r;
      EXPECT_EQ(rec[r].bytes_tokens_sent_inter_node, inter * row) << policy << " rank " << r;
      int64_t w_sent = 0, w_recv = 0, w_inter = 0;
      for (const WeightTransfer& t : plan.transfers) {
        if (t.src == r) w_sent += expert;
        if (t.dst == r) w_recv += expert;
        if (t.src == r && t.dst / 4 != r / 4) w_inter += expert;
      }
      EXPECT_EQ(rec[r].bytes_weights_sent, w_sent) << policy;
      EXPECT_EQ(rec[r].bytes_weights_recv, w_recv) << policy;
      EXPECT_EQ(rec[r].bytes_weights_sent_inter_node, w_inter) << policy;
      int64_t routed = 0;
      for (int e = 0; e < loads.num_experts; ++e) routed += loads.at(r, e);
      EXPECT_EQ(rec[r].slots_routed, routed);
    }
    ++checked;
  });
  EXPECT_GT(checked, 0);
}

TEST(Simulation, PlansAreThePoliciesOwnStepByStep) {
  const SimulationConfig cfg = small_config(4, 2, "95:1");
  std::map<std::string, std::unique_ptr<PlacementPolicy>> own;
  for (const auto& n : cfg.run.policies) own[n] = make_policy(n, cfg.run.params);
  std::vector<int64_t> tokens(4, cfg.run.shape.tokens);
  auto loads_at = [&](int step, int layer) {
    return scenario_load_matrix(cfg.run.scenario, cfg.run.shape, cfg.run.drift, cfg.run.seed, step, layer, tokens);
  };
  for (int w = 0; w < cfg.run.warmup; ++w)  // compare's warm-up: step 0, layer 0
    for (const auto& n : cfg.run.policies) own[n]->plan_step(StepContext{0, 4}, loads_at(0, 0));
  int seen = 0;
  simulate(cfg, [&](const std::string& policy, int step, int layer, const std::vector<StepRecord>&,
                    const LoadMatrix& loads, const Plan& plan) {
    const LoadMatrix expect = loads_at(step, layer);
    EXPECT_EQ(loads.counts, expect.counts);
    EXPECT_EQ(plan, own[policy]->plan_step(StepContext{layer, 4}, expect)) << policy << " step " << step;
    ++seen;
  });
  EXPECT_EQ(seen, 3 * 2 * static_cast<int>(cfg.run.policies.size()));
}

TEST(Simulation, StepWallIsTheSlowestRankAndEpIsSlowerWhenSkewed) {
  SimulationConfig cfg = small_config(8, 8, "95:1");
  cfg.run.shape = preset_shape("gpt-oss-120b");
  cfg.run.shape.tokens = 8192;
  cfg.run.policies = {"ep", "llep"};
  const SimulationResult r = simulate(cfg);
  const auto& ep = r.comparison.policies[0];
  const auto& llep = r.comparison.policies[1];
  EXPECT_GT(ep.wall_s, llep.wall_s);
  EXPECT_GT(ep.slot_imbalance(), 3.0);
  EXPECT_GE(ep.wall_s, ep.makespan_s);
  EXPECT_EQ(r.comparison.num_ranks, 8);
}

TEST(Machine, BuiltinsAndCalibrationsRoundTripThroughJson) {
  for (const auto& name : builtin_machine_names()) {
    const Machine m = load_machine(name);
    EXPECT_EQ(m.name, name);
    EXPECT_FALSE(m.sources.empty()) << name << ": every number needs a source";
    EXPECT_EQ(parse_machine(machine_json(m), "round trip"), m) << name;
  }
  Machine m = toy_machine();
  Calibration cal;
  cal.shapes.push_back({4, 8, 8, 2, Activation::GptOss, {1, 2}, {1e-5, 2e-5}, 1e-7, 2e-8});
  cal.alltoall = LinkModel{1e9, 2e-6};
  cal.copy_bandwidth = 3e9;
  cal.ranks = 2;
  m.calibration = cal;
  EXPECT_EQ(parse_machine(machine_json(m), "round trip"), m);
  // first_touch_bandwidth is optional (calibrations written before it load as 0).
  EXPECT_EQ(machine_json(m).find("first_touch_bandwidth"), std::string::npos);
  m.calibration->first_touch_bandwidth = 5e8;
  EXPECT_EQ(parse_machine(machine_json(m), "round trip"), m);
  // So are compute_units and the layer stages' per-slot times.
  m.calibration->compute_units = 2.5;
  m.calibration->compute_units_blocks = 2.75;
  m.calibration->shapes[0].permute_s_per_slot = 3e-8;
  m.calibration->shapes[0].combine_s_per_slot = 4e-8;
  m.calibration->shapes[0].layout_s_per_kept_slot = 5e-8;
  m.calibration->shapes[0].combine_s_per_kept_slot = 6e-8;
  EXPECT_EQ(parse_machine(machine_json(m), "round trip"), m);
}

TEST(Simulation, WorkspacesGrowOnceAndChargeTheirFirstTouch) {
  Machine m = toy_machine();
  Calibration cal;
  cal.first_touch_bandwidth = 16.0;  // bytes/s: times below are bytes / 16
  m.calibration = cal;
  const ModelShape shape = toy_shape();  // D = 4, H = 8, N = 8
  const CostModel c(m, shape, "fp32", 2, 2);
  EXPECT_DOUBLE_EQ(c.first_touch_s(32), 2.0);
  EXPECT_EQ(CostModel(toy_machine(), shape, "fp32", 2, 2).first_touch_s(32), 0.0);  // not calibrated: 0
  // Two ranks, EP: rank 0 holds experts 0-3, rank 1 experts 4-7.
  LoadMatrix loads(2, 8);
  loads.at(0, 0) = 3;  // 3 rows local to rank 0
  loads.at(0, 5) = 2;  // 2 rows rank 0 -> rank 1
  loads.at(1, 5) = 1;  // 1 row local to rank 1
  const Plan plan = make_policy("ep", PolicyParams{})->plan(loads, 2);
  const WorkSplit split = split_work(plan, SlotOrderMap(loads));
  WorkspaceMarks marks(2);
  const int64_t row = 16;  // 4 floats
  const WorkspaceGrowth g = grow_workspaces(c, split, 64, marks);
  // Rank 0: send 2 rows, receive 0, 3 expert rows (in and out), a 3-row tile of 3H floats.
  EXPECT_DOUBLE_EQ(g.dispatch_s[0], (2 * row + 3 * row) / 16.0);
  EXPECT_DOUBLE_EQ(g.compute_s[0], (3 * row + 3 * 3 * 8 * 4) / 16.0);
  // Rank 1: send 0, receive 2, 3 expert rows, a 3-row tile.
  EXPECT_DOUBLE_EQ(g.dispatch_s[1], (2 * row + 3 * row) / 16.0);
  EXPECT_EQ(marks.expert[1], 3);
  // The same step again: nothing grows.
  const WorkspaceGrowth again = grow_workspaces(c, split, 64, marks);
  EXPECT_EQ(again.dispatch_s[0] + again.dispatch_s[1] + again.compute_s[0] + again.compute_s[1], 0.0);
}

TEST(CostModel, LayerStagesFromTheCalibration) {
  Machine m = toy_machine();
  Calibration cal;
  const ModelShape shape = toy_shape();
  cal.shapes.push_back(
      {shape.hidden, shape.ffn, shape.num_experts, shape.top_k, shape.activation, {1}, {1.0}, 0.0, 0.25, 0.5, 2.0});
  cal.copy_bandwidth = 16.0;  // bytes/s; a row is 16 bytes
  m.calibration = cal;
  const CostModel c(m, shape, "fp32", 4, 4);
  EXPECT_DOUBLE_EQ(c.layout_s(8, 8), 2.0);
  EXPECT_DOUBLE_EQ(c.layout_s(8, 2), 2.0);  // no per-kept part: the routed slots only
  EXPECT_DOUBLE_EQ(c.permute_s(8), 4.0);
  EXPECT_DOUBLE_EQ(c.combine_s(8, 8), 16.0);
  // The parts per kept slot: 8 slots routed, 2 kept (capacity dropped 6).
  m.calibration->shapes[0].layout_s_per_kept_slot = 0.125;
  m.calibration->shapes[0].combine_s_per_kept_slot = 1.0;
  const CostModel k(m, shape, "fp32", 4, 4);
  EXPECT_DOUBLE_EQ(k.layout_s(8, 2), 8 * 0.25 + 2 * 0.125);
  EXPECT_DOUBLE_EQ(k.combine_s(8, 2), 8 * 2.0 + 2 * 1.0);
  // Not calibrated: the row-copy model (8 rows of 16 bytes at 16 bytes/s + a launch).
  m.calibration->shapes[0].permute_s_per_slot = m.calibration->shapes[0].combine_s_per_slot = 0.0;
  m.calibration->shapes[0].combine_s_per_kept_slot = 0.0;
  const CostModel u(m, shape, "fp32", 4, 4);
  EXPECT_DOUBLE_EQ(u.permute_s(8), 8.0 + 1e-6);
  EXPECT_DOUBLE_EQ(u.combine_s(8, 8), 8.0 + 1e-6);
}

// EP on the ranks of `loads`, all on one node: the split and its traffic
// (the toy shape's 16-byte rows and 384-byte experts).
struct EpOnOneNode {
  WorkSplit split;
  NodeTraffic traffic;
};
EpOnOneNode ep_on_one_node(const LoadMatrix& loads) {
  const int P = loads.num_ranks;
  const Plan plan = make_policy("ep", PolicyParams{})->plan(loads, P);
  WorkSplit split = split_work(plan, SlotOrderMap(loads));
  NodeTraffic traffic = node_traffic(split, {}, P, 16, 384);
  return {std::move(split), std::move(traffic)};
}

TEST(Simulation, RanksSharingComputeUnitsFinishByProcessorSharing) {
  Machine m = toy_machine();
  m.launch_overhead_s = 0.0;
  Calibration cal;
  const ModelShape shape = toy_shape();
  cal.shapes.push_back(
      {shape.hidden, shape.ffn, shape.num_experts, shape.top_k, shape.activation, {1, 4}, {1.0, 2.0}, 0.25, 0.0});
  cal.copy_bandwidth = 1e12;
  m.calibration = cal;
  // Two ranks, EP, every row local: rank 0 one row of expert 0 (1 s alone),
  // rank 1 four rows of expert 5 (2 s alone).
  LoadMatrix loads(2, 8);
  loads.at(0, 0) = 1;
  loads.at(1, 5) = 4;
  const EpOnOneNode ep = ep_on_one_node(loads);
  auto compute_walls = [&](double units) {
    m.calibration->compute_units = units;
    const CostModel c(m, shape, "fp32", 2, 2);
    std::vector<StepRecord> rec = simulate_layer_step(c, loads, ep.split, ep.traffic, 0.0, nullptr);
    EXPECT_DOUBLE_EQ(rec[0].times.busy_of(Phase::Compute), 1.0);
    EXPECT_DOUBLE_EQ(rec[1].times.busy_of(Phase::Compute), 2.0);
    // Routing (0.25 s per token) is shared the same way, but rank 1 routes
    // its 2 tokens alone (rank 0 has no whole token): full speed at any units.
    EXPECT_DOUBLE_EQ(rec[1].times.busy_of(Phase::Route), 0.5);
    EXPECT_DOUBLE_EQ(rec[1].times.wall_of(Phase::Route), 0.5);
    return std::pair{rec[0].times.wall_of(Phase::Compute), rec[1].times.wall_of(Phase::Compute)};
  };
  // A unit per rank: each alone.
  EXPECT_EQ(compute_walls(0.0), std::pair(1.0, 2.0));
  EXPECT_EQ(compute_walls(2.0), std::pair(1.0, 2.0));
  // One unit: both at half speed until rank 0 is done (t = 2), then rank 1's
  // last second at full speed (t = 3).
  const auto [w0, w1] = compute_walls(1.0);
  EXPECT_NEAR(w0, 2.0, 1e-12);
  EXPECT_NEAR(w1, 3.0, 1e-12);
}

// The local stages share the units like the compute: a rank whose permute
// outlasts the other's (here: faulting in a grown receive buffer) runs alone,
// at full speed, for the rest; equal permutes on one unit take twice as long.
TEST(Simulation, ALongLocalStageRunsAloneOnceTheOthersAreDone) {
  Machine m = toy_machine();
  m.launch_overhead_s = 0.0;
  Calibration cal;
  const ModelShape shape = toy_shape();
  cal.shapes.push_back(
      {shape.hidden, shape.ffn, shape.num_experts, shape.top_k, shape.activation, {1}, {1e-9}, 0.0, 0.0, 0.0, 0.0});
  cal.copy_bandwidth = 1e18;  // copies take no time: only the growth below counts
  cal.compute_units = 1.0;    // two ranks on one unit
  m.calibration = cal;
  LoadMatrix loads(2, 8);
  loads.at(0, 0) = 2;
  loads.at(1, 5) = 2;
  const EpOnOneNode ep = ep_on_one_node(loads);
  const CostModel c(m, shape, "fp32", 2, 2);
  auto permute_walls = [&](double grow0, double grow1) {
    const WorkspaceGrowth g{{grow0, grow1}, {0.0, 0.0}};
    std::vector<StepRecord> rec = simulate_layer_step(c, loads, ep.split, ep.traffic, 0.0, &g);
    EXPECT_NEAR(rec[1].times.busy_of(Phase::Dispatch), grow1, 1e-9);                   // CPU time: the demand itself
    return rec[0].times.wall_of(Phase::Plan) + rec[0].times.wall_of(Phase::Dispatch);  // gathered -> dispatch end
  };
  EXPECT_NEAR(permute_walls(0.0, 3.0), 3.0, 1e-4);  // rank 1 alone
  EXPECT_NEAR(permute_walls(3.0, 3.0), 6.0, 1e-4);  // both at half speed
  EXPECT_NEAR(permute_walls(1.0, 3.0), 4.0, 1e-4);  // 2 s at half speed, then rank 1's last 2 s alone
}

// calibrate's fit of compute_units inverts the model: the wall time a
// balanced EP layer-step takes at 1.5 units gives back 1.5; walls beyond what
// 1 or all units give clamp to those bounds.
TEST(Calibrate, FitComputeUnitsRecoversTheUnitsOfAGivenWall) {
  Machine m = toy_machine();
  m.ranks_per_node = 4;
  m.launch_overhead_s = 0.0;
  Calibration cal;
  ModelShape shape = toy_shape();
  cal.shapes.push_back({shape.hidden,
                        shape.ffn,
                        shape.num_experts,
                        shape.top_k,
                        shape.activation,
                        {1, 64},
                        {1e-3, 8e-3},
                        1e-5,
                        2e-6,
                        1e-6,
                        3e-6});
  cal.copy_bandwidth = 1e9;
  cal.alltoall = LinkModel{1e9, 1e-5};
  cal.compute_units = 1.5;
  m.calibration = cal;
  SimulationConfig c;
  c.machine = m;
  c.ranks = 4;
  c.run.shape = shape;
  c.run.scenario = ScenarioSpec::parse("balanced");
  c.run.policies = {"ep"};
  const double wall = simulate(c).comparison.policies.front().wall_s;
  Machine fit = m;
  EXPECT_NEAR(fit_compute_units(fit, shape, shape.tokens, wall, 4, c.run.seed), 1.5, 2e-3);
  EXPECT_NEAR(fit.calibration->compute_units, 1.5, 2e-3);
  EXPECT_EQ(fit_compute_units(fit, shape, shape.tokens, wall * 100.0, 4, c.run.seed), 1.0);
  EXPECT_EQ(fit_compute_units(fit, shape, shape.tokens, wall / 100.0, 4, c.run.seed), 4.0);
  EXPECT_EQ(fit_compute_units(fit, shape, shape.tokens, wall / 100.0, 4, c.run.seed, 2.0), 2.0);  // 2 CPUs
}

TEST(Machine, BadDescriptionsNameTheField) {
  const std::string good = machine_json(toy_machine());
  auto refuse = [&](const std::string& text, const std::string& field) {
    try {
      parse_machine(text, "x.json");
      ADD_FAILURE() << "accepted: " << text;
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(field), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("--machine"), std::string::npos) << e.what();
    }
  };
  refuse("{", "not valid JSON");
  std::string no_bw = good;
  no_bw.replace(no_bw.find("\"memory_bandwidth\""), 18, "\"memory_bandwidthX\"");
  refuse(no_bw, "memory_bandwidth");
  std::string neg = good;
  neg.replace(neg.find("\"ranks_per_node\": 2"), 19, "\"ranks_per_node\": 0");
  refuse(neg, "ranks_per_node");
  Machine units = toy_machine();
  units.calibration = Calibration{};
  units.calibration->compute_units = 1.5;
  std::string half = machine_json(units);
  half.replace(half.find("\"compute_units\": 1.5"), 20, "\"compute_units\": 0.5");
  refuse(half, "calibration.compute_units");
  EXPECT_THROW(load_machine("no-such-machine"), std::invalid_argument);
}

TEST(Simulation, BadConfigNamesTheFlag) {
  SimulationConfig c = small_config(3, 2, "balanced");
  EXPECT_NE(validate_simulation_config(c).find("divisible by the number of ranks"), std::string::npos);
  c = small_config(4, 2, "balanced");
  c.dtype = "fp16";
  EXPECT_NE(validate_simulation_config(c).find("--dtype"), std::string::npos);
  c = small_config(4, 2, "router");
  EXPECT_THROW(simulate(c), std::invalid_argument);
}

}  // namespace
}  // namespace moe
