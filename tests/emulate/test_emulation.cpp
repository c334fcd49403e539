// The emulated cluster's CPU-checkable parts: plans, per-rank work partition,
// traffic, and the speedup arithmetic (with a deterministic fake runner), plus
// a smoke run of the host runner.
#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>

#include <gtest/gtest.h>

#include "runtime/emulate/Emulation.hpp"
#include "runtime/workload/Scenario.hpp"
#include "tests/common/NeedsKokkos.hpp"

using namespace moe;

namespace {

EmulationConfig small_config(const std::string& scenario, int ranks, std::vector<std::string> policies) {
  EmulationConfig c;
  c.shape = preset_shape("small");
  c.shape.tokens = 512;
  c.ranks = ranks;
  c.scenario = ScenarioSpec::parse(scenario);
  c.seed = 7;
  c.policies = std::move(policies);
  c.repeats = 3;
  c.warmup = 0;
  return c;
}

bool registered(const std::string& name) {
  const auto n = policy_names();
  return std::find(n.begin(), n.end(), name) != n.end();
}

std::vector<std::string> all_policies() { return policy_names(); }

// Time = a per-slot cost plus a per-block overhead; each rank's second run is
// an outlier that the median must ignore.
class FakeRunner final : public RankRunner {
 public:
  std::string describe() const override { return "fake"; }
  void reserve(const WorkBounds& b) override {
    bounds = b;
    ++reserves;
  }
  double run(const RankWork& w, PhaseSplit* phases) override {
    ++calls;
    const int n = ++per_work[&w];
    const double t = 1e-6 * static_cast<double>(w.slots) + 1e-4 * static_cast<double>(w.blocks.size());
    if (phases) *phases = PhaseSplit{t / 2, t / 4, t / 4};
    return n == 2 ? 100.0 * t : t;
  }
  WorkBounds bounds;
  int reserves = 0, calls = 0;
  std::map<const RankWork*, int> per_work;
};

// A hand-made plan: 2 ranks, 4 experts (native: 0,1 -> rank 0; 2,3 -> rank 1);
// expert 0 (load 10) is split 6 on rank 0 and 4 on rank 1.
Plan split_plan() {
  Plan p;
  p.policy = "split";
  p.num_ranks = 2;
  p.num_experts = 4;
  p.assignments = {{{0, 0, 6}, {1, 6, 10}}, {{0, 0, 2}}, {{1, 0, 3}}, {}};
  p.transfers = {{0, 0, 1}};
  p.dropped = {0, 0, 0, 0};
  return p;
}

}  // namespace

TEST(EmulationPlans, LoadsComeFromTheRuntimeSamplerAndPlansFromThePolicies) {
  const EmulationConfig c = small_config("50:2", 4, {"ep"});
  const EmulationResult r = plan_emulation(c);
  const LoadMatrix expect =
      scenario_load_matrix(c.scenario, c.shape, c.drift, c.seed, c.step, c.layer, std::vector<int64_t>(4, 512));
  EXPECT_EQ(r.loads.counts, expect.counts);
  EXPECT_EQ(r.total_slots, 4 * 512 * c.shape.top_k);
  ASSERT_EQ(r.policies.size(), 1u);
  EXPECT_EQ(r.policies[0].name, "ep");
  EXPECT_EQ(r.policies[0].plan, make_policy("ep", c.params)->plan(expect, 4));
  EXPECT_DOUBLE_EQ(r.ep_imbalance, imbalance(r.policies[0].plan.rank_loads()));
  EXPECT_GT(r.ep_imbalance, 1.5);  // 50% into 2 experts on 4 ranks is skewed
}

TEST(EmulationPlans, EpIsAddedFirstWhenMissing) {
  if (!registered("llep")) GTEST_SKIP() << "llep is not registered in this build";
  const EmulationResult r = plan_emulation(small_config("balanced", 4, {"llep", "llep"}));
  ASSERT_EQ(r.policies.size(), 2u);
  EXPECT_EQ(r.policies[0].name, "ep");
  EXPECT_EQ(r.policies[1].name, "llep");
}

TEST(EmulationPlans, InvalidConfigsAreRejectedWithTheFlag) {
  EmulationConfig c = small_config("balanced", 3, {"ep"});  // 32 experts over 3 ranks
  EXPECT_NE(validate_emulation_config(c).find("--experts"), std::string::npos);
  c = small_config("router", 4, {"ep"});
  EXPECT_NE(validate_emulation_config(c).find("--scenario"), std::string::npos);
  c = small_config("balanced", 4, {"nope"});
  EXPECT_NE(validate_emulation_config(c).find("--policies"), std::string::npos);
  c = small_config("balanced", 4, {"ep"});
  c.repeats = 0;
  EXPECT_NE(validate_emulation_config(c).find("--repeats"), std::string::npos);
  EXPECT_THROW(plan_emulation(c), std::invalid_argument);
}

