#pragma once
// Who computes what and who sends what to whom under a plan: the one
// derivation from (plan, loads, slot order) that the layer's dispatch layout,
// the memory model and the emulator all use (Cabana's "plan apart from its
// execution"). Per-rank aggregates only; DispatchLayout refines the rank's own
// part to single slots.

#include <cstdint>
#include <vector>

#include "policies/Plan.hpp"
#include "runtime/layer/DispatchLayout.hpp"

namespace moe {

/// One expert's slots computed on one rank: one GEMM pair.
struct RankBlock {
  int expert = 0;
  int64_t slots = 0;
  bool imported = false;  // the expert is not native to the rank (its weights moved)
  bool operator==(const RankBlock&) const = default;
};

/// One rank's expert work, experts ascending.
struct RankWork {
  std::vector<RankBlock> blocks;
  int64_t slots = 0;
  int64_t largest_block() const;
};

/// Each rank's work under `plan`: the ranges of an expert owned by one rank
/// merge into one block (the layer regroups received rows the same way).
std::vector<RankWork> partition_work(const Plan& plan);

/// Rows that rank `dst` computes, by source rank and expert: [q][e] (the
/// slots of source q's expert e whose positions fall in dst's ranges).
std::vector<int64_t> rows_computed_by(const Plan& plan, const SlotOrderMap& order, int dst);

struct WorkSplit {
  int num_ranks = 0;
  std::vector<RankWork> work;  // per computing rank
  std::vector<int64_t> flow;   // token rows [src][dst]: routed on src, computed on dst (dst == src: stays)
  std::vector<int> imported;   // per rank: expert weights it receives
  int64_t rows(int src, int dst) const { return flow[static_cast<size_t>(src) * num_ranks + dst]; }
  /// Rows rank `src` sends anywhere, itself included (its kept slots).
  int64_t kept_rows(int src) const;
};

/// The split of `plan` over the ranks; `order` numbers each expert's slots as
/// the plan does (SlotOrderMap(loads) for position-ordered plans).
WorkSplit split_work(const Plan& plan, const SlotOrderMap& order);

}  // namespace moe
