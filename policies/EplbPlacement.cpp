// EPLB placement (see EplbPlacement.hpp and shared/docs/eplb-notes.md). The
// published algorithm, per node: replicate the expert with the largest
// load / replicas until the node's slots are used, then pack the physical
// experts heaviest first onto the lightest rank with a free slot. Hierarchical
// mode first packs expert groups onto nodes. Ties always go to the lower index.
#include "policies/EplbPlacement.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <sstream>
#include <stdexcept>

#include <climits>

namespace moe {

namespace {

/// The ranks and experts of one node, as the algorithm sees them.
struct NodeShape {
  int nodes = 1;           // G (1 in global mode)
  int ranks_per_node = 1;  // P / G
  int experts_per_node = 0;
  int slots_per_rank = 0;  // (N + R) / P
};

NodeShape node_shape(int num_experts, const EplbConfig& cfg) {
  NodeShape s;
  s.nodes = eplb_hierarchical(cfg) ? cfg.nodes : 1;
  s.ranks_per_node = cfg.num_ranks / s.nodes;
  s.experts_per_node = num_experts / s.nodes;
  s.slots_per_rank = (num_experts + cfg.redundant) / cfg.num_ranks;
  return s;
}

/// Items visited by decreasing weight, ties by lower index.
std::vector<int> heaviest_first(const std::vector<double>& weight) {
  std::vector<int> order(weight.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return weight[a] > weight[b]; });
  return order;
}

/// The lightest pack with a free slot whose expert set admits `expert`
/// (`holds` null: any), ties by lower index; -1 when there is none.
int lightest_open_pack(const std::vector<std::vector<int>>& packs, const std::vector<double>& load, size_t per_pack,
                       const std::vector<std::vector<char>>* holds, int expert) {
  int best = -1;
  for (size_t p = 0; p < packs.size(); ++p) {
    if (packs[p].size() >= per_pack || (holds && (*holds)[p][expert])) continue;
    if (best < 0 || load[p] < load[best]) best = static_cast<int>(p);
  }
  return best;
}

/// Balanced packing of the notes: items of `weight` into `num_packs` packs of
/// equal item count; per pack, its items in the order they were packed. With
/// one item per pack, item i goes to pack i (as the published code does).
std::vector<std::vector<int>> balanced_packing(const std::vector<double>& weight, int num_packs) {
  const size_t per_pack = weight.size() / static_cast<size_t>(num_packs);
  std::vector<std::vector<int>> packs(num_packs);
  if (per_pack == 1) {
    for (int i = 0; i < num_packs; ++i) packs[i] = {i};
    return packs;
  }
  std::vector<double> load(num_packs, 0.0);
  for (const int item : heaviest_first(weight)) {
    const int p = lightest_open_pack(packs, load, per_pack, nullptr, 0);
    packs[p].push_back(item);
    load[p] += weight[item];
  }
  return packs;
}

/// Replicas of the node-local experts: one each, in local order, then
/// (num_physical - n) times one more of the expert with the largest
/// w / replicas (ties: lower index) among those with fewer than `cap`.
/// Returns the local expert of each physical expert, in creation order.
std::vector<int> replicate(const std::vector<double>& w, int num_physical, int cap, std::vector<int>& count) {
  const int n = static_cast<int>(w.size());
  std::vector<int> phy(n);
  std::iota(phy.begin(), phy.end(), 0);
  count.assign(n, 1);
  for (int i = n; i < num_physical; ++i) {
    int best = -1;
    for (int e = 0; e < n; ++e)
      if (count[e] < cap && (best < 0 || w[e] / count[e] > w[best] / count[best])) best = e;
    phy.push_back(best);
    ++count[best];
  }
  return phy;
}

/// Step 1: expert groups to nodes. Per node, its experts in node-local order:
/// its groups in the order they were packed, each group's experts ascending.
std::vector<std::vector<int>> experts_of_nodes(const std::vector<double>& estimate, int num_groups, int nodes) {
  const int N = static_cast<int>(estimate.size());
  const int group_size = N / num_groups;
  std::vector<double> group_load(num_groups, 0.0);
  for (int g = 0; g < num_groups; ++g)
    for (int i = 0; i < group_size; ++i) group_load[g] += estimate[g * group_size + i];
  std::vector<std::vector<int>> out(nodes);
  const auto packs = balanced_packing(group_load, nodes);
  for (int node = 0; node < nodes; ++node)
    for (const int g : packs[node])
      for (int i = 0; i < group_size; ++i) out[node].push_back(g * group_size + i);
  return out;
}

/// Steps 2 and 3 for one node: replicate its experts, pack them onto its ranks.
void place_node(const std::vector<double>& estimate, const std::vector<int>& experts, const NodeShape& s, bool distinct,
                int first_rank, EplbPlacement& out) {
  const int n = static_cast<int>(experts.size());
  std::vector<double> w(n);
  for (int l = 0; l < n; ++l) w[l] = estimate[experts[l]];
  std::vector<int> count;
  const int cap = distinct ? s.ranks_per_node : INT_MAX;
  const std::vector<int> phy = replicate(w, s.ranks_per_node * s.slots_per_rank, cap, count);
  std::vector<double> phy_weight(phy.size());
  for (size_t i = 0; i < phy.size(); ++i) phy_weight[i] = w[phy[i]] / count[phy[i]];
  const auto packs = distinct ? eplb_detail::distinct_packing(phy_weight, phy, n, s.ranks_per_node)
                              : balanced_packing(phy_weight, s.ranks_per_node);
  for (int k = 0; k < s.ranks_per_node; ++k)
    for (const int item : packs[k]) out.replicas_of_rank[first_rank + k].push_back(experts[phy[item]]);
  for (int l = 0; l < n; ++l) out.replica_count[experts[l]] = count[l];
}

std::vector<int> distinct_sorted(std::vector<int> v) {
  std::sort(v.begin(), v.end());
  v.erase(std::unique(v.begin(), v.end()), v.end());
  return v;
}

/// Number of experts two slot lists have in common (each counted once).
int64_t shared_experts(const std::vector<int>& a, const std::vector<int>& b) {
  const auto sa = distinct_sorted(a), sb = distinct_sorted(b);
  std::vector<int> both;
  std::set_intersection(sa.begin(), sa.end(), sb.begin(), sb.end(), std::back_inserter(both));
  return static_cast<int64_t>(both.size());
}

/// The slots `wanted` (a multiset) arranged so that every old slot whose expert
/// is still wanted keeps it; the rest fill the free slots in wanted's order.
std::vector<int> keep_slot_positions(const std::vector<int>& old_slots, const std::vector<int>& wanted) {
  std::vector<int> left = wanted;  // still to place
  std::vector<int> out(wanted.size(), -1);
  for (size_t s = 0; s < old_slots.size() && s < out.size(); ++s) {
    auto it = std::find(left.begin(), left.end(), old_slots[s]);
    if (it == left.end()) continue;
    out[s] = *it;
    left.erase(it);
  }
  size_t next = 0;
  for (auto& slot : out)
    if (slot < 0) slot = left[next++];
  return out;
}

void check_same_shape(const EplbPlacement& a, const EplbPlacement& b) {
  bool same = a.num_ranks() == b.num_ranks() && a.num_experts() == b.num_experts();
  for (int r = 0; same && r < a.num_ranks(); ++r) same = a.replicas_of_rank[r].size() == b.replicas_of_rank[r].size();
  if (!same) throw std::invalid_argument("eplb: placements differ in ranks, experts or slots per rank");
}

}  // namespace