TEST(EmulationWork, RankSlotsSumToTheKeptSlotsAndBlocksMatchThePlan) {
  for (const std::string scenario : {"balanced", "95:1", "30:4", "zipf:1.2"}) {
    const EmulationResult r = plan_emulation(small_config(scenario, 4, all_policies()));
    for (const auto& p : r.policies) {
      SCOPED_TRACE(scenario + " / " + p.name);
      ASSERT_EQ(p.work.size(), 4u);
      int64_t sum = 0;
      for (size_t q = 0; q < p.work.size(); ++q) {
        const RankWork& w = p.work[q];
        int64_t rank_sum = 0, last_expert = -1;
        for (const RankBlock& b : w.blocks) {
          EXPECT_GT(b.slots, 0);
          EXPECT_GT(b.expert, last_expert);  // one block per (expert, rank), experts ascending
          last_expert = b.expert;
          int64_t planned = 0;
          for (const SlotRange& s : p.plan.assignments[b.expert])
            if (s.rank == static_cast<int>(q)) planned += s.size();
          EXPECT_EQ(b.slots, planned);
          EXPECT_EQ(b.imported, native_rank(b.expert, 32, 4) != static_cast<int>(q));
          rank_sum += b.slots;
        }
        EXPECT_EQ(w.slots, rank_sum);
        EXPECT_EQ(p.rank_slots[q], rank_sum);
        sum += rank_sum;
      }
      EXPECT_EQ(sum, r.total_slots - p.plan.total_dropped());
      EXPECT_EQ(p.rank_slots, p.plan.rank_loads());
    }
  }
}

TEST(EmulationWork, SplitExpertBecomesAnImportedBlockOnTheHelper) {
  const std::vector<RankWork> w = partition_work(split_plan());
  ASSERT_EQ(w.size(), 2u);
  EXPECT_EQ(w[0].blocks, (std::vector<RankBlock>{{0, 6, false}, {1, 2, false}}));
  EXPECT_EQ(w[1].blocks, (std::vector<RankBlock>{{0, 4, true}, {2, 3, false}}));
  EXPECT_EQ(w[0].slots, 8);
  EXPECT_EQ(w[1].slots, 7);
  EXPECT_EQ(w[0].largest_block(), 6);
}

TEST(EmulationTraffic, CountsRowsComputedAwayFromTheirOriginTwice) {
  // Expert 0: rank 0 routed 7 slots, rank 1 routed 3 -> global order [0,7) from
  // rank 0, [7,10) from rank 1. Rank 1 computes [6,10): 1 slot from rank 0 and
  // 3 of its own. Rank 0 computes [0,6), all its own. Expert 1: 2 slots, both
  // from rank 1, computed on rank 0. Expert 2: 3 slots from rank 0, computed on
  // rank 1.
  LoadMatrix loads(2, 4);
  loads.at(0, 0) = 7;
  loads.at(1, 0) = 3;
  loads.at(1, 1) = 2;
  loads.at(0, 2) = 3;
  const Traffic t = plan_traffic(split_plan(), loads, 10, 1000);
  // Remote slots: rank 0 -> 1: 1 (expert 0) + 3 (expert 2) = 4; rank 1 -> 0: 2.
  EXPECT_EQ(t.token_send, (std::vector<int64_t>{(4 + 2) * 10, (2 + 4) * 10}));
  EXPECT_EQ(t.token_recv, (std::vector<int64_t>{(2 + 4) * 10, (4 + 2) * 10}));
  EXPECT_EQ(t.token_bytes(), 120);
  EXPECT_EQ(t.weight_send, (std::vector<int64_t>{1000, 0}));
  EXPECT_EQ(t.weight_recv, (std::vector<int64_t>{0, 1000}));
  EXPECT_EQ(t.weight_bytes(), 1000);
}

TEST(EmulationTraffic, ModelledSecondsUseTheBusiestRankAndGigabits) {
  EXPECT_DOUBLE_EQ(modelled_seconds({100, 1000}, {500, 0}, 8.0), 1000.0 / 1e9);
  EXPECT_TRUE(std::isnan(modelled_seconds({1}, {1}, 0.0)));
}

TEST(EmulationTraffic, EpMovesNoWeightsAndRemoteSlotsCrossTwice) {
  const EmulationResult r = plan_emulation(small_config("95:1", 4, {"ep"}));
  const PolicyEmulation& ep = r.policies[0];
  EXPECT_EQ(ep.traffic.weight_bytes(), 0);
  // Slots routed to experts of another rank cross twice.
  int64_t remote = 0;
  for (int p = 0; p < 4; ++p)
    for (int e = 0; e < 32; ++e)
      if (native_rank(e, 32, 4) != p) remote += r.loads.at(p, e);
  EXPECT_EQ(ep.traffic.token_bytes(), 2 * remote * 128 * 4);
}

TEST(EmulationArithmetic, MedianIgnoresOutliers) {
  EXPECT_DOUBLE_EQ(median({3.0, 1.0, 100.0}), 3.0);
  EXPECT_DOUBLE_EQ(median({4.0, 1.0, 2.0, 3.0}), 2.5);
  EXPECT_DOUBLE_EQ(median({}), 0.0);
}

