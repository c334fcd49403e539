// Topology-aware LLEP: `llep-topo`. LLEP's plan (LeastLoadedAssignment.cpp,
// the same lambda test, capacity and chunk rules), except that a spilled chunk
// goes to a rank on the native rank's node when that rank's load is within
// --node-tolerance of the least-loaded rank's and it can take a chunk
// (NodePreference states the rule exactly), and each split expert's slots
// are laid out so that ranks compute their own and their node's slots first.
// Nodes are blocks of
// --ranks-per-node consecutive ranks; on MPI runs left at 0 it is the size of
// the communicator's first shared-memory node, elsewhere 0 is one node (and the
// plan is LLEP's). docs/policies.md, "llep-topo".
#include "policies/LeastLoadedAssignment.hpp"

namespace moe {

MOE_DECLARE_POLICY(llep)
MOE_DECLARE_POLICY(llep_topo)

const std::vector<ParamSpec>& llep_topo_param_specs() {
  static const std::vector<ParamSpec> kSpecs = [] {
    std::vector<ParamSpec> s = llep_param_specs();  // alpha, min-chunk, lambda: declared by llep
    s.push_back(ParamSpec::integer("ranks-per-node", 0,
                                   "llep-topo (and the intra/inter-node byte counts): nodes are blocks of this many "
                                   "consecutive ranks; 0 = from the run (MPI: the shared-memory node size; plan, "
                                   "emulate: one node), 0..1048576")
                    .at_least(0)
                    .at_most(1 << 20));
    s.push_back(ParamSpec::real("node-tolerance", 0.1,
                                "llep-topo: a rank on the native's node takes a spill when its load is within this "
                                "fraction of the least-loaded rank's, >= 0")
                    .at_least(0.0));
    return s;
  }();
  return kSpecs;
}

std::unique_ptr<PlacementPolicy> make_llep_topo_policy(const PolicyParams& params) {
  check_declared(llep_topo_param_specs(), params);
  NodePreference pref;
  pref.ranks_per_node = static_cast<int>(params.integer("ranks-per-node"));
  pref.tolerance = params.number("node-tolerance");
  return std::make_unique<LeastLoadedPolicy>("llep-topo", llep_params_from(params), pref);
}

}  // namespace moe
