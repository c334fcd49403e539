#pragma once
// Routing scenarios: which experts each token-slot goes to. The synthetic
// scenarios choose each slot's expert from a seeded distribution and override
// the router's top-K indices; the gate weights still come from the router's
// own logits (softmax over the chosen experts, renormalised). See docs/scenarios.md.

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "policies/Plan.hpp"
#include "runtime/common/ModelConfig.hpp"
#include "runtime/layer/RoutingSource.hpp"

namespace moe {

struct ScenarioSpec {
  enum class Kind { Balanced, Hot, Zipf, Router, Trace };
  Kind kind = Kind::Balanced;
  double hot_percent = 0.0;  // Hot: X, percent of token-slots into the hot experts
  int hot_experts = 0;       // Hot: k
  double zipf_s = 0.0;       // Zipf: exponent
  std::string trace_path;    // Trace: file
  std::string text;          // as given

  /// Parses "balanced", "router", "X:k", "zipf:S" or "trace:FILE"; throws
  /// std::invalid_argument with a one-line reason naming --scenario.
  static ScenarioSpec parse(const std::string& text);
  /// Checks the spec against a shape ("" or a one-line reason).
  std::string validate(const ModelShape& shape) const;
  /// Whether the scenario picks expert ids itself (else the router/trace does).
  bool synthetic() const { return kind == Kind::Balanced || kind == Kind::Hot || kind == Kind::Zipf; }
};

/// Fills expert_ids[t * K + k] for `tokens` tokens of one rank for a synthetic
/// scenario. `drift` (>= 0) perturbs the scenario from step 1 on: the hot set
/// moves to a seeded start and the hot fraction varies by up to +-drift
/// (relative); step 0 is the scenario as written.
void sample_expert_ids(const ScenarioSpec& spec, const ModelShape& shape, double drift, const RoutingKey& key,
                       int64_t tokens, std::span<int32_t> expert_ids);

/// Per-rank expert loads a synthetic scenario produces for one step and layer,
/// with tokens_per_rank[r] tokens on rank r (same sampler as the runtime).
LoadMatrix scenario_load_matrix(const ScenarioSpec& spec, const ModelShape& shape, double drift, uint64_t seed,
                                int step, int layer, const std::vector<int64_t>& tokens_per_rank);

}  // namespace moe
