#pragma once
// A machine description for `moe-ep simulate` (docs/simulation.md): roofline
// figures (peak GEMM FLOP/s per dtype, memory bandwidth, launch overhead),
// the links within and between nodes, ranks per node, and optionally a
// calibration measured by `moe-ep calibrate` (expert-block time by rows per
// shape, row-copy and routing rates, all-to-all and point-to-point links),
// which takes precedence where it covers what is asked.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "runtime/common/ModelConfig.hpp"

namespace moe {

/// One link class: bytes/s per rank and direction, and the per-call latency.
struct LinkModel {
  double bandwidth = 0.0;  // bytes/s
  double latency_s = 0.0;
  bool operator==(const LinkModel&) const = default;
};

/// Measured costs of one model shape on this machine.
struct ShapeCalibration {
  int hidden = 0, ffn = 0, experts = 0, top_k = 0;
  Activation activation = Activation::SwiGLU;
  std::vector<int64_t> rows;      // expert-block rows, ascending
  std::vector<double> seconds;    // one expert block (gate/up GEMM, activation, down GEMM) of that many rows
  double route_s_per_token = 0;   // the router (logits GEMM, the scenario's sampler, top-K, gates) per token
  double layout_s_per_slot = 0;   // the plan stage (counts, plan, dispatch and exchange layout) per local slot
  double permute_s_per_slot = 0;  // the dispatch's permute per kept local slot (0: row-copy model)
  double combine_s_per_slot = 0;  // the combine's gate-weighted sum per local slot (0 with the next: row copies)
  // The parts of the plan and the combine that grow with the kept slots
  // rather than the routed ones, per kept local slot (absent: 0).
  double layout_s_per_kept_slot = 0, combine_s_per_kept_slot = 0;
  bool operator==(const ShapeCalibration&) const = default;
};

struct Calibration {
  std::string dtype = "fp32";  // what the tables were measured in
  int ranks = 1;               // ranks that ran concurrently on the node while measuring
  // How many of a node's ranks compute at full speed at once (ranks x t_alone
  // / t_together of one expert block); 0: not measured, every rank has its
  // own core or GPU. The tables hold one rank's times alone. When that is
  // fewer than the ranks (they share cores), calibrate fits the units to its
  // balanced layer-steps and keeps the block figure in compute_units_blocks
  // (information only; 0: not fitted).
  double compute_units = 0.0, compute_units_blocks = 0.0;
  std::string host;  // where it was measured
  std::string date;  // ISO 8601
  std::vector<ShapeCalibration> shapes;
  double copy_bandwidth = 0.0;         // bytes/s of row copies (gather/scatter/combine); 0: not measured
  double first_touch_bandwidth = 0.0;  // bytes/s of first writes to a freshly allocated buffer; 0: not modelled
  std::optional<LinkModel> alltoall;   // measured all-to-all(v) between the ranks (one node)
  std::optional<LinkModel> p2p;        // measured point-to-point (weight transfers)
  bool operator==(const Calibration&) const = default;
};

struct Machine {
  std::string name;
  std::string description;
  int ranks_per_node = 1;
  std::string default_dtype = "bf16";
  std::map<std::string, double> peak_flops;  // per dtype ("bf16", "fp32"): FLOP/s of expert-block GEMMs
  double memory_bandwidth = 0.0;             // bytes/s
  double launch_overhead_s = 0.0;            // per kernel launch
  double layout_s_per_slot = 0.0;            // host planning per local slot (optional; a calibrated shape's wins)
  LinkModel intra_node, inter_node;
  std::vector<std::string> sources;  // where the numbers come from
  std::optional<Calibration> calibration;
  bool operator==(const Machine&) const = default;

  /// The calibration of `shape` measured in `dtype`, or nullptr.
  const ShapeCalibration* calibrated(const ModelShape& shape, const std::string& dtype) const;
};

/// Parses a machine description; throws std::invalid_argument with a one-line
/// reason naming `what` (the file or the machine's name) and the field.
Machine parse_machine(const std::string& json_text, const std::string& what);
/// The description as JSON text (parse_machine reads it back equal).
std::string machine_json(const Machine& machine);

/// Names of the machine descriptions built into the binary.
std::vector<std::string> builtin_machine_names();
/// A built-in description by name, or a description file by path (a value
/// with '/' or ending in .json is a path). Throws std::invalid_argument
/// naming --machine and the valid names.
Machine load_machine(const std::string& name_or_path);

}  // namespace moe
