// llep-topo: hand-worked plans (which helper it picks with and without the
// tolerance, and where it lays out a split expert's slots; derivations in the
// comments), the naive statement of its rules in NaiveLla.hpp on thousands of
// random loads, LLEP's properties, LLEP's plan with one node, and a layout
// that never crosses nodes more than LLEP's where the helpers are the same.
#include <random>
#include <set>

#include <gtest/gtest.h>

#include "NaiveLla.hpp"
#include "RandomLoads.hpp"
#include "policies/Policy.hpp"
#include "tests/common/RandomCases.hpp"

using namespace moe;

namespace {

PolicyParams topo(double alpha, int64_t m, double lambda, int ranks_per_node, double tolerance) {
  PolicyParams p;
  p.set("alpha", alpha);
  p.set("min-chunk", m);
  p.set("lambda", lambda);
  p.set("ranks-per-node", ranks_per_node);
  p.set("node-tolerance", tolerance);
  return p;
}

Plan plan_of(const char* policy, const std::vector<int64_t>& loads, int P, const PolicyParams& params) {
  Plan plan = make_policy(policy, params)->plan(LoadMatrix::from_expert_loads(loads), P);
  EXPECT_EQ(validate_plan(plan, loads), "");
  return plan;
}

/// The plan with another policy name (to compare llep-topo's with llep's).
Plan renamed(Plan plan, const std::string& name) {
  plan.policy = name;
  return plan;
}

int inter_node_transfers(const Plan& plan, int ranks_per_node) {
  int n = 0;
  for (const auto& t : plan.transfers) n += node_of(t.src, ranks_per_node) != node_of(t.dst, ranks_per_node);
  return n;
}

/// A random split of each expert's load over the P origin ranks.
LoadMatrix random_split(const std::vector<int64_t>& loads, int P, std::mt19937_64& rng) {
  const int N = static_cast<int>(loads.size());
  LoadMatrix m(P, N);
  for (int e = 0; e < N; ++e) {
    int64_t left = loads[e];
    for (int r = 0; r + 1 < P && left > 0; ++r) {
      const int64_t part = static_cast<int64_t>(rng() % static_cast<uint64_t>(left / 2 + 1));
      m.at(r, e) = part;
      left -= part;
    }
    m.at(P - 1, e) += left;
  }
  return m;
}

/// Slots computed on another node than the one they come from (each origin
/// rank's slots of e are its block of e's slot order).
int64_t inter_node_slots(const Plan& plan, const LoadMatrix& origins, int ranks_per_node) {
  int64_t n = 0;
  for (int e = 0; e < plan.num_experts; ++e) {
    int64_t off = 0;
    for (int q = 0; q < origins.num_ranks; ++q) {
      const int64_t lo = off, hi = off + origins.at(q, e);
      off = hi;
      for (const auto& r : plan.assignments[e])
        if (node_of(r.rank, ranks_per_node) != node_of(q, ranks_per_node))
          n += std::max<int64_t>(0, std::min(hi, r.end) - std::max(lo, r.start));
    }
  }
  return n;
}

using Ranges = std::vector<SlotRange>;
using Transfers = std::vector<WeightTransfer>;

}  // namespace

TEST(LlepTopoPolicy, IsExactNamedAndSharesLlepParameters) {
  const auto policy = make_policy("llep-topo", PolicyParams{});
  EXPECT_EQ(policy->name(), "llep-topo");
  EXPECT_TRUE(policy->exact());
  std::vector<std::string> names;
  for (const auto& s : policy_param_specs("llep-topo")) names.push_back(s.name);
  EXPECT_EQ(names, (std::vector<std::string>{"alpha", "min-chunk", "lambda", "ranks-per-node", "node-tolerance"}));
  int alphas = 0;
  for (const auto& s : all_param_specs()) alphas += s.name == "alpha";
  EXPECT_EQ(alphas, 1);  // declared once, by llep
  EXPECT_EQ(find_param_spec("ranks-per-node")->default_number, 0.0);
  EXPECT_EQ(find_param_spec("node-tolerance")->default_number, 0.1);
}

