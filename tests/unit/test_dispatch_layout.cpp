// The dispatch layout of every rank, built independently, must agree: what q
// sends to p is what p expects from q, every kept slot is computed exactly once
// by the rank owning its position, and each expert block holds only its slots.
// Their exchange layouts (own rows bypassing the all-to-all) must move the
// same rows to the same expert-major rows and back.
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

using Inbox = std::vector<std::vector<std::pair<int, int64_t>>>;  // per rank, per receive row: (source, slot)

// The exchange layouts (own rows bypass the all-to-all) must put the same
// (source, token) in every expert-major row as the full layout, fill each row
// exactly once, and give every kept slot the row that computed that slot.
void check_exchange_layouts(const World& w, const std::vector<DispatchLayout>& L, const Inbox& inbox) {
  std::vector<ExchangeLayout> X;
  for (int r = 0; r < w.P; ++r) X.push_back(exchange_layout(L[r], r));
  for (int q = 0; q < w.P; ++q) {
    ASSERT_EQ(X[q].send_rows[q], 0);
    ASSERT_EQ(X[q].recv_rows[q], 0);
    ASSERT_EQ(static_cast<int64_t>(X[q].send_token.size()), X[q].total_send());
    ASSERT_EQ(static_cast<int64_t>(X[q].recv_compute_row.size()), X[q].total_recv());
    for (int p = 0; p < w.P; ++p) ASSERT_EQ(X[q].send_rows[p], X[p].recv_rows[q]);
  }
  Inbox xinbox(w.P);  // (source, its exchanged send row)
  for (int q = 0; q < w.P; ++q) {
    int64_t row = 0;
    for (int p = 0; p < w.P; ++p)
      for (int64_t i = 0; i < X[q].send_rows[p]; ++i) xinbox[p].push_back({q, row++});
  }
  std::map<std::pair<int, int64_t>, std::pair<int, int64_t>> computed_at;  // (q, send row) -> (p, compute row)
  for (int p = 0; p < w.P; ++p) {
    const int64_t rows = L[p].total_recv();
    std::vector<std::pair<int, int64_t>> content(static_cast<size_t>(rows), {-1, -1});  // (source, token)
    for (size_t r = 0; r < xinbox[p].size(); ++r) {
      const auto [q, i] = xinbox[p][r];
      const int64_t j = X[p].recv_compute_row[r];
      ASSERT_TRUE(j >= 0 && j < rows);
      ASSERT_EQ(content[static_cast<size_t>(j)].first, -1) << "row filled twice on rank " << p;
      content[static_cast<size_t>(j)] = {q, X[q].send_token[static_cast<size_t>(i)]};
      computed_at[{q, i}] = {p, j};
    }
    ASSERT_EQ(X[p].local_token.size(), X[p].local_compute_row.size());
    for (size_t k = 0; k < X[p].local_token.size(); ++k) {
      const int64_t j = X[p].local_compute_row[k];
      ASSERT_TRUE(j >= 0 && j < rows);
      ASSERT_EQ(content[static_cast<size_t>(j)].first, -1) << "row filled twice on rank " << p;
      content[static_cast<size_t>(j)] = {p, X[p].local_token[k]};
    }
    for (int64_t j = 0; j < rows; ++j) {
      const auto [q, s] = inbox[p][static_cast<size_t>(L[p].regroup[static_cast<size_t>(j)])];
      ASSERT_EQ(content[static_cast<size_t>(j)], std::make_pair(q, s / w.K)) << "rank " << p << " row " << j;
    }
  }
  // Every kept slot reads the row that computed it; a dropped slot reads none.
  for (int q = 0; q < w.P; ++q)
    for (size_t t = 0; t < L[q].slot_row.size(); ++t) {
      const int64_t sent = X[q].slot_send_row[t], here = X[q].slot_compute_row[t];
      if (L[q].slot_row[t] < 0) {
        ASSERT_EQ(sent, -1);
        ASSERT_EQ(here, -1);
        continue;
      }
      ASSERT_NE(sent >= 0, here >= 0) << "slot " << t << " of rank " << q << " must have exactly one source";
      auto [p, j] = sent >= 0 ? computed_at.at({q, sent}) : std::make_pair(q, here);
      const int64_t full_row = L[p].regroup[static_cast<size_t>(j)];
      ASSERT_EQ(inbox[p][static_cast<size_t>(full_row)], std::make_pair(q, static_cast<int64_t>(t)));
    }
}

void check_world(const World& w, const Plan& plan, const SlotOrderMap& order) {
  std::vector<DispatchLayout> L;
  for (int r = 0; r < w.P; ++r) L.push_back(build_dispatch_layout(plan, w.loads, order, r, w.ids[r], w.K));

  // Counts agree pairwise.
  for (int q = 0; q < w.P; ++q)
    for (int p = 0; p < w.P; ++p) ASSERT_EQ(L[q].send_rows[p], L[p].recv_rows[q]) << q << "->" << p;

  // Simulate the exchange: each row carries (source rank, local slot).
  Inbox inbox(w.P);
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
  check_exchange_layouts(w, L, inbox);

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
