#pragma once
// The routing sources a run can use (docs/scenarios.md, docs/traces.md): a
// synthetic scenario, a recorded trace, or none (the router's own top-K), all
// behind the layer's ExpertIdSource interface.

#include <cstdint>
#include <string>
#include <vector>

#include "runtime/common/ModelConfig.hpp"
#include "runtime/layer/RoutingSource.hpp"
#include "runtime/workload/Scenario.hpp"

namespace moe {

/// The synthetic source for a scenario (sample_expert_ids), the trace's ids for
/// trace:FILE (throws InputError on a malformed file), or an empty source for
/// the router's own top-K.
ExpertIdSource scenario_source(const ScenarioSpec& spec, const ModelShape& shape, double drift);

/// An ExpertIdSource replaying a trace (opens it now; reads lazily, one
/// (step, layer, token range) at a time, and keeps the last one).
ExpertIdSource trace_source(const std::string& path, const ModelShape& shape);

/// Writes a synthetic trace: ids from sample_expert_ids with the runtime's keys
/// RoutingKey{seed, step, layer, token_offset of rank r} for tokens_per_rank[r]
/// tokens of each rank r, so replaying it reproduces the synthetic run exactly.
/// Throws std::runtime_error on I/O errors.
void write_synthetic_trace(const std::string& path, const ScenarioSpec& spec, const ModelShape& shape, double drift,
                           uint64_t seed, int steps, int layers, const std::vector<int64_t>& tokens_per_rank,
                           const std::string& tool_version);

}  // namespace moe
