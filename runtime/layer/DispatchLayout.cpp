#include "runtime/layer/DispatchLayout.hpp"

#include <algorithm>
#include <numeric>
#include <stdexcept>
#include <tuple>

#include "runtime/layer/WorkSplit.hpp"

namespace moe {

SlotOrderMap::SlotOrderMap(const LoadMatrix& loads) : loads_(&loads) {
  const int P = loads.num_ranks, N = loads.num_experts;
  offset_.assign(static_cast<size_t>(P) * N, 0);
  for (int e = 0; e < N; ++e) {
    int64_t off = 0;
    for (int q = 0; q < P; ++q) {
      offset_[static_cast<size_t>(q) * N + e] = off;
      off += loads.at(q, e);
    }
  }
}

SlotOrderMap::SlotOrderMap(const LoadMatrix& loads, std::span<const float> gates) : SlotOrderMap(loads) {
  const int P = loads.num_ranks, N = loads.num_experts;
  explicit_start_.assign(static_cast<size_t>(P) * N, 0);
  int64_t cursor = 0;
  for (int q = 0; q < P; ++q)
    for (int e = 0; e < N; ++e) {
      explicit_start_[static_cast<size_t>(q) * N + e] = cursor;
      cursor += loads.at(q, e);
    }
  if (static_cast<int64_t>(gates.size()) != cursor)
    throw std::logic_error("SlotOrderMap: gathered gates do not match the loads");
  explicit_.assign(static_cast<size_t>(cursor), 0);
  // Per expert: sort (gate desc, global position asc) and number the slots.
  std::vector<std::tuple<float, int64_t, int64_t>> items;  // (gate, position, packed index)
  for (int e = 0; e < N; ++e) {
    items.clear();
    for (int q = 0; q < P; ++q) {
      const int64_t s = explicit_start_[static_cast<size_t>(q) * N + e];
      for (int64_t i = 0; i < loads.at(q, e); ++i)
        items.emplace_back(gates[static_cast<size_t>(s + i)], offset_[static_cast<size_t>(q) * N + e] + i, s + i);
    }
    std::sort(items.begin(), items.end(), [](const auto& a, const auto& b) {
      if (std::get<0>(a) != std::get<0>(b)) return std::get<0>(a) > std::get<0>(b);
      return std::get<1>(a) < std::get<1>(b);
    });
    for (size_t rank_in_order = 0; rank_in_order < items.size(); ++rank_in_order)
      explicit_[static_cast<size_t>(std::get<2>(items[rank_in_order]))] = static_cast<int64_t>(rank_in_order);
  }
}

int64_t SlotOrderMap::position(int rank, int expert, int64_t i) const {
  const size_t idx = static_cast<size_t>(rank) * loads_->num_experts + expert;
  if (explicit_.empty()) return offset_[idx] + i;
  return explicit_[static_cast<size_t>(explicit_start_[idx] + i)];
}

int64_t SlotOrderMap::count_in(int rank, int expert, int64_t lo, int64_t hi) const {
  const size_t idx = static_cast<size_t>(rank) * loads_->num_experts + expert;
  const int64_t n = loads_->at(rank, expert);
  if (explicit_.empty()) {
    const int64_t a = std::max(lo, offset_[idx]);
    const int64_t b = std::min(hi, offset_[idx] + n);
    return std::max<int64_t>(0, b - a);
  }
  int64_t c = 0;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t p = explicit_[static_cast<size_t>(explicit_start_[idx] + i)];
    c += (p >= lo && p < hi) ? 1 : 0;
  }
  return c;
}

int64_t DispatchLayout::largest_block() const {
  int64_t m = 0;
  for (const auto& b : blocks) m = std::max(m, b.count);
  return m;
}

int64_t DispatchLayout::total_send() const { return std::accumulate(send_rows.begin(), send_rows.end(), int64_t{0}); }
int64_t DispatchLayout::total_recv() const { return std::accumulate(recv_rows.begin(), recv_rows.end(), int64_t{0}); }

namespace {
// Rank that owns position `pos` of expert e, or -1 when the slot is dropped.
int owner_of(const SlotRangeList& ranges, int64_t pos) {
  auto it =
      std::upper_bound(ranges.begin(), ranges.end(), pos, [](int64_t p, const SlotRange& r) { return p < r.start; });
  if (it == ranges.begin()) return -1;
  --it;
  return pos < it->end ? it->rank : -1;
}
}  // namespace