namespace eplb_detail {

/// Balanced packing that never puts two items of one expert into a pack.
/// Visit order: heaviest first, equal weights by lower expert, then creation
/// order (so an expert's replicas, which weigh the same, come one after
/// another: interleaving them with an equal expert's can strand the last one
/// on a heavy rank). Each item goes to the lightest pack with a free slot that
/// lacks its expert (ties: lower index). If every pack with a free slot already
/// holds the expert, one swap makes room: some full pack b lacks the expert (an
/// expert has at most as many items as there are packs) and holds an item y
/// whose expert an open pack a lacks (a holds fewer experts than b); y moves
/// to a and the item takes y's slot in b. Of all such (a, b, y), the one with
/// the smallest resulting max(load a, load b), ties by lower a, b, slot.
/// Requires count(expert) <= packs for every expert.
std::vector<std::vector<int>> distinct_packing(const std::vector<double>& weight, const std::vector<int>& expert_of,
                                               int num_experts, int num_packs) {
  const size_t per_pack = weight.size() / static_cast<size_t>(num_packs);
  std::vector<std::vector<int>> packs(num_packs);
  if (per_pack == 1) {  // one item per pack cannot repeat an expert
    for (int i = 0; i < num_packs; ++i) packs[i] = {i};
    return packs;
  }
  std::vector<double> load(num_packs, 0.0);
  std::vector<std::vector<char>> holds(num_packs, std::vector<char>(num_experts, 0));
  auto put = [&](int p, int item) {
    packs[p].push_back(item);
    load[p] += weight[item];
    holds[p][expert_of[item]] = 1;
  };
  std::vector<int> order(weight.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) {
    return weight[a] != weight[b] ? weight[a] > weight[b] : expert_of[a] < expert_of[b];
  });
  for (const int item : order) {
    const int e = expert_of[item];
    const int p = lightest_open_pack(packs, load, per_pack, &holds, e);
    if (p >= 0) {
      put(p, item);
      continue;
    }
    int best_a = -1, best_b = -1;
    size_t best_slot = 0;
    double best_max = 0;
    for (int a = 0; a < num_packs; ++a) {
      if (packs[a].size() >= per_pack) continue;
      for (int b = 0; b < num_packs; ++b) {
        if (packs[b].size() < per_pack || holds[b][e]) continue;
        for (size_t s = 0; s < packs[b].size(); ++s) {
          const int y = packs[b][s];
          if (holds[a][expert_of[y]]) continue;
          const double worst = std::max(load[a] + weight[y], load[b] - weight[y] + weight[item]);
          if (best_a < 0 || worst < best_max) {
            best_a = a, best_b = b, best_slot = s, best_max = worst;
          }
        }
      }
    }
    if (best_a < 0) throw std::logic_error("eplb: no swap frees a slot (an expert has more replicas than ranks)");
    const int y = packs[best_b][best_slot];
    holds[best_b][expert_of[y]] = 0;
    load[best_b] += weight[item] - weight[y];
    packs[best_b][best_slot] = item;
    holds[best_b][e] = 1;
    put(best_a, y);
  }
  return packs;
}

}  // namespace eplb_detail

