// The dispatch layout of every rank, built independently, must agree: what q
// sends to p is what p expects from q, every kept slot is computed exactly once
// by the rank owning its position, and each expert block holds only its slots.
#include <algorithm>
#include <map>
#include <random>

#include <gtest/gtest.h>

#include "policies/Policy.hpp"
#include "runtime/layer/DispatchLayout.hpp"

using namespace moe;

namespace {
struct World {
  int P, N, K;
  std::vector<std::vector<int32_t>> ids;  // per rank, t*K+k
  std::vector<std::vector<float>> gates;  // per rank
  LoadMatrix loads;
};

World random_world(std::mt19937& rng, int P, int N, int K, int max_tokens) {
  World w{P, N, K, {}, {}, LoadMatrix(P, N)};
  std::uniform_int_distribution<int> tok(0, max_tokens), ex(0, N - 1);
  std::uniform_real_distribution<float> g(0.0f, 1.0f);
  for (int r = 0; r < P; ++r) {
    const int B = tok(rng);
    std::vector<int32_t> ids(static_cast<size_t>(B) * K);
    std::vector<float> gs(ids.size());
    for (auto& e : ids) e = ex(rng) % (rng() % 3 == 0 ? 2 : N);  // skew towards experts 0-1
    for (auto& v : gs) v = std::round(g(rng) * 8.0f) / 8.0f;     // ties on purpose
    for (int32_t e : ids) ++w.loads.at(r, e);
    w.ids.push_back(std::move(ids));
    w.gates.push_back(std::move(gs));
  }
  return w;
}

// A random plan: each expert's kept prefix cut into ranges on random ranks.
Plan random_plan(std::mt19937& rng, const World& w, bool drops) {
  const auto loads = w.loads.expert_loads();
  Plan p;
  p.num_ranks = w.P;
  p.num_experts = w.N;
  p.assignments.resize(w.N);
  p.dropped.assign(w.N, 0);
  for (int e = 0; e < w.N; ++e) {
    int64_t keep = loads[e];
    if (drops && keep > 0) keep = std::uniform_int_distribution<int64_t>(0, keep)(rng);
    p.dropped[e] = loads[e] - keep;
    int64_t start = 0;
    while (start < keep) {
      const int64_t len = std::uniform_int_distribution<int64_t>(1, keep - start)(rng);
      p.assignments[e].push_back({static_cast<int>(rng() % w.P), start, start + len});
      start += len;
    }
  }
  return p;
}

std::vector<float> gates_by_rank_expert(const World& w) {
  std::vector<float> out;
  for (int r = 0; r < w.P; ++r)
    for (int e = 0; e < w.N; ++e)
      for (size_t s = 0; s < w.ids[r].size(); ++s)
        if (w.ids[r][s] == e) out.push_back(w.gates[r][s]);
  return out;
}

void check_world(const World& w, const Plan& plan, const SlotOrderMap& order) {
  std::vector<DispatchLayout> L;
  for (int r = 0; r < w.P; ++r) L.push_back(build_dispatch_layout(plan, w.loads, order, r, w.ids[r], w.K));

  // Counts agree pairwise.
  for (int q = 0; q < w.P; ++q)
    for (int p = 0; p < w.P; ++p) ASSERT_EQ(L[q].send_rows[p], L[p].recv_rows[q]) << q << "->" << p;

  // Simulate the exchange: each row carries (source rank, local slot).
  std::vector<std::vector<std::pair<int, int64_t>>> inbox(w.P);
  for (int q = 0; q < w.P; ++q) {
    std::vector<int64_t> slot_of_row(L[q].send_token.size(), -1);
    for (size_t s = 0; s < L[q].slot_row.size(); ++s)
      if (L[q].slot_row[s] >= 0) slot_of_row[static_cast<size_t>(L[q].slot_row[s])] = static_cast<int64_t>(s);
    for (int64_t row : slot_of_row) ASSERT_GE(row, 0) << "send row without a slot on rank " << q;
    int64_t row = 0;
    for (int p = 0; p < w.P; ++p)
      for (int64_t i = 0; i < L[q].send_rows[p]; ++i, ++row) {
        const int64_t s = slot_of_row[static_cast<size_t>(row)];
        ASSERT_EQ(L[q].send_token[static_cast<size_t>(row)], s / w.K);
        inbox[p].push_back({q, s});
      }
  }
  std::map<std::pair<int, int64_t>, int> computed;
  int64_t total_dropped = 0;
  for (int p = 0; p < w.P; ++p) {
    total_dropped += L[p].dropped;
    ASSERT_EQ(static_cast<int64_t>(inbox[p].size()), L[p].total_recv());
    std::vector<int64_t> sorted_regroup = L[p].regroup;
    std::sort(sorted_regroup.begin(), sorted_regroup.end());
    for (size_t i = 0; i < sorted_regroup.size(); ++i) ASSERT_EQ(sorted_regroup[i], static_cast<int64_t>(i));
    for (const auto& b : L[p].blocks) {
      for (int64_t j = b.begin; j < b.begin + b.count; ++j) {
        const auto [q, s] = inbox[p][static_cast<size_t>(L[p].regroup[static_cast<size_t>(j)])];
        ASSERT_EQ(w.ids[q][static_cast<size_t>(s)], b.expert) << "row of another expert in expert " << b.expert;
        ++computed[{q, s}];
      }
    }
  }
  int64_t kept = 0;
  for (int q = 0; q < w.P; ++q)
    for (size_t s = 0; s < w.ids[q].size(); ++s) {
      const bool is_kept = L[q].slot_row[s] >= 0;
      kept += is_kept;
      const auto key = std::make_pair(q, static_cast<int64_t>(s));
      ASSERT_EQ(computed[key], is_kept ? 1 : 0);
    }
  ASSERT_EQ(total_dropped, plan.total_dropped());
  int64_t routed = 0;
  for (const auto& v : w.ids) routed += static_cast<int64_t>(v.size());
  ASSERT_EQ(kept + total_dropped, routed);
}
}  // namespace

