#pragma once
// The cost model of `moe-ep simulate` (docs/simulation.md, "Cost model"):
// seconds of each piece of a layer-step on one rank, from a machine
// description. A calibrated table (`moe-ep calibrate`) is used where it
// covers the shape and dtype; otherwise the roofline figures.

#include <algorithm>
#include <cstdint>
#include <string>

#include "runtime/common/ModelConfig.hpp"
#include "runtime/simulate/Machine.hpp"

namespace moe {

/// Bytes one expert's weights take at `element_bytes` per element (the
/// runtime's fp32 expert_weight_bytes rescaled).
int64_t expert_bytes_at(const ModelShape& shape, int64_t element_bytes);
/// 2 for bf16, 4 for fp32.
int64_t dtype_bytes(const std::string& dtype);

class CostModel {
 public:
  /// Throws std::invalid_argument (naming --dtype) when the machine has no
  /// peak rate for `dtype`.
  CostModel(const Machine& machine, const ModelShape& shape, const std::string& dtype, int num_ranks,
            int ranks_per_node);

  /// One expert block of `rows` rows: the calibrated table interpolated
  /// linearly in rows (beyond its last point: proportional to rows), else
  /// max(6*D*H*rows / peak, bytes / memory bandwidth) + 3 launches, bytes =
  /// the expert's weights + rows * (2D + 6H) elements. 0 for no rows.
  double block_s(int64_t rows) const;
  /// Routing `tokens` tokens: calibrated per-token time, else the router GEMM
  /// (2*T*D*N FLOPs) against the peak and T*(D+N) elements against memory
  /// bandwidth, + 2 launches.
  double route_s(int64_t tokens) const;
  /// Host-side planning of `slots` local slots of which `kept` are kept
  /// (counts, plan, dispatch and exchange layout): the calibrated rates per
  /// slot and per kept slot, else the machine's rate per slot.
  double layout_s(int64_t slots, int64_t kept) const;
  /// Copying `bytes` of rows (permute, regroup, combine): bytes / copy
  /// bandwidth (calibrated, else half the memory bandwidth) + 1 launch.
  double copy_s(int64_t bytes) const;
  /// The dispatch's permute of `slots` kept local slots: the calibrated
  /// per-slot time (the layer's own stage), else copy_s of their rows.
  double permute_s(int64_t slots) const;
  /// The combine's gate-weighted sum over `slots` local slots of which
  /// `kept` were computed: calibrated per slot and per kept slot, else
  /// copy_s of the slots' rows.
  double combine_s(int64_t slots, int64_t kept) const;
  /// The calibrated compute units per node (0: one per rank), which the
  /// node's ranks share by processor sharing in every local stage.
  double compute_units() const { return units_; }
  int ranks_per_node() const { return ranks_per_node_; }
  /// Growing a workspace to `bytes` (the runtime's buffers only grow, shared
  /// by every layer and policy of the run): a fresh allocation whose pages
  /// fault on their first write, bytes / first_touch_bandwidth (calibrated;
  /// 0 when the machine has none).
  double first_touch_s(int64_t bytes) const;
  /// One all-to-all(v) on a rank moving at most `intra` bytes each way within
  /// its node and `inter` bytes each way to other nodes: latency + the slower
  /// of the two links (they run side by side). 0 on one rank.
  double alltoall_s(int64_t intra, int64_t inter) const;
  /// Point-to-point transfers likewise on the point-to-point links.
  double p2p_s(int64_t intra, int64_t inter) const;
  /// The all-gather of the P x N load counts (int64): ceil(log2 P) latencies
  /// + the bytes every rank receives.
  double allgather_s(int64_t bytes_per_rank) const;

  int64_t element_bytes() const { return element_bytes_; }
  int64_t row_bytes() const { return row_bytes_; }
  const ModelShape& shape() const { return shape_; }
  int64_t expert_bytes() const { return expert_bytes_; }
  int top_k() const { return std::max(1, shape_.top_k); }
  /// "calibrated (HOST, DATE, N ranks)" or "roofline" for the expert blocks.
  std::string compute_source() const;
  const LinkModel& intra_link() const { return intra_; }
  const LinkModel& inter_link() const { return inter_; }

 private:
  const Machine& machine_;
  ModelShape shape_;
  std::string dtype_;
  const ShapeCalibration* cal_ = nullptr;
  int num_ranks_ = 1, ranks_per_node_ = 1;
  int64_t element_bytes_ = 4, row_bytes_ = 0, expert_bytes_ = 0;
  double peak_ = 0.0, copy_bw_ = 0.0, touch_bw_ = 0.0, units_ = 0.0;
  LinkModel intra_, inter_, p2p_intra_;
};

}  // namespace moe
