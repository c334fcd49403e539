#pragma once
// The router: logits = x * W_r (D x N), top-K experts per token, gate weights
// = softmax over the chosen experts' logits (renormalised). A synthetic
// scenario or a trace replaces the top-K indices (docs/scenarios.md); the gates
// always come from the router's own logits.

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "kernels/KernelTypes.hpp"
#include "runtime/common/ModelConfig.hpp"
#include "runtime/layer/MemoryTracker.hpp"
#include "runtime/layer/RoutingSource.hpp"

namespace moe {

struct Routing {
  std::vector<int32_t> expert_ids;  // host copy, t*K + k
  ExpertIdVector expert_ids_dev;
  Vector gates;  // device, t*K + k
};

class Router {
 public:
  /// source empty: the router's own top-K.
  Router(const ModelShape& shape, int layer, uint64_t seed, ExpertIdSource source, MemoryTracker& tracker);
  Routing route(const Matrix& x, const RoutingKey& key) const;
  const Matrix& weights() const { return w_r_.view(); }

 private:
  ModelShape shape_;
  ExpertIdSource source_;
  MemoryTracker* tracker_;
  TrackedMatrix w_r_;  // D x N
};

}  // namespace moe
