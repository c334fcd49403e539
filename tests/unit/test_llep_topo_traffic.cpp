// llep-topo against llep in bytes, on a constructed case (what its rules
// guarantee is tested on random loads in tests/policies): 4 ranks as 2 nodes,
// one expert per rank, loads 14, 9, 8, 9 with expert 0's slots from ranks 0
// and 1 (7 each), alpha 1.2, m 1. Both compute 12 slots of expert 0 on rank 0
// and spill 2. llep sends them to rank 2 (key 8, the least loaded), on the
// other node: its weights cross, and so do the 2 slots (r1's last two, at
// positions 12 and 13). llep-topo (tolerance 0.2) gives them to rank 1 (key 9
// <= 1.2 * 8), on node 0, and lays out expert 0 so that rank 1 computes 2 of
// its own slots and rank 0 its own 7 and rank 1's other 5: nothing crosses
// nodes.
#include <gtest/gtest.h>

#include "policies/Policy.hpp"
#include "runtime/layer/DispatchLayout.hpp"
#include "runtime/layer/WorkSplit.hpp"

using namespace moe;

TEST(LlepTopoTraffic, ConstructedCaseMovesNoBytesBetweenNodes) {
  LoadMatrix loads(4, 4);
  loads.at(0, 0) = 7;
  loads.at(1, 0) = 7;
  loads.at(1, 1) = 9;
  loads.at(2, 2) = 8;
  loads.at(3, 3) = 9;
  PolicyParams params;
  params.set("alpha", 1.2).set("min-chunk", 1).set("ranks-per-node", 2).set("node-tolerance", 0.2);
  const int64_t row = 512, expert = 1 << 20;
  const auto traffic = [&](const char* policy) {
    const Plan plan = make_policy(policy, params)->plan(loads, 4);
    EXPECT_EQ(validate_plan(plan, loads.expert_loads()), "");
    return node_traffic(split_work(plan, SlotOrderMap(loads)), plan.transfers, 2, row, expert);
  };
  const NodeTraffic llep = traffic("llep"), topo = traffic("llep-topo");
  EXPECT_EQ(llep.token_inter(), 2 * row);
  EXPECT_EQ(llep.weight_inter(), expert);
  EXPECT_EQ(topo.token_inter(), 0);
  EXPECT_EQ(topo.weight_inter(), 0);
  EXPECT_EQ(topo.weight_intra(), expert);  // the one transfer, 0 -> 1
  EXPECT_EQ(llep.token_intra(), 5 * row);  // r1's slots at positions 7..11, on rank 0
  EXPECT_EQ(topo.token_intra(), 5 * row);  // r1 computes 2 of its own, rank 0 its other 5
  EXPECT_LT(topo.token_intra() + topo.token_inter(), llep.token_intra() + llep.token_inter());
}