DispatchLayout build_dispatch_layout(const Plan& plan, const LoadMatrix& loads, const SlotOrderMap& order, int rank,
                                     std::span<const int32_t> expert_ids, int top_k) {
  const int P = loads.num_ranks, N = loads.num_experts;
  const int64_t S = static_cast<int64_t>(expert_ids.size());
  DispatchLayout L;
  L.send_rows.assign(P, 0);
  L.recv_rows.assign(P, 0);
  L.slot_row.assign(static_cast<size_t>(S), -1);

  // --- send side: (destination, expert, position) for each local slot.
  struct Item {
    int dest;
    int expert;
    int64_t pos;
    int64_t slot;
  };
  std::vector<Item> items;
  items.reserve(static_cast<size_t>(S));
  std::vector<int64_t> seen(N, 0);  // local index of the next slot of each expert
  for (int64_t s = 0; s < S; ++s) {
    const int e = expert_ids[static_cast<size_t>(s)];
    const int64_t pos = order.position(rank, e, seen[e]++);
    const int dest = owner_of(plan.assignments[e], pos);
    if (dest < 0) {
      ++L.dropped;
      continue;
    }
    items.push_back({dest, e, pos, s});
  }
  std::sort(items.begin(), items.end(), [](const Item& a, const Item& b) {
    return std::tie(a.dest, a.expert, a.pos) < std::tie(b.dest, b.expert, b.pos);
  });
  L.send_token.resize(items.size());
  for (size_t i = 0; i < items.size(); ++i) {
    ++L.send_rows[items[i].dest];
    L.slot_row[static_cast<size_t>(items[i].slot)] = static_cast<int64_t>(i);
    L.send_token[i] = items[i].slot / top_k;
  }

  // --- receive side: rows of (source q, expert e) that fall in my ranges. Each
  // source sends them ordered by expert, so they sit at increasing offsets.
  const std::vector<int64_t> cnt = rows_computed_by(plan, order, rank);  // [q][e]
  std::vector<int64_t> recv_off(static_cast<size_t>(P) * N, 0);
  int64_t off = 0;
  for (int q = 0; q < P; ++q)
    for (int e = 0; e < N; ++e) {
      recv_off[static_cast<size_t>(q) * N + e] = off;
      off += cnt[static_cast<size_t>(q) * N + e];
      L.recv_rows[q] += cnt[static_cast<size_t>(q) * N + e];
    }
  // Expert-major compute buffer: expert e's rows from every source in turn.
  const int M = N / P;
  int64_t row = 0;
  for (int e = 0; e < N; ++e) {
    ExpertBlock b{e, row, 0};
    for (int q = 0; q < P; ++q) {
      const int64_t c = cnt[static_cast<size_t>(q) * N + e];
      for (int64_t i = 0; i < c; ++i) L.regroup.push_back(recv_off[static_cast<size_t>(q) * N + e] + i);
      b.count += c;
    }
    if (b.count == 0) continue;
    row += b.count;
    (e / M == rank ? L.slots_native : L.slots_foreign) += b.count;
    L.blocks.push_back(b);
  }
  return L;
}

int64_t ExchangeLayout::total_send() const { return std::accumulate(send_rows.begin(), send_rows.end(), int64_t{0}); }
int64_t ExchangeLayout::total_recv() const { return std::accumulate(recv_rows.begin(), recv_rows.end(), int64_t{0}); }

ExchangeLayout exchange_layout(const DispatchLayout& L, int rank) {
  ExchangeLayout X;
  X.send_rows = L.send_rows;
  X.recv_rows = L.recv_rows;
  const int64_t own = L.send_rows[static_cast<size_t>(rank)];  // == L.recv_rows[rank]
  X.send_rows[static_cast<size_t>(rank)] = X.recv_rows[static_cast<size_t>(rank)] = 0;
  const int64_t send_own = std::accumulate(L.send_rows.begin(), L.send_rows.begin() + rank, int64_t{0});
  const int64_t recv_own = std::accumulate(L.recv_rows.begin(), L.recv_rows.begin() + rank, int64_t{0});
  // Row numbers once the own range [first, first + own) is taken out.
  const auto squeeze = [own](int64_t row, int64_t first) { return row < first ? row : row - own; };
  const auto is_own = [own](int64_t row, int64_t first) { return row >= first && row < first + own; };

  X.send_token.reserve(L.send_token.size() - static_cast<size_t>(own));
  for (int64_t s = 0; s < static_cast<int64_t>(L.send_token.size()); ++s)
    if (!is_own(s, send_own)) X.send_token.push_back(L.send_token[static_cast<size_t>(s)]);

  // Own send row send_own + i arrives as own receive row recv_own + i.
  std::vector<int64_t> compute_of_own(static_cast<size_t>(own), -1);
  X.recv_compute_row.assign(static_cast<size_t>(L.total_recv() - own), -1);
  for (int64_t j = 0; j < static_cast<int64_t>(L.regroup.size()); ++j) {
    const int64_t r = L.regroup[static_cast<size_t>(j)];
    if (is_own(r, recv_own)) {
      compute_of_own[static_cast<size_t>(r - recv_own)] = j;
      X.local_token.push_back(L.send_token[static_cast<size_t>(send_own + r - recv_own)]);
      X.local_compute_row.push_back(j);
    } else {
      X.recv_compute_row[static_cast<size_t>(squeeze(r, recv_own))] = j;
    }
  }
  X.slot_send_row.assign(L.slot_row.size(), -1);
  X.slot_compute_row.assign(L.slot_row.size(), -1);
  for (size_t t = 0; t < L.slot_row.size(); ++t) {
    const int64_t s = L.slot_row[t];
    if (s < 0) continue;  // dropped
    if (is_own(s, send_own))
      X.slot_compute_row[t] = compute_of_own[static_cast<size_t>(s - send_own)];
    else
      X.slot_send_row[t] = squeeze(s, send_own);
  }
  return X;
}

}  // namespace moe
