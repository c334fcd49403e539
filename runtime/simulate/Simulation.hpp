#pragma once
// `moe-ep simulate`: one process, no MPI, no kernels. For every (step, layer)
// the loads come from the runtime's own scenario sampler (or a re-sampled
// trace), every policy plans through its own plan_step (stateful EPLB
// included, fed exactly as the runtime feeds it), split_work / node_traffic
// derive each rank's work and bytes (the runtime's one derivation), and the
// cost model turns them into per-rank phase times, collectives waiting for
// the slowest rank. The result has the shape of `compare`'s, so its table,
// JSON and HDF5 timeline are written by the same code (docs/simulation.md).

#include <functional>
#include <string>
#include <vector>

#include "policies/Plan.hpp"
#include "runtime/harness/Comparison.hpp"
#include "runtime/layer/StepRecord.hpp"
#include "runtime/layer/WorkSplit.hpp"
#include "runtime/simulate/CostModel.hpp"
#include "runtime/simulate/Machine.hpp"

namespace moe {

struct SimulationConfig {
  RunConfig run;           // shape, tokens, scenario, drift, seed, steps, layers, warmup, params, policies
  int ranks = 8;           // P
  int ranks_per_node = 0;  // 0: the machine's
  std::string dtype;       // "bf16" or "fp32"; "": the machine's default
  Machine machine;

  int effective_ranks_per_node() const { return ranks_per_node > 0 ? ranks_per_node : machine.ranks_per_node; }
  std::string effective_dtype() const { return dtype.empty() ? machine.default_dtype : dtype; }
};

/// "" or a one-line reason naming the flag.
std::string validate_simulation_config(const SimulationConfig& config);

/// Called after each simulated (step, layer, policy), in the order `compare`
/// runs them, with the per-rank records and the plan.
using SimObserver =
    std::function<void(const std::string& policy, int step, int layer, const std::vector<StepRecord>& per_rank,
                       const LoadMatrix& loads, const Plan& plan)>;

struct SimulationResult {
  ComparisonResult comparison;  // what compare reports (hostnames: "sim-node<N>")
  std::string compute_source;   // CostModel::compute_source()
  std::string dtype;
  int ranks_per_node = 1;
};

/// Runs the simulation. Throws std::invalid_argument for an invalid config.
SimulationResult simulate(const SimulationConfig& config, const SimObserver& observer = {});

/// The high-water marks, per rank, of the runtime's step buffers
/// (LayerWorkspaces: shared by every layer and policy of a run, they only
/// grow), in rows.
struct WorkspaceMarks {
  std::vector<int64_t> send, recv, expert, tile;
  explicit WorkspaceMarks(int P = 0) : send(P), recv(P), expert(P), tile(P) {}
};
/// Per rank, the first-touch time of the buffers this layer-step grows
/// (CostModel::first_touch_s of each grown buffer's new size), split by the
/// phase that first writes them: the send buffer, the received rows and the
/// expert-major input in dispatch; the expert-major output and the FFN's row
/// tile (`tile_rows`: LayerOptions::tile_rows) in compute. Updates `marks`.
struct WorkspaceGrowth {
  std::vector<double> dispatch_s, compute_s;
};
WorkspaceGrowth grow_workspaces(const CostModel& cost, const WorkSplit& split, int64_t tile_rows,
                                WorkspaceMarks& marks);

/// The per-rank phase times of one layer-step that starts at `t0` on every
/// rank (docs/simulation.md, "Timing"), and the counters the runtime records
/// (slots, bytes intra/inter-node, imported experts) from the split and the
/// node traffic. Peak and resident bytes are left 0 (the caller's).
std::vector<StepRecord> simulate_layer_step(const CostModel& cost, const LoadMatrix& loads, const WorkSplit& split,
                                            const NodeTraffic& traffic, double t0,
                                            const WorkspaceGrowth* growth = nullptr);

}  // namespace moe
