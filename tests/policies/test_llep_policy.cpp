// LLEP: hand-worked plans (derivations in the comments) and a comparison with
// the naive re-implementation in NaiveLla.hpp over thousands of random loads.
#include <random>

#include <gtest/gtest.h>

#include "NaiveLla.hpp"
#include "RandomLoads.hpp"
#include "policies/Policy.hpp"
#include "tests/common/RandomCases.hpp"

using namespace moe;

namespace {

Plan llep(const std::vector<int64_t>& loads, int P, const PolicyParams& params) {
  Plan plan = make_policy("llep", params)->plan(LoadMatrix::from_expert_loads(loads), P);
  EXPECT_EQ(validate_plan(plan, loads), "");
  return plan;
}

PolicyParams with(double alpha, int64_t m, double lambda) {
  PolicyParams p;
  p.set("alpha", alpha);
  p.set("min-chunk", m);
  p.set("lambda", lambda);
  return p;
}

using Ranges = std::vector<SlotRange>;
using Transfers = std::vector<WeightTransfer>;

}  // namespace

TEST(LlepPolicy, IsExactAndNamedLlep) {
  const auto policy = make_policy("llep", PolicyParams{});
  EXPECT_EQ(policy->name(), "llep");
  EXPECT_TRUE(policy->exact());
}

TEST(LlepPolicy, RejectsInvalidParameters) {
  EXPECT_THROW(make_policy("llep", with(1.0, 0, 1.3)), std::invalid_argument);   // m < 1
  EXPECT_THROW(make_policy("llep", with(0.0, 1, 1.3)), std::invalid_argument);   // alpha <= 0
  EXPECT_THROW(make_policy("llep", with(1.0, 1, 0.99)), std::invalid_argument);  // lambda < 1
  EXPECT_THROW(llep({1, 2, 3}, 2, PolicyParams{}), std::invalid_argument);       // N % P != 0
}

// P = 2, loads {8, 4, 4, 4}: EP rank loads 12, 8, mean 10, max/mean 1.2.
// lambda 1.3: 1.2 < 1.3, so the EP plan. lambda 1.2: not below, so LLA with
// m_alpha = floor(20 / 2) = 10: e0 (load 8, native 0): pending0 = 4, room
// 10 - 0 - 4 = 6, native takes 6; remainder 2 -> rank 1 (key 8, room 2, the
// whole remainder) takes [6, 8). Then e1..e3 fit on their natives.
TEST(LlepPolicy, BelowLambdaIsTheEpPlan) {
  const std::vector<int64_t> loads = {8, 4, 4, 4};
  EXPECT_EQ(llep(loads, 2, with(1.0, 1, 1.3)), ep_plan(loads, 2, "llep"));
  const Plan lla = llep(loads, 2, with(1.0, 1, 1.2));
  EXPECT_EQ(lla.assignments[0], (Ranges{{0, 0, 6}, {1, 6, 8}}));
  EXPECT_EQ(lla.assignments[1], (Ranges{{0, 0, 4}}));
  EXPECT_EQ(lla.transfers, (Transfers{{0, 0, 1}}));
  EXPECT_EQ(lla.rank_loads(), (std::vector<int64_t>{10, 10}));
}

// P = 4, loads {100, 0, 0, 0}, m = 1: m_alpha = 25; the native keeps [0, 25)
// and ranks 1, 2, 3 (all key 0, so by id) take 25 each.
TEST(LlepPolicy, HotExpertSpreadsOverAllRanks) {
  const Plan p = llep({100, 0, 0, 0}, 4, with(1.0, 1, 1.3));
  EXPECT_EQ(p.assignments[0], (Ranges{{0, 0, 25}, {1, 25, 50}, {2, 50, 75}, {3, 75, 100}}));
  EXPECT_EQ(p.transfers, (Transfers{{0, 0, 1}, {0, 0, 2}, {0, 0, 3}}));
}

// Same loads, m = 30: after the native's 25 the remainder is 75; rank 1 could
// take c = 25 < m while 75 > 25, so it does not qualify, nor do ranks 2, 3 (same
// room): forced remainder, rank 1 (first of the order) takes all 75.
TEST(LlepPolicy, ForcedRemainderGoesToTheLeastLoadedRank) {
  const Plan p = llep({100, 0, 0, 0}, 4, with(1.0, 30, 1.3));
  EXPECT_EQ(p.assignments[0], (Ranges{{0, 0, 25}, {1, 25, 100}}));
  EXPECT_EQ(p.transfers, (Transfers{{0, 0, 1}}));
  EXPECT_EQ(p.rank_loads(), (std::vector<int64_t>{25, 75, 0, 0}));
}

