#include <numeric>
#include <stdexcept>

#include <gtest/gtest.h>

#include "runtime/workload/Scenario.hpp"

using namespace moe;

namespace {
ModelShape shape(int n, int k, int64_t b) {
  ModelShape s;
  s.num_experts = n;
  s.top_k = k;
  s.tokens = b;
  return s;
}
}  // namespace

TEST(ScenarioParse, AcceptsTheDocumentedForms) {
  EXPECT_EQ(ScenarioSpec::parse("balanced").kind, ScenarioSpec::Kind::Balanced);
  EXPECT_EQ(ScenarioSpec::parse("router").kind, ScenarioSpec::Kind::Router);
  auto hot = ScenarioSpec::parse("95:1");
  EXPECT_EQ(hot.kind, ScenarioSpec::Kind::Hot);
  EXPECT_DOUBLE_EQ(hot.hot_percent, 95.0);
  EXPECT_EQ(hot.hot_experts, 1);
  auto z = ScenarioSpec::parse("zipf:1.2");
  EXPECT_EQ(z.kind, ScenarioSpec::Kind::Zipf);
  EXPECT_DOUBLE_EQ(z.zipf_s, 1.2);
  EXPECT_EQ(ScenarioSpec::parse("trace:a.h5").trace_path, "a.h5");
}

TEST(ScenarioParse, RejectsMalformedWithTheFlagName) {
  for (const char* bad :
       {"95:x", "95:", ":1", "101:1", "-1:2", "50:0", "zipf:", "zipf:-1", "zipf:abc", "trace:", "hot", "95:1.5"}) {
    try {
      ScenarioSpec::parse(bad);
      ADD_FAILURE() << "accepted '" << bad << "'";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find("--scenario"), std::string::npos) << e.what();
    }
  }
  EXPECT_FALSE(ScenarioSpec::parse("50:40").validate(shape(32, 4, 16)).empty());
  EXPECT_TRUE(ScenarioSpec::parse("100:32").validate(shape(32, 4, 16)).empty());
  EXPECT_FALSE(ScenarioSpec::parse("90:32").validate(shape(32, 4, 16)).empty());
}

TEST(Scenario, BalancedIsExactlyBalancedWhateverTheRankSplit) {
  const auto s = shape(16, 4, 0);
  const auto spec = ScenarioSpec::parse("balanced");
  // 3 ranks with uneven token counts; total slots = 4 * 100 = 400 = 25 per expert.
  const LoadMatrix m = scenario_load_matrix(spec, s, 0.0, 7, 0, 0, {10, 60, 30});
  for (int64_t l : m.expert_loads()) EXPECT_EQ(l, 25);
}

TEST(Scenario, GlobalTokenIndexMakesRoutingIndependentOfRankCount) {
  const auto s = shape(32, 4, 0);
  const auto spec = ScenarioSpec::parse("80:2");
  const auto one = scenario_load_matrix(spec, s, 0.1, 3, 2, 1, {1200}).expert_loads();
  const auto four = scenario_load_matrix(spec, s, 0.1, 3, 2, 1, {300, 300, 300, 300}).expert_loads();
  EXPECT_EQ(one, four);
}

TEST(Scenario, HotScenarioPutsAboutXPercentIntoTheHotExperts) {
  const auto s = shape(32, 4, 0);
  const auto loads = scenario_load_matrix(ScenarioSpec::parse("95:1"), s, 0.0, 1, 0, 0, {20000}).expert_loads();
  const double total = std::accumulate(loads.begin(), loads.end(), 0.0);
  EXPECT_NEAR(loads[0] / total, 0.95, 0.01);
  const auto loads16 = scenario_load_matrix(ScenarioSpec::parse("30:16"), s, 0.0, 1, 0, 0, {20000}).expert_loads();
  const double hot16 = std::accumulate(loads16.begin(), loads16.begin() + 16, 0.0);
  EXPECT_NEAR(hot16 / total, 0.30, 0.01);
}

TEST(Scenario, ZipfIsMonotoneInExpectation) {
  const auto s = shape(16, 2, 0);
  const auto loads = scenario_load_matrix(ScenarioSpec::parse("zipf:1.2"), s, 0.0, 1, 0, 0, {50000}).expert_loads();
  EXPECT_GT(loads[0], loads[1]);
  EXPECT_GT(loads[1], loads[4]);
  EXPECT_GT(loads[4], loads[15]);
}

TEST(Scenario, DeterministicFromSeedAndDriftChangesLaterSteps) {
  const auto s = shape(32, 4, 0);
  const auto spec = ScenarioSpec::parse("50:4");
  EXPECT_EQ(scenario_load_matrix(spec, s, 0.1, 5, 0, 0, {500}).counts,
            scenario_load_matrix(spec, s, 0.1, 5, 0, 0, {500}).counts);
  EXPECT_NE(scenario_load_matrix(spec, s, 0.1, 5, 0, 0, {500}).counts,
            scenario_load_matrix(spec, s, 0.1, 6, 0, 0, {500}).counts);
  // Step 0 is the scenario as written whatever the drift.
  EXPECT_EQ(scenario_load_matrix(spec, s, 0.0, 5, 0, 0, {500}).counts,
            scenario_load_matrix(spec, s, 0.5, 5, 0, 0, {500}).counts);
  EXPECT_NE(scenario_load_matrix(spec, s, 0.5, 5, 1, 0, {500}).counts,
            scenario_load_matrix(spec, s, 0.0, 5, 1, 0, {500}).counts);
}
