#pragma once
// The emulated cluster behind `moe-ep emulate`: one process computes the real
// plans a P-rank job would make (the policies' own plan() on the loads the
// runtime's scenario sampler produces) and runs each emulated rank's expert
// work in turn on the local device, timing each rank. It measures the compute
// makespan (max over ranks) that a placement policy leaves, without needing P
// devices. Communication is not run: token and weight traffic are counted in
// bytes and, given a link bandwidth, turned into a clearly labelled model.
//
// Per-rank work is what the runtime runs: the rank's slots grouped by expert,
// one expert block (gate/up GEMM, activation, down GEMM) per (expert, rank).
// Weights are not unique per expert: the runner holds one weight buffer per
// block of the largest rank and reuses them, which does not change the GEMMs.

#include <cmath>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "policies/Plan.hpp"
#include "policies/Policy.hpp"
#include "runtime/common/ModelConfig.hpp"
#include "runtime/layer/WorkSplit.hpp"
#include "runtime/workload/Scenario.hpp"

namespace moe {

struct EmulationConfig {
  ModelShape shape;  // shape.tokens: tokens on every emulated rank
  int ranks = 8;     // P
  ScenarioSpec scenario;
  uint64_t seed = 1;
  int step = 0;  // which step's routing (drift applies from step 1 on)
  int layer = 0;
  double drift = 0.0;
  PolicyParams params;
  std::vector<std::string> policies{"ep", "llep"};
  int repeats = 5;            // timed runs per rank; the rank's time is their median
  int warmup = 1;             // untimed runs per rank before those
  int64_t element_bytes = 4;  // bytes of one activation/weight element (the dtype), for traffic
  double link_gbps = 0.0;     // > 0: model traffic time on per-rank links of this many Gbit/s
};

/// "" or a one-line reason naming the flag.
std::string validate_emulation_config(const EmulationConfig& config);

/// Bytes each rank sends and receives.
struct Traffic {
  std::vector<int64_t> token_send, token_recv;    // dispatch + combine of token rows
  std::vector<int64_t> weight_send, weight_recv;  // expert weights moved by the plan
  int64_t token_bytes() const;                    // sent by all ranks
  int64_t weight_bytes() const;                   // sent by all ranks
};

/// Traffic of `plan` for `loads`: a slot computed away from the rank that
/// routed it crosses the network twice (dispatch, combine), `row_bytes` each
/// way; each weight transfer moves `expert_bytes`. Slot origins follow the
/// position order of Plan.hpp (for gate-ordered plans the per-rank split is an
/// approximation; the totals of kept slots are exact).
Traffic plan_traffic(const Plan& plan, const LoadMatrix& loads, int64_t row_bytes, int64_t expert_bytes);

/// Modelled seconds to move per-rank traffic over per-rank links of `gbps`
/// Gbit/s: the busiest rank's max(sent, received) bytes / bandwidth. NaN when
/// gbps <= 0.
double modelled_seconds(const std::vector<int64_t>& send, const std::vector<int64_t>& recv, double gbps);

/// Median of the values (0 for none).
double median(std::vector<double> values);

/// Per-phase split of one rank's time (from one instrumented run).
struct PhaseSplit {
  double gate_up_s = 0.0, activation_s = 0.0, down_s = 0.0;
};

struct PolicyEmulation {
  std::string name;
  bool exact = true;
  Plan plan;
  std::vector<RankWork> work;           // per rank
  std::vector<int64_t> rank_slots;      // per rank
  std::vector<double> rank_time_s;      // per rank: median of the timed runs
  std::vector<PhaseSplit> rank_phases;  // per rank: one instrumented run
  double makespan_s = 0.0;              // max of rank_time_s
  double mean_time_s = 0.0;
  double speedup_vs_ep = NAN;  // EP makespan / this makespan
  Traffic traffic;
  double token_model_s = NAN;   // modelled (link_gbps), not measured
  double weight_model_s = NAN;  // modelled (link_gbps), not measured
  int64_t slots_computed() const;
  int weight_transfers() const { return static_cast<int>(plan.transfers.size()); }
};

struct EmulationResult {
  LoadMatrix loads;
  std::vector<PolicyEmulation> policies;  // "ep" first
  double ep_imbalance = 1.0;              // EP max/mean rank load: the ideal speedup of any rebalancing
  int64_t total_slots = 0;
  std::string runner;  // what ran the experts
};

/// Loads from the runtime's scenario sampler (moe::scenario_load_matrix) and
/// every policy's plan and per-rank work; "ep" is added first when missing.
/// No timing. Throws std::invalid_argument for an invalid config.
EmulationResult plan_emulation(const EmulationConfig& config);

/// Largest rank over all policies: total slots, one block, block count.
struct WorkBounds {
  int64_t max_rank_slots = 0;
  int64_t max_block_slots = 0;
  int max_blocks = 0;
};
WorkBounds work_bounds(const EmulationResult& result);

/// Runs one emulated rank's expert work on the local device.
class RankRunner {
 public:
  virtual ~RankRunner() = default;
  /// What runs the experts, e.g. "cuBLAS bf16 on NVIDIA H100 ..." (for reports).
  virtual std::string describe() const = 0;
  /// Allocates for the largest rank (inputs/outputs, one block's workspace,
  /// one weight buffer per block).
  virtual void reserve(const WorkBounds& bounds) = 0;
  /// Runs the rank's blocks back to back once; returns seconds, synchronised
  /// with the device. With `phases`, the run is instrumented per phase.
  virtual double run(const RankWork& work, PhaseSplit* phases) = 0;
};

/// Called after each run with the runs done and the runs in all.
using EmulationProgress = std::function<void(int done, int total)>;

/// Times every rank of every policy with `runner` and fills the times,
/// makespans, speedups and modelled traffic times. Runs go in rounds over all
/// (policy, rank) pairs: `warmup` untimed rounds, `repeats` timed rounds (a
/// rank's time is the median of its runs), one instrumented round for the
/// phase split. Ranks without work take 0 s.
void time_emulation(const EmulationConfig& config, RankRunner& runner, EmulationResult& result,
                    const EmulationProgress& progress = {});

/// The arithmetic after timing: makespan = max rank time, mean, speedup =
/// EP makespan / makespan, modelled traffic seconds.
void summarize_emulation(const EmulationConfig& config, EmulationResult& result);

/// Host/Kokkos runner: fp32 expert_ffn (gemm_nn + the Kokkos activation) on
/// Kokkos' default execution space, timed by the wall clock around a fence.
std::unique_ptr<RankRunner> make_kokkos_runner(const ModelShape& shape, uint64_t seed);

}  // namespace moe
