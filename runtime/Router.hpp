#pragma once
// The router: logits = x * W_r (D x N), top-K experts per token, gate weights
// = softmax over the chosen experts' logits (renormalised). A synthetic
// scenario or a trace replaces the top-K indices (docs/scenarios.md); the gates
// always come from the router's own logits.

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "KernelTypes.hpp"
#include "MemoryTracker.hpp"
#include "ModelConfig.hpp"
#include "Scenario.hpp"

namespace moe {

/// Supplies top-K expert ids for `tokens` tokens at `key` (t*K + k order).
using ExpertIdSource = std::function<void(const RoutingKey& key, int64_t tokens, std::span<int32_t> expert_ids)>;

struct Routing {
  std::vector<int32_t> expert_ids;  // host copy, t*K + k
  ExpertIdVector expert_ids_dev;
  Vector gates;                     // device, t*K + k
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

/// The synthetic source for a scenario (sample_expert_ids), the trace's ids for
/// trace:FILE (TraceReader.hpp; throws InputError on a malformed file), or an
/// empty source for the router's own top-K.
ExpertIdSource scenario_source(const ScenarioSpec& spec, const ModelShape& shape, double drift);

/// Fills this rank's token activations for (step, layer): a pure function of
/// (seed, step, layer, global token index), so results do not depend on P.
void generate_tokens(const ModelShape& shape, uint64_t seed, int step, int layer, int64_t token_offset,
                     const Matrix& x);

}  // namespace moe
