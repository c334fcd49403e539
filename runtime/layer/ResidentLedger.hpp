#pragma once
// Resident replicas of stateful policies (EPLB): per policy and layer, the
// foreign experts each rank holds between steps. Every rank keeps the same
// ledger (it follows the executed plans, which every rank computes alike), so
// every rank can tell which replicas a new plan must bring to which rank, and
// the memory model can count every rank's replicas with no communication. A
// policy's replicas count in its own steps' peak bytes only.

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace moe {

class ResidentLedger {
 public:
  using PerRank = std::vector<std::vector<int>>;  // per rank, ascending expert ids

  /// What `policy` holds in `layer` (empty when nothing yet).
  const PerRank& held(const std::string& policy, int layer) const {
    static const PerRank kNone;
    auto it = held_.find({policy, layer});
    return it == held_.end() ? kNone : it->second;
  }
  void set(const std::string& policy, int layer, PerRank per_rank) { held_[{policy, layer}] = std::move(per_rank); }

  /// Replicas `rank` holds for `policy` over every layer but `except_layer`.
  int64_t count(const std::string& policy, int rank, int except_layer = -1) const {
    int64_t n = 0;
    for (const auto& [key, per_rank] : held_)
      if (key.first == policy && key.second != except_layer && rank < static_cast<int>(per_rank.size()))
        n += static_cast<int64_t>(per_rank[static_cast<size_t>(rank)].size());
    return n;
  }

 private:
  std::map<std::pair<std::string, int>, PerRank> held_;
};

}  // namespace moe
