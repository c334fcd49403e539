#pragma once
// `moe-ep calibrate`: measures this machine's costs with the runtime's own
// kernels and communicator, on every rank of the job at once (so the figures
// include what ranks sharing a node cost each other), and returns them as a
// machine description with a calibration (docs/simulation.md).

#include <cstdint>
#include <functional>
#include <string>

#include "comm/Communicator.hpp"
#include "runtime/common/ModelConfig.hpp"
#include "runtime/simulate/Machine.hpp"
#include "runtime/workload/Scenario.hpp"

namespace moe {

struct CalibrateConfig {
  ModelShape shape;              // shape.tokens: tokens per rank for routing and layout timing
  ScenarioSpec scenario;         // routing whose sampler the route timing includes
  int64_t max_rows = 65536;      // the expert-block grid: 1, 2, 4, ... up to this
  double budget_s = 60.0;        // stop growing the grid once the FFN timing took this long
  double min_time_s = 0.05;      // time each point for at least this long (and >= 3 runs)
  int64_t comm_bytes = 8 << 20;  // bytes each rank sends per bandwidth measurement
  uint64_t seed = 1;
  std::string name;  // the description's name
};

/// Called on rank 0 with a progress line.
using CalibrateProgress = std::function<void(const std::string& line)>;

/// Collective over `comm`. The result (the same on every rank) is a machine
/// description: its calibration holds the measurements, and its roofline
/// figures are derived from them (peak = the largest block's FLOP rate,
/// memory bandwidth = twice the row-copy rate, intra_node = the measured
/// all-to-all, inter_node = the same: one node measures no inter-node link).
Machine calibrate(const CalibrateConfig& config, Communicator& comm, const CalibrateProgress& progress = {});

/// The compute units in [1, min(m.ranks_per_node, max_units)] (max_units <
/// 1: no second bound) at which `simulate` of one EP layer-step of balanced
/// routing (`tokens` per rank, on `ranks` ranks, after a warm-up) takes
/// `measured_wall_s` on `m` (bisection; the bound when even it is off). Sets
/// m.calibration->compute_units to it and returns it. calibrate uses it on
/// CPU nodes, bounded by their CPUs (docs/simulation.md).
double fit_compute_units(Machine& m, const ModelShape& shape, int64_t tokens, double measured_wall_s, int ranks,
                         uint64_t seed, double max_units = 0.0);

/// `base` with the shapes of `add` merged in (same dtype; a shape measured in
/// both takes `add`'s) and `add`'s links and rates.
Machine merge_calibration(const Machine& base, const Machine& add);

}  // namespace moe
