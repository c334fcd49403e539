#pragma once
// The placement-policy interface: a pure, deterministic function of the
// all-gathered loads to a Plan. Every rank calls it with the same input and
// gets the same plan; no rank broadcasts plans.

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "policies/Plan.hpp"

namespace moe {

/// Parameters of all policies; each policy reads the ones it knows.
struct PolicyParams {
  double alpha = 1.0;            // LLEP: per-rank capacity factor m_alpha = alpha * total / P
  int64_t min_chunk = 1024;      // LLEP: smallest spill worth a GEMM (m)
  double lambda = 1.3;           // LLEP: rebalance only when EP max/mean >= lambda
  double capacity_factor = 1.0;  // capacity: C = ceil(cf * total_slots / N)
  std::string drop_policy = "position";  // capacity: "position" or "probs"
};

class PlacementPolicy {
 public:
  virtual ~PlacementPolicy() = default;
  virtual std::string name() const = 0;
  /// Does the policy compute the layer exactly (no dropped slots, ever)?
  virtual bool exact() const = 0;
  virtual Plan plan(const LoadMatrix& loads, int num_ranks) const = 0;

  /// Other plans worth trying, in order, when plan() does not fit a memory
  /// budget, each with the value of the parameter it changes (LLEP: alpha).
  /// Default: none.
  struct Alternative {
    Plan plan;
    double parameter = 0.0;
  };
  virtual std::vector<Alternative> budget_alternatives(const LoadMatrix& loads, int num_ranks) const {
    return {};
  }
  /// The value of that parameter in plan() (reported when no alternative was needed).
  virtual std::optional<double> budget_parameter() const { return std::nullopt; }
};

using PolicyFactory = std::function<std::unique_ptr<PlacementPolicy>(const PolicyParams&)>;

/// Names of the registered policies, in registration order.
std::vector<std::string> policy_names();
/// Creates a policy by name; throws std::invalid_argument naming the valid ones.
std::unique_ptr<PlacementPolicy> make_policy(const std::string& name, const PolicyParams& params);
/// Checks the parameters; returns "" or a one-line reason naming the flag.
std::string validate_policy_params(const PolicyParams& params);
/// Checks a --policies list: not empty, every name registered, parameters valid
/// for each; "" or a one-line reason naming --policies.
std::string validate_policy_list(const std::vector<std::string>& names, const PolicyParams& params);

// Factories, one per policy file; registered in PolicyRegistry.cpp.
std::unique_ptr<PlacementPolicy> make_ep_policy(const PolicyParams& params);
std::unique_ptr<PlacementPolicy> make_capacity_policy(const PolicyParams& params);  // CapacityPolicy.cpp
std::unique_ptr<PlacementPolicy> make_llep_policy(const PolicyParams& params);      // LlepPolicy.cpp

/// Capacity of each expert under token dropping: ceil(cf * total_slots / N),
/// at most total_slots (a larger C keeps the same slots); 0 without slots.
/// CapacityPolicy.cpp.
int64_t expert_capacity(double capacity_factor, int64_t total_slots, int num_experts);

/// The standard EP plan: every expert whole on its native rank. Shared by the
/// policies that fall back to it.
Plan ep_plan(const std::vector<int64_t>& expert_loads, int num_ranks, const std::string& policy_name);

}  // namespace moe