bool eplb_hierarchical(const EplbConfig& cfg) {
  return cfg.nodes >= 1 && cfg.expert_groups > 0 && cfg.expert_groups % cfg.nodes == 0;
}

std::string validate_eplb_config(int num_experts, const EplbConfig& cfg) {
  std::ostringstream err;
  const int N = num_experts, P = cfg.num_ranks, R = cfg.redundant;
  if (N < 1) return "--experts must be >= 1";
  if (P < 1) return "--ranks: must be >= 1";
  if (R < 0) return "--redundant-experts must be >= 0";
  if ((static_cast<int64_t>(N) + R) % P != 0) {
    const int r0 = (P - N % P) % P;
    err << "--redundant-experts: N + R = " << N + R << " physical experts do not split evenly over " << P
        << " ranks (valid: R = " << r0 << ", " << r0 + P << ", " << r0 + 2 * P << ", ...)";
    return err.str();
  }
  if (cfg.nodes < 1) return "--nodes must be >= 1";
  if (P % cfg.nodes != 0) {
    err << "--nodes (" << cfg.nodes << ") must divide the number of ranks (" << P << ")";
    return err.str();
  }
  if (cfg.expert_groups < 0) return "--expert-groups must be >= 0 (0: global mode)";
  if (cfg.expert_groups > 0 && N % cfg.expert_groups != 0) {
    err << "--expert-groups (" << cfg.expert_groups << ") must divide the number of experts (" << N << ")";
    return err.str();
  }
  const NodeShape s = node_shape(N, cfg);
  if (cfg.no_duplicate && s.slots_per_rank > s.experts_per_node) {
    err << "--redundant-experts: without duplicate replicas a rank holds at most one replica of each of its node's "
        << s.experts_per_node << " experts, but (N + R)/P = " << s.slots_per_rank;
    return err.str();
  }
  return {};
}

EplbPlacement eplb_place(const std::vector<double>& estimate, const EplbConfig& cfg) {
  const int N = static_cast<int>(estimate.size());
  if (auto why = validate_eplb_config(N, cfg); !why.empty()) throw std::invalid_argument(why);
  for (int e = 0; e < N; ++e)
    if (!std::isfinite(estimate[e]) || estimate[e] < 0)
      throw std::invalid_argument("eplb: load estimate of expert " + std::to_string(e) + " is not finite and >= 0");
  const NodeShape s = node_shape(N, cfg);
  const int groups = eplb_hierarchical(cfg) ? cfg.expert_groups : 1;
  EplbPlacement out;
  out.replicas_of_rank.resize(cfg.num_ranks);
  out.replica_count.assign(N, 0);
  const auto node_experts = experts_of_nodes(estimate, groups, s.nodes);
  for (int node = 0; node < s.nodes; ++node)
    place_node(estimate, node_experts[node], s, cfg.no_duplicate, node * s.ranks_per_node, out);
  return out;
}

