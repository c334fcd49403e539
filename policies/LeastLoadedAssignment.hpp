#pragma once
// LLEP's planner, shared by the policies built on it (`llep`, `llep-topo`):
// the lambda test, then the Least-Loaded Assignment (LLA) with one hook, the
// choice of the rank that takes an expert's next spilled chunk. Plain LLEP
// gives it to the least-loaded other rank; `llep-topo` may give it to a rank
// on the native rank's node instead (NodePreference). One implementation of
// LLA, in LeastLoadedAssignment.cpp; docs/policies.md states the rules.

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "policies/Plan.hpp"
#include "policies/Policy.hpp"

namespace moe {

/// LLEP's parameters, read once from the declared ones (the planner runs
/// every step and must not look names up).
struct LlepParams {
  double alpha = 1.0;
  int64_t min_chunk = 1024;
  double lambda = 1.3;
};

/// alpha, min-chunk and lambda as `p` gives them (set or default), checked
/// against `llep`'s declarations; std::invalid_argument naming the flag.
LlepParams llep_params_from(const PolicyParams& p);

/// `llep-topo`'s preference for helpers on the native rank's node. Let q be
/// the rank plain LLEP picks (the least-loaded other rank by assigned +
/// pending, ties by lower id). When q is on another node than the native, h
/// is the least-loaded other rank on the native's node (same order); h takes
/// the chunk instead of q when key(h) <= (1 + tolerance) * key(q) (in double
/// precision) and h qualifies as LLEP's rule says (its chunk min(remainder,
/// m_alpha - key(h)) is > 0 and not a too-small one). Otherwise q, exactly as
/// in LLEP (a forced remainder included). With more than one node, each split
/// expert's slots are then laid out by origin (each rank computing as many of
/// its slots as LLA gave it first from its own, then from its node's; the rest
/// crosses nodes), which needs the per-rank counts: the plan depends on them.
struct NodePreference {
  int ranks_per_node = 0;  // nodes: blocks of this many consecutive ranks; <= 0: one node
  double tolerance = 0.0;  // >= 0
};

/// The plan of LLEP (pref == nullptr) or of LLEP with a node preference,
/// named `name`. Every rank makes it from the same counts and gets the same.
Plan least_loaded_plan(const LoadMatrix& loads, int num_ranks, const LlepParams& params, const std::string& name,
                       const NodePreference* pref = nullptr);

/// A policy of the LLEP family: least_loaded_plan, and under a memory budget
/// the same plan at other alphas.
class LeastLoadedPolicy final : public PlacementPolicy {
 public:
  LeastLoadedPolicy(std::string name, const LlepParams& params, std::optional<NodePreference> pref = std::nullopt)
      : name_(std::move(name)), params_(params), pref_(pref) {}
  std::string name() const override { return name_; }
  bool exact() const override { return true; }
  Plan plan(const LoadMatrix& loads, int num_ranks) const override {
    return least_loaded_plan(loads, num_ranks, params_, name_, pref_ ? &*pref_ : nullptr);
  }
  /// Under a memory budget: alpha lowered in steps of 10% of the given alpha
  /// (down to 10% of it: smaller per-rank capacity, more spilling), then
  /// raised in steps of 25% (up to twice it: fewer forced remainders when
  /// min-chunk blocks small spills).
  std::vector<Alternative> budget_alternatives(const LoadMatrix& loads, int num_ranks) const override;
  std::optional<double> budget_parameter() const override { return params_.alpha; }

 private:
  std::string name_;
  LlepParams params_;
  std::optional<NodePreference> pref_;
};

}  // namespace moe
