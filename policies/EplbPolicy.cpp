// EPLB as a placement policy: DeepSeek's redundant experts (EplbPlacement.hpp,
// shared/docs/eplb-notes.md) placed from a moving average of past loads and
// re-placed every few steps; the replicas are resident between steps.
//
// Per layer the policy keeps the loads of the last W steps it planned and the
// placement in force. At step s (counted per layer from the first plan it
// makes, warm-up included) with s % I == 0 it re-places from the mean of that
// history (every expert equal when there is none yet); every step's slots are
// then split over the replicas (eplb_plan). The plan lists each rank's foreign
// replicas as `resident`: the runtime brings a replica in when a placement
// first lists it and keeps it while later plans do.
#include <map>
#include <stdexcept>

#include "policies/EplbPlacement.hpp"
#include "policies/Policy.hpp"

namespace moe {

MOE_DECLARE_POLICY(eplb)

namespace {

struct EplbParams {
  int64_t redundant = -1;  // R; -1: one per rank (R = P)
  int64_t nodes = 1;       // G
  int64_t expert_groups = 0;
  int64_t window = 10;    // W
  int64_t interval = 10;  // I
  bool no_duplicate = false;
  bool min_movement = false;
};

EplbParams eplb_params_from(const PolicyParams& p) {
  check_declared(eplb_param_specs(), p);
  return {p.integer("redundant-experts"),
          p.integer("nodes"),
          p.integer("expert-groups"),
          p.integer("eplb-window"),
          p.integer("eplb-interval"),
          p.text("eplb-packing") == "distinct",
          p.text("eplb-relabel") == "min-movement"};
}

class EplbPolicy final : public PlacementPolicy {
 public:
  explicit EplbPolicy(const EplbParams& p) : params_(p) {}
  std::string name() const override { return "eplb"; }
  bool exact() const override { return true; }

  std::string validate_for(int num_experts, int num_ranks) const override {
    return validate_eplb_config(num_experts, config(num_ranks));
  }

  /// The loads are the estimate: the placement they give, and this step's split.
  Plan plan(const LoadMatrix& loads, int num_ranks) const override {
    const std::vector<int64_t> expert_loads = loads.expert_loads();
    const std::vector<double> estimate(expert_loads.begin(), expert_loads.end());
    return plan_over(eplb_place(estimate, config(num_ranks)), expert_loads);
  }

  Plan plan_step(const StepContext& ctx, const LoadMatrix& loads) override {
    LayerState& st = layers_[ctx.layer];
    const std::vector<int64_t> expert_loads = loads.expert_loads();
    if (st.steps % params_.interval == 0) replace(st, ctx.num_ranks, static_cast<int>(expert_loads.size()));
    Plan p = plan_over(st.placement, expert_loads);
    st.history.emplace_back(expert_loads.begin(), expert_loads.end());
    if (static_cast<int64_t>(st.history.size()) > params_.window) st.history.erase(st.history.begin());
    ++st.steps;
    return p;
  }

 private:
  struct LayerState {
    int64_t steps = 0;
    std::vector<std::vector<double>> history;  // the last W steps' global loads, oldest first
    EplbPlacement placement;
  };

  EplbConfig config(int num_ranks) const {
    EplbConfig c;
    c.num_ranks = num_ranks;
    c.redundant = static_cast<int>(params_.redundant < 0 ? num_ranks : params_.redundant);
    c.nodes = static_cast<int>(params_.nodes);
    c.expert_groups = static_cast<int>(params_.expert_groups);
    c.no_duplicate = params_.no_duplicate;
    return c;
  }

  // A re-placement from the mean of the history (all equal without one); with
  // min-movement, relabelled within each node to keep replicas where they are.
  void replace(LayerState& st, int num_ranks, int num_experts) const {
    std::vector<double> estimate(static_cast<size_t>(num_experts), st.history.empty() ? 1.0 : 0.0);
    for (const auto& h : st.history)
      for (int e = 0; e < num_experts; ++e) estimate[e] += h[e] / static_cast<double>(st.history.size());
    const EplbConfig cfg = config(num_ranks);
    EplbPlacement next = eplb_place(estimate, cfg);
    if (params_.min_movement && !st.placement.replicas_of_rank.empty())
      next = relabel_min_movement(st.placement, next, eplb_hierarchical(cfg) ? num_ranks / cfg.nodes : num_ranks);
    st.placement = std::move(next);
  }

  Plan plan_over(const EplbPlacement& placement, const std::vector<int64_t>& expert_loads) const {
    Plan p = eplb_plan(placement, expert_loads, name());
    const int P = placement.num_ranks(), N = placement.num_experts();
    p.resident.assign(static_cast<size_t>(P), {});
    p.replicas = eplb_sorted_replicas(placement);
    const auto& held = p.replicas;
    for (int r = 0; r < P; ++r)
      for (int e : held[r])
        if (native_rank(e, N, P) != r && (p.resident[r].empty() || p.resident[r].back() != e))
          p.resident[r].push_back(e);
    return p;
  }

  EplbParams params_;
  std::map<int, LayerState> layers_;
};

}  // namespace

const std::vector<ParamSpec>& eplb_param_specs() {
  static const std::vector<ParamSpec> kSpecs = {
      ParamSpec::integer("redundant-experts", -1,
                         "eplb: R, extra physical expert slots per layer (N + R a multiple of the rank count); "
                         "-1: one per rank (R = P)")
          .at_least(-1),
      ParamSpec::integer("nodes", 1,
                         "eplb: G, nodes of consecutive ranks for the hierarchical mode (with --expert-groups)")
          .at_least(1),
      ParamSpec::integer("expert-groups", 0,
                         "eplb: NG, groups of consecutive experts packed to nodes first; a multiple of --nodes "
                         "turns the hierarchical mode on; 0: global mode")
          .at_least(0),
      ParamSpec::integer("eplb-window", 10, "eplb: W, the load estimate is the mean of the last W steps' loads")
          .at_least(1),
      ParamSpec::integer("eplb-interval", 10, "eplb: I, re-place the replicas every I steps (per layer)").at_least(1),
      ParamSpec::choice("eplb-packing", {"published", "distinct"},
                        "eplb: published (DeepSeek's packing, may put two replicas of one expert on a rank) or "
                        "distinct (never does)"),
      ParamSpec::choice("eplb-relabel", {"off", "min-movement"},
                        "eplb: off (each re-placement from scratch, as published) or min-movement (relabel the "
                        "new per-rank sets within each node to keep replicas where they are)"),
  };
  return kSpecs;
}

std::unique_ptr<PlacementPolicy> make_eplb_policy(const PolicyParams& params) {
  return std::make_unique<EplbPolicy>(eplb_params_from(params));
}

}  // namespace moe