// P = 4, N = 8 (2 experts per rank), loads e0 60, e2 10, e4 18, e6 12: EP rank
// loads 60, 10, 18, 12 (max/mean 2.4); m_alpha = 25. Visit e0, e4, e6, e2.
// m = 10: e0: native keeps 25, remainder 35; others by key: r1 10, r3 12, r2 18.
//   r1 room 15 >= m, takes [25, 40); r3 (12) room 13 >= m, takes [40, 53);
//   r2 (18) room 7 = whole remainder 7, takes [53, 60). e4, e6, e2 then fit
//   exactly (each native at key 25 with room = its load).
// m = 14: e0: r1 takes 15 (>= 14) -> [25, 40); remainder 20; r3 room 13 < 14
//   while 20 > 13: no rank qualifies (r2's room 7 is smaller still), so r3
//   takes all 20 -> [40, 60), key 32. e4 (r2, key 18): room 25 fits all 18.
//   e6 (r3, key 32): room 25 - (32 - 12) = 5, keeps [0, 5); remainder 7: r2 (key
//   18) room 7 takes [5, 12). e2 (r1, key 25): room 10 fits.
TEST(LlepPolicy, MinChunkDecidesBetweenSplittingAndForcing) {
  const std::vector<int64_t> loads = {60, 0, 10, 0, 18, 0, 12, 0};
  const Plan a = llep(loads, 4, with(1.0, 10, 1.3));
  EXPECT_EQ(a.assignments[0], (Ranges{{0, 0, 25}, {1, 25, 40}, {3, 40, 53}, {2, 53, 60}}));
  EXPECT_EQ(a.assignments[4], (Ranges{{2, 0, 18}}));
  EXPECT_EQ(a.assignments[6], (Ranges{{3, 0, 12}}));
  EXPECT_EQ(a.assignments[2], (Ranges{{1, 0, 10}}));
  EXPECT_EQ(a.transfers, (Transfers{{0, 0, 1}, {0, 0, 3}, {0, 0, 2}}));
  EXPECT_EQ(a.rank_loads(), (std::vector<int64_t>{25, 25, 25, 25}));

  const Plan b = llep(loads, 4, with(1.0, 14, 1.3));
  EXPECT_EQ(b.assignments[0], (Ranges{{0, 0, 25}, {1, 25, 40}, {3, 40, 60}}));
  EXPECT_EQ(b.assignments[4], (Ranges{{2, 0, 18}}));
  EXPECT_EQ(b.assignments[6], (Ranges{{3, 0, 5}, {2, 5, 12}}));
  EXPECT_EQ(b.assignments[2], (Ranges{{1, 0, 10}}));
  EXPECT_EQ(b.transfers, (Transfers{{0, 0, 1}, {0, 0, 3}, {6, 3, 2}}));
  EXPECT_EQ(b.rank_loads(), (std::vector<int64_t>{25, 25, 25, 25}));
}

// P = 4, loads {10, 10, 0, 0}, m = 1: m_alpha = 5. e0 and e1 tie: e0 (smaller
// id) first; it keeps [0, 5) and its remainder goes to r2, not r3 (both key 0,
// smaller rank id). e1 keeps [0, 5); others r0 5, r2 5, r3 0: r3 takes [5, 10).
TEST(LlepPolicy, TiesGoToTheSmallerExpertAndRankId) {
  const Plan p = llep({10, 10, 0, 0}, 4, with(1.0, 1, 1.3));
  EXPECT_EQ(p.assignments[0], (Ranges{{0, 0, 5}, {2, 5, 10}}));
  EXPECT_EQ(p.assignments[1], (Ranges{{1, 0, 5}, {3, 5, 10}}));
  EXPECT_EQ(p.transfers, (Transfers{{0, 0, 2}, {1, 1, 3}}));
}

// P = 1: max/mean is always 1, so only lambda = 1 reaches LLA, and there
// everything stays native even when alpha makes m_alpha smaller than a load.
TEST(LlepPolicy, OneRankKeepsEverythingNative) {
  const std::vector<int64_t> loads = {7, 3, 0};
  EXPECT_EQ(llep(loads, 1, with(0.5, 1, 1.0)), ep_plan(loads, 1, "llep"));
  EXPECT_EQ(llep(loads, 1, with(1.0, 1, 1.3)), ep_plan(loads, 1, "llep"));
}

