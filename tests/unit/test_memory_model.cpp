#include <gtest/gtest.h>

#include "runtime/layer/MemoryModel.hpp"

using namespace moe;

namespace {
ModelShape tiny() {
  ModelShape s;
  s.num_experts = 3;
  s.hidden = 8;
  s.ffn = 8;
  s.top_k = 1;
  return s;
}
}  // namespace

TEST(MemoryModel, EpHotRankNeedsTheMost) {
  const ModelShape s = tiny();
  LoadMatrix loads(3, 3);
  loads.at(0, 0) = 90;  // every token of every rank goes to expert 0 (rank 0)
  loads.at(1, 0) = 5;
  loads.at(2, 0) = 5;
  const Plan ep = ep_plan(loads.expert_loads(), 3, "ep");
  const auto peak = plan_peak_bytes(ep, loads, s, 1);
  EXPECT_GT(peak[0], peak[1]);
  // By hand for rank 1: weights (1 expert + router), tokens+out 2*5*8, sent 5*8,
  // nothing received or computed.
  const int64_t weights = s.expert_weight_bytes() + 8 * 3 * 4;
  EXPECT_EQ(peak[1], weights + 4 * std::max<int64_t>(2 * 5 * 8 + 5 * 8, 2 * 5 * 8 + 5 * 3));
}

TEST(MemoryModel, FfnWorkspaceIsBoundedByTheTileNotTheLargestBlock) {
  const ModelShape s = tiny();
  LoadMatrix loads(3, 3);
  loads.at(0, 0) = 900;  // rank 0's block of expert 0: 1000 rows
  loads.at(1, 0) = 50;
  loads.at(2, 0) = 50;
  const Plan ep = ep_plan(loads.expert_loads(), 3, "ep");
  const auto whole = plan_peak_bytes(ep, loads, s, 1, 1 << 20);  // a tile larger than any block
  const auto tiled = plan_peak_bytes(ep, loads, s, 1, 64);
  // gate/up (2H) and activation (H) workspaces: 1000 rows untiled, 64 tiled.
  EXPECT_EQ(whole[0] - tiled[0], (1000 - 64) * 3 * s.ffn * 4);
  // A larger block (2000 rows) costs the tiled workspace nothing more.
  LoadMatrix bigger = loads;
  bigger.at(0, 0) = 1900;
  const auto tiled_bigger = plan_peak_bytes(ep_plan(bigger.expert_loads(), 3, "ep"), bigger, s, 1, 64);
  const auto whole_bigger = plan_peak_bytes(ep_plan(bigger.expert_loads(), 3, "ep"), bigger, s, 1, 1 << 20);
  EXPECT_EQ(whole_bigger[0] - tiled_bigger[0], (2000 - 64) * 3 * s.ffn * 4);
}

TEST(MemoryModel, LlepChangesAlphaToFitWhenItsFirstPlanDoesNot) {
  // 3 ranks, 100 slots on expert 0 (from all ranks alike): at alpha = 1
  // (m_alpha = 33) the 67 spilled slots cannot be split into chunks >= 40, so
  // one helper is forced to take all 67; at alpha = 2 the native keeps 66 and
  // one helper takes 34.
  const ModelShape s = tiny();
  LoadMatrix loads(3, 3);
  loads.at(0, 0) = 34;
  loads.at(1, 0) = 33;
  loads.at(2, 0) = 33;
  PolicyParams params;
  params.set("min-chunk", 40);
  auto llep = make_policy("llep", params);
  const Plan first = llep->plan(loads, 3);
  PolicyParams two = params;
  two.set("alpha", 2.0);
  const Plan wide = make_policy("llep", two)->plan(loads, 3);
  ASSERT_EQ(first.rank_loads(), (std::vector<int64_t>{33, 67, 0}));
  ASSERT_EQ(wide.rank_loads(), (std::vector<int64_t>{66, 34, 0}));
  const auto peak_first = plan_peak_bytes(first, loads, s, 1);
  const auto peak_wide = plan_peak_bytes(wide, loads, s, 1);
  const int64_t budget = *std::max_element(peak_wide.begin(), peak_wide.end());
  ASSERT_GT(*std::max_element(peak_first.begin(), peak_first.end()), budget);

  const BudgetVerdict v = fit_to_budget(first, *llep, loads, s, 1, budget);
  EXPECT_TRUE(v.fits);
  EXPECT_NE(v.alpha_used, 1.0);
  EXPECT_LE(v.need_bytes, budget);
  EXPECT_EQ(validate_plan(v.plan, loads.expert_loads()), "");

  // EP gets no second chance.
  auto ep = make_policy("ep", params);
  const BudgetVerdict no = fit_to_budget(ep->plan(loads, 3), *ep, loads, s, 1, budget);
  EXPECT_FALSE(no.fits);
  EXPECT_NE(no.reason.find("on rank 0"), std::string::npos);
}
