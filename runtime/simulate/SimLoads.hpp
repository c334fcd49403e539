#pragma once
// The per-rank expert loads a simulated P-rank job routes at each (step,
// layer): a synthetic scenario through the runtime's own sampler
// (scenario_load_matrix: what `compare` routes, drift included), or a
// recorded trace re-sampled to P ranks (docs/simulation.md, "Traces").

#include <cstdint>
#include <memory>
#include <vector>

#include "policies/Plan.hpp"
#include "runtime/common/ModelConfig.hpp"
#include "runtime/workload/Scenario.hpp"

namespace moe {

class TraceReader;

class SimLoads {
 public:
  /// Throws std::invalid_argument naming --scenario for the router scenario
  /// (it needs real tokens through a real router), InputError for a bad trace.
  SimLoads(const ScenarioSpec& spec, const ModelShape& shape, double drift, uint64_t seed,
           std::vector<int64_t> tokens_per_rank);
  ~SimLoads();
  SimLoads(const SimLoads&) = delete;
  SimLoads& operator=(const SimLoads&) = delete;

  /// Loads at (step, layer). Trace: the job's global token g (rank r's tokens
  /// follow ranks 0..r-1's) replays the trace's token g mod T (T: the tokens
  /// the trace holds per step and layer), so a trace recorded on fewer ranks
  /// (or fewer tokens) is tiled over the P ranks, and a larger one is cut.
  LoadMatrix at(int step, int layer) const;

  /// Steps and layers the trace holds (0 for a synthetic scenario).
  int64_t trace_steps() const;
  int64_t trace_layers() const;

 private:
  ScenarioSpec spec_;
  ModelShape shape_;
  double drift_;
  uint64_t seed_;
  std::vector<int64_t> tokens_;
  std::unique_ptr<TraceReader> trace_;
};

}  // namespace moe
