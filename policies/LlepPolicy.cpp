// Least-Loaded Expert Parallelism (Nguyen et al., arXiv 2601.17111, Alg. 2/3):
// `llep`. Below the imbalance threshold lambda the plan is EP's; above it the
// Least-Loaded Assignment keeps each expert on its native rank up to the
// per-rank capacity m_alpha and spills the excess to the least-loaded other
// ranks in chunks of at least m slots. The planner is
// LeastLoadedAssignment.cpp (shared with `llep-topo`); docs/policies.md has
// the details.
#include "policies/LeastLoadedAssignment.hpp"

namespace moe {

MOE_DECLARE_POLICY(llep)

const std::vector<ParamSpec>& llep_param_specs() {
  static const std::vector<ParamSpec> kSpecs = {
      ParamSpec::real("alpha", 1.0, "LLEP: per-rank capacity m_alpha = alpha * total/P, > 0").at_least(0.0, true),
      ParamSpec::integer("min-chunk", 1024, "LLEP: m, smallest spill worth a GEMM (slots), >= 1").at_least(1),
      ParamSpec::real("lambda", 1.3, "LLEP: rebalance only when EP's max/mean rank load >= lambda, >= 1").at_least(1.0),
  };
  return kSpecs;
}

std::unique_ptr<PlacementPolicy> make_llep_policy(const PolicyParams& params) {
  return std::make_unique<LeastLoadedPolicy>("llep", llep_params_from(params));
}

}  // namespace moe
