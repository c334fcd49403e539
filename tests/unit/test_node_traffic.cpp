// node_traffic against a slot-by-slot count: every slot of every expert is
// walked in position order (its origin rank from the loads, its computing rank
// from the plan's ranges), independently of split_work's per-rank sums.
#include <random>

#include <gtest/gtest.h>

#include "runtime/layer/DispatchLayout.hpp"
#include "runtime/layer/WorkSplit.hpp"
#include "tests/common/RandomCases.hpp"

using namespace moe;

TEST(NodeTraffic, MatchesASlotBySlotCountOnRandomSplitPlans) {
  std::mt19937 rng(7);
  const int cases = moe_test::random_cases(200);
  for (int c = 0; c < cases; ++c) {
    const int P = 2 + static_cast<int>(rng() % 5), N = P * (1 + static_cast<int>(rng() % 3));
    const int rpn = static_cast<int>(rng() % 4);  // 0: one node
    LoadMatrix loads(P, N);
    for (auto& x : loads.counts) x = static_cast<int64_t>(rng() % 9);
    const std::vector<int64_t> load = loads.expert_loads();
    Plan plan;
    plan.num_ranks = P;
    plan.num_experts = N;
    plan.assignments.resize(N);
    plan.dropped.assign(N, 0);
    for (int e = 0; e < N; ++e) {
      const int home = native_rank(e, N, P), helper = static_cast<int>(rng() % P);
      const int64_t cut = load[e] ? static_cast<int64_t>(rng() % (load[e] + 1)) : 0;
      if (cut > 0) plan.assignments[e].push_back({home, 0, cut});
      if (cut < load[e]) {
        plan.assignments[e].push_back({helper, cut, load[e]});
        if (helper != home) plan.transfers.push_back({e, home, helper});
      }
    }
    ASSERT_EQ(validate_plan(plan, load), "");
    const int64_t row = 12, expert = 1000;
    const NodeTraffic t = node_traffic(split_work(plan, SlotOrderMap(loads)), plan.transfers, rpn, row, expert);

    std::vector<int64_t> si(P, 0), se(P, 0), ri(P, 0), re(P, 0);
    for (int e = 0; e < N; ++e) {
      int64_t pos = 0;
      for (int q = 0; q < P; ++q)
        for (int64_t i = 0; i < loads.at(q, e); ++i, ++pos) {
          int d = -1;
          for (const SlotRange& r : plan.assignments[e])
            if (pos >= r.start && pos < r.end) d = r.rank;
          ASSERT_GE(d, 0);
          if (d == q) continue;
          const bool same = rpn > 0 ? q / rpn == d / rpn : true;
          (same ? si : se)[q] += row;
          (same ? ri : re)[d] += row;
        }
    }
    EXPECT_EQ(t.token_send_intra, si);
    EXPECT_EQ(t.token_send_inter, se);
    EXPECT_EQ(t.token_recv_intra, ri);
    EXPECT_EQ(t.token_recv_inter, re);
    int64_t w_intra = 0, w_inter = 0;
    for (const auto& w : plan.transfers) ((rpn > 0 && w.src / rpn != w.dst / rpn) ? w_inter : w_intra) += expert;
    EXPECT_EQ(t.weight_intra(), w_intra);
    EXPECT_EQ(t.weight_inter(), w_inter);
    if (rpn == 0 || rpn >= P) {
      EXPECT_EQ(t.token_inter() + t.weight_inter(), 0);
    }
  }
}
