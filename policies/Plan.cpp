#include "policies/Plan.hpp"

#include <algorithm>
#include <numeric>
#include <set>
#include <sstream>
#include <tuple>

namespace moe {

std::vector<int64_t> LoadMatrix::expert_loads() const {
  std::vector<int64_t> loads(num_experts, 0);
  for (int r = 0; r < num_ranks; ++r)
    for (int e = 0; e < num_experts; ++e) loads[e] += at(r, e);
  return loads;
}

LoadMatrix LoadMatrix::from_expert_loads(const std::vector<int64_t>& loads) {
  LoadMatrix m(1, static_cast<int>(loads.size()));
  std::copy(loads.begin(), loads.end(), m.counts.begin());
  return m;
}

std::vector<int64_t> Plan::rank_loads() const {
  std::vector<int64_t> loads(num_ranks, 0);
  for (const auto& ranges : assignments)
    for (const auto& r : ranges) loads[r.rank] += r.size();
  return loads;
}

int64_t Plan::total_dropped() const { return std::accumulate(dropped.begin(), dropped.end(), int64_t{0}); }

double imbalance(const std::vector<int64_t>& rank_loads) {
  if (rank_loads.empty()) return 1.0;
  const int64_t total = std::accumulate(rank_loads.begin(), rank_loads.end(), int64_t{0});
  if (total == 0) return 1.0;
  const int64_t mx = *std::max_element(rank_loads.begin(), rank_loads.end());
  return static_cast<double>(mx) * static_cast<double>(rank_loads.size()) / static_cast<double>(total);
}

std::string validate_plan(const Plan& plan, const std::vector<int64_t>& expert_loads) {
  std::ostringstream err;
  const int N = plan.num_experts;
  const int P = plan.num_ranks;
  if (static_cast<int>(expert_loads.size()) != N) return "plan has a different number of experts than the loads";
  if (static_cast<int>(plan.assignments.size()) != N || static_cast<int>(plan.dropped.size()) != N)
    return "plan.assignments/dropped must have one entry per expert";
  std::set<std::pair<int, int>> helpers;  // (expert, rank) that run a foreign expert
  for (int e = 0; e < N; ++e) {
    const int64_t keep = expert_loads[e] - plan.dropped[e];
    if (plan.dropped[e] < 0 || keep < 0) {
      err << "expert " << e << ": dropped " << plan.dropped[e] << " outside [0, " << expert_loads[e] << "]";
      return err.str();
    }
    int64_t cursor = 0;
    for (const auto& r : plan.assignments[e]) {
      if (r.rank < 0 || r.rank >= P) {
        err << "expert " << e << ": range on rank " << r.rank << " outside [0, " << P << ")";
        return err.str();
      }
      if (r.start != cursor || r.end <= r.start) {
        err << "expert " << e << ": range [" << r.start << ", " << r.end << ") does not continue at " << cursor;
        return err.str();
      }
      cursor = r.end;
      if (r.rank != native_rank(e, N, P)) helpers.insert({e, r.rank});
    }
    if (cursor != keep) {
      err << "expert " << e << ": ranges cover [0, " << cursor << ") but " << keep << " slots are kept";
      return err.str();
    }
  }
  // Resident replicas (EPLB) compute without a per-step transfer.
  if (!plan.resident.empty() && static_cast<int>(plan.resident.size()) != P)
    return "plan.resident must have one entry per rank";
  for (int r = 0; r < static_cast<int>(plan.resident.size()); ++r)
    for (int e : plan.resident[r]) {
      if (e < 0 || e >= N || native_rank(e, N, P) == r) {
        err << "rank " << r << ": resident expert " << e << " is not a foreign expert of this job";
        return err.str();
      }
      helpers.erase({e, r});
    }
  std::set<std::pair<int, int>> moved;
  for (const auto& t : plan.transfers) {
    if (t.src != native_rank(t.expert, N, P)) {
      err << "transfer of expert " << t.expert << " from rank " << t.src << ", which is not its native rank";
      return err.str();
    }
    if (!moved.insert({t.expert, t.dst}).second) {
      err << "duplicate transfer of expert " << t.expert << " to rank " << t.dst;
      return err.str();
    }
  }
  if (moved != helpers) return "weight transfers do not match the helper ranges one to one";
  return {};
}

}  // namespace moe