TEST(DispatchLayout, EpPlanKeepsEverySlotOnItsNativeRank) {
  std::mt19937 rng(1);
  const World w = random_world(rng, 4, 8, 2, 50);
  const Plan plan = ep_plan(w.loads.expert_loads(), 4, "ep");
  const SlotOrderMap order(w.loads);
  check_world(w, plan, order);
  for (int r = 0; r < 4; ++r) {
    const auto L = build_dispatch_layout(plan, w.loads, order, r, w.ids[r], w.K);
    EXPECT_EQ(L.slots_foreign, 0);
    for (const auto& b : L.blocks) EXPECT_EQ(b.expert / 2, r);
  }
}

TEST(DispatchLayout, RandomSplitPlansAgreeAcrossRanks) {
  std::mt19937 rng(42);
  for (int trial = 0; trial < 300; ++trial) {
    const int P = 1 + static_cast<int>(rng() % 6);
    const int N = P * (1 + static_cast<int>(rng() % 4));
    const int K = 1 + static_cast<int>(rng() % std::min(N, 3));
    const World w = random_world(rng, P, N, K, 40);
    check_world(w, random_plan(rng, w, trial % 2 == 1), SlotOrderMap(w.loads));
  }
}

TEST(DispatchLayout, GateOrderedPlansAgreeAcrossRanks) {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 200; ++trial) {
    const int P = 1 + static_cast<int>(rng() % 5);
    const int N = P * (1 + static_cast<int>(rng() % 3));
    const World w = random_world(rng, P, N, 2 <= N ? 2 : 1, 30);
    const auto gates = gates_by_rank_expert(w);
    check_world(w, random_plan(rng, w, true), SlotOrderMap(w.loads, gates));
  }
}

TEST(SlotOrderMap, GateOrderIsDescendingWithPositionTieBreak) {
  // 2 ranks, 1 expert: rank 0 gates {0.5, 0.9}, rank 1 gates {0.9, 0.1}.
  LoadMatrix loads(2, 1);
  loads.at(0, 0) = 2;
  loads.at(1, 0) = 2;
  const std::vector<float> gates = {0.5f, 0.9f, 0.9f, 0.1f};
  const SlotOrderMap order(loads, gates);
  EXPECT_EQ(order.position(0, 0, 1), 0);  // 0.9 at global position 1
  EXPECT_EQ(order.position(1, 0, 0), 1);  // 0.9 at global position 2
  EXPECT_EQ(order.position(0, 0, 0), 2);
  EXPECT_EQ(order.position(1, 0, 1), 3);
  EXPECT_EQ(order.count_in(0, 0, 0, 2), 1);
  EXPECT_EQ(order.count_in(1, 0, 0, 2), 1);
}
