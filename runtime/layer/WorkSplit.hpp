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

// node_of(rank, ranks_per_node), the node of a rank when nodes are blocks of
// consecutive ranks, is in policies/Plan.hpp (llep-topo plans with it).

/// Per-rank bytes of one layer-step under a plan, split by whether the peer
/// rank is on the same node. Token rows count once per direction of the
/// dispatch (the combine moves the same rows back: same bytes, peers swapped);
/// rows a rank computes itself are not traffic. Weights: the plan's transfers
/// (per-step moves; EPLB's resident replicas are placed at re-placements and
/// not counted here).
struct NodeTraffic {
  std::vector<int64_t> token_send_intra, token_send_inter;  // per rank: dispatch rows sent x row bytes
  std::vector<int64_t> token_recv_intra, token_recv_inter;  // per rank: dispatch rows received x row bytes
  std::vector<int64_t> weight_send_intra, weight_send_inter;
  std::vector<int64_t> weight_recv_intra, weight_recv_inter;
  /// Totals over ranks (each byte once: as sent).
  int64_t token_intra() const;
  int64_t token_inter() const;
  int64_t weight_intra() const;
  int64_t weight_inter() const;
};

NodeTraffic node_traffic(const WorkSplit& split, const std::vector<WeightTransfer>& transfers, int ranks_per_node,
                         int64_t row_bytes, int64_t expert_bytes);

/// The split of `plan` over the ranks; `order` numbers each expert's slots as
/// the plan does (SlotOrderMap(loads) for position-ordered plans).
WorkSplit split_work(const Plan& plan, const SlotOrderMap& order);

}  // namespace moe
