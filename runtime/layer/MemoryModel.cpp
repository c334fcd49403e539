#include "runtime/layer/MemoryModel.hpp"

#include <algorithm>
#include <cstdio>

#include "runtime/layer/WorkSplit.hpp"

namespace moe {

int64_t ffn_workspace_rows(int64_t largest_block, int64_t tile_rows) {
  return tile_rows > 0 ? std::min(largest_block, tile_rows) : largest_block;
}

std::vector<int64_t> plan_peak_bytes(const Plan& plan, const LoadMatrix& loads, const ModelShape& s, int num_layers,
                                     int64_t ffn_tile_rows) {
  const int P = plan.num_ranks, N = plan.num_experts;
  const int64_t D = s.hidden, H = s.ffn, f = static_cast<int64_t>(sizeof(float));
  const int64_t weights = int64_t{num_layers} * ((N / P) * s.expert_weight_bytes() + D * N * f);
  // Gate-ordered plans: which of a rank's slots are kept depends on every
  // rank's gates, so a rank's send buffer is bounded by all its slots.
  const WorkSplit split = split_work(plan, SlotOrderMap(loads));
  std::vector<int64_t> peak(static_cast<size_t>(P));
  for (int r = 0; r < P; ++r) {
    int64_t slots = 0;
    for (int e = 0; e < N; ++e) slots += loads.at(r, e);
    const int64_t tokens = slots / std::max(1, s.top_k);
    const int64_t sent = plan.slot_order == SlotOrder::Position ? split.kept_rows(r) : slots;
    const RankWork& w = split.work[static_cast<size_t>(r)];
    const int64_t ws_rows = ffn_workspace_rows(w.largest_block(), ffn_tile_rows);
    const int64_t compute = 2 * tokens * D                 // tokens and output
                            + sent * D + w.slots * D       // dispatch send and receive buffers
                            + 2 * w.slots * D              // expert-major input and output
                            + ws_rows * 3 * H;             // gate/up and activation workspaces
    const int64_t route = 2 * tokens * D + tokens * N;     // tokens, output and router logits
    peak[static_cast<size_t>(r)] =
        weights + split.imported[static_cast<size_t>(r)] * s.expert_weight_bytes() + std::max(compute, route) * f;
  }
  return peak;
}

namespace {
void judge(BudgetVerdict& v, const std::vector<int64_t>& peaks, int64_t budget) {
  v.worst_rank = static_cast<int>(std::max_element(peaks.begin(), peaks.end()) - peaks.begin());
  v.need_bytes = peaks[static_cast<size_t>(v.worst_rank)];
  v.fits = v.need_bytes <= budget;
}
}  // namespace

BudgetVerdict fit_to_budget(const Plan& plan, const PlacementPolicy& policy, const LoadMatrix& loads,
                            const ModelShape& shape, int num_layers, int64_t budget, int64_t ffn_tile_rows) {
  BudgetVerdict v;
  v.plan = plan;
  v.alpha_used = policy.budget_parameter();
  judge(v, plan_peak_bytes(plan, loads, shape, num_layers, ffn_tile_rows), budget);
  if (!v.fits) {
    for (auto& alt : policy.budget_alternatives(loads, plan.num_ranks)) {
      BudgetVerdict a;
      judge(a, plan_peak_bytes(alt.plan, loads, shape, num_layers, ffn_tile_rows), budget);
      if (!a.fits) continue;
      a.plan = std::move(alt.plan);
      a.alpha_used = alt.parameter;
      v = std::move(a);
      break;
    }
  }
  if (!v.fits) {
    char buf[160];
    std::snprintf(buf, sizeof buf, "OOM: needs %.1f MiB > budget %.1f MiB on rank %d",
                  static_cast<double>(v.need_bytes) / 1048576.0, static_cast<double>(budget) / 1048576.0,
                  v.worst_rank);
    v.reason = buf;
  }
  return v;
}

}  // namespace moe
