// Least-Loaded Expert Parallelism (Nguyen et al., arXiv 2601.17111, Alg. 2/3).
// Below the imbalance threshold lambda the plan is EP's; above it the
// Least-Loaded Assignment (LLA) keeps each expert on its native rank up to the
// per-rank capacity m_alpha and spills the excess to the least-loaded other
// ranks in chunks of at least m slots (LLAS). docs/policies.md has the details.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>

#include "Policy.hpp"

namespace moe {

namespace {

/// Only the parameters LLEP reads, checked with the shared messages.
void check_llep_params(const PolicyParams& p) {
  PolicyParams mine;
  mine.alpha = p.alpha;
  mine.min_chunk = p.min_chunk;
  mine.lambda = p.lambda;
  if (auto why = validate_policy_params(mine); !why.empty()) throw std::invalid_argument(why);
}

/// Per-rank bookkeeping of LLA. key(r) = assigned + pending is the load rank r
/// has or is committed to; room(r) = m_alpha - key(r).
struct RankLedger {
  std::vector<int64_t> key;

  /// The rank other than `native` with the smallest (key, rank id). P is at
  /// most a few hundred, so a scan over one contiguous array beats keeping a
  /// heap up to date after every native visit (see docs/performance.md).
  int least_loaded_other(int native) const {
    int best = -1;
    for (int r = 0; r < static_cast<int>(key.size()); ++r) {
      if (r == native) continue;
      if (best < 0 || key[r] < key[best]) best = r;
    }
    return best;
  }
};

/// Appends [start, end) for `rank`, merging with the previous range when the
/// same rank continues it (a forced remainder right after its own chunk).
void append_range(std::vector<SlotRange>& ranges, int rank, int64_t start, int64_t end) {
  if (!ranges.empty() && ranges.back().rank == rank && ranges.back().end == start) {
    ranges.back().end = end;
    return;
  }
  ranges.push_back({rank, start, end});
}

class LlepPolicy final : public PlacementPolicy {
 public:
  explicit LlepPolicy(const PolicyParams& p) : params_(p) { check_llep_params(p); }
  std::string name() const override { return "llep"; }
  bool exact() const override { return true; }

  Plan plan(const LoadMatrix& loads, int num_ranks) const override {
    const std::vector<int64_t> expert_loads = loads.expert_loads();
    if (std::any_of(expert_loads.begin(), expert_loads.end(), [](int64_t l) { return l < 0; }))
      throw std::invalid_argument("expert loads must be >= 0");
    Plan ep = ep_plan(expert_loads, num_ranks, name());  // also checks N % P
    if (imbalance(ep.rank_loads()) < params_.lambda) return ep;
    return least_loaded_assignment(expert_loads, num_ranks, std::move(ep));
  }

 private:
  /// LLA over `plan`, which arrives as the EP plan (right sizes, no ranges
  /// needed beyond the ones it rewrites).
  Plan least_loaded_assignment(const std::vector<int64_t>& loads, int P, Plan plan) const {
    const int N = static_cast<int>(loads.size());
    const int64_t total = std::accumulate(loads.begin(), loads.end(), int64_t{0});
    // m_alpha = max(1, floor(alpha * floor(total / P))). No key ever exceeds
    // the total, so a capacity beyond it behaves as the total does (and a huge
    // alpha never overflows the cast).
    const double raw_capacity = std::floor(params_.alpha * static_cast<double>(total / P));
    const int64_t m_alpha =
        std::max<int64_t>(1, raw_capacity >= static_cast<double>(total) ? total : static_cast<int64_t>(raw_capacity));
    const int64_t m = params_.min_chunk;

    // Visit order: decreasing load, ties by smaller expert id, zero loads skipped.
    std::vector<int> order;
    order.reserve(N);
    for (int e = 0; e < N; ++e)
      if (loads[e] > 0) order.push_back(e);
    std::sort(order.begin(), order.end(), [&](int a, int b) { return loads[a] != loads[b] ? loads[a] > loads[b] : a < b; });

    RankLedger ledger;  // starts as pending = native load, assigned = 0
    ledger.key.assign(P, 0);
    for (int e = 0; e < N; ++e) ledger.key[native_rank(e, N, P)] += loads[e];

    for (const int e : order) {
      const int64_t load = loads[e];
      const int native = native_rank(e, N, P);
      auto& ranges = plan.assignments[e];
      ranges.clear();
      // Moving e from native's pending to its assigned leaves key unchanged, so
      // room before the visit is m_alpha - (key - load).
      const int64_t room = m_alpha - (ledger.key[native] - load);
      const int64_t native_take = P == 1 ? load : std::clamp<int64_t>(room, 0, load);
      ledger.key[native] -= load - native_take;
      if (native_take > 0) ranges.push_back({native, 0, native_take});

      int64_t given = native_take;
      while (given < load) {
        const int64_t remainder = load - given;
        // Ranks in (key, id) order have non-increasing room, so if the least
        // loaded one cannot take a chunk no later one can: checking it alone
        // is the paper's "first qualifying rank" rule.
        const int q = ledger.least_loaded_other(native);
        const int64_t c = std::min(remainder, m_alpha - ledger.key[q]);
        const bool qualifies = c > 0 && !(c < m && remainder > c);
        const int64_t take = qualifies ? c : remainder;  // else forced: q takes it all
        append_range(ranges, q, given, given + take);
        ledger.key[q] += take;
        given += take;
      }
      // One weight transfer per helper of e, even if a forced remainder gave
      // it a second range.
      const auto first_of_e = static_cast<std::ptrdiff_t>(plan.transfers.size());
      for (const auto& r : ranges)
        if (r.rank != native && std::none_of(plan.transfers.begin() + first_of_e, plan.transfers.end(),
                                             [&](const WeightTransfer& t) { return t.dst == r.rank; }))
          plan.transfers.push_back({e, native, r.rank});
    }
    return plan;
  }

  PolicyParams params_;
};

}  // namespace

std::unique_ptr<PlacementPolicy> make_llep_policy(const PolicyParams& params) {
  return std::make_unique<LlepPolicy>(params);
}

}  // namespace moe
