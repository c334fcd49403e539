#pragma once
// Where every token-slot goes under a plan, computed by each rank from the
// all-gathered counts alone (plus the gathered gates for gate-ordered plans):
// the send order of this rank's slots, how many rows arrive from each rank,
// and how received rows regroup into one contiguous block per expert.

#include <cstdint>
#include <span>
#include <vector>

#include "policies/Plan.hpp"

namespace moe {

/// Position of every slot within its expert's slot order (see Plan.hpp).
class SlotOrderMap {
 public:
  /// Position order: rank q's i-th slot of e is at offset(q, e) + i.
  explicit SlotOrderMap(const LoadMatrix& loads);
  /// Gate-descending order from all ranks' gates, packed [rank][expert][i]
  /// (each rank's gates of expert e in its local slot order).
  SlotOrderMap(const LoadMatrix& loads, std::span<const float> gates_by_rank_expert);

  int64_t position(int rank, int expert, int64_t i) const;
  /// How many of rank q's slots of expert e have positions in [lo, hi).
  int64_t count_in(int rank, int expert, int64_t lo, int64_t hi) const;

 private:
  const LoadMatrix* loads_;
  std::vector<int64_t> offset_;          // [rank][expert]: slots of e on earlier ranks
  std::vector<int64_t> explicit_;        // gate order: positions packed [rank][expert][i]
  std::vector<int64_t> explicit_start_;  // [rank][expert] start into explicit_
};

struct ExpertBlock {
  int expert = 0;
  int64_t begin = 0;  // first row in the expert-major compute buffer
  int64_t count = 0;
};

struct DispatchLayout {
  // Send side (this rank's slots).
  std::vector<int64_t> send_rows;   // per destination rank
  std::vector<int64_t> send_token;  // per send row: the local token it carries
  std::vector<int64_t> slot_row;    // per local slot t*K+k: its send row, or -1 when dropped
  int64_t dropped = 0;              // local slots dropped
  // Receive side (the slots this rank computes).
  std::vector<int64_t> recv_rows;   // per source rank
  std::vector<ExpertBlock> blocks;  // expert-major blocks, experts ascending
  std::vector<int64_t> regroup;     // compute row j <- receive row regroup[j]
  int64_t slots_native = 0;         // computed rows of this rank's native experts
  int64_t slots_foreign = 0;        // computed rows of imported experts

  int64_t total_send() const;
  int64_t largest_block() const;
  int64_t total_recv() const;
};

/// Builds the layout of `rank` for `plan`. expert_ids holds the rank's local
/// slots in t*K + k order.
DispatchLayout build_dispatch_layout(const Plan& plan, const LoadMatrix& loads, const SlotOrderMap& order, int rank,
                                     std::span<const int32_t> expert_ids, int top_k);

/// What the layer executes: the layout with the rank's own rows taken out of
/// the all-to-all. They go from the tokens straight into the expert-major
/// buffer and the combine reads their outputs from there, so the exchange and
/// its buffers carry only rows of other ranks (two row copies fewer each way;
/// under LLEP most rows stay on their rank).
struct ExchangeLayout {
  std::vector<int64_t> send_rows, recv_rows;  // per rank; 0 for the rank itself
  std::vector<int64_t> send_token;            // per exchanged send row: the local token it carries
  std::vector<int64_t> recv_compute_row;      // per exchanged receive row: its expert-major row
  std::vector<int64_t> local_token;           // per local row: the token it carries ...
  std::vector<int64_t> local_compute_row;     // ... and its expert-major row
  std::vector<int64_t> slot_send_row;         // per local slot: its exchanged send row, else -1
  std::vector<int64_t> slot_compute_row;      // per local slot computed here: its expert-major row, else -1
  int64_t total_send() const;
  int64_t total_recv() const;
};

/// The exchange layout of `rank` derived from its dispatch layout.
ExchangeLayout exchange_layout(const DispatchLayout& layout, int rank);

}  // namespace moe
