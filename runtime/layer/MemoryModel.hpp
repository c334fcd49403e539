#pragma once
// Per-rank peak bytes a plan will need, computed by every rank from the plan
// and the all-gathered loads alone (so all ranks reach the same verdict with
// no communication), and the fitting of a plan into a memory budget.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "policies/Plan.hpp"
#include "policies/Policy.hpp"
#include "runtime/common/ModelConfig.hpp"
#include "runtime/layer/LayerOptions.hpp"

namespace moe {

/// Peak bytes of the runtime's tracked buffers on every rank while executing
/// `plan` (the expert-compute phase): native weights and router of all
/// `num_layers` layers, imported weights, tokens and output, the exchange
/// buffers (rows that cross ranks only: ExchangeLayout),
/// expert-major blocks and the FFN workspaces of min(largest block,
/// `ffn_tile_rows`) rows (LayerOptions::tile_rows: 0 = the default tile),
/// and a stateful policy's resident replicas: the plan's own (plan.resident)
/// plus `resident_elsewhere[r]` replicas rank r holds in other layers. It is exactly
/// what MemoryTracker measures (tests/unit/test_memory_model.cpp,
/// tests/mpi/test_layer_mpi.cpp).
///
/// `backward` (--backward): the peak of the training step instead: the
/// weight gradients (as big as the weights they belong to), the output
/// gradient and the input gradient (tokens x D each), what the forward keeps
/// for the backward (the expert-major input and output, the exchanged rows
/// and the gate/up pre-activations of every computed row, and the imported
/// weights) and the backward's own buffers: the gate-weight gradients, the
/// FFN tiles, the partial gradients of the non-native experts computed here
/// and of the native ones received, and the router's logit gradients.
std::vector<int64_t> plan_peak_bytes(const Plan& plan, const LoadMatrix& loads, const ModelShape& shape, int num_layers,
                                     int64_t ffn_tile_rows = 0, const std::vector<int64_t>& resident_elsewhere = {},
                                     bool backward = false);
/// The same from the plan's work split (split_work(plan, SlotOrderMap(loads))),
/// for a caller that has it already.
struct WorkSplit;
std::vector<int64_t> plan_peak_bytes(const Plan& plan, const LoadMatrix& loads, const WorkSplit& split,
                                     const ModelShape& shape, int num_layers, int64_t ffn_tile_rows = 0,
                                     const std::vector<int64_t>& resident_elsewhere = {}, bool backward = false);

struct BudgetVerdict {
  bool fits = true;
  Plan plan;                         // the plan to run (maybe an alternative that fits)
  std::optional<double> alpha_used;  // the policy's budget parameter of that plan, when it has one
  int64_t need_bytes = 0;            // the worst rank's peak
  int worst_rank = 0;
  std::string reason;  // "OOM: needs X MiB > budget Y MiB on rank r"
};

/// Checks `plan` against `budget_bytes` per rank. A plan that does not fit is
/// replaced by the first of the policy's budget_alternatives() that fits.
BudgetVerdict fit_to_budget(const Plan& plan, const PlacementPolicy& policy, const LoadMatrix& loads,
                            const ModelShape& shape, int num_layers, int64_t budget_bytes, int64_t ffn_tile_rows = 0,
                            const std::vector<int64_t>& resident_elsewhere = {}, bool backward = false);

}  // namespace moe

// ---- up-front size checks (apps/SizeChecks.cpp) ----------------------------

#include <optional>

namespace moe {

/// Bytes of one expert's weights (as ModelShape::expert_weight_bytes) computed
/// with overflow checks; nullopt when the product does not fit in int64.
std::optional<int64_t> checked_expert_weight_bytes(const ModelShape& shape);

/// A lower bound of the peak bytes any plan needs on a rank that holds
/// `tokens` tokens, in a job of `num_ranks` ranks with `num_layers` layers:
/// the native weights and the router of every layer, plus the routing phase's
/// tokens, output and logits (plan_peak_bytes is never below it). nullopt
/// when a product overflows int64.
std::optional<int64_t> min_rank_bytes(const ModelShape& shape, int num_ranks, int64_t tokens, int num_layers);

/// An upper bound of the peak bytes of any plan on one rank when all
/// `total_slots` token-slots of the job land on it and it imports every expert
/// (the worst case plan_peak_bytes can reach); nullopt when it overflows int64.
/// Used to prove that no size computed during the run can wrap.
std::optional<int64_t> max_rank_bytes(const ModelShape& shape, int num_ranks, int64_t tokens, int64_t total_slots,
                                      int num_layers);

}  // namespace moe
