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
  // flow[q][d] = sum over d's ranges of every expert of rows_computed_by(d)[q][e],
  // summed range by range: O((N + ranges) x P), not P x P x N (P = 256 runs in
  // `moe-ep simulate`).
  for (int e = 0; e < N && e < static_cast<int>(plan.assignments.size()); ++e)
    for (const SlotRange& r : plan.assignments[e])
      for (int q = 0; q < P; ++q) s.flow[static_cast<size_t>(q) * P + r.rank] += order.count_in(q, e, r.start, r.end);
  for (const auto& t : plan.transfers) ++s.imported[static_cast<size_t>(t.dst)];
  return s;
}

namespace {
int64_t sum(const std::vector<int64_t>& v) {
  int64_t n = 0;
  for (int64_t x : v) n += x;
  return n;
}
}  // namespace

int64_t NodeTraffic::token_intra() const { return sum(token_send_intra); }
int64_t NodeTraffic::token_inter() const { return sum(token_send_inter); }
int64_t NodeTraffic::weight_intra() const { return sum(weight_send_intra); }
int64_t NodeTraffic::weight_inter() const { return sum(weight_send_inter); }

NodeTraffic node_traffic(const WorkSplit& split, const std::vector<WeightTransfer>& transfers, int ranks_per_node,
                         int64_t row_bytes, int64_t expert_bytes) {
  const int P = split.num_ranks;
  const auto zeros = std::vector<int64_t>(static_cast<size_t>(P), 0);
  NodeTraffic t{zeros, zeros, zeros, zeros, zeros, zeros, zeros, zeros};
  for (int q = 0; q < P; ++q)
    for (int d = 0; d < P; ++d) {
      const int64_t bytes = split.rows(q, d) * row_bytes;
      if (q == d || bytes == 0) continue;
      const bool same = node_of(q, ranks_per_node) == node_of(d, ranks_per_node);
      (same ? t.token_send_intra : t.token_send_inter)[static_cast<size_t>(q)] += bytes;
      (same ? t.token_recv_intra : t.token_recv_inter)[static_cast<size_t>(d)] += bytes;
    }
  for (const WeightTransfer& w : transfers) {
    const bool same = node_of(w.src, ranks_per_node) == node_of(w.dst, ranks_per_node);
    (same ? t.weight_send_intra : t.weight_send_inter)[static_cast<size_t>(w.src)] += expert_bytes;
    (same ? t.weight_recv_intra : t.weight_recv_inter)[static_cast<size_t>(w.dst)] += expert_bytes;
  }
  return t;
}

}  // namespace moe