std::vector<double> eplb_predicted_rank_loads(const EplbPlacement& p, const std::vector<double>& estimate) {
  if (static_cast<int>(estimate.size()) != p.num_experts())
    throw std::invalid_argument("eplb: estimate and placement differ in the number of experts");
  std::vector<double> loads(p.num_ranks(), 0.0);
  for (int r = 0; r < p.num_ranks(); ++r)
    for (const int e : p.replicas_of_rank[r]) loads[r] += estimate[e] / p.replica_count[e];
  return loads;
}

double eplb_predicted_imbalance(const EplbPlacement& p, const std::vector<double>& estimate) {
  const auto loads = eplb_predicted_rank_loads(p, estimate);
  const double total = std::accumulate(loads.begin(), loads.end(), 0.0);
  if (loads.empty() || total <= 0) return 1.0;
  return *std::max_element(loads.begin(), loads.end()) * static_cast<double>(loads.size()) / total;
}

std::vector<std::vector<int>> eplb_sorted_replicas(const EplbPlacement& p) {
  auto out = p.replicas_of_rank;
  for (auto& r : out) std::sort(r.begin(), r.end());
  return out;
}

std::vector<std::vector<int>> eplb_replica_ranks(const EplbPlacement& p) {
  std::vector<std::vector<int>> out(p.num_experts());
  for (int r = 0; r < p.num_ranks(); ++r)
    for (const int e : p.replicas_of_rank[r]) out[e].push_back(r);
  return out;
}

bool eplb_has_duplicate(const EplbPlacement& p) {
  for (const auto& slots : p.replicas_of_rank)
    if (distinct_sorted(slots).size() != slots.size()) return true;
  return false;
}

std::vector<int> max_gain_assignment(const std::vector<std::vector<int64_t>>& gain) {
  // Kuhn-Munkres with potentials (the O(n^3) form that adds one row at a time
  // and grows a shortest augmenting path by Dijkstra-like steps over the
  // reduced costs). It minimises, so cost = -(gain * (n + 1) + [i == j]): the
  // diagonal bonus sums to at most n < n + 1, so it only breaks ties.
  const int n = static_cast<int>(gain.size());
  const int64_t kInf = INT64_MAX / 4;
  auto cost = [&](int i, int j) {  // 1-based
    return -(gain[i - 1][j - 1] * (n + 1) + (i == j ? 1 : 0));
  };
  std::vector<int64_t> u(n + 1, 0), v(n + 1, 0);
  std::vector<int> row_of_col(n + 1, 0), way(n + 1, 0);  // column 0 is the virtual root
  for (int i = 1; i <= n; ++i) {
    row_of_col[0] = i;
    int j0 = 0;
    std::vector<int64_t> minv(n + 1, kInf);
    std::vector<char> used(n + 1, 0);
    do {
      used[j0] = 1;
      const int i0 = row_of_col[j0];
      int64_t delta = kInf;
      int j1 = 0;
      for (int j = 1; j <= n; ++j) {
        if (used[j]) continue;
        const int64_t cur = cost(i0, j) - u[i0] - v[j];
        if (cur < minv[j]) minv[j] = cur, way[j] = j0;
        if (minv[j] < delta) delta = minv[j], j1 = j;
      }
      for (int j = 0; j <= n; ++j) {
        if (used[j])
          u[row_of_col[j]] += delta, v[j] -= delta;
        else
          minv[j] -= delta;
      }
      j0 = j1;
    } while (row_of_col[j0] != 0);
    do {  // flip the augmenting path back to the root
      const int j1 = way[j0];
      row_of_col[j0] = row_of_col[j1];
      j0 = j1;
    } while (j0 != 0);
  }
  std::vector<int> col_of_row(n);
  for (int j = 1; j <= n; ++j) col_of_row[row_of_col[j] - 1] = j - 1;
  return col_of_row;
}

