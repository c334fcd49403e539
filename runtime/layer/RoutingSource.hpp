#pragma once
// Where a layer's top-K expert ids come from when they do not come from its
// own router: the interface the workload module implements (synthetic
// scenarios, recorded traces) and the layer consumes.

#include <cstdint>
#include <functional>
#include <span>

namespace moe {

/// Where in the run a batch of routing is drawn.
struct RoutingKey {
  uint64_t seed = 0;
  int step = 0;
  int layer = 0;
  int64_t token_offset = 0;  // global index of this rank's first token
};

/// Supplies top-K expert ids for `tokens` tokens at `key` (t*K + k order).
/// Empty: the router's own top-K.
using ExpertIdSource = std::function<void(const RoutingKey& key, int64_t tokens, std::span<int32_t> expert_ids)>;

}  // namespace moe
