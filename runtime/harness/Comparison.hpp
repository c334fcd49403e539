#pragma once
// Runs several placement policies side by side on identical inputs: the same
// seeds, routing, weights and kernels; per step and layer the inputs are made
// once and every policy runs on them in turn.

#include <cmath>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "comm/Communicator.hpp"
#include "policies/Plan.hpp"
#include "policies/Policy.hpp"
#include "runtime/common/ModelConfig.hpp"
#include "runtime/io/LayerDump.hpp"
#include "runtime/layer/MoeLayer.hpp"
#include "runtime/layer/StepRecord.hpp"
#include "runtime/workload/Scenario.hpp"

namespace moe {

struct RunConfig {
  ModelShape shape;
  std::vector<int64_t> tokens_per_rank;  // empty: shape.tokens on every rank
  ScenarioSpec scenario;
  double drift = 0.1;  // routing drift between steps (see Scenario.hpp)
  uint64_t seed = 1;
  int steps = 1;
  int layers = 1;
  int warmup = 1;  // untimed steps per policy before measuring
  bool check = false;
  bool dump = false;            // --dump: gather the first measured (step, layer) on rank 0 (ComparisonResult::dump)
  bool quiet = false;           // no progress on stderr
  double mem_budget_mib = 0.0;  // per-rank budget of the runtime's buffers; 0 = none
  PolicyParams params;
  std::vector<std::string> policies{"ep"};
  LayerOptions layer;  // how the layer runs (FFN tile; layer.backward: --backward, forward + backward per layer-step)
  bool backward() const { return layer.backward; }

  int64_t tokens_on(int rank) const {
    return tokens_per_rank.empty() ? shape.tokens : tokens_per_rank[static_cast<size_t>(rank)];
  }
};

/// Checks a run config for `num_ranks` ranks: "" or a one-line reason naming the flag.
std::string validate_run_config(const RunConfig& config, int num_ranks);

/// The nodes of a run on `comm` (--ranks-per-node). A value the user gave
/// (> 0) is what the run models: llep-topo plans with nodes of that many
/// consecutive ranks and the layers count intra/inter-node bytes with the same
/// nodes (config.layer.ranks_per_node), e.g. 2 nodes faked on one machine.
/// Left at 0, it becomes the size of the communicator's first node (MPI's
/// shared-memory split; with nodes of unequal size, the first one's) for
/// llep-topo, and the bytes are counted with the communicator's own nodes.
/// Collective (the first node_of_rank() is).
void resolve_ranks_per_node(RunConfig& config, Communicator& comm);

struct PolicyResult {
  std::string name;
  bool exact = true;
  std::string status = "ok";  // "ok" or "oom"
  std::string status_detail;
  std::vector<int64_t> rank_slots;       // slots computed, summed over measured layer-steps
  std::vector<double> rank_busy_s;       // busy seconds, summed likewise
  std::vector<int64_t> rank_peak_bytes;  // max over layer-steps
  int64_t token_bytes = 0;               // bytes of tokens sent between ranks, all ranks
  int64_t weight_bytes = 0;              // bytes of expert weights sent, all ranks
  int64_t placement_bytes = 0;           // part of weight_bytes that placed resident replicas
  int64_t dropped_slots = 0;
  int64_t routed_slots = 0;  // all ranks' slots over the measured layer-steps
  double makespan_s = 0.0;   // sum over layer-steps of the max busy over ranks
  double wall_s = 0.0;       // sum over layer-steps of the max step wall time over ranks
  double speedup_vs_ep = NAN;
  std::optional<double> max_rel_err;       // vs the reference with the same slots dropped
  std::optional<double> max_rel_err_full;  // vs the full reference (the price of dropping)
  std::optional<double> alpha_used;        // LLEP under --mem-budget: the smallest alpha it needed
  int oom_steps = 0;                       // layer-steps not run because the plan did not fit
  // --backward --check: per gradient tensor (dx, dw_r, dw_gu, dw_d, db_gu,
  // db_d), max over layer-steps (and, for the experts', over experts) of
  // max |got - ref| / max |ref|, against the reference backward with the same
  // slots dropped; empty without the check.
  std::map<std::string, double> grad_rel_err;
  std::optional<double> grad_err_input() const { return grad_err_of({"dx"}); }
  std::optional<double> grad_err_router() const { return grad_err_of({"dw_r"}); }
  std::optional<double> grad_err_expert() const { return grad_err_of({"dw_gu", "dw_d", "db_gu", "db_d"}); }
  /// The gradient tensor with the largest relative error ("" when none).
  std::string grad_worst_tensor() const;
  int64_t grad_token_bytes = 0;   // --backward: gradient rows sent between ranks, all ranks
  int64_t grad_weight_bytes = 0;  // --backward: partial expert gradients returned to native ranks

