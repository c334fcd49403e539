#pragma once
// A placement plan: which rank computes which of each expert's token-slots,
// which expert weights move, and which slots are dropped.
//
// Slots of expert e are numbered in the expert's *global slot order*: rank 0's
// slots of e first (in rank 0's local order), then rank 1's, and so on. A plan
// gives each expert a list of ranges [start, end) in that order, each owned by
// one rank. Every rank computes the same plan from the all-gathered loads, so
// each rank can tell, from the counts alone, where each of its slots goes.

#include <algorithm>
#include <array>
#include <cstdint>
#include <initializer_list>
#include <ostream>
#include <string>
#include <vector>

namespace moe {

/// Per-rank, per-expert slot counts as all-gathered at the start of a step.
struct LoadMatrix {
  int num_ranks = 0;
  int num_experts = 0;
  std::vector<int64_t> counts;  // row-major [rank][expert]

  LoadMatrix() = default;
  LoadMatrix(int ranks, int experts)
      : num_ranks(ranks), num_experts(experts), counts(static_cast<size_t>(ranks) * experts, 0) {}

  int64_t& at(int rank, int expert) { return counts[static_cast<size_t>(rank) * num_experts + expert]; }
  int64_t at(int rank, int expert) const { return counts[static_cast<size_t>(rank) * num_experts + expert]; }
  /// Global load of each expert (sum over ranks).
  std::vector<int64_t> expert_loads() const;
  /// Builds a one-rank matrix from global expert loads (for the planner CLI).
  static LoadMatrix from_expert_loads(const std::vector<int64_t>& loads);
};

/// A contiguous range of an expert's global slot order computed by one rank.
struct SlotRange {
  int rank = 0;
  int64_t start = 0;
  int64_t end = 0;  // exclusive
  int64_t size() const { return end - start; }
  bool operator==(const SlotRange&) const = default;
};

/// The ranges of one expert. Almost every expert has one or two ranges, so
/// they are stored inline and a plan of N experts costs one allocation, not N
/// (a plan is made on every rank at every step; docs/performance.md, Planner).
class SlotRangeList {
 public:
  static constexpr uint32_t kInline = 2;
  SlotRangeList() = default;
  SlotRangeList(std::initializer_list<SlotRange> ranges) { assign(ranges.begin(), ranges.end()); }
  SlotRangeList(const std::vector<SlotRange>& ranges) { assign(ranges.begin(), ranges.end()); }  // NOLINT

  void push_back(const SlotRange& r) {
    if (size_ < kInline) {
      inline_[size_++] = r;
      return;
    }
    if (size_ == kInline) heap_.assign(inline_.begin(), inline_.end());
    heap_.push_back(r);
    ++size_;
  }
  template <class It>
  void assign(It first, It last) {
    clear();
    for (; first != last; ++first) push_back(*first);
  }
  void clear() {
    size_ = 0;
    heap_.clear();
  }

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  SlotRange* begin() { return size_ <= kInline ? inline_.data() : heap_.data(); }
  SlotRange* end() { return begin() + size_; }
  const SlotRange* begin() const { return size_ <= kInline ? inline_.data() : heap_.data(); }
  const SlotRange* end() const { return begin() + size_; }
  SlotRange& operator[](size_t i) { return begin()[i]; }
  const SlotRange& operator[](size_t i) const { return begin()[i]; }
  SlotRange& front() { return *begin(); }
  const SlotRange& front() const { return *begin(); }
  SlotRange& back() { return end()[-1]; }
  const SlotRange& back() const { return end()[-1]; }

  friend bool operator==(const SlotRangeList& a, const SlotRangeList& b) {
    return std::equal(a.begin(), a.end(), b.begin(), b.end());
  }
  friend bool operator==(const SlotRangeList& a, const std::vector<SlotRange>& b) {
    return std::equal(a.begin(), a.end(), b.begin(), b.end());
  }

 private:
  std::array<SlotRange, kInline> inline_{};
  std::vector<SlotRange> heap_;  // all ranges once there are more than kInline
  uint32_t size_ = 0;
};

/// Expert e's weights move from its native rank to a helper rank.
struct WeightTransfer {
  int expert = 0;
  int src = 0;
  int dst = 0;
  bool operator==(const WeightTransfer&) const = default;
};

/// How slots are numbered within an expert before the plan's ranges apply.
enum class SlotOrder {
  Position,       // global slot order as described above
  GateDescending  // by gate weight, highest first, ties by global position
};

struct Plan {
  std::string policy;
  int num_ranks = 0;
  int num_experts = 0;
  SlotOrder slot_order = SlotOrder::Position;
  /// assignments[e]: ranges of expert e in increasing order; they cover
  /// [0, load[e] - dropped[e]) exactly. Slots at or past the covered end are dropped.
  std::vector<SlotRangeList> assignments;
  std::vector<WeightTransfer> transfers;
  std::vector<int64_t> dropped;  // per expert
  /// Per rank, the foreign experts it holds *resident* across steps (EPLB's
  /// replicas), ascending; empty for policies that move weights per step. The
  /// runtime brings a listed expert to its rank (from the expert's native
  /// rank) before the first step that lists it, keeps it while later plans of
  /// the same policy list it, and frees it when they stop.
  std::vector<std::vector<int>> resident;
  /// Per rank, the logical expert of every physical expert slot it holds,
  /// ascending (a policy that places replicas: EPLB); empty otherwise.
  std::vector<std::vector<int>> replicas;

  /// Slots each rank computes under this plan.
  std::vector<int64_t> rank_loads() const;
  int64_t total_dropped() const;
  bool operator==(const Plan&) const = default;
};

/// For test failure messages.
inline std::ostream& operator<<(std::ostream& os, const SlotRange& r) {
  return os << '{' << r.rank << ", " << r.start << ", " << r.end << '}';
}
inline std::ostream& operator<<(std::ostream& os, const SlotRangeList& l) {
  os << '[';
  for (const auto& r : l) os << r << ' ';
  return os << ']';
}

/// Native rank of expert e under standard EP: e / (N / P).
inline int native_rank(int expert, int num_experts, int num_ranks) { return expert / (num_experts / num_ranks); }

/// Node of `rank` when every node holds `ranks_per_node` consecutive ranks
/// (the launchers' default block placement; the last node may hold fewer);
/// <= 0 means one node for all. What llep-topo plans with and what the
/// runtime's intra/inter-node byte counts (runtime/layer/WorkSplit.hpp) use.
inline int node_of(int rank, int ranks_per_node) { return ranks_per_node > 0 ? rank / ranks_per_node : 0; }

/// max/mean of a vector of rank loads (1.0 when all are zero).
double imbalance(const std::vector<int64_t>& rank_loads);

/// Checks the structural invariants of a plan against the loads it was made
/// for; returns an empty string when the plan is valid, else what is wrong.
std::string validate_plan(const Plan& plan, const std::vector<int64_t>& expert_loads);

}  // namespace moe