EplbPlacement relabel_min_movement(const EplbPlacement& old_p, const EplbPlacement& new_p, int ranks_per_node) {
  if (old_p.replicas_of_rank.empty()) return new_p;
  check_same_shape(old_p, new_p);
  const int P = new_p.num_ranks(), K = ranks_per_node;
  if (K < 1 || P % K != 0) throw std::invalid_argument("eplb: ranks_per_node must divide the number of ranks");
  EplbPlacement out = new_p;
  for (int base = 0; base < P; base += K) {
    std::vector<std::vector<int64_t>> kept(K, std::vector<int64_t>(K));  // old rank i given new set j
    for (int i = 0; i < K; ++i)
      for (int j = 0; j < K; ++j)
        kept[i][j] = shared_experts(old_p.replicas_of_rank[base + i], new_p.replicas_of_rank[base + j]);
    const std::vector<int> set_of_rank = max_gain_assignment(kept);
    for (int i = 0; i < K; ++i)
      out.replicas_of_rank[base + i] =
          keep_slot_positions(old_p.replicas_of_rank[base + i], new_p.replicas_of_rank[base + set_of_rank[i]]);
  }
  return out;
}

int64_t replicas_moved(const EplbPlacement& old_p, const EplbPlacement& new_p) {
  int64_t moved = 0;
  if (old_p.replicas_of_rank.empty()) {
    for (const auto& slots : new_p.replicas_of_rank) moved += static_cast<int64_t>(distinct_sorted(slots).size());
    return moved;
  }
  if (old_p.num_ranks() != new_p.num_ranks()) throw std::invalid_argument("eplb: placements differ in ranks");
  for (int r = 0; r < new_p.num_ranks(); ++r) {
    const auto& now = new_p.replicas_of_rank[r];
    moved += static_cast<int64_t>(distinct_sorted(now).size()) - shared_experts(old_p.replicas_of_rank[r], now);
  }
  return moved;
}

Plan eplb_plan(const EplbPlacement& p, const std::vector<int64_t>& expert_loads, const std::string& policy_name) {
  const int N = p.num_experts();
  if (static_cast<int>(expert_loads.size()) != N)
    throw std::invalid_argument("eplb: loads and placement differ in the number of experts");
  Plan plan;
  plan.policy = policy_name;
  plan.num_ranks = p.num_ranks();
  plan.num_experts = N;
  plan.assignments.resize(N);
  plan.dropped.assign(N, 0);
  const auto ranks = eplb_replica_ranks(p);
  for (int e = 0; e < N; ++e) {
    const int64_t load = expert_loads[e];
    if (load < 0) throw std::invalid_argument("eplb: expert loads must be >= 0");
    const int64_t r = static_cast<int64_t>(ranks[e].size());
    if (r == 0) throw std::invalid_argument("eplb: expert " + std::to_string(e) + " has no replica");
    SlotRangeList& ranges = plan.assignments[e];
    int64_t cursor = 0;
    for (int64_t i = 0; i < r && cursor < load; ++i) {
      const int64_t size = load / r + (i < load % r ? 1 : 0);
      const int rank = ranks[e][i];
      if (!ranges.empty() && ranges.back().rank == rank)
        ranges.back().end += size;  // a rank's second replica
      else
        ranges.push_back({rank, cursor, cursor + size});
      cursor += size;
    }
  }
  return plan;
}

std::string validate_eplb_plan(const Plan& plan, const std::vector<int64_t>& expert_loads, const EplbPlacement& p) {
  std::ostringstream err;
  const int N = p.num_experts();
  if (plan.num_experts != N || static_cast<int>(expert_loads.size()) != N || plan.num_ranks != p.num_ranks())
    return "plan, loads and placement differ in experts or ranks";
  if (static_cast<int>(plan.assignments.size()) != N || static_cast<int>(plan.dropped.size()) != N)
    return "plan.assignments/dropped must have one entry per expert";
  if (!plan.transfers.empty()) return "a plan over resident replicas has no weight transfers";
  const auto ranks = eplb_replica_ranks(p);
  for (int e = 0; e < N; ++e) {
    if (plan.dropped[e] != 0) {
      err << "expert " << e << ": " << plan.dropped[e] << " slots dropped";
      return err.str();
    }
    int64_t cursor = 0;
    for (const auto& r : plan.assignments[e]) {
      if (r.start != cursor || r.end <= r.start) {
        err << "expert " << e << ": range [" << r.start << ", " << r.end << ") does not continue at " << cursor;
        return err.str();
      }
      if (std::find(ranks[e].begin(), ranks[e].end(), r.rank) == ranks[e].end()) {
        err << "expert " << e << ": range on rank " << r.rank << ", which holds no replica of it";
        return err.str();
      }
      cursor = r.end;
    }
    if (cursor != expert_loads[e]) {
      err << "expert " << e << ": ranges cover [0, " << cursor << ") of " << expert_loads[e] << " slots";
      return err.str();
    }
  }
  return {};
}

}  // namespace moe
