#include "runtime/layer/WorkSplit.hpp"

#include <algorithm>

namespace moe {

int64_t RankWork::largest_block() const {
  int64_t m = 0;
  for (const auto& b : blocks) m = std::max(m, b.slots);
  return m;
}

std::vector<int64_t> rows_computed_by(const Plan& plan, const SlotOrderMap& order, int dst) {
  const int P = plan.num_ranks, N = plan.num_experts;
  std::vector<int64_t> cnt(static_cast<size_t>(P) * N, 0);
  for (int e = 0; e < N; ++e)
    for (const auto& r : plan.assignments[e])
      if (r.rank == dst)
        for (int q = 0; q < P; ++q) cnt[static_cast<size_t>(q) * N + e] += order.count_in(q, e, r.start, r.end);
  return cnt;
}

int64_t WorkSplit::kept_rows(int src) const {
  int64_t n = 0;
  for (int d = 0; d < num_ranks; ++d) n += rows(src, d);
  return n;
}

std::vector<RankWork> partition_work(const Plan& plan) {
  const int P = plan.num_ranks, N = plan.num_experts;
  std::vector<int64_t> slots(static_cast<size_t>(P) * N, 0);  // [rank][expert]
  for (int e = 0; e < N && e < static_cast<int>(plan.assignments.size()); ++e)
    for (const SlotRange& r : plan.assignments[e]) slots[static_cast<size_t>(r.rank) * N + e] += r.size();
  std::vector<RankWork> work(static_cast<size_t>(P));
  for (int q = 0; q < P; ++q)
    for (int e = 0; e < N; ++e) {
      const int64_t n = slots[static_cast<size_t>(q) * N + e];
      if (n == 0) continue;
      work[q].blocks.push_back({e, n, native_rank(e, N, P) != q});
      work[q].slots += n;
    }
  return work;
}

WorkSplit split_work(const Plan& plan, const SlotOrderMap& order) {
  const int P = plan.num_ranks, N = plan.num_experts;
  WorkSplit s;
  s.num_ranks = P;
  s.work = partition_work(plan);
  s.flow.assign(static_cast<size_t>(P) * P, 0);
  s.imported.assign(static_cast<size_t>(P), 0);
  for (int d = 0; d < P; ++d) {
    const std::vector<int64_t> cnt = rows_computed_by(plan, order, d);
    for (int q = 0; q < P; ++q)
      for (int e = 0; e < N; ++e) s.flow[static_cast<size_t>(q) * P + d] += cnt[static_cast<size_t>(q) * N + e];
  }
  for (const auto& t : plan.transfers) ++s.imported[static_cast<size_t>(t.dst)];
  return s;
}

}  // namespace moe
