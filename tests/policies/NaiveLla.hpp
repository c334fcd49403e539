#pragma once
// A deliberately naive LLEP written straight from the text, to check
// policies/LeastLoadedAssignment.cpp (llep, llep-topo) against: it re-sorts
// the other ranks before every spill step and scans them for the first that
// qualifies, exactly as worded,
// with none of the shortcuts of the real implementation. It also records which
// ranks ever received a forced remainder (the only way past m_alpha).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <vector>

#include "policies/Policy.hpp"

namespace moe::test {

struct NaiveLlep {
  Plan plan;
  bool ran_lla = false;      // false: the EP fallback below lambda
  int64_t m_alpha = 0;       // capacity per rank when LLA ran
  std::vector<bool> forced;  // per rank: ever took a forced remainder
};

/// llep-topo's preference as docs/policies.md words it (ranks_per_node <= 0:
/// none, plain LLEP).
struct NaiveNodePreference {
  int ranks_per_node = 0;
  double tolerance = 0.0;
};

inline NaiveLlep naive_llep(const std::vector<int64_t>& loads, int P, const PolicyParams& params,
                            const NaiveNodePreference& pref = {}, const char* name = "llep") {
  const int N = static_cast<int>(loads.size());
  NaiveLlep out;
  out.forced.assign(P, false);
  out.plan.policy = name;
  out.plan.num_ranks = P;
  out.plan.num_experts = N;
  out.plan.assignments.resize(N);
  out.plan.dropped.assign(N, 0);
  const int M = N / P;

  std::vector<int64_t> ep_rank(P, 0);
  for (int e = 0; e < N; ++e) ep_rank[e / M] += loads[e];
  if (imbalance(ep_rank) < params.number("lambda")) {  // EP: every expert whole on e / M
    for (int e = 0; e < N; ++e)
      if (loads[e] > 0) out.plan.assignments[e].push_back({e / M, 0, loads[e]});
    return out;
  }
  out.ran_lla = true;
  const int64_t total = std::accumulate(loads.begin(), loads.end(), int64_t{0});
  const int64_t per_rank = total / P;  // floor(total / P), as LLEP
  out.m_alpha =
      std::max<int64_t>(1, static_cast<int64_t>(std::floor(params.number("alpha") * static_cast<double>(per_rank))));
  const int64_t m_alpha = out.m_alpha;
  const int64_t m = params.integer("min-chunk");

  std::vector<int64_t> pending = ep_rank, assigned(P, 0);
  std::vector<int> experts;
  for (int e = 0; e < N; ++e)
    if (loads[e] != 0) experts.push_back(e);
  std::stable_sort(experts.begin(), experts.end(), [&](int a, int b) { return loads[a] > loads[b]; });

  for (int e : experts) {
    const int native = e / M;
    auto& ranges = out.plan.assignments[e];
    pending[native] -= loads[e];
    int64_t take = std::min(loads[e], m_alpha - assigned[native] - pending[native]);
    if (P == 1) take = loads[e];
    if (take < 0) take = 0;
    if (take > 0) ranges.push_back({native, 0, take});
    assigned[native] += take;
    int64_t cursor = take;
    int64_t remainder = loads[e] - take;
    while (remainder > 0) {
      std::vector<int> others;
      for (int r = 0; r < P; ++r)
        if (r != native) others.push_back(r);
      std::sort(others.begin(), others.end(), [&](int a, int b) {
        const int64_t la = assigned[a] + pending[a], lb = assigned[b] + pending[b];
        return la != lb ? la < lb : a < b;
      });
      int chosen = -1;
      int64_t give = 0;
      // llep-topo: the first rank of the order on the native's node replaces
      // the first of all when its key is within the tolerance and it qualifies.
      const auto node = [&](int r) { return pref.ranks_per_node > 0 ? r / pref.ranks_per_node : 0; };
      const auto key = [&](int r) { return assigned[r] + pending[r]; };
      const int q0 = others.front();
      if (node(q0) != node(native))
        for (int h : others) {
          if (node(h) != node(native)) continue;
          const int64_t c = std::min(remainder, m_alpha - key(h));
          if (static_cast<double>(key(h)) <= (1.0 + pref.tolerance) * static_cast<double>(key(q0)) && c > 0 &&
              !(c < m && remainder > c)) {
            chosen = h;
            give = c;
          }
          break;  // only the least-loaded rank on the node is considered
        }
      for (int q : others) {
        if (chosen >= 0) break;
        const int64_t c = std::min(remainder, m_alpha - assigned[q] - pending[q]);
        if (c > 0 && !(c < m && remainder > c)) {
          chosen = q;
          give = c;
          break;
        }
      }
      if (chosen < 0) {  // nobody qualifies: the first of the order takes it all
        chosen = others.front();
        give = remainder;
        out.forced[chosen] = true;
      }
      const bool new_helper =
          std::none_of(ranges.begin(), ranges.end(), [&](const SlotRange& r) { return r.rank == chosen; });
      if (new_helper) out.plan.transfers.push_back({e, native, chosen});
      ranges.push_back({chosen, cursor, cursor + give});
      assigned[chosen] += give;
      cursor += give;
      remainder -= give;
    }
    // The same rank continuing its own range is one range.
    std::vector<SlotRange> merged;
    for (const auto& r : ranges) {
      if (!merged.empty() && merged.back().rank == r.rank && merged.back().end == r.start)
        merged.back().end = r.end;
      else
        merged.push_back(r);
    }
    ranges = merged;
  }
  return out;
}

/// llep-topo's layout of split experts, slot by slot as docs/policies.md words
/// it: slot positions in order, each with its origin rank (the origins'
/// blocks in rank order); each computing rank keeps its number of slots. Pass
/// 1: a slot goes to its origin rank while that rank has slots to compute;
/// pass 2: a slot left goes to the first rank on its origin's node with slots
/// left; pass 3: to the first rank with slots left. `origins`: per-rank counts.
inline void naive_lay_out(Plan& plan, const LoadMatrix& origins, int ranks_per_node) {
  const int P = plan.num_ranks;
  const auto node = [&](int r) { return r / ranks_per_node; };
  for (int e = 0; e < plan.num_experts; ++e) {
    auto& ranges = plan.assignments[e];
    if (ranges.size() < 2) continue;
    std::vector<int64_t> left(P, 0);
    for (const auto& r : ranges) left[r.rank] += r.size();
    std::vector<int> origin, owner;
    for (int q = 0; q < origins.num_ranks; ++q)
      for (int64_t i = 0; i < origins.at(q, e); ++i) origin.push_back(q);
    owner.assign(origin.size(), -1);
    for (int pass = 1; pass <= 3; ++pass)
      for (size_t i = 0; i < origin.size(); ++i) {
        if (owner[i] >= 0) continue;
        for (int r = 0; r < P; ++r) {
          const bool allowed = pass == 1 ? r == origin[i] : pass == 2 ? node(r) == node(origin[i]) : true;
          if (allowed && left[r] > 0) {
            owner[i] = r;
            --left[r];
            break;
          }
        }
      }
    ranges.clear();
    for (size_t i = 0; i < owner.size(); ++i) {
      const auto p = static_cast<int64_t>(i);
      if (!ranges.empty() && ranges.back().rank == owner[i])
        ranges.back().end = p + 1;
      else
        ranges.push_back({owner[i], p, p + 1});
    }
  }
}

}  // namespace moe::test
