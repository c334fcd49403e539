#pragma once
// The placement-policy interface: a deterministic function of the
// all-gathered loads (and, for a stateful policy, of the loads of earlier
// steps) to a Plan. Every rank calls it with the same input in the same order
// and gets the same plan; no rank broadcasts plans.

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "policies/Plan.hpp"
#include "policies/PolicyParams.hpp"

namespace moe {

/// Where a layer-step is, for a policy that keeps state across steps.
struct StepContext {
  int layer = 0;
  int num_ranks = 1;
};

class PlacementPolicy {
 public:
  virtual ~PlacementPolicy() = default;
  virtual std::string name() const = 0;
  /// Does the policy compute the layer exactly (no dropped slots, ever)?
  virtual bool exact() const = 0;
  /// The plan for these loads alone (no history): what `moe-ep plan` and the
  /// emulator show.
  virtual Plan plan(const LoadMatrix& loads, int num_ranks) const = 0;

  /// The plan of one executed layer-step. The runtime calls it once per
  /// layer-step, in step order per layer, with that step's all-gathered loads.
  /// A stateful policy (EPLB) plans from what it saw at earlier steps and then
  /// records these loads; a stateless one is plan(loads, P).
  virtual Plan plan_step(const StepContext& ctx, const LoadMatrix& loads) { return plan(loads, ctx.num_ranks); }

  /// Checks the policy's parameters against a job of N experts on P ranks
  /// (e.g. EPLB's N + R must be a multiple of P); "" or a one-line reason
  /// naming the flag. Default: nothing to check.
  virtual std::string validate_for(int num_experts, int num_ranks) const { return {}; }

  /// Other plans worth trying, in order, when plan() does not fit a memory
  /// budget, each with the value of the parameter it changes (LLEP: alpha).
  /// Default: none.
  struct Alternative {
    Plan plan;
    double parameter = 0.0;
  };
  virtual std::vector<Alternative> budget_alternatives(const LoadMatrix& loads, int num_ranks) const { return {}; }
  /// The value of that parameter in plan() (reported when no alternative was needed).
  virtual std::optional<double> budget_parameter() const { return std::nullopt; }
};

using PolicyFactory = std::function<std::unique_ptr<PlacementPolicy>(const PolicyParams&)>;

/// The policy the others are measured against (speedup vs EP, rank loads before).
inline constexpr const char* kBaselinePolicy = "ep";

/// Names of the registered policies, in registration order.
std::vector<std::string> policy_names();
/// Creates a policy by name; throws std::invalid_argument naming the valid ones.
std::unique_ptr<PlacementPolicy> make_policy(const std::string& name, const PolicyParams& params);
/// The parameters a policy declares (its own file), in declaration order.
const std::vector<ParamSpec>& policy_param_specs(const std::string& name);
/// Every declared parameter once, in registration order (a name two policies
/// share is listed at its first declaration).
std::vector<ParamSpec> all_param_specs();
/// The declaration of a parameter, or nullptr.
const ParamSpec* find_param_spec(const std::string& name);
/// Checks every value set against its declaration; "" or a one-line reason
/// naming the flag.
std::string validate_policy_params(const PolicyParams& params);
/// Checks a --policies list: not empty, every name registered, parameters valid
/// for each; "" or a one-line reason naming --policies.
std::string validate_policy_list(const std::vector<std::string>& names, const PolicyParams& params);

/// Declares the two functions a policy file defines: its factory
/// make_<id>_policy and its parameter list <id>_param_specs (possibly empty).
/// PolicyRegistry.cpp declares and registers every policy with it.
#define MOE_DECLARE_POLICY(id)                                                     \
  std::unique_ptr<PlacementPolicy> make_##id##_policy(const PolicyParams& params); \
  const std::vector<ParamSpec>& id##_param_specs();

/// Capacity of each expert under token dropping: ceil(cf * total_slots / N),
/// at most total_slots (a larger C keeps the same slots); 0 without slots.
/// CapacityPolicy.cpp.
int64_t expert_capacity(double capacity_factor, int64_t total_slots, int num_experts);

/// The standard EP plan: every expert whole on its native rank. Shared by the
/// policies that fall back to it.
Plan ep_plan(const std::vector<int64_t>& expert_loads, int num_ranks, const std::string& policy_name);

}  // namespace moe
