#include "runtime/layer/MemoryModel.hpp"

#include <algorithm>
#include <cstdio>

#include "kernels/ExpertFfn.hpp"
#include "kernels/ExpertFfnBf16.hpp"
#include "runtime/layer/WorkSplit.hpp"

namespace moe {

std::vector<int64_t> plan_peak_bytes(const Plan& plan, const LoadMatrix& loads, const ModelShape& s, int num_layers,
                                     int64_t ffn_tile_rows, const std::vector<int64_t>& resident_elsewhere,
                                     bool backward) {
  return plan_peak_bytes(plan, loads, split_work(plan, SlotOrderMap(loads)), s, num_layers, ffn_tile_rows,
                         resident_elsewhere, backward);
}

std::vector<int64_t> plan_peak_bytes(const Plan& plan, const LoadMatrix& loads, const WorkSplit& split,
                                     const ModelShape& s, int num_layers, int64_t ffn_tile_rows,
                                     const std::vector<int64_t>& resident_elsewhere, bool backward) {
  const int P = plan.num_ranks, N = plan.num_experts;
  const int64_t D = s.hidden, H = s.ffn, f = static_cast<int64_t>(sizeof(float)), eb = s.element_bytes();
  // Weights (and with the backward their gradients, the same size).
  const int64_t weights = (backward ? 2 : 1) * int64_t{num_layers} * ((N / P) * s.expert_weight_bytes() + D * N * f);
  // The backward's partial gradients: of the non-native experts each rank
  // computes (sent to the native rank), and received by each native rank.
  std::vector<int64_t> foreign(static_cast<size_t>(P), 0), incoming(static_cast<size_t>(P), 0);
  if (backward)
    for (int q = 0; q < P; ++q)
      for (const auto& b : split.work[static_cast<size_t>(q)].blocks)
        if (b.imported && b.slots > 0) {
          ++foreign[static_cast<size_t>(q)];
          ++incoming[static_cast<size_t>(native_rank(b.expert, N, P))];
        }
  // The exchange buffers hold only rows that cross ranks (a rank's own rows
  // bypass them: ExchangeLayout). Gate-ordered plans: which of a rank's slots
  // are kept and where they go depends on every rank's gates, so the buffers
  // are bounded by all its slots and all the rows it computes.
  std::vector<int64_t> peak(static_cast<size_t>(P));
  for (int r = 0; r < P; ++r) {
    int64_t slots = 0;
    for (int e = 0; e < N; ++e) slots += loads.at(r, e);
    const int64_t tokens = slots / std::max(1, s.top_k);
    const RankWork& w = split.work[static_cast<size_t>(r)];
    const bool exact = plan.slot_order == SlotOrder::Position;
    const int64_t own = exact ? split.rows(r, r) : 0;
    const int64_t sent = (exact ? split.kept_rows(r) : slots) - own;
    const int64_t received = w.slots - own;
    const int64_t ws_rows = ffn_workspace_rows(w.largest_block(), LayerOptions{ffn_tile_rows}.tile_rows(s));
    // Token rows (tokens, output, exchange buffers, expert-major blocks) are
    // stored in the dtype, eb bytes an element; workspaces and logits are fp32.
    const int64_t rows = 2 * tokens * D                    // tokens and output
                         + (sent + received) * D           // exchange send and receive buffers
                         + 2 * w.slots * D;                // expert-major input and output
    int64_t compute = rows * eb + ws_rows * 3 * H * f;     // gate/up and activation workspaces
    int64_t route = 2 * tokens * D * eb + tokens * N * f;  // tokens, output and router logits
    if (s.dtype == DType::BF16) {
      // kernels/ExpertFfnBf16.hpp: the tile's widened input, one widened
      // weight panel and its product; the router's widened tokens.
      const int64_t pc = bf16_panel_cols(D, H);
      if (ws_rows > 0) compute += (ws_rows * D + bf16_panel_floats(D, H) + ws_rows * pc) * f;
      if (tokens > 0) route += tokens * D * f;
    }
    int64_t resident = resident_elsewhere.empty() ? 0 : resident_elsewhere[static_cast<size_t>(r)];
    if (!plan.resident.empty()) resident += static_cast<int64_t>(plan.resident[static_cast<size_t>(r)].size());
    int64_t activations = std::max(compute, route);
    if (backward) {
      // Tokens, output, output gradient, input gradient; the forward's
      // buffers stay to the end of the backward, with the gate/up of every
      // computed row; the gate/up tile is not needed in the forward then.
      const int64_t io = 4 * tokens * D;
      const int64_t kept = (sent + received) * D + 2 * w.slots * D + 2 * w.slots * H + slots;  // + d_gates
      const int64_t ewb = s.expert_weight_bytes();
      const int64_t bwd_compute = (io + kept + ws_rows * 3 * H) * f + foreign[static_cast<size_t>(r)] * ewb;
      const int64_t bwd_router =
          (io + kept + tokens * N) * f + (foreign[static_cast<size_t>(r)] + incoming[static_cast<size_t>(r)]) * ewb;
      activations = std::max({(io + tokens * N) * f, bwd_compute, bwd_router});
    }
    peak[static_cast<size_t>(r)] =
        weights + (split.imported[static_cast<size_t>(r)] + resident) * s.expert_weight_bytes() + activations;
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
                            const ModelShape& shape, int num_layers, int64_t budget, int64_t ffn_tile_rows,
                            const std::vector<int64_t>& resident_elsewhere, bool backward) {
  BudgetVerdict v;
  v.plan = plan;
  v.alpha_used = policy.budget_parameter();
  judge(v, plan_peak_bytes(plan, loads, shape, num_layers, ffn_tile_rows, resident_elsewhere, backward), budget);
  if (!v.fits) {
    for (auto& alt : policy.budget_alternatives(loads, plan.num_ranks)) {
      BudgetVerdict a;
      judge(a, plan_peak_bytes(alt.plan, loads, shape, num_layers, ffn_tile_rows, resident_elsewhere, backward),
            budget);
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
                  static_cast<double>(v.need_bytes) / 1048576.0, static_cast<double>(budget) / 1048576.0, v.worst_rank);
    v.reason = buf;
  }
  return v;
}

}  // namespace moe

// ---- up-front size checks ---------------------------------------------------

#include "runtime/common/CheckedMath.hpp"

namespace moe {

std::optional<int64_t> checked_expert_weight_bytes(const ModelShape& s) {
  const int64_t D = s.hidden, H = s.ffn;
  auto gu = checked_product({D, 2, H});
  auto d = checked_product({H, D});
  if (!gu || !d) return std::nullopt;
  auto floats = checked_add(*gu, *d);
  if (floats && s.activation == Activation::GptOss) {
    auto bias = checked_add(2 * H, D);
    floats = bias ? checked_add(*floats, *bias) : std::nullopt;
  }
  return floats ? checked_mul(*floats, s.element_bytes()) : std::nullopt;
}

namespace {
// Weights resident on every rank: the native experts and the router of every layer.
std::optional<int64_t> resident_weight_bytes(const ModelShape& s, int num_ranks, int num_layers) {
  const auto ewb = checked_expert_weight_bytes(s);
  if (!ewb || num_ranks < 1) return std::nullopt;
  const auto native = checked_mul(s.num_experts / num_ranks, *ewb);
  const auto router = checked_product({s.hidden, s.num_experts, static_cast<int64_t>(sizeof(float))});
  if (!native || !router) return std::nullopt;
  const auto per_layer = checked_add(*native, *router);
  return per_layer ? checked_mul(num_layers, *per_layer) : std::nullopt;
}
}  // namespace

std::optional<int64_t> min_rank_bytes(const ModelShape& s, int num_ranks, int64_t tokens, int num_layers) {
  const auto weights = resident_weight_bytes(s, num_ranks, num_layers);
  const auto io = checked_product({2, tokens, s.hidden});
  const auto logits = checked_product({tokens, s.num_experts});
  if (!weights || !io || !logits) return std::nullopt;
  // fp32: tokens and output in fp32. bf16: in bf16, plus the router's fp32
  // copy of the tokens: 2*2 + 4 = 2*4 bytes per element, the same sum.
  const auto route = checked_add(*io, *logits);
  const auto route_bytes = route ? checked_mul(*route, static_cast<int64_t>(sizeof(float))) : std::nullopt;
  return route_bytes ? checked_add(*weights, *route_bytes) : std::nullopt;
}

std::optional<int64_t> max_rank_bytes(const ModelShape& s, int num_ranks, int64_t tokens, int64_t total_slots,
                                      int num_layers) {
  const auto weights = resident_weight_bytes(s, num_ranks, num_layers);
  const auto ewb = checked_expert_weight_bytes(s);
  if (!weights || !ewb) return std::nullopt;
  const auto imported = checked_mul(s.num_experts, *ewb);
  // tokens and output, send and receive buffers, expert-major input and output
  // (all slots), gate/up and activation workspaces (all slots in one block),
  // router logits.
  const auto io = checked_product({2, tokens, s.hidden});
  const auto slots_d = checked_product({4, total_slots, s.hidden});
  const auto ws = checked_product({3, total_slots, s.ffn});
  const auto logits = checked_product({tokens, s.num_experts});
  if (!imported || !io || !slots_d || !ws || !logits) return std::nullopt;
  std::optional<int64_t> floats = *io;
  for (int64_t v : {*slots_d, *ws, *logits}) floats = floats ? checked_add(*floats, v) : std::nullopt;
  const auto bytes = floats ? checked_mul(*floats, static_cast<int64_t>(sizeof(float))) : std::nullopt;
  const auto with_imported = bytes ? checked_add(*bytes, *imported) : std::nullopt;
  return with_imported ? checked_add(*with_imported, *weights) : std::nullopt;
}

}  // namespace moe
