// Capacity-based token dropping (GShard / Switch / Megatron style): experts
// stay on their EP ranks and each keeps at most C = ceil(cf * total_slots / N)
// slots; the rest are dropped. Bounded time and memory, but not exact.
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <stdexcept>

#include "policies/Policy.hpp"

namespace moe {

MOE_DECLARE_POLICY(capacity)

int64_t expert_capacity(double capacity_factor, int64_t total_slots, int num_experts) {
  if (num_experts <= 0 || total_slots <= 0) return 0;
  double x = capacity_factor * static_cast<double>(total_slots) / num_experts;
  // cf is a decimal the user typed (1.1, 1.25): a quotient within a few ulps
  // of an integer is that integer, not the next one up (1.1 * 400 / 8 is
  // 55.00000000000001 in doubles, and C must be 55).
  const double nearest = std::round(x);
  if (std::abs(x - nearest) <= 4 * std::numeric_limits<double>::epsilon() * std::max(1.0, nearest)) x = nearest;
  // No expert has more than total_slots, so a larger capacity keeps the same
  // slots (and a huge cf never overflows the cast).
  return x >= static_cast<double>(total_slots) ? total_slots : static_cast<int64_t>(std::ceil(x));
}

namespace {

struct CapacityParams {
  double capacity_factor = 1.0;
  bool by_probs = false;  // drop-policy probs: keep the C highest gates
};

CapacityParams capacity_params_from(const PolicyParams& p) {
  check_declared(capacity_param_specs(), p);
  return {p.number("capacity-factor"), p.text("drop-policy") == "probs"};
}

class CapacityPolicy final : public PlacementPolicy {
 public:
  explicit CapacityPolicy(const CapacityParams& p) : params_(p) {}
  std::string name() const override { return "capacity"; }
  bool exact() const override { return false; }

  Plan plan(const LoadMatrix& loads, int num_ranks) const override {
    const std::vector<int64_t> expert_loads = loads.expert_loads();
    if (std::any_of(expert_loads.begin(), expert_loads.end(), [](int64_t l) { return l < 0; }))
      throw std::invalid_argument("expert loads must be >= 0");
    Plan plan = ep_plan(expert_loads, num_ranks, name());  // also checks N % P
    // "probs" keeps the C highest gate weights: the runtime numbers each
    // expert's slots by descending gate, so [0, C) is still the kept range.
    plan.slot_order = params_.by_probs ? SlotOrder::GateDescending : SlotOrder::Position;
    const int64_t total = std::accumulate(expert_loads.begin(), expert_loads.end(), int64_t{0});
    const int64_t capacity = expert_capacity(params_.capacity_factor, total, plan.num_experts);
    for (int e = 0; e < plan.num_experts; ++e) {
      const int64_t kept = std::min(expert_loads[e], capacity);
      plan.dropped[e] = expert_loads[e] - kept;
      if (kept == 0)
        plan.assignments[e].clear();
      else
        plan.assignments[e].front().end = kept;
    }
    return plan;
  }

 private:
  CapacityParams params_;
};

}  // namespace

const std::vector<ParamSpec>& capacity_param_specs() {
  static const std::vector<ParamSpec> kSpecs = {
      ParamSpec::real("capacity-factor", 1.0,
                      "capacity: each expert keeps at most ceil(cf * total_slots / N) slots, > 0")
          .at_least(0.0, true),
      ParamSpec::choice("drop-policy", {"position", "probs"},
                        "capacity: which slots are dropped: position (keep the first C in global order) "
                        "or probs (keep the C highest gate weights)"),
  };
  return kSpecs;
}

std::unique_ptr<PlacementPolicy> make_capacity_policy(const PolicyParams& params) {
  return std::make_unique<CapacityPolicy>(capacity_params_from(params));
}

}  // namespace moe