// P = 3, N = 6, loads e0 100, e4 30, e5 30, alpha 0.5, m = 1: total 160,
// m_alpha = floor(0.5 * floor(160 / 3)) = 26. EP rank loads 100, 0, 60.
// e0 (r0): keeps [0, 26), remainder 74; r1 (key 0) takes 26 -> [26, 52), key 26;
//   then r1 (26) and r2 (60) both have no room: forced, r1 takes the remaining
//   48, continuing its own range: one range [26, 100), one transfer.
// e4 (r2, key 60): room 26 - 30 < 0, keeps nothing; r0 (26) and r1 (74) have no
//   room: forced to r0 -> [0, 30). e5 (r2, key 30): room 26, keeps [0, 26);
//   remainder 4 forced to r0 (56) -> [26, 30).
TEST(LlepPolicy, ForcedRemainderContinuingAHelperRangeIsOneRange) {
  const std::vector<int64_t> loads = {100, 0, 0, 0, 30, 30};
  const Plan p = llep(loads, 3, with(0.5, 1, 1.3));
  EXPECT_EQ(p.assignments[0], (Ranges{{0, 0, 26}, {1, 26, 100}}));
  EXPECT_EQ(p.assignments[4], (Ranges{{0, 0, 30}}));
  EXPECT_EQ(p.assignments[5], (Ranges{{2, 0, 26}, {0, 26, 30}}));
  EXPECT_EQ(p.transfers, (Transfers{{0, 0, 1}, {4, 2, 0}, {5, 2, 0}}));
  EXPECT_EQ(p.rank_loads(), (std::vector<int64_t>{60, 74, 26}));
}

// The per-rank loads of a real all-gather give the same plan as their sums.
TEST(LlepPolicy, PlansFromPerRankCountsMatchGlobalLoads) {
  LoadMatrix m(2, 4);
  const std::vector<int64_t> r0 = {50, 1, 2, 3}, r1 = {40, 0, 1, 3};
  for (int e = 0; e < 4; ++e) m.at(0, e) = r0[e], m.at(1, e) = r1[e];
  const auto policy = make_policy("llep", with(1.0, 1, 1.3));
  EXPECT_EQ(policy->plan(m, 2), policy->plan(LoadMatrix::from_expert_loads(m.expert_loads()), 2));
}

// Loads too large to pack with the expert id into one sort key take the
// plain comparison sort; the plan must not change.
TEST(LlepPolicy, HugeLoadsGiveTheSameVisitOrder) {
  const int64_t big = int64_t{1} << 60;  // >= 2^(63 - 4): N = 8 needs 4 id bits
  const std::vector<int64_t> loads = {big, 3, big / 2, big / 2, 0, big + 1, 7, 7};
  for (int P : {2, 4}) {
    const PolicyParams params = with(1.0, 1, 1.0);
    EXPECT_EQ(llep(loads, P, params), test::naive_llep(loads, P, params).plan) << "P = " << P;
  }
}

TEST(LlepPolicy, MatchesTheNaiveReferenceOnRandomLoads) {
  std::mt19937_64 rng(20260117);
  const std::vector<double> alphas = {0.5, 0.75, 1.0, 1.3, 2.0};
  const std::vector<int64_t> chunks = {1, 7, 64, 1024, 5000};
  const std::vector<double> lambdas = {1.0, 1.1, 1.3, 2.0};
  int lla_runs = 0, forced_runs = 0;
  for (int i = 0; i < moe_test::random_cases(4000); ++i) {
    const test::LoadCase c = test::random_load_case(rng);
    const PolicyParams params =
        with(alphas[rng() % alphas.size()], chunks[rng() % chunks.size()], lambdas[rng() % lambdas.size()]);
    const test::NaiveLlep ref = test::naive_llep(c.loads, c.P, params);
    const Plan got = make_policy("llep", params)->plan(LoadMatrix::from_expert_loads(c.loads), c.P);
    ASSERT_EQ(got, ref.plan) << "case " << i << ": P = " << c.P << ", N = " << c.loads.size()
                             << ", alpha = " << params.number("alpha") << ", m = " << params.integer("min-chunk")
                             << ", lambda = " << params.number("lambda");
    lla_runs += ref.ran_lla;
    forced_runs += std::count(ref.forced.begin(), ref.forced.end(), true) > 0;
  }
  // The random cases must reach both branches and the forced remainder often.
  EXPECT_GT(lla_runs, moe_test::random_cases(1000));
  EXPECT_GT(forced_runs, moe_test::random_cases(200));
  EXPECT_LT(lla_runs, moe_test::random_cases(4000));
}
