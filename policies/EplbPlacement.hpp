#pragma once
// EPLB placement: DeepSeek's expert-parallelism load balancer (redundant
// experts), as restated in shared/docs/eplb-notes.md, plus two options beyond
// the published algorithm (no two replicas of one expert on a rank; relabel a
// re-placement to move as few replicas as possible) and the per-step split of
// each expert's slots over its replicas.
//
// A placement gives every rank (N + R)/P *physical* expert slots, each holding
// a replica of one logical expert. Replicas are resident: they stay between
// steps, so a step's plan moves no weights.

#include <cstdint>
#include <string>
#include <vector>

#include "policies/Plan.hpp"

namespace moe {

struct EplbConfig {
  int num_ranks = 1;          // P
  int redundant = 0;          // R: extra physical slots per layer, N + R a multiple of P
  int nodes = 1;              // G: nodes of P/G consecutive ranks each
  int expert_groups = 0;      // NG: groups of N/NG consecutive experts; 0: none (global mode)
  bool no_duplicate = false;  // never two replicas of one expert on one rank
};

struct EplbPlacement {
  /// Per rank: the logical expert of each of its physical slots, in slot order
  /// (the order they were packed), (N + R)/P of them.
  std::vector<std::vector<int>> replicas_of_rank;
  /// Per logical expert: its number of replicas (>= 1), summing to N + R.
  std::vector<int> replica_count;

  int num_ranks() const { return static_cast<int>(replicas_of_rank.size()); }
  int num_experts() const { return static_cast<int>(replica_count.size()); }
  bool operator==(const EplbPlacement&) const = default;
};

/// Hierarchical mode: NG given and a multiple of G. Otherwise eplb_place runs
/// the global algorithm (one node, one group), as the published code does.
bool eplb_hierarchical(const EplbConfig& cfg);

/// Checks a configuration for N logical experts; "" or a one-line reason naming
/// the flag (--ranks, --redundant-experts, --nodes, --expert-groups).
std::string validate_eplb_config(int num_experts, const EplbConfig& cfg);

/// The placement for a per-expert load estimate (finite, >= 0). Throws
/// std::invalid_argument with validate_eplb_config's reason.
EplbPlacement eplb_place(const std::vector<double>& estimate, const EplbConfig& cfg);

/// Predicted load of each rank: every replica of expert e carries
/// estimate[e] / replica_count[e].
std::vector<double> eplb_predicted_rank_loads(const EplbPlacement& p, const std::vector<double>& estimate);

/// max/mean of eplb_predicted_rank_loads (1.0 when all are zero).
double eplb_predicted_imbalance(const EplbPlacement& p, const std::vector<double>& estimate);

/// Per rank, the logical experts it holds in increasing order (the JSON view).
std::vector<std::vector<int>> eplb_sorted_replicas(const EplbPlacement& p);

/// Per logical expert, the rank of each of its replicas in increasing order (a
/// rank holding two replicas appears twice).
std::vector<std::vector<int>> eplb_replica_ranks(const EplbPlacement& p);

/// Does any rank hold two replicas of one expert?
bool eplb_has_duplicate(const EplbPlacement& p);

/// new_p with its per-rank replica sets permuted among the ranks of each node
/// (ranks_per_node consecutive ranks) so that as many (rank, expert) pairs of
/// old_p as possible survive, and each rank's slots ordered so that a kept
/// expert stays in its old slot. Balance is unchanged: each node keeps the same
/// multiset of rank loads. An empty old_p returns new_p.
EplbPlacement relabel_min_movement(const EplbPlacement& old_p, const EplbPlacement& new_p, int ranks_per_node);

/// Weight copies a change from old_p to new_p needs: (rank, expert) pairs of
/// new_p whose rank held no replica of that expert in old_p. A rank given two
/// replicas of an expert it lacked receives it once. An empty old_p counts
/// every pair of new_p.
int64_t replicas_moved(const EplbPlacement& old_p, const EplbPlacement& new_p);

/// Exact maximum-gain assignment on a square matrix (Hungarian algorithm,
/// O(n^3)): returns col_of_row, a permutation maximising the sum of
/// gain[i][col_of_row[i]]; among optimal ones it prefers more i with
/// col_of_row[i] == i. Gains must be >= 0 and below 2^62 / (n + 1)^2.
std::vector<int> max_gain_assignment(const std::vector<std::vector<int64_t>>& gain);

/// One step's plan from its global expert loads: the slots of an expert with r
/// replicas are split into r contiguous ranges of its global slot order, sizes
/// as equal as possible (larger first), replica ranks in increasing order; a
/// rank's adjacent ranges merge and empty ones are left out. No transfers: the
/// replicas are resident.
Plan eplb_plan(const EplbPlacement& p, const std::vector<int64_t>& expert_loads,
               const std::string& policy_name = "eplb");

/// validate_plan for resident replicas: the ranges of each expert partition
/// [0, load) (nothing dropped), every range lies on a rank that holds a replica
/// of its expert, and there are no transfers. "" or what is wrong.
std::string validate_eplb_plan(const Plan& plan, const std::vector<int64_t>& expert_loads, const EplbPlacement& p);

namespace eplb_detail {
/// The no-duplicate packing (exposed for its tests): items of `weight` into
/// num_packs packs of equal count, never two items of one expert (expert_of,
/// ids below num_experts) in a pack; per pack, its items in packing order.
/// Requires at most num_packs items per expert.
std::vector<std::vector<int>> distinct_packing(const std::vector<double>& weight, const std::vector<int>& expert_of,
                                               int num_experts, int num_packs);
}  // namespace eplb_detail

}  // namespace moe
