// Standard expert parallelism: expert e lives on rank e / (N / P) and computes
// all of its slots there.
#include <stdexcept>

#include "policies/Policy.hpp"

namespace moe {

MOE_DECLARE_POLICY(ep)

Plan ep_plan(const std::vector<int64_t>& expert_loads, int num_ranks, const std::string& policy_name) {
  const int N = static_cast<int>(expert_loads.size());
  if (num_ranks <= 0 || N % num_ranks != 0)
    throw std::invalid_argument("number of experts must be divisible by the number of ranks");
  Plan plan;
  plan.policy = policy_name;
  plan.num_ranks = num_ranks;
  plan.num_experts = N;
  plan.assignments.resize(N);
  plan.dropped.assign(N, 0);
  for (int e = 0; e < N; ++e)
    if (expert_loads[e] > 0) plan.assignments[e].push_back({native_rank(e, N, num_ranks), 0, expert_loads[e]});
  return plan;
}

namespace {
class EpPolicy final : public PlacementPolicy {
 public:
  std::string name() const override { return "ep"; }
  bool exact() const override { return true; }
  Plan plan(const LoadMatrix& loads, int num_ranks) const override {
    return ep_plan(loads.expert_loads(), num_ranks, name());
  }
};
}  // namespace

const std::vector<ParamSpec>& ep_param_specs() {
  static const std::vector<ParamSpec> kNone;  // EP has no parameters
  return kNone;
}

std::unique_ptr<PlacementPolicy> make_ep_policy(const PolicyParams&) { return std::make_unique<EpPolicy>(); }

}  // namespace moe