TEST(LlepTopoPolicy, RejectsInvalidParametersNamingTheFlag) {
  const auto refusal = [](const PolicyParams& p) {
    try {
      make_policy("llep-topo", p);
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  EXPECT_EQ(refusal(PolicyParams{}.set("ranks-per-node", -1)), "--ranks-per-node must be >= 0 and <= 1048576 (got -1)");
  EXPECT_EQ(refusal(PolicyParams{}.set("ranks-per-node", 1.5)), "--ranks-per-node must be an integer (got 1.5)");
  EXPECT_EQ(refusal(PolicyParams{}.set("node-tolerance", -0.5)), "--node-tolerance must be >= 0 (got -0.5)");
  EXPECT_EQ(refusal(PolicyParams{}.set("min-chunk", 0)), "--min-chunk must be >= 1 (got 0)");  // llep's, shared
}

// P = 4 as 2 nodes {0, 1} {2, 3}, loads {14, 9, 8, 9} (one expert per rank),
// alpha 1.2, m 1: EP max/mean 14 / 10 = 1.4 >= 1.3, so LLA with m_alpha =
// floor(1.2 * floor(40 / 4)) = 12. Expert 0 (native 0) keeps [0, 12); the
// remainder 2 spills. Keys: r1 9, r2 8, r3 9, so LLEP's helper is r2 (node 1).
// r1 is the least-loaded rank on node 0: 9 <= (1 + tol) * 8 holds for tol >=
// 0.125. With tol 0.1 (8.8) the plan is LLEP's; with tol 0.2 (9.6) r1 takes
// the remainder (room 12 - 9 = 3 >= 2): no weight leaves node 0.
TEST(LlepTopoPolicy, PrefersASameNodeHelperWithinTheTolerance) {
  const std::vector<int64_t> loads = {14, 9, 8, 9};
  const Plan llep = plan_of("llep", loads, 4, topo(1.2, 1, 1.3, 2, 0.0));
  EXPECT_EQ(llep.assignments[0], (Ranges{{0, 0, 12}, {2, 12, 14}}));
  EXPECT_EQ(llep.transfers, (Transfers{{0, 0, 2}}));

  EXPECT_EQ(renamed(plan_of("llep-topo", loads, 4, topo(1.2, 1, 1.3, 2, 0.1)), "llep"), llep);
  const Plan near = plan_of("llep-topo", loads, 4, topo(1.2, 1, 1.3, 2, 0.2));
  EXPECT_EQ(near.policy, "llep-topo");
  EXPECT_EQ(near.assignments[0], (Ranges{{0, 0, 12}, {1, 12, 14}}));
  EXPECT_EQ(near.transfers, (Transfers{{0, 0, 1}}));
  EXPECT_EQ(near.rank_loads(), (std::vector<int64_t>{12, 11, 8, 9}));
  EXPECT_EQ(inter_node_transfers(llep, 2), 1);
  EXPECT_EQ(inter_node_transfers(near, 2), 0);

  // One rank per node, or one node for all: nothing to prefer, LLEP's plan.
  for (int rpn : {0, 1, 4, 8})
    EXPECT_EQ(renamed(plan_of("llep-topo", loads, 4, topo(1.2, 1, 1.3, rpn, 0.2)), "llep"), llep) << rpn;
}

// The same-node rank must also qualify as LLEP's chunk rule says. Loads {14,
// 11, 8, 9}: EP max/mean 14 / 10.5 = 1.33, m_alpha = floor(1.2 * 10) = 12.
// Expert 0 keeps [0, 12); remainder 2; LLEP's helper r2 (key 8), node 0's
// least-loaded r1 (key 11 <= 2 * 8 with tol 1). r1's room is 1: with m = 2 a
// chunk of 1 while 2 remain is too small, so r2 takes all 2 (LLEP's plan);
// with m = 1 r1 takes [12, 13), and for the last slot r1 (key 12) has no room,
// so r2 takes [13, 14).
TEST(LlepTopoPolicy, FallsBackToLlepWhenTheSameNodeRankCannotTakeAChunk) {
  const std::vector<int64_t> loads = {14, 11, 8, 9};
  const Plan m2 = plan_of("llep-topo", loads, 4, topo(1.2, 2, 1.3, 2, 1.0));
  EXPECT_EQ(m2.assignments[0], (Ranges{{0, 0, 12}, {2, 12, 14}}));
  EXPECT_EQ(renamed(m2, "llep"), plan_of("llep", loads, 4, topo(1.2, 2, 1.3, 2, 1.0)));
  const Plan m1 = plan_of("llep-topo", loads, 4, topo(1.2, 1, 1.3, 2, 1.0));
  EXPECT_EQ(m1.assignments[0], (Ranges{{0, 0, 12}, {1, 12, 13}, {2, 13, 14}}));
  EXPECT_EQ(m1.transfers, (Transfers{{0, 0, 1}, {0, 0, 2}}));
}

// The layout of a split expert. Same loads and parameters as above (nodes of
// 2, tol 0.2: rank 0 computes 12 slots of expert 0, rank 1 2), with expert
// 0's 14 slots coming from ranks 0..3 as 4, 2, 4, 4: its slot order is r0's
// [0, 4), r1's [4, 6), r2's [6, 10), r3's [10, 14). Pass 1, own slots: r0
// [0, 4), r1 [4, 6) (all it computes). Pass 2, node 0's slots left: none
// (node 1's ranks compute nothing of e0). Pass 3: r0's 8 left take [6, 14).
// LLEP's plan computes [0, 12) on r0 and [12, 14) on r2: the ranges follow
// LLA's order, whatever the origins.
TEST(LlepTopoPolicy, LaysOutASplitExpertNearItsSlotsOrigins) {
  LoadMatrix origins(4, 4);
  origins.at(0, 0) = 4;
  origins.at(1, 0) = 2;
  origins.at(2, 0) = 4;
  origins.at(3, 0) = 4;
  origins.at(1, 1) = 9;
  origins.at(2, 2) = 8;
  origins.at(3, 3) = 9;
  const Plan plan = make_policy("llep-topo", topo(1.2, 1, 1.3, 2, 0.2))->plan(origins, 4);
  EXPECT_EQ(plan.assignments[0], (Ranges{{0, 0, 4}, {1, 4, 6}, {0, 6, 14}}));
  EXPECT_EQ(plan.transfers, (Transfers{{0, 0, 1}}));
  EXPECT_EQ(plan.rank_loads(), (std::vector<int64_t>{12, 11, 8, 9}));
  const Plan llep = make_policy("llep", topo(1.2, 1, 1.3, 2, 0.2))->plan(origins, 4);
  EXPECT_EQ(llep.assignments[0], (Ranges{{0, 0, 12}, {2, 12, 14}}));
}

// Below lambda the plan is EP's, named llep-topo.
TEST(LlepTopoPolicy, BelowLambdaIsTheEpPlan) {
  const std::vector<int64_t> loads = {8, 4, 4, 4};
  EXPECT_EQ(plan_of("llep-topo", loads, 2, topo(1.0, 1, 1.3, 1, 0.5)), ep_plan(loads, 2, "llep-topo"));
}

// Random loads (P 1..64, N up to 512), each split over the ranks at random,
// random nodes and tolerances: the plan is the naive statement's (helper
// rule, and slot by slot the layout, where the slots are few enough to walk),
// valid, drops nothing, keeps LLEP's capacity bound (only a forced remainder,
// the last range of a foreign expert, takes a rank past m_alpha), and its
// slot counts per rank and transfers do not depend on the split. With one
// node it is LLEP's plan; with one rank per node its counts and transfers
// are LLEP's and its inter-node token slots never more than LLEP's.
TEST(LlepTopoPolicy, MatchesTheNaiveRuleAndLlepsPropertiesOnRandomLoads) {
  std::mt19937_64 rng(20261204);
  const std::vector<double> alphas = {0.5, 0.75, 1.0, 1.3, 2.0};
  const std::vector<int64_t> chunks = {1, 7, 64, 1024};
  const std::vector<double> lambdas = {1.0, 1.3, 2.0};
  const std::vector<double> tolerances = {0.0, 0.05, 0.1, 0.3, 1.0, 10.0};
  int differs_from_llep = 0, lla_runs = 0, walked = 0, laid_out_differently = 0;
  std::set<int> nodes_seen;
  for (int i = 0; i < moe_test::random_cases(4000); ++i) {
    const test::LoadCase c = test::random_load_case(rng);
    const int P = c.P, N = static_cast<int>(c.loads.size());
    const int rpn = static_cast<int>(rng() % static_cast<uint64_t>(P + 2));  // 0 (one node) .. P + 1
    const double tol = tolerances[rng() % tolerances.size()];
    const PolicyParams params =
        topo(alphas[rng() % alphas.size()], chunks[rng() % chunks.size()], lambdas[rng() % lambdas.size()], rpn, tol);
    SCOPED_TRACE(testing::Message() << "case " << i << ": P = " << P << ", N = " << N << ", ranks-per-node " << rpn
                                    << ", tol " << tol << ", alpha " << params.number("alpha") << ", m "
                                    << params.integer("min-chunk") << ", lambda " << params.number("lambda"));
    const LoadMatrix origins = random_split(c.loads, P, rng);
    const auto policy = make_policy("llep-topo", params);
    const Plan plan = policy->plan(origins, P);
    ASSERT_EQ(validate_plan(plan, c.loads), "");
    EXPECT_EQ(plan.total_dropped(), 0);
    EXPECT_EQ(policy->plan(origins, P), plan);  // deterministic

    const bool several_nodes = node_of(P - 1, rpn) > 0;
    test::NaiveLlep ref = test::naive_llep(c.loads, P, params, {rpn, tol}, "llep-topo");
    const Plan unlaid = ref.plan;
    int64_t total = 0;
    for (int64_t l : c.loads) total += l;
    if (total <= 20000) {
      if (several_nodes) test::naive_lay_out(ref.plan, origins, rpn);
      ASSERT_EQ(plan, ref.plan);
      ++walked;
    }
    EXPECT_EQ(plan.rank_loads(), unlaid.rank_loads());
    EXPECT_EQ(plan.transfers, unlaid.transfers);
    const Plan from_sums = policy->plan(LoadMatrix::from_expert_loads(c.loads), P);
    EXPECT_EQ(from_sums.rank_loads(), plan.rank_loads());
    EXPECT_EQ(from_sums.transfers, plan.transfers);
    laid_out_differently += renamed(plan, "llep") != renamed(unlaid, "llep");

    const Plan llep = make_policy("llep", params)->plan(origins, P);
    if (!several_nodes) {
      EXPECT_EQ(renamed(plan, "llep"), llep);
    }
    if (rpn == 1) {  // no rank shares a node: LLEP's helpers, a layout that crosses no more
      EXPECT_EQ(plan.rank_loads(), llep.rank_loads());
      EXPECT_EQ(plan.transfers, llep.transfers);
      EXPECT_LE(inter_node_slots(plan, origins, 1), inter_node_slots(llep, origins, 1));
    }
    differs_from_llep += renamed(plan, "llep") != llep;
    if (!ref.ran_lla || P == 1) continue;  // with P = 1 everything stays native, past m_alpha too
    ++lla_runs;
    if (several_nodes) nodes_seen.insert((P + rpn - 1) / rpn);

    const std::vector<int64_t> rank_loads = plan.rank_loads();
    for (int r = 0; r < P; ++r) {
      if (rank_loads[r] <= ref.m_alpha) continue;
      EXPECT_TRUE(ref.forced[r]) << "rank " << r << " past m_alpha without a forced remainder";
    }
  }
  // The rules must actually change plans, on many node counts, and the naive
  // walk must cover many cases.
  EXPECT_GT(differs_from_llep, moe_test::random_cases(400));
  EXPECT_GT(laid_out_differently, moe_test::random_cases(200));
  EXPECT_GT(lla_runs, moe_test::random_cases(1000));
  EXPECT_GT(walked, moe_test::random_cases(1000));
  EXPECT_GT(nodes_seen.size(), 10u);
}

// Where the helpers are LLEP's (the same slot counts per rank), llep-topo's
// layout puts the most slots possible on their own node: never more
// inter-node token slots than LLEP's layout. Random loads split at random over
// the ranks, nodes of 2 to 8, tolerance 0 (so helpers differ from LLEP's
// only when a rank on the native's node ties the least-loaded one).
TEST(LlepTopoPolicy, LayoutCrossesNodesNoMoreThanLlepsWithTheSameHelpers) {
  std::mt19937_64 rng(141);
  int same_helpers = 0, fewer = 0;
  for (int i = 0; i < moe_test::random_cases(2000); ++i) {
    const test::LoadCase c = test::random_load_case(rng);
    const int P = c.P;
    const int rpn = 2 + static_cast<int>(rng() % 7);
    const PolicyParams params = topo(1.0, 1 + static_cast<int64_t>(rng() % 64), 1.3, rpn, 0.0);
    const LoadMatrix origins = random_split(c.loads, P, rng);
    const Plan plan = make_policy("llep-topo", params)->plan(origins, P);
    const Plan llep = make_policy("llep", params)->plan(origins, P);
    if (plan.transfers != llep.transfers || plan.rank_loads() != llep.rank_loads()) continue;
    bool same_counts = true;  // per expert and rank
    for (int e = 0; e < plan.num_experts && same_counts; ++e) {
      std::vector<int64_t> a(static_cast<size_t>(P), 0), b(static_cast<size_t>(P), 0);
      for (const auto& r : plan.assignments[e]) a[r.rank] += r.size();
      for (const auto& r : llep.assignments[e]) b[r.rank] += r.size();
      same_counts = a == b;
    }
    if (!same_counts) continue;
    ++same_helpers;
    const int64_t topo_inter = inter_node_slots(plan, origins, rpn), llep_inter = inter_node_slots(llep, origins, rpn);
    EXPECT_LE(topo_inter, llep_inter) << "case " << i << ": P = " << P << ", ranks-per-node " << rpn;
    fewer += topo_inter < llep_inter;
  }
  EXPECT_GT(same_helpers, moe_test::random_cases(1000));
  EXPECT_GT(fewer, moe_test::random_cases(100));
}

// Under a memory budget llep-topo offers LLEP's alternatives (other alphas),
// each planned with its node preference.
TEST(LlepTopoPolicy, BudgetAlternativesKeepTheNodePreference) {
  const std::vector<int64_t> loads = {14, 9, 8, 9};
  const PolicyParams params = topo(1.2, 1, 1.3, 2, 0.2);
  const auto policy = make_policy("llep-topo", params);
  EXPECT_EQ(policy->budget_parameter().value_or(0.0), 1.2);
  const auto alternatives = policy->budget_alternatives(LoadMatrix::from_expert_loads(loads), 4);
  ASSERT_EQ(alternatives.size(), 13u);
  for (const auto& a : alternatives) {
    PolicyParams at = params;
    at.set("alpha", a.parameter);
    EXPECT_EQ(a.plan, plan_of("llep-topo", loads, 4, at)) << "alpha " << a.parameter;
  }
}
