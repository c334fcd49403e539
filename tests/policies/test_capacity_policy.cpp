// Capacity-based dropping: hand-worked capacities and plans.
#include <gtest/gtest.h>

#include "policies/Policy.hpp"

using namespace moe;

namespace {

PolicyParams capacity(double cf, const std::string& drop = "position") {
  PolicyParams p;
  p.set("capacity-factor", cf);
  p.set("drop-policy", drop);
  return p;
}

Plan plan_of(const std::vector<int64_t>& loads, int P, const PolicyParams& params) {
  Plan plan = make_policy("capacity", params)->plan(LoadMatrix::from_expert_loads(loads), P);
  EXPECT_EQ(validate_plan(plan, loads), "");
  return plan;
}

using Ranges = std::vector<SlotRange>;

}  // namespace

TEST(CapacityPolicy, IsNotExactAndNamedCapacity) {
  const auto policy = make_policy("capacity", PolicyParams{});
  EXPECT_EQ(policy->name(), "capacity");
  EXPECT_FALSE(policy->exact());
}

TEST(CapacityPolicy, RejectsInvalidParameters) {
  EXPECT_THROW(make_policy("capacity", capacity(0.0)), std::invalid_argument);
  EXPECT_THROW(make_policy("capacity", capacity(1.0, "random")), std::invalid_argument);
  EXPECT_THROW(plan_of({1, 2, 3}, 2, capacity(1.0)), std::invalid_argument);  // N % P != 0
}

// C = ceil(cf * total / N).
TEST(CapacityPolicy, CapacityIsTheCeilingOfCfTimesTheMeanLoad) {
  EXPECT_EQ(expert_capacity(1.0, 120, 8), 15);   // 15 exactly
  EXPECT_EQ(expert_capacity(1.0, 121, 8), 16);   // 15.125
  EXPECT_EQ(expert_capacity(1.25, 100, 8), 16);  // 15.625
  EXPECT_EQ(expert_capacity(1.1, 400, 8), 55);   // 55 exactly (55.00000000000001 in doubles)
  EXPECT_EQ(expert_capacity(0.01, 10, 8), 1);    // 0.0125
  EXPECT_EQ(expert_capacity(2.0, 0, 8), 0);      // no slots
  EXPECT_EQ(expert_capacity(1e300, 50, 8), 50);  // never above the total
}

// Loads {90, 10, 0, 0, 5, 5, 3, 7} on P = 4: total 120, N = 8, cf 1 -> C = 15.
// Expert 0 keeps [0, 15) on its EP rank 0 and drops 75; the rest fit.
TEST(CapacityPolicy, KeepsTheFirstCSlotsOnTheEpRank) {
  const Plan p = plan_of({90, 10, 0, 0, 5, 5, 3, 7}, 4, capacity(1.0));
  EXPECT_EQ(p.slot_order, SlotOrder::Position);
  EXPECT_EQ(p.assignments[0], (Ranges{{0, 0, 15}}));
  EXPECT_EQ(p.assignments[1], (Ranges{{0, 0, 10}}));
  EXPECT_TRUE(p.assignments[2].empty());
  EXPECT_EQ(p.assignments[7], (Ranges{{3, 0, 7}}));
  EXPECT_EQ(p.dropped, (std::vector<int64_t>{75, 0, 0, 0, 0, 0, 0, 0}));
  EXPECT_EQ(p.total_dropped(), 75);
  EXPECT_TRUE(p.transfers.empty());
  EXPECT_EQ(p.rank_loads(), (std::vector<int64_t>{25, 0, 10, 10}));
}

// cf 2 on the same loads: C = 30, expert 0 keeps 30 and drops 60.
TEST(CapacityPolicy, LargerFactorKeepsMore) {
  const Plan p = plan_of({90, 10, 0, 0, 5, 5, 3, 7}, 4, capacity(2.0));
  EXPECT_EQ(p.assignments[0], (Ranges{{0, 0, 30}}));
  EXPECT_EQ(p.total_dropped(), 60);
}

// "probs" keeps the C highest gate weights: the plan still keeps [0, C), in
// gate-descending slot order, which the runtime applies.
TEST(CapacityPolicy, ProbsDropPolicyOrdersSlotsByGate) {
  const Plan p = plan_of({90, 10, 0, 0, 5, 5, 3, 7}, 4, capacity(1.0, "probs"));
  EXPECT_EQ(p.slot_order, SlotOrder::GateDescending);
  EXPECT_EQ(p.assignments[0], (Ranges{{0, 0, 15}}));
  EXPECT_EQ(p.total_dropped(), 75);
}

// A tiny factor: C = ceil(0.1 * 16 / 4) = 1 -> every non-empty expert keeps one slot.
TEST(CapacityPolicy, TinyFactorKeepsOneSlotPerExpert) {
  const Plan p = plan_of({10, 0, 3, 3}, 2, capacity(0.1));
  EXPECT_EQ(p.rank_loads(), (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(p.dropped, (std::vector<int64_t>{9, 0, 2, 2}));
}

TEST(CapacityPolicy, NoSlotsNoRanges) {
  const Plan p = plan_of({0, 0, 0, 0}, 2, capacity(1.0));
  EXPECT_EQ(p.total_dropped(), 0);
  for (const auto& r : p.assignments) EXPECT_TRUE(r.empty());
}