TEST(EmulationArithmetic, MakespanSpeedupAndIdeal) {
  EmulationConfig c = small_config("95:1", 4, {"ep"});
  c.link_gbps = 100.0;
  EmulationResult r = plan_emulation(c);
  // A second, hand-balanced plan: the same loads spread evenly by slot count.
  PolicyEmulation even = r.policies[0];
  even.name = "even";
  even.work.assign(4, RankWork{});
  for (int q = 0; q < 4; ++q) {
    even.work[q].blocks = {{q, r.total_slots / 4, false}};
    even.work[q].slots = r.total_slots / 4;
  }
  r.policies.push_back(even);
  FakeRunner fake;
  time_emulation(c, fake, r);
  EXPECT_EQ(fake.reserves, 1);
  int busy_ranks = 0;
  for (const auto& p : r.policies)
    for (const auto& w : p.work) busy_ranks += w.blocks.empty() ? 0 : 1;
  EXPECT_EQ(fake.calls, busy_ranks * (c.warmup + c.repeats + 1));
  EXPECT_EQ(fake.bounds.max_rank_slots,
            *std::max_element(r.policies[0].rank_slots.begin(), r.policies[0].rank_slots.end()));
  for (const auto& p : r.policies) {
    SCOPED_TRACE(p.name);
    ASSERT_EQ(p.rank_time_s.size(), 4u);
    for (size_t q = 0; q < 4; ++q) {
      const RankWork& w = p.work[q];
      const double expect =
          w.blocks.empty() ? 0.0 : 1e-6 * static_cast<double>(w.slots) + 1e-4 * static_cast<double>(w.blocks.size());
      EXPECT_NEAR(p.rank_time_s[q], expect, 1e-12);  // median drops the outlier
      if (!w.blocks.empty()) {
        EXPECT_NEAR(p.rank_phases[q].gate_up_s, expect / 2, 1e-12);
      }
    }
    EXPECT_DOUBLE_EQ(p.makespan_s, *std::max_element(p.rank_time_s.begin(), p.rank_time_s.end()));
    EXPECT_NEAR(p.mean_time_s, std::accumulate(p.rank_time_s.begin(), p.rank_time_s.end(), 0.0) / 4, 1e-15);
    EXPECT_DOUBLE_EQ(p.speedup_vs_ep, r.policies[0].makespan_s / p.makespan_s);
    EXPECT_DOUBLE_EQ(p.token_model_s, modelled_seconds(p.traffic.token_send, p.traffic.token_recv, 100.0));
  }
  EXPECT_DOUBLE_EQ(r.policies[0].speedup_vs_ep, 1.0);
  EXPECT_GT(r.policies[1].speedup_vs_ep, 2.0);
  // The ideal: EP's max/mean rank load.
  const auto& ep_slots = r.policies[0].rank_slots;
  const double mean = static_cast<double>(std::accumulate(ep_slots.begin(), ep_slots.end(), int64_t{0})) / 4;
  EXPECT_DOUBLE_EQ(r.ep_imbalance, static_cast<double>(*std::max_element(ep_slots.begin(), ep_slots.end())) / mean);
}

TEST(EmulationArithmetic, LlepIsNoSlowerThanTheIdealAllowsOnRealPlans) {
  if (!registered("llep")) GTEST_SKIP() << "llep is not registered in this build";
  EmulationResult r = plan_emulation(small_config("95:1", 4, {"ep", "llep"}));
  FakeRunner fake;
  EmulationConfig c = small_config("95:1", 4, {"ep", "llep"});
  time_emulation(c, fake, r);
  ASSERT_EQ(r.policies.size(), 2u);
  // With time ~ slots, LLEP's speedup is bounded by the ideal (plus the block overheads).
  EXPECT_GT(r.policies[1].speedup_vs_ep, 1.5);
  EXPECT_LT(r.policies[1].speedup_vs_ep, r.ep_imbalance * 1.1);
}

// Views and kernels: skips where Kokkos could not be initialised (NeedsKokkos.hpp).
class EmulationRunner : public moe_test::NeedsKokkos {};

TEST_F(EmulationRunner, HostRunnerTimesARanksBlocks) {
  EmulationConfig c = small_config("50:1", 4, {"ep"});
  c.shape.tokens = 64;
  EmulationResult r = plan_emulation(c);
  auto runner = make_kokkos_runner(c.shape, c.seed);
  EXPECT_NE(runner->describe().find("fp32"), std::string::npos);
  time_emulation(c, *runner, r);
  const PolicyEmulation& ep = r.policies[0];
  for (size_t q = 0; q < 4; ++q) {
    if (ep.work[q].blocks.empty()) {
      EXPECT_EQ(ep.rank_time_s[q], 0.0);
    } else {
      EXPECT_GT(ep.rank_time_s[q], 0.0);
    }
  }
  EXPECT_GT(ep.makespan_s, 0.0);
  EXPECT_DOUBLE_EQ(ep.speedup_vs_ep, 1.0);
}
