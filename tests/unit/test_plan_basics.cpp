#include <gtest/gtest.h>

#include "policies/Policy.hpp"

using namespace moe;

TEST(EpPlan, EveryExpertWholeOnItsNativeRank) {
  const std::vector<int64_t> loads = {5, 0, 7, 1, 0, 0, 3, 9};
  const Plan p = ep_plan(loads, 4, "ep");
  EXPECT_EQ(validate_plan(p, loads), "");
  EXPECT_TRUE(p.transfers.empty());
  EXPECT_EQ(p.rank_loads(), (std::vector<int64_t>{5, 8, 0, 12}));
  EXPECT_TRUE(p.assignments[1].empty());
  EXPECT_EQ(p.assignments[7], (std::vector<SlotRange>{{3, 0, 9}}));
  EXPECT_THROW(ep_plan(loads, 3, "ep"), std::invalid_argument);
}

TEST(Plan, ImbalanceIsMaxOverMean) {
  EXPECT_DOUBLE_EQ(imbalance({1, 1, 1, 1}), 1.0);
  EXPECT_DOUBLE_EQ(imbalance({4, 0, 0, 0}), 4.0);
  EXPECT_DOUBLE_EQ(imbalance({0, 0}), 1.0);
}

TEST(Plan, ValidateCatchesBrokenPlans) {
  const std::vector<int64_t> loads = {10, 0};
  Plan p = ep_plan(loads, 2, "ep");
  p.assignments[0] = {{0, 0, 4}, {1, 5, 10}};  // gap
  EXPECT_NE(validate_plan(p, loads), "");
  p.assignments[0] = {{0, 0, 4}, {1, 4, 10}};  // helper without transfer
  EXPECT_NE(validate_plan(p, loads), "");
  p.transfers = {{0, 0, 1}};
  EXPECT_EQ(validate_plan(p, loads), "");
  p.transfers = {{0, 1, 0}};  // not from the native rank
  EXPECT_NE(validate_plan(p, loads), "");
}

TEST(PolicyRegistry, UnknownNamesListTheValidOnes) {
  try {
    make_policy("nope", PolicyParams{});
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("ep"), std::string::npos);
  }
  PolicyParams bad;
  bad.set("min-chunk", 0);
  EXPECT_NE(validate_policy_params(bad).find("--min-chunk"), std::string::npos);
}
