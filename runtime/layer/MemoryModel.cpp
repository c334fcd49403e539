#include "runtime/layer/MemoryModel.hpp"

#include <algorithm>
#include <cstdio>

namespace moe {

std::vector<int64_t> plan_peak_bytes(const Plan& plan, const LoadMatrix& loads, const ModelShape& s, int num_layers) {
  const int P = plan.num_ranks, N = plan.num_experts;
  const int64_t D = s.hidden, H = s.ffn, f = static_cast<int64_t>(sizeof(float));
  const int64_t weights = int64_t{num_layers} * ((N / P) * s.expert_weight_bytes() + D * N * f);
  std::vector<int64_t> recv(P, 0), max_block(P, 0), imported(P, 0), kept_sent(P, 0);
  // Rows each rank computes, per expert block.
  for (int e = 0; e < N; ++e) {
    std::vector<int64_t> block(P, 0);
    for (const auto& r : plan.assignments[e]) block[r.rank] += r.size();
    for (int r = 0; r < P; ++r) {
      recv[r] += block[r];
      max_block[r] = std::max(max_block[r], block[r]);
    }
  }
  for (const auto& t : plan.transfers) ++imported[t.dst];
  // Rows each rank sends: its slots minus its dropped ones. Dropped slots of an
  // expert are the positions past the kept prefix; under position order those
  // are the last ranks' slots of the expert.
  std::vector<int64_t> loads_e = loads.expert_loads();
  for (int e = 0; e < N; ++e) {
    const int64_t keep = loads_e[e] - plan.dropped[e];
    int64_t start = 0;
    for (int r = 0; r < P; ++r) {
      const int64_t c = loads.at(r, e);
      if (plan.slot_order == SlotOrder::Position) kept_sent[r] += std::clamp<int64_t>(keep - start, 0, c);
      else kept_sent[r] += c;  // gate order: bound by all of the rank's slots
      start += c;
    }
  }
  std::vector<int64_t> peak(P);
  for (int r = 0; r < P; ++r) {
    int64_t tokens = 0;
    for (int e = 0; e < N; ++e) tokens += loads.at(r, e);
    tokens /= std::max(1, s.top_k);
    const int64_t compute = 2 * tokens * D                  // tokens and output
                            + kept_sent[r] * D + recv[r] * D  // dispatch send and receive buffers
                            + 2 * recv[r] * D                 // expert-major input and output
                            + max_block[r] * 3 * H;           // gate/up and activation workspaces
    const int64_t route = 2 * tokens * D + tokens * N;        // tokens, output and router logits
    peak[r] = weights + imported[r] * s.expert_weight_bytes() + std::max(compute, route) * f;
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

BudgetVerdict fit_to_budget(const Plan& plan, const PlacementPolicy& policy, const PolicyParams& params,
                            const LoadMatrix& loads, const ModelShape& shape, int num_layers, int64_t budget) {
  BudgetVerdict v;
  v.plan = plan;
  v.alpha_used = params.alpha;
  judge(v, plan_peak_bytes(plan, loads, shape, num_layers), budget);
  const BudgetVerdict first = v;
  if (!v.fits && policy.name() == "llep") {
    // Lower alpha first (smaller per-rank capacity, more spilling), then
    // higher (fewer forced remainders when min-chunk blocks small spills).
    std::vector<double> alphas;
    for (int k = 1; k <= 9; ++k) alphas.push_back(params.alpha * (1.0 - 0.1 * k));
    for (int k = 1; k <= 4; ++k) alphas.push_back(params.alpha * (1.0 + 0.25 * k));
    for (double a : alphas) {
      PolicyParams other = params;
      other.alpha = a;
      v.plan = make_policy("llep", other)->plan(loads, plan.num_ranks);
      v.alpha_used = a;
      judge(v, plan_peak_bytes(v.plan, loads, shape, num_layers), budget);
      if (v.fits) break;
    }
    if (!v.fits) v = first;  // report the plan as asked for
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