  double imbalance_sum = 0.0;  // sum over layer-steps of max/mean rank slots
  int executed_steps = 0;      // layer-steps run (not OOM)
  /// Per rank, every metric of the schema (StepMetrics.hpp) combined over the
  /// measured layer-steps by its aggregate (sum, max); the JSON's per_rank.
  std::vector<StepRecord> rank_totals;
  int64_t token_bytes_inter_node = 0;   // part of token_bytes sent to another node
  int64_t weight_bytes_inter_node = 0;  // part of weight_bytes sent to another node

  /// Mean over layer-steps of each step's max/mean rank slots (routing drifts
  /// between steps, so the imbalance of the summed slots would understate it).
  double slot_imbalance() const;
  /// Per rank, the most bytes of resident replicas it held in a layer-step.
  std::vector<int64_t> rank_resident_bytes() const;
  int64_t max_resident_bytes() const;
  double mean_busy_s() const;
  double dropped_percent() const { return routed_slots > 0 ? 100.0 * dropped_slots / routed_slots : 0.0; }

 private:
  std::optional<double> grad_err_of(std::initializer_list<const char*> names) const;
};

struct ComparisonResult {
  int num_ranks = 0;
  std::vector<std::string> hostnames;  // per rank
  std::vector<int> node_of_rank;       // from the communicator (shared-memory split)
  int ranks_per_node = 0;              // the most ranks on one node
  std::vector<PolicyResult> policies;
  /// The clocks of the phase times (JSON "clocks"; docs/timeline-format.md, "Clocks").
  PhaseClockNames clocks;
  /// With RunConfig::dump, on rank 0: step 0, layer 0's inputs, weights and
  /// every policy's routing and output (docs/dump.md); written by the caller.
  std::optional<LayerDump> dump;
  /// Fastest exact policy that completed (empty when none).
  std::string fastest_exact() const;
};

/// A policy's result before its first layer-step, sized for `num_ranks` ranks.
PolicyResult empty_policy_result(const std::string& name, bool exact, int num_ranks);
/// Adds one layer-step's per-rank records to a policy's totals: slots, busy
/// time, every metric of the schema by its aggregate, bytes, and the step's
/// makespan (max busy) and wall time (max over ranks of the phases' wall
/// time). `expert_bytes`: bytes of one expert's weights (placement_bytes).
/// What `compare` and `simulate` both report.
void accumulate_step(PolicyResult& result, const std::vector<StepRecord>& per_rank, int64_t expert_bytes);
/// speedup_vs_ep of every policy that ran: EP makespan / its makespan.
void set_speedups(ComparisonResult& result);

/// Called on rank 0 after each (step, layer, policy) with every rank's record.
using StepObserver = std::function<void(const std::string& policy, int step, int layer,
                                        const std::vector<StepRecord>& per_rank, const LoadMatrix& loads)>;

/// Runs the comparison; collective over `comm`. The result is complete on rank 0.
ComparisonResult run_comparison(const RunConfig& config, Communicator& comm, const StepObserver& observer = {});

}  // namespace moe
